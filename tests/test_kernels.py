"""The determinism contract's kernel pin (docs/runner.md, "Determinism contract"): ``kernels=avx2``
restarts the command with every library's kernels fixed to AVX2 whatever the environment asked for,
``config.json`` records the kernels actually used, and a population member equals its single run
under any kernel choice (tests/test_population_run.py, tests/test_sac_population.py run in-process
under whatever ``ATEN_CPU_CAPABILITY`` the suite was started with)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vagram_bench import kernels
from vagram_bench.records import read_csv

PIN_POSSIBLE = kernels.pin_unavailable() is None
needs_pin = pytest.mark.skipif(not PIN_POSSIBLE, reason=f"{kernels.pin_unavailable()}")

ENV = "HopperDistract-5-v0"
TINY = ["agent=sac", f"env={ENV}", "steps=40", "eval_every=40", "eval_episodes=1", "agent.learning_starts=20",
        "agent.hidden_size=16", "agent.batch_size=8", "quiet=true"]


def _environ(**changes: str | None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for k in (*kernels.PIN_ENV, kernels.ENV_CHOICE, "VAGRAM_BENCH_KERNELS_REPLACED"):
        env.pop(k, None)
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vagram_bench.run", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def _kernels(out: Path, seed: int = 0) -> dict:
    return json.loads((out / ENV / "sac" / f"seed{seed}" / "config.json").read_text())["kernels"]


def test_requested_kernels_reads_the_command_line_then_the_environment():
    assert kernels.requested_kernels([], {}) == "avx2"
    assert kernels.requested_kernels(["kernels=native"], {}) == "native"
    assert kernels.requested_kernels(["--kernels=native"], {kernels.ENV_CHOICE: "avx2"}) == "native"
    assert kernels.requested_kernels(["agent=sac"], {kernels.ENV_CHOICE: "native"}) == "native"
    assert kernels.requested_kernels(["--", "kernels=native"], {}) == "avx2"  # after --: not ours
    with pytest.raises(kernels.KernelChoiceError, match="kernels: expected one of avx2, native, got 'avx512'"):
        kernels.requested_kernels(["kernels=avx512"], {})
    with pytest.raises(kernels.KernelChoiceError, match="VAGRAM_BENCH_KERNELS: .* got 'fast'"):
        kernels.requested_kernels([], {kernels.ENV_CHOICE: "fast"})


def test_pinned_environment_sets_every_variable_and_reports_what_it_replaced():
    env, replaced = kernels.pinned_environment({"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "X": "1"})
    assert kernels.pinned(env) and env["X"] == "1"
    assert replaced == {"ATEN_CPU_CAPABILITY": "default"}  # an equal value is not "replaced"
    assert not kernels.pinned({**env, "OPENBLAS_CORETYPE": "SkylakeX"})


@needs_pin
def test_the_pin_overrides_an_inherited_capability_and_config_json_records_it(tmp_path):
    """The parent asks for ATEN_CPU_CAPABILITY=default (another kernel choice, as an AVX-512 CPU's
    would be); the pinned run computes with AVX2 all the same and says what it replaced."""
    result = _run([*TINY, f"out={tmp_path}"], _environ(ATEN_CPU_CAPABILITY="default"))
    assert result.returncode == 0, result.stderr
    assert "kernels=avx2 replaces ATEN_CPU_CAPABILITY=default" in result.stderr
    info = _kernels(tmp_path)
    assert info["requested"] == "avx2" and info["pinned"] is True
    assert info["torch_cpu_capability"] == "AVX2"
    assert info["environment"] == kernels.PIN_ENV
    assert info["replaced"] == {"ATEN_CPU_CAPABILITY": "default"}
    assert "X86_V4" not in info["numpy_simd"] and "AVX512_ICL" not in info["numpy_simd"]
    openblas = [b for b in info["blas"] if b.get("library") == "openblas"]
    assert all(b["architecture"] == "Haswell" for b in openblas)
    assert "unavailable" not in info


def test_native_keeps_the_environment_and_records_the_capability_used(tmp_path):
    result = _run([*TINY, "kernels=native", f"out={tmp_path}"], _environ(ATEN_CPU_CAPABILITY="default"))
    assert result.returncode == 0, result.stderr
    info = _kernels(tmp_path)
    assert info["requested"] == "native" and info["pinned"] is False
    assert info["torch_cpu_capability"] == "DEFAULT"
    assert info["environment"]["ATEN_CPU_CAPABILITY"] == "default" and info["replaced"] == {}


def test_a_run_started_from_python_records_the_kernels_its_process_loaded(tmp_path):
    from vagram_bench import run

    assert run.main([*TINY, f"out={tmp_path}"]) == 0
    info = _kernels(tmp_path)
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["pinned"] == (kernels.pinned() and info["torch_cpu_capability"] == "AVX2")
    if not info["pinned"]:
        assert info["unavailable"]  # why the requested pin did not apply


def test_a_run_recorded_with_other_kernels_resumes_with_a_note(tmp_path, monkeypatch, capsys):
    """Kernels say where the numbers were computed, not what the run is: a resume does not compare
    them as config (a killed run's record says AVX512, this process another) but says so."""
    from vagram_bench import run
    from vagram_bench.agents.sac.agent import SACPopulation
    from vagram_bench.runner.rundir import config_differences

    original = SACPopulation.update

    def killed_at_30(self, env_steps, members):
        if env_steps.max() == 30:
            raise KeyboardInterrupt
        return original(self, env_steps, members)

    args = [*TINY, "steps=40", "checkpoint_every=10", f"out={tmp_path}"]
    monkeypatch.setattr(SACPopulation, "update", killed_at_30)
    assert run.main(args) == 130  # interrupted: the resume line, no traceback
    monkeypatch.undo()
    config = tmp_path / ENV / "sac" / "seed0" / "config.json"
    record = json.loads(config.read_text())
    other = "DEFAULT" if record["kernels"]["torch_cpu_capability"] != "DEFAULT" else "AVX2"
    record["kernels"]["torch_cpu_capability"] = other
    config.write_text(json.dumps(record))
    assert config_differences(record, {k: v for k, v in record.items() if k != "kernels"}) == []
    capsys.readouterr()
    assert run.main(args) == 0
    err = capsys.readouterr().err
    assert f"torch_cpu_capability {other!r} -> {torch.backends.cpu.get_cpu_capability()!r}" in err
    assert "not those of an uninterrupted run" in err and "resuming" in err


def test_a_bad_kernels_value_exits_2_before_anything_is_written(tmp_path):
    result = _run([*TINY, "kernels=avx512", f"out={tmp_path}"], _environ())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: kernels: expected one of avx2, native, got 'avx512'"
    assert not any(tmp_path.iterdir())


@needs_pin
def test_a_population_member_equals_its_single_run_under_the_pin(tmp_path):
    """Pinned (AVX2, whatever the suite's own ATEN_CPU_CAPABILITY): seed 1 of {0, 1} writes what
    seed 1 alone writes. (In-process, under the suite's own kernels, tests/test_population_run.py
    checks the same; both hold by construction: tests/test_sac_population.py.)"""
    records = {}
    for seeds in ("0,1", "1"):
        out = tmp_path / seeds.replace(",", "")
        result = _run([*TINY, "eval_every=20", f"seed={seeds}", f"out={out}"], _environ(ATEN_CPU_CAPABILITY="default"))
        assert result.returncode == 0, result.stderr
        d = out / ENV / "sac" / "seed1"
        assert _kernels(out, 1)["pinned"] is True
        records[seeds] = ([{k: v for k, v in r.items() if k != "wall_seconds"} for r in read_csv(d / "eval.csv")],
                          read_csv(d / "train.csv"))
    assert records["0,1"] == records["1"]
    assert len(records["1"][0]) == 2 and records["1"][1]


@needs_pin
def test_a_published_distractor_run_reproduces_bitwise_under_the_pin(tmp_path):
    """results/cpu was computed on an AVX2 CPU. Its mbpo_mse run on InvertedDoublePendulumDistract-20
    (seed 3) forks on AVX-512 kernels before the first evaluation (61.53259 instead of 61.53306,
    measured); under the default pin its first evaluation row is the published one to the last bit,
    on any x86-64 CPU, also when this suite runs with ATEN_CPU_CAPABILITY=default."""
    published = Path(__file__).resolve().parents[1] / "results" / "cpu" / "runs" / \
        "InvertedDoublePendulumDistract-20-v0" / "mbpo_mse" / "seed3"
    env = _environ(ATEN_CPU_CAPABILITY=os.environ.get("ATEN_CPU_CAPABILITY"))
    result = _run(["agent=mbpo_mse", "env=InvertedDoublePendulumDistract-20-v0", "seed=3", "steps=500",
                   "eval_every=500", "eval_episodes=5", "quiet=true", f"out={tmp_path}"], env)
    assert result.returncode == 0, result.stderr
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]
    got = strip(read_csv(tmp_path / "InvertedDoublePendulumDistract-20-v0" / "mbpo_mse" / "seed3" / "eval.csv"))
    assert got == strip(read_csv(published / "eval.csv"))[:1]
    assert got[0]["return_mean"] == "61.53306405443775"
