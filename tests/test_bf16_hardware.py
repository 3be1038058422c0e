"""bf16 made discoverable and safe: ``config.json`` records whether the run's device multiplies bf16
natively (``bf16_hardware``), and asking for bf16 autocast on a CPU without bf16 matmuls prints one
warning line; neither changes the run's records."""

from __future__ import annotations

import json

import pytest
import torch

from vagram_bench import run
from vagram_bench.runner import hardware

ENV = "HopperDistract-5-v0"
# a few exploration steps and one evaluation: the warning and config.json come before any learning
MBPO = ["agent=mbpo_mse", f"env={ENV}", "steps=20", "eval_every=20", "eval_episodes=1", "quiet=true",
        "agent.sac_hidden_size=32", "agent.hid_size=32", "agent.ensemble_size=2", "agent.num_elites=1"]


def test_the_cpu_probe_agrees_with_torchs_own():
    """Two independent readings of this CPU: /proc/cpuinfo's flags and torch's cpuinfo-based probe."""
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if hardware.cpu_bf16_flags() is None or any(p is None for p in probes):
        pytest.skip("no /proc/cpuinfo or no torch CPU probe here")
    if any(f == "bf16" for f in hardware.cpu_bf16_flags()):
        pytest.skip("an Arm CPU: torch has no bf16 probe for it")
    assert hardware.bf16_matmul_hardware("cpu") == any(p() for p in probes)


def test_docstring_examples():
    import doctest

    result = doctest.testmod(hardware)
    assert result.attempted > 0 and result.failed == 0


def test_bf16_fields_are_the_agents_bf16_switches_that_are_on():
    from vagram_bench.agents.mbpo import MBPOMSEAgent
    from vagram_bench.agents.sac import SACAgent

    import dataclasses

    cfg = MBPOMSEAgent.default_config(ENV)
    assert hardware.bf16_fields(cfg) == []
    assert hardware.bf16_fields(dataclasses.replace(cfg, sac_bf16=True, rollout_bf16=True)) == ["rollout_bf16", "sac_bf16"]
    assert hardware.bf16_fields(SACAgent.default_config(ENV)) == []


def _config(out, seed=0) -> dict:
    return json.loads((out / ENV / "mbpo_mse" / f"seed{seed}" / "config.json").read_text())


@pytest.mark.parametrize("has_bf16", [False, True])
def test_bf16_without_bf16_matmuls_warns_once_and_config_records_the_hardware(has_bf16, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hardware, "bf16_matmul_hardware", lambda device="cpu": has_bf16)
    assert run.main([*MBPO, "seed=0,1", "agent.sac_bf16=true", f"out={tmp_path}"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    if has_bf16:
        assert warnings == []
    else:
        assert len(warnings) == 1  # one line for the whole population
        assert warnings[0].startswith("warning: agent.sac_bf16=true, but this CPU has no bf16 matmul instructions")
    assert [_config(tmp_path, s)["bf16_hardware"] for s in (0, 1)] == [has_bf16, has_bf16]


def test_fp32_runs_do_not_warn_and_record_this_machine(tmp_path, capsys):
    assert run.main([*MBPO, f"out={tmp_path}"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert _config(tmp_path)["bf16_hardware"] == hardware.bf16_matmul_hardware("cpu")


def test_the_recorded_bf16_hardware_is_not_a_config_difference(tmp_path, monkeypatch, capsys):
    """bf16_hardware describes the machine, like the package versions: not a config difference."""
    monkeypatch.setattr(hardware, "bf16_matmul_hardware", lambda device="cpu": False)
    assert run.main([*MBPO, f"out={tmp_path}"]) == 0
    summary = tmp_path / ENV / "mbpo_mse" / "seed0" / "summary.json"
    summary.unlink()  # as if it had stopped before the end
    monkeypatch.setattr(hardware, "bf16_matmul_hardware", lambda device="cpu": True)
    assert run.main([*MBPO, f"out={tmp_path}"]) == 0
    assert "different config" not in capsys.readouterr().err and summary.exists()


# the tiny MBPO budget of test_mbpo_run.py: model training, rollouts and SAC updates all run under bf16
TINY = [
    "agent=mbpo_mse", f"env={ENV}", "steps=200", "eval_every=100", "eval_episodes=2", "log_every=50",
    "checkpoint_every=50", "quiet=true", "agent.initial_exploration_steps=100", "agent.freq_train_model=50",
    "agent.epoch_length=100", "agent.effective_model_rollouts_per_step=4", "agent.num_sac_updates_per_step=2",
    "agent.sac_hidden_size=64", "agent.hid_size=32", "agent.num_layers=2", "agent.ensemble_size=3",
    "agent.num_elites=2", "agent.num_epochs_train_model=3", "agent.dataset_size=1000",
    "agent.model_batch_size=64", "agent.sac_batch_size=32",
]
BF16 = ["agent.sac_bf16=true", "agent.rollout_bf16=true"]


def _records(out) -> tuple[str, list]:
    from vagram_bench.records import read_csv

    d = out / ENV / "mbpo_mse" / "seed0"
    evals = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in read_csv(d / "eval.csv")]
    return (d / "train.csv").read_text(), evals


def test_what_bf16_changes_and_what_it_keeps(tmp_path, monkeypatch):
    """docs/runner.md, "bf16 and determinism": a bf16 run's numbers are not the fp32 run's, but on one
    machine it repeats and resumes exactly, and its kept policy re-scores to its last evaluation."""
    from vagram_bench.agents.mbpo.population import MBPOPopulation
    from vagram_bench.evaluate import evaluate_run
    from vagram_bench.records import read_evals

    assert run.main([*TINY, *BF16, f"out={tmp_path / 'a'}"]) == 0
    assert run.main([*TINY, *BF16, f"out={tmp_path / 'b'}"]) == 0
    assert run.main([*TINY, f"out={tmp_path / 'fp32'}"]) == 0
    assert _records(tmp_path / "a") == _records(tmp_path / "b")
    assert _records(tmp_path / "a")[0] != _records(tmp_path / "fp32")[0]

    original = MBPOPopulation.update

    def crash(self, env_steps, members):
        if env_steps.max() == 180:
            raise KeyboardInterrupt
        return original(self, env_steps, members)

    monkeypatch.setattr(MBPOPopulation, "update", crash)
    assert run.main([*TINY, *BF16, f"out={tmp_path / 'c'}"]) == 130  # interrupted: the resume line
    monkeypatch.undo()
    assert (tmp_path / "c" / ENV / "mbpo_mse" / "seed0" / "checkpoint.pt").exists()  # resumed, not restarted
    assert run.main([*TINY, *BF16, f"out={tmp_path / 'c'}"]) == 0
    assert _records(tmp_path / "c") == _records(tmp_path / "a")

    d = tmp_path / "a" / ENV / "mbpo_mse" / "seed0"
    last = read_evals(d / "eval.csv")[-1]
    assert evaluate_run(d)["return_mean"] == last.return_mean
