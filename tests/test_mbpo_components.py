"""MBPO component truths that need no training: schedules, config, capacity, branched rollouts."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from vagram_bench.agents.mbpo import (
    FAMILY_OVERRIDES,
    MBPOConfig,
    MBPOMSEAgent,
    MBPOVaGraMAgent,
    mbpo_default_config,
    truncated_linear,
)
from vagram_bench.interfaces import AgentConfigError
from vagram_bench.models.model_env import branched_rollout


# ------------------------------------------------------------------ truncated_linear
@pytest.mark.parametrize(
    "args, x, expected",
    [
        ((20, 150, 1, 5), 1, 1.0),
        ((20, 150, 1, 5), 20, 1.0),
        ((20, 150, 1, 5), 85, 3.0),  # 1 + 4 * 65/130
        ((20, 150, 1, 5), 150, 5.0),
        ((20, 150, 1, 5), 10_000, 5.0),
        ((0, 20, 0, 0.95), 1, 0.0475),
        ((0, 20, 0, 0.95), 10, 0.475),
        ((0, 50, 0, 0.95), 25, 0.475),
        ((20, 100, 1, 25), 60, 13.0),
        ((0, 10, 1.0, 0.0), 4, 0.6),  # decreasing schedules interpolate the same way
    ],
)
def test_truncated_linear_closed_form(args, x, expected):
    assert truncated_linear(*args, x) == pytest.approx(expected, abs=1e-12)


def test_truncated_linear_rejects_empty_range():
    with pytest.raises(ValueError, match="min_x < max_x"):
        truncated_linear(5, 5, 0, 1, 3)


@pytest.mark.parametrize("epoch, length", [(0, 1), (19, 1), (20, 1), (52, 2), (84, 3), (149, 5), (400, 5)])
def test_rollout_length_schedule(epoch, length):
    # Hopper [20, 150, 1, 5] evaluated at epoch + 1: int(1 + 4 (e + 1 − 20) / 130)
    assert MBPOConfig().rollout_length(epoch) == length


# ------------------------------------------------------------------ config
def test_model_buffer_capacity_matches_upstream_formula():
    cfg = MBPOConfig()
    assert cfg.rollout_batch_size == 100_000
    # L · (400·250) · ceil(1000/250) · 1 = 400,000 · L (docs/mbpo.md, model buffer)
    assert cfg.model_buffer_capacity(1) == 400_000
    assert cfg.model_buffer_capacity(3) == 1_200_000
    cfg2 = dataclasses.replace(cfg, epoch_length=1000, freq_train_model=300, num_epochs_to_retain_sac_buffer=2)
    assert cfg2.model_buffer_capacity(2) == 2 * (400 * 300) * 4 * 2


def test_hopper_defaults_are_vagram_table():
    cfg = mbpo_default_config("hopper", "vagram")
    expected = dict(
        initial_exploration_steps=10_000, freq_train_model=250, effective_model_rollouts_per_step=400,
        rollout_schedule=(20, 150, 1, 5), model_data_likelihood=(0.0, 20.0, 0.0, 0.95),
        num_sac_updates_per_step=20, ensemble_size=7, num_elites=5, num_layers=4, hid_size=200,
        model_lr=1e-3, model_wd=5e-5, model_batch_size=1024, validation_ratio=0.2, patience=10,
        sac_batch_size=256, sac_gamma=0.99, sac_tau=0.005, sac_critic_lr=3e-4, sac_actor_lr=3e-5,
        sac_alpha_lr=3e-4, sac_init_alpha=0.1, sac_target_entropy=-1.0, sac_target_update_interval=4,
        sac_hidden_size=1024, deterministic_real_actions=True,
    )
    for k, v in expected.items():
        assert getattr(cfg, k) == v, k
    # plain Hopper: every loss trains with mbpo_hopper.yaml's batch 1024 (per-variant values: test_mbpo_defaults.py)
    assert mbpo_default_config("hopper", "mle").model_batch_size == 1024


@pytest.mark.parametrize(
    "family, field, value",
    [
        ("walker2d", "rollout_schedule", (20, 150, 1, 1)),
        ("halfcheetah", "num_sac_updates_per_step", 40),
        ("halfcheetah", "patience", 1),
        ("ant", "rollout_schedule", (20, 100, 1, 25)),
        ("humanoid", "num_epochs_to_retain_sac_buffer", 5),
        ("humanoid", "sac_critic_lr", 1e-5),
        ("inverted_pendulum", "epoch_length", 250),
        ("inverted_pendulum", "deterministic_real_actions", False),
        ("inverted_double_pendulum", "model_data_likelihood", (0.0, 1.0, 1.0, 1.0)),
        ("walker2d", "deterministic_real_actions", True),
        ("other", "rollout_schedule", (20, 150, 1, 5)),
    ],
)
def test_family_defaults(family, field, value):
    assert getattr(mbpo_default_config(family, "mse"), field) == value


def test_every_family_default_is_valid():
    for family in list(FAMILY_OVERRIDES) + ["other"]:
        for loss in ("mse", "mle", "itervaml", "vagram"):
            cfg = mbpo_default_config(family, loss)
            assert cfg.model_loss == loss


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_elites=8), "num_elites=8 must be <= ensemble_size=7"),
        (dict(model_loss="l1"), "model_loss='l1' is not valid; choose one of mse, mle, itervaml, vagram"),
        (dict(rollout_schedule=(5, 5, 1, 2)), "rollout_schedule"),
        (dict(model_data_likelihood=(0, 20, 0, 1.5)), "model_data_likelihood"),
        (dict(freq_train_model=0), "freq_train_model=0"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(AgentConfigError, match=match):
        MBPOConfig(**kwargs)


# ------------------------------------------------------------------ capacity
def test_apply_model_capacity_sets_and_rejects_conflicts():
    cfg = MBPOConfig()
    out = MBPOVaGraMAgent.apply_model_capacity(cfg, {"num_layers": 3, "hid_size": 64}, set())
    assert (out.num_layers, out.hid_size) == (3, 64)
    same = dataclasses.replace(cfg, num_layers=3)
    assert MBPOVaGraMAgent.apply_model_capacity(same, {"num_layers": 3, "hid_size": 64}, {"num_layers"}).hid_size == 64
    bad = dataclasses.replace(cfg, hid_size=128)
    with pytest.raises(AgentConfigError, match="hid_size=128 conflicts"):
        MBPOVaGraMAgent.apply_model_capacity(bad, {"num_layers": 3, "hid_size": 64}, {"hid_size"})


def test_model_loss_override_conflicts_with_agent():
    cfg = MBPOConfig(model_loss="vagram")
    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    with pytest.raises(AgentConfigError, match="model_loss='vagram' conflicts"):
        MBPOMSEAgent(cfg, gym.spaces.Box(-np.inf, np.inf, (11,)), space, env_id="Hopper-v5", seed=0)


# ------------------------------------------------------------------ branched rollouts
def _reference_rollouts(start, horizon, policy, step, term):
    """Per-sample Python loop: the independent truth for :func:`branched_rollout`."""
    out = []
    for s in start:
        s = s.clone()
        for t in range(horizon):
            a = policy(s[None])[0]
            s2, r = step(s[None], a[None])
            done = bool(term(s2)[0])
            out.append((t, s.tolist(), a.tolist(), s2[0].tolist(), float(r[0]), done))
            if done:
                break
            s = s2[0]
    return out


@pytest.mark.parametrize("horizon", [1, 3, 6])
def test_branched_rollout_stops_per_sample_at_termination(horizon):
    g = torch.Generator().manual_seed(0)
    start = torch.randn(64, 4, generator=g)
    w = torch.randn(4, 2, generator=g)

    def policy(s):
        return torch.tanh(s @ w)

    def step(s, a):  # known dynamics: drift that depends on state and action
        nxt = s + 0.3 + 0.1 * torch.cat([a, a], -1)
        return nxt, (s * s).sum(-1)

    def term(s):  # terminates on the first dim only (as a base-dims termination fn would)
        return s[:, 0] > 1.0

    td = branched_rollout(start, horizon, policy, lambda s, a: (*step(s, a), term(step(s, a)[0])))
    ref = _reference_rollouts(start, horizon, policy, step, term)
    assert td.shape[0] == len(ref)
    got = sorted(
        zip(
            td["observation"].tolist(), td["action"].tolist(), td["next", "observation"].tolist(),
            td["next", "reward"].squeeze(-1).tolist(), td["next", "terminated"].squeeze(-1).tolist(),
        )
    )
    want = sorted((o, a, n, r, d) for _, o, a, n, r, d in ref)
    for (o, a, n, r, d), (o2, a2, n2, r2, d2) in zip(got, want):
        assert np.allclose(o, o2, atol=1e-6) and np.allclose(a, a2, atol=1e-6)
        assert np.allclose(n, n2, atol=1e-6) and r == pytest.approx(r2, abs=1e-5) and d == d2
    assert torch.equal(td["next", "done"], td["next", "terminated"])
    # transitions after a termination are never stored: each start contributes until its first done
    assert int(td["next", "terminated"].sum()) == sum(1 for x in ref if x[5])
