"""vagram-bench: a Gymnasium-compatible benchmark suite for decision-aware model-based RL.

Importing the package registers every environment id with gymnasium (gymnasium 1.x has no plugin
entry points), so ``import vagram_bench; gym.make("HopperDistract-15-v0")`` works, as does
``gym.make("vagram_bench:HopperDistract-15-v0")`` without an explicit import.

``envs/``, ``agents/`` and ``protocols/`` sit at the repository root and become
``vagram_bench.envs``, ``vagram_bench.agents`` and ``vagram_bench.protocols`` only when the package
is installed (``pip install -e .``; the mapping is ``[tool.setuptools.package-dir]`` in
``pyproject.toml``). Imported from a plain checkout, the package says so instead of failing with a
circular-import error.
"""

import importlib.util as _importlib_util

__version__ = "0.1.0"

try:
    from vagram_bench import envs as envs  # registers the env ids on import
except ImportError:
    if _importlib_util.find_spec("vagram_bench.envs") is not None:
        raise  # envs/ was found; the error is inside it (e.g. a missing dependency)
    raise ImportError(
        f"vagram_bench is imported from {__path__[0]} but not installed, so its subpackages "
        "vagram_bench.envs, .agents and .protocols (the repository's envs/, agents/ and protocols/ "
        "directories) cannot be found: install the package first (`pip install -e .` in the "
        "repository root)"
    ) from None

__all__ = ["envs", "__version__"]
