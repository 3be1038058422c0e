"""The built wheel installs without dependencies and works from outside the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", "runs")


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the source tree (no downloads, no build isolation) and install it, without
    dependencies, into a fresh target directory."""
    root = tmp_path_factory.mktemp("wheel")
    src, wheels, target = root / "src", root / "wheels", root / "target"
    # Build from a copy of what the sdist needs, so that setuptools' build/ and *.egg-info never land in the
    # working tree (and run directories are not copied).
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    for name in ("vagram_bench", "envs", "agents", "protocols"):
        shutil.copytree(REPO / name, src / name, ignore=_IGNORE)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--no-cache-dir"]
    build = subprocess.run(
        [*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels)],
        capture_output=True, text=True, cwd=root,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("vagram_bench-*.whl")
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True, text=True, cwd=root,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return target


def test_wheel_contains_the_mapped_packages(installed_wheel):
    pkg = installed_wheel / "vagram_bench"
    for sub in ("envs", "agents", "protocols"):
        assert (pkg / sub / "__init__.py").is_file(), f"vagram_bench/{sub} missing from the wheel"
    assert (pkg / "envs" / "distraction.py").is_file()
    shipped = sorted(p.name for p in (pkg / "protocols").glob("*.toml"))
    in_repo = sorted(p.name for p in (REPO / "protocols").glob("*.toml"))
    assert shipped == in_repo  # protocol files ship as package data


def test_wheel_imports_and_makes_env_outside_repo(installed_wheel, tmp_path):
    code = textwrap.dedent(
        """
        import sys
        from importlib import resources
        from pathlib import Path
        import gymnasium as gym
        import vagram_bench
        target = Path(sys.argv[1]).resolve()
        assert Path(vagram_bench.__file__).resolve().is_relative_to(target), vagram_bench.__file__
        assert Path(vagram_bench.envs.__file__).resolve().is_relative_to(target), vagram_bench.envs.__file__
        env = gym.make("HopperDistract-15-v0")
        obs, _ = env.reset(seed=0)
        assert obs.shape == (26,)
        env.step(env.action_space.sample())
        tomls = [p for p in resources.files("vagram_bench.protocols").iterdir() if p.name.endswith(".toml")]
        if tomls:
            import tomllib
            tomllib.loads(tomls[0].read_text())
        print("ok", len(tomls))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(installed_wheel)],
        capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(installed_wheel), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split()[0] == "ok"
    n_tomls = len(list((REPO / "protocols").glob("*.toml")))
    assert int(out.stdout.split()[1]) == n_tomls


# A plain checkout, not installed: the repository root on sys.path, and every finder that an install
# (editable or not) put into this interpreter removed, so only the checkout's files can be imported.
_UNINSTALLED = textwrap.dedent(
    """
    import importlib.util, runpy, sys
    checkout = sys.argv[1]
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
    sys.path_importer_cache.clear()
    sys.path.insert(0, checkout)
    spec = importlib.util.find_spec("vagram_bench")
    assert spec.origin.startswith(checkout), spec.origin  # the checkout's copy, not an installed one
    try:
        if sys.argv[2] == "import":
            import vagram_bench
        else:
            sys.argv[1:] = ["list"]
            runpy.run_module("vagram_bench.run", run_name="__main__")
    except ImportError as exc:
        print(f"ImportError: {exc}")
        sys.exit(3)
    print("imported")
    """
)


@pytest.mark.parametrize("how", ["import", "python -m vagram_bench.run list"])
def test_a_plain_checkout_says_install_first(tmp_path, how):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("vagram_bench", "envs", "agents", "protocols"):
        shutil.copytree(REPO / name, checkout / name, ignore=_IGNORE)
    shutil.copy2(REPO / "pyproject.toml", checkout / "pyproject.toml")
    out = subprocess.run(
        [sys.executable, "-c", _UNINSTALLED, str(checkout), how.split()[0]],
        capture_output=True, text=True, cwd=checkout,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(checkout)},
    )
    assert out.returncode == 3, out.stdout + out.stderr
    message = out.stdout.strip()
    assert "circular import" not in message
    assert "install the package first (`pip install -e .`" in message
    assert str(checkout / "vagram_bench") in message


def test_the_wheel_ships_every_core_subpackage(installed_wheel):
    """pyproject.toml lists packages explicitly: a new subpackage of vagram_bench/ must be listed too."""
    in_repo = sorted(p.parent.relative_to(REPO).as_posix() for p in (REPO / "vagram_bench").rglob("__init__.py"))
    for package in in_repo:
        assert (installed_wheel / package / "__init__.py").is_file(), f"{package} missing from the wheel"


def _bash_blocks(text: str) -> list[str]:
    import re

    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_the_readme_set_up_is_two_commands_that_pin_the_cpu_wheel_and_ci_runs_the_test_one():
    """README "Set-up": the main job and the tests are one command each, both installing torch from
    PyTorch's CPU index (on Linux, PyPI's torch pulls CUDA packages); .ci/run runs the test command
    verbatim."""
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    main_job, tests = _bash_blocks(setup)
    cpu_torch = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && "
    assert main_job.count("\n") == 0 and main_job.startswith(cpu_torch + "pip install -e . && python -m vagram_bench.run ")
    assert tests == cpu_torch + 'pip install -e ".[test]" && pytest'
    ci_lines = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert tests in ci_lines


def test_the_readme_is_a_front_page_and_its_links_resolve():
    """Issue 22: the README stays a front page (<= 15k characters; depth lives in docs/), and every
    relative link of the README and the docs pages points at a file that exists."""
    import re

    readme = REPO / "README.md"
    assert len(readme.read_text()) <= 15_000
    broken = []
    for page in [readme, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []
