"""MBPO agents end to end through the common runner (``vagram_bench.run.main``, in this process: the
command-line entry point itself is tested in test_runner.py), on a tiny budget; resume equivalence for
``mbpo_vagram`` after a SIGKILL of a runner subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vagram_bench import run

ENV_ID = "HopperDistract-5-v0"
TINY = [
    "agent.initial_exploration_steps=100", "agent.freq_train_model=50", "agent.epoch_length=100",
    "agent.effective_model_rollouts_per_step=4", "agent.num_sac_updates_per_step=2",
    "agent.sac_hidden_size=64", "agent.hid_size=32", "agent.num_layers=2", "agent.ensemble_size=3",
    "agent.num_elites=2", "agent.num_epochs_train_model=3", "agent.dataset_size=1000",
    "agent.model_batch_size=64", "agent.sac_batch_size=32",
]


def _cmd(agent: str, out: Path, steps: int, extra=()) -> list[str]:
    return [
        sys.executable, "-m", "vagram_bench.run", f"agent={agent}", f"env={ENV_ID}", "seed=0",
        f"steps={steps}", "eval_every=100", "eval_episodes=2", f"out={out}", "quiet=true",
        "log_every=50", *TINY, *extra,
    ]


def _run(agent: str, out: Path, steps: int, extra=()) -> int:
    """The runner in this process, with the arguments of ``_cmd``."""
    return run.main(_cmd(agent, out, steps, extra)[3:])


def _env():
    # kernels=native: the killed subprocess computes with this process's kernels, as the in-process
    # reference and resume do (docs/runner.md, "Determinism contract": same machine, same kernels)
    return {**os.environ, "OMP_NUM_THREADS": "1", "VAGRAM_BENCH_KERNELS": "native"}


def _rows(path: Path, drop=("wall_seconds",)) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


@pytest.mark.parametrize("agent", ["mbpo_mse", "mbpo_mle", "mbpo_itervaml", "mbpo_vagram"])
def test_agent_runs_end_to_end_and_writes_records(agent, tmp_path):
    assert _run(agent, tmp_path, 200) == 0
    root = tmp_path / ENV_ID / agent / "seed0"
    config = json.loads((root / "config.json").read_text())
    assert config["agent"] == agent and config["env"] == ENV_ID
    assert config["agent_config"]["model_loss"] == agent.removeprefix("mbpo_")
    assert config["agent_config"]["freq_train_model"] == 50
    evals = _rows(root / "eval.csv")
    assert [int(r["env_step"]) for r in evals] == [100, 200]
    train = _rows(root / "train.csv")
    model_rows = [r for r in train if r.get("model_val_score")]
    # model trainings at env steps 150 and 200 (100 exploration + every 50): two windows with records
    assert [int(r["env_step"]) for r in model_rows] == [150, 200]
    for r in model_rows:
        for col in ("model_train_score", "model_val_score", "model_elite_0", "rollout_length",
                    "model_buffer_size", "sac_loss_qvalue", "sac_alpha"):
            assert r[col] != "", col
        assert float(r["rollout_length"]) == 1.0
        # each window holds one training call here, so exactly num_elites members are flagged
        elite_flags = [float(r[f"model_elite_{i}"]) for i in range(int(config["agent_config"]["ensemble_size"]))]
        assert set(elite_flags) <= {0.0, 1.0} and sum(elite_flags) == config["agent_config"]["num_elites"]
    last = model_rows[-1]
    assert float(last["num_model_trainings"]) == 2.0
    assert float(last["num_sac_updates"]) == 2 * 51  # from the first training (step 150) on
    vagram_cols = ("value_grad_norm_q05", "value_grad_norm_q50", "value_grad_norm_q95")
    if agent == "mbpo_vagram":
        assert all(last[c] != "" for c in vagram_cols)
        assert float(last["value_grad_norm_q05"]) <= float(last["value_grad_norm_q95"])
    elif agent in ("mbpo_mse", "mbpo_mle"):
        assert all(c not in last for c in vagram_cols)
    summary = json.loads((root / "summary.json").read_text())
    assert summary["env_steps"] == 200


def test_capacity_id_sizes_the_dynamics_model_of_a_run(tmp_path, monkeypatch):
    """A capacity id through the runner (no model size on the command line): config.json records the id's
    num_layers/hid_size, and the ensemble the run trains has exactly those layers: (obs + action) = 9 + 1 inputs,
    W-wide hidden layers, 9 deltas + 1 reward out (deterministic head for mbpo_mse)."""
    from vagram_bench.agents.mbpo import population as mbpo_population
    from vagram_bench.envs import IDP_CAPACITY_SIZES

    layers, width = IDP_CAPACITY_SIZES[0]
    env_id = f"InvertedDoublePendulumCapacity-{layers}x{width}-v0"
    built = []

    class RecordedEnsembles(mbpo_population.EnsemblePopulation):
        def __init__(self, models):
            super().__init__(models)
            built.append(self)

    monkeypatch.setattr(mbpo_population, "EnsemblePopulation", RecordedEnsembles)
    tiny = [a for a in TINY if not a.startswith(("agent.hid_size=", "agent.num_layers="))]
    argv = ["agent=mbpo_mse", f"env={env_id}", "seed=0", "steps=150", "eval_every=150", "eval_episodes=1",
            f"out={tmp_path}", "quiet=true", "log_every=50", *tiny]
    assert run.main(argv) == 0
    root = tmp_path / env_id / "mbpo_mse" / "seed0"
    config = json.loads((root / "config.json").read_text())
    assert (config["agent_config"]["num_layers"], config["agent_config"]["hid_size"]) == (layers, width)
    model_rows = [r for r in _rows(root / "train.csv") if r.get("model_val_score")]
    assert [int(r["env_step"]) for r in model_rows] == [150]  # the ensemble below was trained once
    (ensembles,) = built
    ensemble_size = config["agent_config"]["ensemble_size"]
    sizes = [9 + 1] + [width] * layers + [9 + 1]
    assert [tuple(w.shape) for w in ensembles.weights] == [
        (1, ensemble_size, a, b) for a, b in zip(sizes[:-1], sizes[1:])
    ]


def test_mbpo_vagram_resume_is_equivalent(tmp_path):
    """Kill a run after a mid-run checkpoint, re-run the same command: eval.csv (and train.csv) equal
    the uninterrupted run's, wall-clock columns aside."""
    steps = 300
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    extra = ("checkpoint_every=50",)
    assert _run("mbpo_vagram", ref_out, steps, extra) == 0

    root = cut_out / ENV_ID / "mbpo_vagram" / "seed0"
    proc = subprocess.Popen(_cmd("mbpo_vagram", cut_out, steps, extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env())
    deadline = time.monotonic() + 240
    try:
        # wait for a checkpoint taken after the first model training (eval row at 200 exists)
        while time.monotonic() < deadline and proc.poll() is None:
            evals = root / "eval.csv"
            if evals.exists() and len(_rows(evals)) >= 2 and (root / "checkpoint.pt").exists():
                break
            time.sleep(0.02)
        killed_mid_run = proc.poll() is None
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed_mid_run, "the run finished before it could be killed; the test did not test resume"
    assert not (root / "summary.json").exists()

    assert _run("mbpo_vagram", cut_out, steps, extra) == 0
    ref_root = ref_out / ENV_ID / "mbpo_vagram" / "seed0"
    assert _rows(root / "eval.csv") == _rows(ref_root / "eval.csv")
    assert len(_rows(root / "eval.csv")) == 3
    assert _rows(root / "train.csv") == _rows(ref_root / "train.csv")
