"""MBPO agent behaviour on counted in-process runs: schedules, retraining frequency, SAC-update
counts, model-buffer contents, checkpoint round trip, divergence guard. The agent is the population of
one (``agent.population``, an ``MBPOPopulation``): the counters, buffers, model and learner read here are
that population's member 0."""

from __future__ import annotations

import dataclasses
import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import vagram_bench  # noqa: F401  (registers the env ids)
from vagram_bench.agents.mbpo import (
    MBPOIterVAMLAgent,
    MBPOMLEAgent,
    MBPOMSEAgent,
    MBPOVaGraMAgent,
    ModelDivergenceError,
    truncated_linear,
)

ENV_ID = "HopperDistract-5-v0"
AGENTS = {"mse": MBPOMSEAgent, "mle": MBPOMLEAgent, "itervaml": MBPOIterVAMLAgent, "vagram": MBPOVaGraMAgent}


def tiny_config(cls, **overrides):
    cfg = cls.default_config(ENV_ID)
    small = dict(
        initial_exploration_steps=40, epoch_length=20, freq_train_model=10,
        effective_model_rollouts_per_step=3, rollout_schedule=(1, 4, 1, 4),
        model_data_likelihood=(0.0, 4.0, 0.0, 1.0), num_sac_updates_per_step=3,
        ensemble_size=3, num_elites=2, num_layers=2, hid_size=16, num_epochs_train_model=2,
        model_batch_size=32, dataset_size=500, sac_hidden_size=32, sac_batch_size=16,
    )
    small.update(overrides)
    return dataclasses.replace(cfg, **small)


def train_model(agent, epoch, env_step):
    """One model training of the agent's ensemble (the population's, member 0); its records. Raises
    what the agent's ``update`` would raise for a failed training."""
    records = agent.population._train_models(np.array([True]), np.array([epoch]), np.array([env_step]))
    error = agent.population.member_error(0)
    if error is not None:
        raise error
    return records[0]


def make_agent(cls, cfg, seed=0):
    env = gym.make(ENV_ID)
    return env, cls(cfg, env.observation_space, env.action_space, env_id=ENV_ID, seed=seed)


def run_steps(env, agent, steps, *, start=1, obs=None, seed=0, actions=None):
    """The runner's loop; returns per-step metrics and the last observation. ``actions`` (a list)
    records the actions taken."""
    if obs is None:
        obs, _ = env.reset(seed=seed)
    rows = {}
    for k in range(start, start + steps):
        a = agent.act(obs, deterministic=False)
        if actions is not None:
            actions.append(a)
        nobs, r, term, trunc, _ = env.step(a)
        agent.observe(obs, a, r, nobs, term, trunc)
        m = agent.update(k)
        if m:
            rows[k] = m
        obs = env.reset()[0] if (term or trunc) else nobs
    return rows, obs


class Counter:
    """Wraps a bound method, recording the env step of every call."""

    def __init__(self, fn, clock):
        self.fn, self.clock, self.calls = fn, clock, []

    def __call__(self, *args, **kwargs):
        self.calls.append(self.clock[0])
        return self.fn(*args, **kwargs)


def test_counted_run_matches_config_schedules():
    cfg = tiny_config(MBPOMSEAgent)
    env, agent = make_agent(MBPOMSEAgent, cfg)
    pop = agent.population
    clock = [0]
    train = pop.model_trainer.train_members = Counter(pop.model_trainer.train_members, clock)
    sac = pop.learner.update = Counter(pop.learner.update, clock)
    obs, _ = env.reset(seed=0)
    rows = {}
    steps = 140
    for k in range(1, steps + 1):
        clock[0] = k
        m, obs = run_steps(env, agent, 1, start=k, obs=obs)
        rows.update(m)

    expl, freq = cfg.initial_exploration_steps, cfg.freq_train_model
    expected_train_steps = [k for k in range(1, steps + 1) if k > expl and (k - expl) % freq == 0]
    assert train.calls == expected_train_steps
    # SAC: num_sac_updates_per_step on every step from the first model training on (the model
    # buffer then holds >= rollout_batch_size transitions: rollout length 1 stores them all)
    first = expected_train_steps[0]
    expected_sac = [k for k in range(first, steps + 1) for _ in range(cfg.num_sac_updates_per_step)]
    assert sac.calls == expected_sac
    assert pop.num_sac_updates[0] == len(expected_sac)
    # records at every training call; schedules equal truncated_linear at epoch + 1
    assert sorted(rows) == expected_train_steps
    for k, row in rows.items():
        epoch = (k - expl - 1) // cfg.epoch_length
        length = int(truncated_linear(1, 4, 1, 4, epoch + 1))
        assert row["epoch"] == epoch
        assert row["rollout_length"] == length == min(epoch + 1, 4)
        assert row["model_data_probability"] == pytest.approx(truncated_linear(0, 4, 0, 1, epoch + 1))
        # capacity retains one epoch: L × (3 × 10) × ceil(20 / 10) × 1
        assert row["model_buffer_capacity"] == length * 30 * 2
        assert row["num_model_trainings"] == expected_train_steps.index(k) + 1
    # the real/model mix: model batches are drawn with probability p (Binomial bound, 6 sigma)
    n_sac = int(pop.num_sac_updates[0])
    n_model = int(pop.num_sac_updates_on_model_data[0])
    p_mean = np.mean([truncated_linear(0, 4, 0, 1, (k - expl - 1) // 20 + 1) for k in range(first, steps + 1)])
    assert abs(n_model - p_mean * n_sac) < 6 * math.sqrt(n_sac * 0.25) + 1


def test_sac_updates_every_steps_and_min_buffer_gate():
    cfg = tiny_config(MBPOMSEAgent, sac_updates_every_steps=2, min_model_buffer_size=100)
    env, agent = make_agent(MBPOMSEAgent, cfg)
    pop = agent.population
    obs, _ = env.reset(seed=0)
    expl, n = cfg.initial_exploration_steps, cfg.num_sac_updates_per_step
    gated = 0
    for k in range(1, 121):
        before = int(pop.num_sac_updates[0])
        _, obs = run_steps(env, agent, 1, start=k, obs=obs)
        size = int(pop.model_buffer.size[0])  # unchanged by SAC updates
        due = k > expl and (k - expl) % 2 == 0
        gated += due and size < 100
        assert pop.num_sac_updates[0] - before == (n if due and size >= 100 else 0), k
    assert gated > 0 and pop.num_sac_updates[0] > 0  # both branches were exercised


def test_model_buffer_receives_exactly_the_non_terminated_transitions(monkeypatch):
    """Deterministic rollouts (one elite, policy mean) replayed per sample by a Python loop."""
    cfg = tiny_config(MBPOMSEAgent, num_elites=1, rollout_schedule=(1, 2, 3, 3), num_sac_updates_per_step=0,
                      effective_model_rollouts_per_step=8)
    env, agent = make_agent(MBPOMSEAgent, cfg)
    pop = agent.population
    pop.termination_fn = lambda s: s[..., 1] > 0.02  # terminates a good share of the rollouts
    member_act = pop.learner.member_act
    pop.learner.member_act = lambda k, s, deterministic: member_act(k, s, deterministic=True)
    run_steps(env, agent, cfg.initial_exploration_steps + cfg.freq_train_model - 1)
    rollout_state = pop.generators["gen_rollout"][0].get_state()
    run_steps(env, agent, 1, start=cfg.initial_exploration_steps + cfg.freq_train_model)
    got = pop.model_buffer.storage[0][: int(pop.model_buffer.size[0])]

    g = torch.Generator()
    g.set_state(rollout_state)
    n_real = int(pop.real_buffer.size[0])
    start_idx = torch.randint(n_real, (cfg.rollout_batch_size,), generator=g)
    starts = pop.real_buffer.storage[0][start_idx]["observation"]
    model = pop.model.member_model(0)
    elite = model.elite_idx[:1]
    expected = []
    with torch.no_grad():
        for s in starts:
            for _ in range(3):
                a = member_act(0, s[None], deterministic=True)
                pred = model.predict(s[None], a, members=elite)
                s2, r = pred.next_obs[0, 0], pred.reward[0, 0]
                done = bool(s2[1] > 0.02)
                expected.append((s, s2, float(r), done))
                if done:
                    break
                s = s2
    assert got.shape[0] == len(expected)
    assert any(d for *_, d in expected) and not all(d for *_, d in expected)
    key = lambda t: tuple(np.round(t[0].numpy(), 4))  # noqa: E731
    exp_sorted = sorted(expected, key=key)
    order = sorted(range(got.shape[0]), key=lambda i: tuple(np.round(got["observation"][i].numpy(), 4)))
    for i, (s, s2, r, d) in zip(order, exp_sorted):
        assert torch.allclose(got["observation"][i], s, atol=1e-5)
        assert torch.allclose(got["next", "observation"][i], s2, atol=1e-4)
        assert got["next", "reward"][i, 0].item() == pytest.approx(r, abs=1e-4)
        assert bool(got["next", "terminated"][i, 0]) == d


@pytest.mark.parametrize("loss", ["mse", "vagram"])
def test_checkpoint_round_trip_continues_identically(loss):
    cls = AGENTS[loss]
    cfg = tiny_config(cls)
    env, agent = make_agent(cls, cfg)
    actions = []
    rows, obs = run_steps(env, agent, 75, actions=actions)
    # serialised at once, as a checkpoint file (the dict holds references to live tensors)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    # a second env brought to the same state by replaying the actions (MuJoCo state does not deepcopy)
    env_b = gym.make(ENV_ID)
    obs_b, _ = env_b.reset(seed=0)
    for a in actions:
        obs_b, _, term, trunc, _ = env_b.step(a)
        if term or trunc:
            obs_b, _ = env_b.reset()
    np.testing.assert_array_equal(obs_b, obs)
    # continue the original
    rows_a, _ = run_steps(env, agent, 30, start=76, obs=obs)
    # a fresh agent (different seed) restored from the checkpoint, env put back in the same state
    _, agent_b = make_agent(cls, cfg, seed=123)
    agent_b.load_state_dict(torch.load(buf, weights_only=False))
    rows_b, _ = run_steps(env_b, agent_b, 30, start=76, obs=obs)
    assert rows_a.keys() == rows_b.keys() and rows_a
    for k in rows_a:
        for name, v in rows_a[k].items():
            if name.startswith("time_"):
                continue
            assert rows_b[k][name] == pytest.approx(v, rel=1e-6, abs=1e-9), (k, name)
    o = np.asarray(obs, dtype=np.float32)
    np.testing.assert_array_equal(agent.act(o, True), agent_b.act(o, True))


def test_divergence_guard_stops_on_non_finite_model():
    cfg = tiny_config(MBPOMSEAgent)
    env, agent = make_agent(MBPOMSEAgent, cfg)
    pop = agent.population
    run_steps(env, agent, cfg.initial_exploration_steps + cfg.freq_train_model)
    size = int(pop.model_buffer.size[0])
    with torch.no_grad():
        pop.model.member_model(0).head.weight.fill_(float("inf"))  # a blown-up model
    best = float(pop.best_model_mse_seen[0])  # a training that reports no blow-up: the rollouts must catch it
    pop.model_trainer.train_members = lambda *a, **k: ({0: _fake_result(agent, mse=best)}, {})
    with pytest.raises(FloatingPointError, match="non-finite"):
        run_steps(env, agent, cfg.freq_train_model, start=cfg.initial_exploration_steps + cfg.freq_train_model + 1)
    assert pop.model_buffer.size[0] == size  # nothing from the broken model reached the SAC buffer


def test_divergence_guard_stops_on_mse_blow_up():
    cfg = tiny_config(MBPOMSEAgent, max_model_mse_ratio=10.0)
    env, agent = make_agent(MBPOMSEAgent, cfg)
    run_steps(env, agent, cfg.initial_exploration_steps + cfg.freq_train_model)
    best = float(agent.population.best_model_mse_seen[0])
    assert math.isfinite(best)
    agent.population.model_trainer.train_members = lambda *a, **k: ({0: _fake_result(agent, mse=best * 11)}, {})
    with pytest.raises(ModelDivergenceError, match="model_val_mse"):
        run_steps(env, agent, cfg.freq_train_model, start=cfg.initial_exploration_steps + cfg.freq_train_model + 1)


def _fake_result(agent, score=1.0, mse=1.0):
    from vagram_bench.models.trainer import TrainingResult

    model = agent.population.model.member_model(0)
    E = model.ensemble_size
    return TrainingResult(epochs=1, train_losses=[score], val_scores=[[score] * E], best_val_scores=[score] * E,
                          elites=model.elite_idx.tolist(), restored_best=False, train_size=1, val_size=1,
                          val_mse=[mse] * E)


def _scale_critic_output_(learner, factor):
    """Multiply every Q head (online and target) by ``factor``: values ×factor, ``∂Q/∂s'`` ×factor."""
    with torch.no_grad():
        for layers in (learner._q_online, learner._q_target):
            weight, bias = layers[-1]
            weight.mul_(factor)
            bias.mul_(factor)


@pytest.mark.parametrize("loss", ["vagram", "itervaml"])
def test_divergence_guard_ignores_a_growing_value_gradient_scale(loss):
    """A critic whose gradients grow 1000× (as a learning critic's do) multiplies the value-aware
    validation score by ~1e6 (IterVAML: values ×1000, squared), far past the guard's 1e4 ratio, but
    leaves the model's accuracy — and so the guard — alone."""
    cls = AGENTS[loss]
    cfg = tiny_config(cls, add_mse_first_epoch=False, num_epochs_train_model=3)
    env, agent = make_agent(cls, cfg)
    run_steps(env, agent, cfg.initial_exploration_steps)
    step = cfg.initial_exploration_steps
    first = train_model(agent, 1, step)
    _scale_critic_output_(agent.population.learner, 1000.0)
    second = train_model(agent, 1, step)  # no error
    assert second["model_val_score"] > 1e4 * first["model_val_score"]  # a score-ratio guard would trip
    assert second["model_val_mse"] < 10 * first["model_val_mse"]
    assert agent.population.best_model_mse_seen[0] == min(first["model_val_mse"], second["model_val_mse"])


def test_divergence_guard_stops_a_diverging_model():
    cfg = tiny_config(MBPOVaGraMAgent, add_mse_first_epoch=False, num_epochs_train_model=2)
    env, agent = make_agent(MBPOVaGraMAgent, cfg)
    run_steps(env, agent, cfg.initial_exploration_steps)
    step = cfg.initial_exploration_steps
    first = train_model(agent, 1, step)
    model = agent.population.model.member_model(0)
    with torch.no_grad():  # blown-up weights, and no optimiser steps to repair them
        model.head.weight.mul_(1e6)
        model.head.bias.mul_(1e6)
    agent.population.model_trainer.optimizer.lr = 0.0
    with pytest.raises(ModelDivergenceError, match="model_val_mse=") as info:
        train_model(agent, 1, step)
    assert "max_model_mse_ratio=10000" in str(info.value)
    assert f"{first['model_val_mse']:.4g}" in str(info.value)  # the lowest seen


def test_bf16_autocast_options_run_and_stay_finite():
    cfg = tiny_config(MBPOVaGraMAgent, sac_bf16=True, rollout_bf16=True)
    env, agent = make_agent(MBPOVaGraMAgent, cfg)
    rows, _ = run_steps(env, agent, 80)
    pop = agent.population
    assert pop.num_sac_updates[0] > 0 and rows
    for row in rows.values():
        assert all(math.isfinite(v) for v in row.values())
    # parameters and model-buffer contents stay float32
    assert all(p.dtype == torch.float32 for p in pop.learner.parameters())
    assert pop.model_buffer.storage["observation"].dtype == torch.float32


@pytest.mark.parametrize("deterministic_real", [True, False])
def test_real_data_actions_follow_the_flag_and_the_action_bounds(deterministic_real):
    env_id = "InvertedPendulum-v5"  # action space [-3, 3]: the policy's [-1, 1] is rescaled
    env = gym.make(env_id)
    cfg = dataclasses.replace(
        MBPOMSEAgent.default_config(env_id), initial_exploration_steps=5, random_initial_explore=True,
        deterministic_real_actions=deterministic_real, sac_hidden_size=32, ensemble_size=2, num_elites=1,
        hid_size=8, num_layers=1, dataset_size=100,
    )
    agent = MBPOMSEAgent(cfg, env.observation_space, env.action_space, env_id=env_id, seed=0)
    learner = agent.population.learner
    obs, _ = env.reset(seed=0)
    mean = 3.0 * learner.member_act(0, torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=True)[0].numpy()
    np.testing.assert_allclose(agent.act(obs, deterministic=True), mean, rtol=1e-6)
    explore = np.stack([agent.act(obs, deterministic=False) for _ in range(50)])
    assert np.all(np.abs(explore) <= 3.0) and explore.std() > 1.0  # uniform over [-3, 3]: std √3
    for _ in range(cfg.initial_exploration_steps):
        a = agent.act(obs, deterministic=False)
        nobs, r, term, trunc, _ = env.step(a)
        agent.observe(obs, a, r, nobs, term, trunc)
        obs = env.reset()[0] if term or trunc else nobs
    # stored actions are in the policy's [-1, 1] space
    stored = agent.population.real_buffer.storage["action"][0, : int(agent.population.real_buffer.size[0])]
    assert stored.abs().max() <= 1.0 and stored.abs().max() > 0.3
    mean = 3.0 * learner.member_act(0, torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=True)[0].numpy()
    after = np.stack([agent.act(obs, deterministic=False) for _ in range(20)])
    if deterministic_real:
        np.testing.assert_allclose(after, np.broadcast_to(mean, after.shape), rtol=1e-6)
    else:
        assert after.std(0).max() > 1e-3 and np.all(np.abs(after) <= 3.0)


@pytest.mark.parametrize("cls", [MBPOVaGraMAgent, MBPOIterVAMLAgent])
def test_value_aware_training_uses_targets_of_every_real_transition_from_the_current_critic(cls):
    cfg = tiny_config(cls)
    env, agent = make_agent(cls, cfg)
    pop = agent.population
    seen = []
    original = pop.model_trainer.train_members

    def spy(data, members, **kw):
        # at the call: targets for every real transition, in storage order, from the CURRENT critic
        obs, action, reward, next_obs = data
        n = next_obs.shape[1]
        vt = kw["value_targets"]
        assert kw["value_fns"] is pop.value_functions and members == [0]
        assert torch.equal(next_obs[0], pop.real_buffer.storage["next", "observation"][0, :n])
        assert vt.values.shape == (4, 1, n)
        m = min(n, 64)
        s = next_obs[:, :m].clone().requires_grad_(True)
        with torch.no_grad():
            a = pop.learner.policy_mean(next_obs[:, :m])
        # independent truth: the population's batched critic, one autograd call per head
        q = pop.learner.q_heads(s, a)[0]
        torch.testing.assert_close(vt.values[:, 0, :m], q.detach(), rtol=1e-5, atol=1e-6)
        if cls is MBPOVaGraMAgent:
            ref = torch.stack([torch.autograd.grad(q[h].sum(), s, retain_graph=True)[0][0] for h in range(4)])
            torch.testing.assert_close(vt.grads[:, 0, :m], ref, rtol=1e-4, atol=1e-6)
        else:
            assert vt.grads is None  # IterVAML reads values only
        seen.append(int(pop.learner.member_updates[0]))
        return original(data, members, **kw)

    pop.model_trainer.train_members = spy
    run_steps(env, agent, cfg.initial_exploration_steps + 2 * cfg.freq_train_model)
    assert len(seen) == 2 and seen[1] > seen[0]  # the critic changed between the two calls
