"""The shape of the code (issue 22, "one path per idea"): no function of the package is longer than 80
lines, and every module imports on its own in a fresh interpreter (an import cycle shows as an
``ImportError`` of a partially initialised module when the cycle is entered from the wrong end)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source tree -> the package it installs as (pyproject.toml, [tool.setuptools.package-dir])
TREES = {"vagram_bench": "vagram_bench", "agents": "vagram_bench.agents", "envs": "vagram_bench.envs"}
MAX_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for tree, package in TREES.items():
        for path in sorted((ROOT / tree).rglob("*.py")):
            parts = path.relative_to(ROOT / tree).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # importing it runs the command line
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def test_the_module_list_covers_the_three_trees():
    modules = _modules()
    assert {"vagram_bench.runner.loop", "vagram_bench.agents.mbpo.population", "vagram_bench.envs.distraction",
            "vagram_bench.models.population", "vagram_bench"} <= set(modules)
    assert len(modules) > 40


def test_no_function_exceeds_80_lines():
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # the def line to the last line (decorators not counted)
                if lines > MAX_LINES:
                    long[f"{name}.{node.name} (line {node.lineno})"] = lines
    assert long == {}


def test_the_line_count_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    node = ast.parse(f"def f():\n{body}\n").body[0]
    assert node.end_lineno - node.lineno + 1 == MAX_LINES + 1


def _agent_imports(source: str) -> list[str]:
    """The ``vagram_bench.agents`` modules a source imports (``from vagram_bench import agents`` too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("vagram_bench.agents")]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("vagram_bench.agents"):
                found.append(node.module)
            elif node.module == "vagram_bench":
                found += [f"vagram_bench.{a.name}" for a in node.names if a.name == "agents"]
    return found


def test_the_core_imports_no_agent_package():
    # the runner and the results code reach agents through the registry's entry points only
    core = {name: path for name, path in _modules().items() if not name.startswith(("vagram_bench.agents", "vagram_bench.envs"))}
    assert "vagram_bench.runner.loop" in core
    assert {name: _agent_imports(path.read_text()) for name, path in core.items() if _agent_imports(path.read_text())} == {}
    assert _agent_imports("import os\nfrom vagram_bench.agents.sac import SACAgent\n"
                          "def f():\n    import vagram_bench.agents.mbpo\n    from vagram_bench import agents\n") == [
        "vagram_bench.agents.sac", "vagram_bench.agents.mbpo", "vagram_bench.agents"]


_IMPORT_EACH = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "vagram_bench" or m.startswith("vagram_bench.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_without_a_cycle():
    # one interpreter, the package's modules dropped before each import: each module is imported as if
    # it were the first (third-party modules stay loaded, so this takes seconds, not one process each)
    names = sorted(_modules())
    out = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *names], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]


def test_the_import_check_sees_a_cycle(tmp_path):
    # a two-module cycle entered from the wrong end: what the check above must report
    pkg = tmp_path / "vagram_bench_cycle"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from vagram_bench_cycle.b import g\ndef f():\n    return 1\n")
    (pkg / "b.py").write_text("from vagram_bench_cycle.a import f\ndef g():\n    return f()\n")
    code = _IMPORT_EACH.replace('"vagram_bench"', '"vagram_bench_cycle"').replace('"vagram_bench."', '"vagram_bench_cycle."')
    out = subprocess.run([sys.executable, "-c", code, "vagram_bench_cycle.a", "vagram_bench_cycle.b"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 1 and "partially initialized" in out.stdout, out.stdout + out.stderr


def _imports_of_the_tests_package(source: str) -> list[str]:
    """``import tests...`` / ``from tests... import``: the tests directory is no package (no __init__.py), so
    such an import works only where the repository root happens to be on sys.path (``python -m pytest``),
    not under the README's plain ``pytest``; a test module shares helpers as ``from test_x import y``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        found += [n for n in names if n == "tests" or n.startswith("tests.")]
    return found


def test_no_test_imports_the_tests_directory_as_a_package():
    assert not (ROOT / "tests" / "__init__.py").exists()
    bad = {p.name: hits for p in sorted((ROOT / "tests").glob("*.py"))
           if (hits := _imports_of_the_tests_package(p.read_text()))}
    assert not bad, bad


def test_the_tests_package_check_sees_both_import_forms():
    assert _imports_of_the_tests_package("def f():\n    from tests.test_leaderboard import write_run\n") \
        == ["tests.test_leaderboard"]
    assert _imports_of_the_tests_package("import tests.test_svg as s\nfrom test_svg import x\n") == ["tests.test_svg"]
    assert _imports_of_the_tests_package("from test_leaderboard import write_run\nfrom . import y\n") == []
