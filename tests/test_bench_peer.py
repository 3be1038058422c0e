"""benchmarks/bench_peer.py without the peer venv: arguments, refusals, the side commands, the matched
config and the per-step arithmetic."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_peer")


def fake_venv(root: Path, conf_groups=("algorithm", "overrides", "dynamics_model", "action_optimizer")) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("#!/bin/sh\n")
    conf = root / "lib" / "python3.11" / "site-packages" / "mbrl" / "examples" / "conf"
    conf.mkdir(parents=True)
    (conf / "main.yaml").write_text("defaults: []\n")
    for group in conf_groups:
        (conf / group).mkdir()
    return root


def test_missing_peer_venv_exits_2_naming_how_to_set_it(bench, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(bench.PEER_VENV_ENV, raising=False)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--steps", "260"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--peer-venv" in err and bench.PEER_VENV_ENV in err
    monkeypatch.setenv(bench.PEER_VENV_ENV, str(tmp_path / "nowhere"))
    assert bench.parse_args([]).peer_venv == str(tmp_path / "nowhere")  # the env var is the default
    with pytest.raises(SystemExit) as exc:
        bench.main([])
    assert exc.value.code == 2 and f"peer venv {tmp_path / 'nowhere'} has no bin/python" in capsys.readouterr().err


def test_peer_conf_defaults_to_a_complete_installed_one_else_exits_2(bench, tmp_path, capsys):
    complete = fake_venv(tmp_path / "complete")
    assert bench.peer_conf(None, complete) == next(complete.glob("lib/python*/site-packages/mbrl/examples/conf"))
    wheel = fake_venv(tmp_path / "wheel", conf_groups=("algorithm", "overrides", "dynamics_model"))
    with pytest.raises(SystemExit) as exc:
        bench.peer_conf(None, wheel)
    assert exc.value.code == 2 and "no action_optimizer/" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        bench.peer_conf(str(tmp_path), wheel)  # no main.yaml there
    assert exc.value.code == 2 and "has no main.yaml" in capsys.readouterr().err
    source = wheel / "lib" / "python3.11" / "site-packages" / "mbrl" / "examples" / "conf"
    assert bench.peer_conf(str(source), tmp_path / "any") == source  # an explicit conf is taken as it is


def test_bad_step_counts_are_refused(bench, capsys):
    for argv in (["--steps", "250"], ["--explore", "0"], ["--rounds", "0"], ["--seed", "-1"]):
        with pytest.raises(SystemExit) as exc:
            bench.parse_args(argv)
        assert exc.value.code == 2
    assert "must exceed 250" in capsys.readouterr().err


def test_both_sides_run_the_same_schedule(bench, tmp_path):
    venv = fake_venv(tmp_path / "venv")
    args = bench.parse_args(["--peer-venv", str(venv), "--explore", "300", "--steps", "260", "--agent", "mbpo_mle"])
    args.peer_conf = bench.peer_conf(None, venv)
    peer = bench.side_command("peer", bench.peer_python(args.peer_venv), args, 3)
    ours = bench.side_command("ours", sys.executable, args, 3)
    script = str(REPO / "benchmarks" / "bench_peer.py")
    assert peer == [str(venv / "bin" / "python"), script, "--side", "peer", "--agent", "mbpo_mle",
                    "--explore", "300", "--steps", "260", "--seed", "3", "--peer-conf", str(args.peer_conf)]
    assert ours == [sys.executable, script, "--side", "ours", "--agent", "mbpo_mle", "--explore", "300", "--steps",
                    "260", "--seed", "3"]
    assert bench.parse_args(ours[2:]).seed == 3  # the side reads back the seed it was given
    # what each side makes of them: the same exploration, learning steps, real-buffer size and seed
    overrides = bench.peer_overrides(300, 260, 3)
    assert {"algorithm=mbpo", "overrides=mbpo_hopper", "device=cpu", "seed=3", "algorithm.initial_exploration_steps=300",
            "overrides.num_steps=260", "+algorithm.dataset_size=560"} <= set(overrides)
    assert [o for o in overrides if o.startswith("seed=")] == ["seed=3"]  # one seed, the given one
    fields = bench.ours_config_fields(300, 260)
    assert fields["initial_exploration_steps"] == 300 and fields["dataset_size"] == 560


def test_the_matched_config_is_a_valid_mbpo_config_with_mbrl_libs_sizes(bench):
    from vagram_bench.agents.mbpo import MBPOMSEAgent

    cfg = dataclasses.replace(MBPOMSEAgent.default_config("Hopper-v5"), **bench.ours_config_fields(1000, 300))
    # mbrl-lib: rollout_batch_size = 400 rollouts/step x 250 steps; SAC buffer = L x that x ceil(1000/250)
    assert cfg.rollout_batch_size == 100_000 and cfg.model_buffer_capacity(cfg.rollout_length(0)) == 400_000
    assert cfg.rollout_length(0) == 1 and cfg.rollout_length(150) == 15  # [20, 150, 1, 15] at epoch + 1
    assert cfg.model_data_likelihood_at(0) == 1.0  # real_data_ratio 0: every SAC batch from the model
    assert (cfg.sac_hidden_size, cfg.sac_num_layers, cfg.num_sac_updates_per_step) == (512, 2, 40)
    assert not cfg.sac_learnable_alpha and cfg.sac_init_alpha == 0.2


def test_summary_per_step_is_env_plus_sac_plus_amortised_model_work(bench):
    def step(env, sac=0.0, updates=0, train=0.0, rollout=0.0, wall=None):
        return {"env": env, "sac": sac, "sac_updates": updates, "model_train": train, "rollout": rollout,
                "wall": wall if wall is not None else env + sac + train + rollout}

    steps = [step(0.001), step(0.003), step(0.002, 1.0, 40, train=10.0, rollout=2.5),
             step(0.002, 2.0, 40), step(0.004, 3.0, 40)]
    s = bench.summarise({"side": "peer", "steps": steps, "model_epochs": [50], "max_rss_mb": 100.0})
    assert s["env"] == pytest.approx(0.002) and s["sac"] == pytest.approx(2.0)
    assert s["model_train"] == 10.0 and s["model_epoch"] == pytest.approx(0.2) and s["rollout"] == 2.5
    assert s["per_step"] == pytest.approx(0.002 + 2.0 + 12.5 / 250)
    assert s["wall"] == pytest.approx(2.5 + 0.003)  # median of the updating steps without model training
    with pytest.raises(RuntimeError, match="no SAC update or model training"):
        bench.summarise({"side": "ours", "steps": steps[:2], "model_epochs": [], "max_rss_mb": 1.0})
