"""SVG agents end to end: per-env defaults, capacity ids, registry, and tiny training runs on the
suite's envs."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import vagram_bench  # noqa: F401  (registers the env ids)
from vagram_bench import registry
from vagram_bench.agents.svg import (
    SVGConfig,
    SVGIterVAMLAgent,
    SVGMLEAgent,
    SVGMSEAgent,
    SVGVaGraMAgent,
)
from vagram_bench.envs import IDP_CAPACITY_SIZES, IP_CAPACITY_SIZES
from vagram_bench.interfaces import AgentConfigError

AGENTS = {"svg_mse": SVGMSEAgent, "svg_mle": SVGMLEAgent, "svg_itervaml": SVGIterVAMLAgent,
          "svg_vagram": SVGVaGraMAgent}

TINY = dict(num_seed_steps=60, warmup_steps=85, seq_batch_size=16, step_batch_size=32,
            model_free_hidden_dim=32, model_free_hidden_depth=2, xu_enc_hidden_dim=32,
            rec_latent_dim=32, rew_hidden_dim=32, done_hidden_dim=32, log_every=25,
            num_train_steps=160)

# spec svg.md §1.10, written out again: (init, final, decay, warmup, num_train_steps, horizon)
SPEC_TABLE = {
    "Hopper-v5": (0.0, -2.0, 2**-5, 10_000, 1_000_000, 3),
    "HopperDistract-15-v0": (0.0, -2.0, 2**-5, 10_000, 1_000_000, 3),
    "HopperCapacity-2x64-v0": (0.0, -2.0, 2**-5, 10_000, 1_000_000, 3),
    "Walker2dDistract-5-v0": (-2.0, -8.0, 2**-4, 10_000, 2_000_000, 3),
    "HalfCheetahDistract-0-v0": (-2.0, -3.0, 1.0, 10_000, 2_000_000, 3),
    "AntTruncatedObs-v0": (0.0, -2.0, 4.0, 10_000, 2_000_000, 3),
    "AntTruncatedDistract-10-v0": (0.0, -2.0, 4.0, 10_000, 2_000_000, 3),
    "HumanoidTruncatedObs-v0": (-2.0, -2.0, 1.0, 10_000, 5_000_000, 3),
    "HumanoidTruncatedDistract-20-v0": (-2.0, -2.0, 1.0, 10_000, 5_000_000, 3),
    "InvertedPendulum-v5": (None, None, 1.0, 0, 1_000_000, 3),  # upstream global defaults
}


@pytest.mark.parametrize("env_id", sorted(SPEC_TABLE))
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_per_env_defaults_follow_spec_table(env_id, name):
    cfg = AGENTS[name].default_config(env_id)
    init, final, decay, warmup, n, horizon = SPEC_TABLE[env_id]
    got = (cfg.init_targ_entr, cfg.final_targ_entr, cfg.entr_decay_factor, cfg.warmup_steps,
           cfg.num_train_steps, cfg.horizon)
    assert got == (init, final, decay, warmup, n, horizon)
    assert cfg.model_loss == name.removeprefix("svg_")
    # globals of config/train.yaml
    assert (cfg.seq_batch_size, cfg.step_batch_size, cfg.model_update_repeat, cfg.num_seed_steps,
            cfg.discount, cfg.init_temp) == (512, 1024, 4, 1000, 0.99, 0.1)


@pytest.mark.parametrize("env_id,layers,width", [("HopperCapacity-2x64-v0", 2, 64),
                                                 ("HopperCapacity-3x64-v0", 3, 64),
                                                 ("HopperCapacity-4x64-v0", 4, 64)]
                         + [(f"InvertedDoublePendulumCapacity-{n}x{w}-v0", n, w) for n, w in IDP_CAPACITY_SIZES]
                         + [(f"InvertedPendulumCapacity-{n}x{w}-v0", n, w) for n, w in IP_CAPACITY_SIZES])
def test_capacity_ids_set_encoder_depth_and_width(env_id, layers, width):
    cfg = SVGVaGraMAgent.default_config(env_id)
    assert (cfg.xu_enc_hidden_depth, cfg.xu_enc_hidden_dim, cfg.rec_latent_dim) == (layers, width, width)
    env = gym.make(env_id)
    tiny = {k: v for k, v in TINY.items() if k not in ("xu_enc_hidden_dim", "rec_latent_dim")}
    agent = SVGVaGraMAgent(dataclasses.replace(cfg, **tiny), env.observation_space, env.action_space,
                           env_id=env_id, seed=0)
    linears = [m for m in agent.dynamics.enc if hasattr(m, "weight")]
    assert len(linears) == layers + 1 and linears[0].out_features == width
    assert agent.dynamics.rnn.hidden_size == width


def test_capacity_conflicting_explicit_override_raises():
    capacity = {"num_layers": 3, "hid_size": 64}
    cfg = dataclasses.replace(SVGConfig(), xu_enc_hidden_dim=128)
    with pytest.raises(AgentConfigError, match="xu_enc_hidden_dim=128 conflicts"):
        SVGMSEAgent.apply_model_capacity(cfg, capacity, {"xu_enc_hidden_dim"})
    # the same value given explicitly is fine; an implicit default is overwritten
    ok = SVGMSEAgent.apply_model_capacity(dataclasses.replace(SVGConfig(), xu_enc_hidden_depth=3),
                                          capacity, {"xu_enc_hidden_depth"})
    assert (ok.xu_enc_hidden_depth, ok.xu_enc_hidden_dim, ok.rec_latent_dim) == (3, 64, 64)
    assert SVGMSEAgent.uses_dynamics_model


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_registered_entry_points(name):
    assert registry.load_agent(name) is AGENTS[name]


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_runner_trains_each_agent_and_writes_records(name, tmp_path):
    """``python -m vagram_bench.run agent=svg_... env=HopperDistract-5-v0`` with a tiny budget."""
    from vagram_bench.records import read_csv, read_json
    from vagram_bench.run import main

    overrides = [f"agent.{k}={v}" for k, v in TINY.items() if k not in ("log_every", "num_train_steps")]
    rc = main([f"agent={name}", "env=HopperDistract-5-v0", "seed=3", "steps=150", "eval_every=150",
               "eval_episodes=1", "log_every=50", f"out={tmp_path}", "quiet=true", *overrides])
    assert rc == 0
    run_dir = tmp_path / "HopperDistract-5-v0" / name / "seed3"
    train = read_csv(run_dir / "train.csv")
    assert [int(r["env_step"]) for r in train] == [50, 100, 150]
    last = train[-1]
    for key in ("model_obs_loss", "model_reward_loss", "model_done_loss", "critic_loss", "actor_loss",
                "actor_ve_reward", "actor_ve_terminal_q", "actor_ve_entropy", "actor_ve_survival",
                "alpha", "target_entropy"):
        assert np.isfinite(float(last[key])), key
    assert float(last["actor_model_free"]) == 0.0  # warm-up (85 steps) is over
    evals = read_csv(run_dir / "eval.csv")
    assert [int(r["env_step"]) for r in evals] == [150]
    summary = read_json(run_dir / "summary.json")
    assert summary["env_steps"] == 150
    config = read_json(run_dir / "config.json")
    assert config["agent"] == name and config["agent_config"]["model_loss"] == name.removeprefix("svg_")


def test_agent_loop_reports_metrics_on_distraction_env():
    """Agent loop as the runner drives it (act, observe, update), 160 steps on HopperDistract-5."""
    env_id = "HopperDistract-5-v0"
    cls = SVGMSEAgent
    env = gym.make(env_id)
    cfg = dataclasses.replace(cls.default_config(env_id), **TINY)
    agent = cls(cfg, env.observation_space, env.action_space, env_id=env_id, seed=0)
    obs, _ = env.reset(seed=0)
    rows = []
    for step in range(1, 161):
        action = agent.act(obs, deterministic=False)
        assert env.action_space.contains(action)
        next_obs, reward, term, trunc, _ = env.step(action)
        agent.observe(obs, action, reward, next_obs, term, trunc)
        metrics = agent.update(step)
        if metrics:
            rows.append((step, metrics))
        obs = env.reset()[0] if (term or trunc) else next_obs
    assert [s for s, _ in rows] == [84, 109, 134, 159]  # mean of every 25 updates
    last = rows[-1][1]
    for key in ("model_obs_loss", "model_reward_loss", "model_done_loss", "critic_loss",
                "actor_loss", "actor_ve_reward", "actor_ve_terminal_q", "actor_ve_entropy",
                "actor_ve_survival", "alpha", "target_entropy"):
        assert np.isfinite(last[key]), key
    assert rows[0][1]["actor_model_free"] == 1.0 and last["actor_model_free"] == 0.0
    schedule = [2.0 * (1 - s / 160) ** 2**-5 - 2.0 for s in range(135, 160)]
    assert last["target_entropy"] == pytest.approx(np.mean(schedule), abs=1e-6)
    assert env.observation_space.shape == (16,)  # 11 Hopper dims + 5 distractors
    act = agent.act(obs, deterministic=True)
    assert np.array_equal(act, agent.act(obs, deterministic=True))


class _Crash(Exception):
    pass


def test_runner_resume_after_crash_reproduces_uninterrupted_run(tmp_path, monkeypatch):
    """Crash inside ``update`` after checkpoints, re-run the same command: records equal an
    uninterrupted run's (replay, normaliser, optimisers and RNG all restored from the checkpoint)."""
    from vagram_bench.records import read_csv
    from vagram_bench.run import main

    args = ["agent=svg_vagram", "env=HopperDistract-5-v0", "seed=1", "steps=140", "eval_every=70",
            "eval_episodes=1", "log_every=20", "checkpoint_every=30", "quiet=true",
            *[f"agent.{k}={v}" for k, v in TINY.items() if k not in ("log_every", "num_train_steps")]]
    original = SVGVaGraMAgent.update

    def crashing_update(self, env_step):
        if env_step == 110:
            raise _Crash(env_step)
        return original(self, env_step)

    monkeypatch.setattr(SVGVaGraMAgent, "update", crashing_update)
    with pytest.raises(_Crash):
        main([*args, f"out={tmp_path / 'a'}"])
    monkeypatch.setattr(SVGVaGraMAgent, "update", original)
    run_a = tmp_path / "a" / "HopperDistract-5-v0" / "svg_vagram" / "seed1"
    assert (run_a / "checkpoint.pt").exists() and not (run_a / "summary.json").exists()
    assert main([*args, f"out={tmp_path / 'a'}"]) == 0
    assert main([*args, f"out={tmp_path / 'b'}"]) == 0
    run_b = tmp_path / "b" / "HopperDistract-5-v0" / "svg_vagram" / "seed1"
    assert read_csv(run_a / "train.csv") == read_csv(run_b / "train.csv")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(read_csv(run_a / "eval.csv")) == strip(read_csv(run_b / "eval.csv"))
