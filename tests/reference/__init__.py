"""Independent single-seed reference implementations the tests check the product against (no part of
the package)."""
