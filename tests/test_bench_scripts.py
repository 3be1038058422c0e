"""The scripts of ``benchmarks/`` as a user runs them, in a subprocess: no test imports a benchmark (they
time things; what they rely on is tested where it lives). These check the refusals a user meets before
anything is timed: exit status 2 and a message naming the bad value and what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("VAGRAM_PEER_VENV", "VAGRAM_PEER_CONF")}
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**base, "OMP_NUM_THREADS": "1", **(env or {})})


def fake_venv(root: Path, conf_groups=("algorithm", "overrides", "dynamics_model", "action_optimizer")) -> Path:
    """A directory shaped like mbrl-lib 0.2's venv: ``bin/python`` and the installed ``examples/conf``."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("#!/bin/sh\n")
    conf = root / "lib" / "python3.11" / "site-packages" / "mbrl" / "examples" / "conf"
    conf.mkdir(parents=True)
    (conf / "main.yaml").write_text("defaults: []\n")
    for group in conf_groups:
        (conf / group).mkdir()
    return root


def test_bench_peer_without_a_peer_venv_exits_2_saying_how_to_set_it(tmp_path):
    result = run("bench_peer.py", "--steps", "260")
    assert result.returncode == 2 and "--peer-venv" in result.stderr and "VAGRAM_PEER_VENV" in result.stderr
    result = run("bench_peer.py", env={"VAGRAM_PEER_VENV": str(tmp_path / "nowhere")})
    assert result.returncode == 2
    assert f"peer venv {tmp_path / 'nowhere'} has no bin/python" in result.stderr


def test_bench_peer_refuses_an_incomplete_peer_conf(tmp_path):
    # the mbrl-lib 0.2.0 wheel lacks examples/conf/action_optimizer/, which Hydra needs
    wheel = fake_venv(tmp_path / "wheel", conf_groups=("algorithm", "overrides", "dynamics_model"))
    result = run("bench_peer.py", "--peer-venv", str(wheel))
    assert result.returncode == 2 and "no action_optimizer/" in result.stderr and "--peer-conf" in result.stderr
    result = run("bench_peer.py", "--peer-venv", str(wheel), "--peer-conf", str(tmp_path))
    assert result.returncode == 2 and f"--peer-conf {tmp_path} has no main.yaml" in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--steps", "250"], "must exceed 250"),
    (["--explore", "0"], "--explore and --rounds must be >= 1"),
    (["--rounds", "0"], "--explore and --rounds must be >= 1"),
    (["--agent", "sac"], "invalid choice: 'sac'"),
    (["--seed", "-1"], "--seed -1: must be >= 0"),
])
def test_bench_peer_refuses_bad_step_counts(argv, message):
    result = run("bench_peer.py", *argv)
    assert result.returncode == 2 and message in result.stderr


def test_bench_population_refuses_an_unknown_configuration():
    result = run("bench_population.py", "--configs", "a,z")
    assert result.returncode == 2 and "unknown configuration(s) ['z']; valid: a, b, c" in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--agent", "svg_mle"], "agent 'svg_mle' has no batched population to resume; valid: sac, mbpo_mse, mbpo_mle, "
                             "mbpo_itervaml, mbpo_vagram"),
    (["--steps", "300", "--kill", "300"], "--kill 300 must lie between 0 and --steps 300"),
])
def test_bench_resume_refuses_bad_input_in_one_line(argv, message):
    result = run("bench_resume.py", *argv)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].endswith(message)


@pytest.mark.slow
def test_bench_resume_finds_both_resumes_exact_at_real_mbpo_sizes():
    """docs/runner.md "Populations": two MBPO members resumed from different env steps at the pendulum's
    default model sizes write the uninterrupted run's records with the runner's catch-up and also when every
    member steps apart to the end, training its models in calls of its own (it failed before each member's
    training ran on tensors of its own; the script exits 1 otherwise). About 9 minutes."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_resume.py"), "--seeds", "0,1"], cwd=REPO,
                            capture_output=True, text=True, timeout=3600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    steps = result.stdout.split("checkpoints at env steps [", 1)[1].split("]", 1)[0]
    assert len(set(steps.split(", "))) == 2  # the members resumed at different env steps: the case measured
    assert "catch-up: records equal to the uninterrupted run's, per seed {0: True, 1: True}" in result.stdout
    assert "all step: records equal to the uninterrupted run's, per seed {0: True, 1: True}" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_prints_its_help(script):
    result = run(script, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout
