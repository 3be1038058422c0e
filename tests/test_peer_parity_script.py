"""benchmarks/peer_parity.py, run as a subprocess without the peer venv: its refusals, the commands of
both sides (our side's hyperparameters against mbrl-lib 0.2's ``mbpo_inv_pendulum.yaml``), and the report
on fake records (the statistic against a hand count and an enumerated exact p)."""

from __future__ import annotations

import functools
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vagram_bench.records import EVAL_COLUMNS, CSVLog, atomic_write_json

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "peer_parity.py"

#: mbrl-lib v0.2.0 ``mbrl/examples/conf/overrides/mbpo_inv_pendulum.yaml`` (and ``algorithm/mbpo.yaml``,
#: ``dynamics_model/gaussian_mlp_ensemble.yaml``) as our runner spells them: the independent truth.
UPSTREAM_INV_PENDULUM = {
    "epoch_length": "250", "num_elites": "5", "patience": "5", "model_lr": "0.001", "model_wd": "1e-05",
    "model_batch_size": "256", "validation_ratio": "0.2", "freq_train_model": "250",
    "effective_model_rollouts_per_step": "400", "rollout_schedule": "1,15,1,1", "num_sac_updates_per_step": "10",
    "sac_updates_every_steps": "1", "num_epochs_to_retain_sac_buffer": "1", "sac_gamma": "0.99", "sac_tau": "0.005",
    "sac_target_update_interval": "1", "sac_learnable_alpha": "true", "sac_hidden_size": "256",
    "sac_critic_lr": "0.0003", "sac_actor_lr": "0.0003", "sac_alpha_lr": "0.0003", "sac_batch_size": "256",
    "sac_target_entropy": "-1.0", "ensemble_size": "7", "num_layers": "4", "hid_size": "200",
    "model_data_likelihood": "0.0,1.0,1.0,1.0",  # real_data_ratio 0
    "deterministic_real_actions": "true", "random_initial_explore": "false",
}


def script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("VAGRAM_PEER_VENV", "VAGRAM_PEER_CONF")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO,
                          env={**environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--steps", "4100"], "--steps 4100: steps - explore = 3600 must be a positive multiple of the epoch length 250"),
    (["--explore", "0"], "--explore 0: must be >= 1"),
    (["--eval-episodes", "0"], "--eval-episodes 0: must be >= 1"),
    (["--seeds", "0,0"], "need distinct seeds"),
    (["--seeds", "a"], "is not a comma-separated list of seeds"),
    (["--task", "cheetah"], "invalid choice: 'cheetah' (choose from 'hopper', 'idp')"),
])
def test_bad_arguments_exit_2_naming_the_value(args, message, tmp_path):
    proc = script("run", "--side", "ours", "--dry-run", "--runs", str(tmp_path / "runs"), *args)
    assert proc.returncode == 2 and message in proc.stderr and "error: " in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_the_peer_side_needs_its_venv(tmp_path):
    proc = script("run", "--side", "peer", "--runs", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "error: no peer venv: pass --peer-venv" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_ours_runs_the_public_runner_with_the_peer_s_hyperparameters(tmp_path):
    proc = script("run", "--side", "ours", "--dry-run", "--runs", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.split("ours: ", 1)[1].split()
    assert cmd[1:3] == ["-m", "vagram_bench.run"]
    args = dict(a.split("=", 1) for a in cmd[3:])
    assert (args["agent"], args["env"], args["seed"]) == ("mbpo_mle", "InvertedDoublePendulum-v5", "0,1,2,3,4")
    # 500 exploration + 3,500 learning steps; mbrl-lib evaluates at 500 + 250 j: multiples of 250
    assert (args["steps"], args["eval_every"], args["eval_episodes"]) == ("4000", "250", "5")
    assert args["agent.initial_exploration_steps"] == "500" and args["agent.dataset_size"] == "4000"
    agent = {k[len("agent."):]: v for k, v in args.items() if k.startswith("agent.")}
    assert {k: agent.get(k) for k in UPSTREAM_INV_PENDULUM} == UPSTREAM_INV_PENDULUM
    # pranz24's SAC: log_alpha starts at 0
    assert agent["sac_init_alpha"] == "1.0"


def test_hopper_is_the_same_script_with_mbpo_hopper(tmp_path):
    proc = script("run", "--task", "hopper", "--side", "ours", "--dry-run", "--runs", str(tmp_path),
                  "--explore", "1000", "--steps", "3000")
    assert proc.returncode == 0, proc.stderr
    args = dict(a.split("=", 1) for a in proc.stdout.split("ours: ", 1)[1].split()[3:])
    assert (args["env"], args["eval_every"]) == ("Hopper-v5", "1000")
    assert (args["agent.num_sac_updates_per_step"], args["agent.sac_hidden_size"]) == ("40", "512")
    assert args["agent.rollout_schedule"] == "20,150,1,15"


@functools.cache
def ours_agent_config() -> tuple:
    """The agent fields of our side's command (dry run), as the runner records them in config.json."""
    cmd = script("run", "--side", "ours", "--dry-run", "--runs", "runs").stdout.split("ours: ", 1)[1].split()
    fields = {}
    for a in cmd[3:]:
        key, value = a.split("=", 1)
        if key.startswith("agent."):
            fields[key[len("agent."):]] = [json.loads(v) for v in value.split(",")] if "," in value else json.loads(value)
    fields["num_epochs_train_model"] = None  # the default, left off the command line
    return tuple(fields.items())


def fake_run(root: Path, env: str, agent: str, seed: int, finals: float, ours: bool) -> None:
    """A complete run of ``seed`` whose evaluations at 750..4000 end with two returns of ``finals``."""
    d = root / env / agent / f"seed{seed}"
    d.mkdir(parents=True)
    if ours:
        agent_cfg = dict(ours_agent_config())
        config = {"steps": 4000, "eval_episodes": 5, "eval_seed": 1000000, "agent_config": agent_cfg}
        steps = range(250, 4001, 250)
    else:
        config = {"steps": 4000, "initial_exploration_steps": 500, "eval_episodes": 5, "eval_seed": 1000000}
        steps = range(750, 4001, 250)
    atomic_write_json(d / "config.json", config)
    log = CSVLog(d / "eval.csv", EVAL_COLUMNS)
    for step in steps:
        ret = finals if step >= 3750 else 100.0
        log.append({"env_step": step, "return_mean": ret, "return_std": 0.0, "return_min": ret, "return_max": ret,
                    "episode_length_mean": 10.0, "wall_seconds": 1.0})
    atomic_write_json(d / "summary.json", {"seed": seed, "wall_seconds": 600.0 + seed, "model_epochs_per_call": [15]})


def exact_two_sided_p(x: list[float], y: list[float]) -> float:
    """Mann-Whitney's exact p by enumerating every split of the pooled values (no ties)."""
    pooled, n = x + y, len(x)
    u = sum(a > b for a in x for b in y)
    us = [sum(pooled[i] > pooled[j] for i in idx for j in set(range(len(pooled))) - set(idx))
          for idx in itertools.combinations(range(len(pooled)), n)]
    mean = n * len(y) / 2
    return min(1.0, sum(abs(v - mean) >= abs(u - mean) for v in us) / len(us))


def test_report_on_fake_records(tmp_path):
    runs = tmp_path / "runs"
    ours_finals, peer_finals = [10.0, 20.0, 30.0, 40.0, 50.0], [15.0, 25.0, 35.0, 45.0, 55.0]
    for seed, (o, p) in enumerate(zip(ours_finals, peer_finals)):
        fake_run(runs, "InvertedDoublePendulum-v5", "mbpo_mle", seed, o, ours=True)
        fake_run(runs, "InvertedDoublePendulum-v4", "mbrl_lib_mbpo", seed, p, ours=False)
    out = tmp_path / "published"
    proc = script("report", "--runs", str(runs), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    # ours beats the peer in 1 + 2 + 3 + 4 of the 25 pairs
    p = exact_two_sided_p(ours_finals, peer_finals)
    assert f"P(ours > peer) = 0.40 [" in proc.stdout and f"exact Mann-Whitney p = {p:.3f}" in proc.stdout
    readme = (out / "README.md").read_text()
    assert "straddles 0.5" in readme and "| 10, 20, 30, 40, 50 |" in readme
    assert sorted(f.name for f in (out / "runs" / "InvertedDoublePendulum-v4" / "mbrl_lib_mbpo" / "seed0").iterdir()) \
        == ["config.json", "eval.csv", "summary.json"]
    # regenerated from its own records: the same bytes
    again = tmp_path / "again"
    (again).mkdir()
    os.rename(out / "runs", again / "runs")
    proc = script("report", "--runs", str(again / "runs"), "--out", str(again))
    assert proc.returncode == 0, proc.stderr
    for name in ("README.md", "parity.csv", "curves.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_report_names_complete_separation_and_refuses_unmatched_settings(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(3):
        fake_run(runs, "InvertedDoublePendulum-v5", "mbpo_mle", seed, 1000.0 + seed, ours=True)
        fake_run(runs, "InvertedDoublePendulum-v4", "mbrl_lib_mbpo", seed, 10.0 + seed, ours=False)
    proc = script("report", "--runs", str(runs), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0 and "P(ours > peer) = 1.00: complete separation" in proc.stdout
    assert "[1.00, 1.00]" not in (tmp_path / "out" / "README.md").read_text()
    config = runs / "InvertedDoublePendulum-v5" / "mbpo_mle" / "seed1" / "config.json"
    cfg = json.loads(config.read_text())
    cfg["agent_config"]["patience"] = 10
    config.write_text(json.dumps(cfg))
    proc = script("report", "--runs", str(runs), "--out", str(tmp_path / "out2"))
    assert proc.returncode == 2 and "seed1: agent.patience = 10, the peer's value is 5" in proc.stderr
    proc = script("report", "--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out3"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr
