"""Component truths of the SVG agents (SAC-SVG(H)): value expansion, survival weights, done-model
class balancing, window sampling, target-entropy schedule, model-loss wiring, checkpoints."""

from __future__ import annotations

import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from vagram_bench.agents.svg import (
    SVGConfig,
    SVGDivergenceError,
    SVGIterVAMLAgent,
    SVGMLEAgent,
    SVGMSEAgent,
    SVGReplayBuffer,
    SVGVaGraMAgent,
    done_pos_weight,
    expand_value,
    survival_weights,
    target_entropy_at,
)
from vagram_bench.interfaces import AgentConfigError, ValueFunction

AGENTS = [SVGMSEAgent, SVGMLEAgent, SVGIterVAMLAgent, SVGVaGraMAgent]


def tiny_config(cls, **overrides) -> SVGConfig:
    base = dict(
        model_loss=cls.model_loss_name, num_seed_steps=64, warmup_steps=0, seq_batch_size=16,
        step_batch_size=32, model_free_hidden_dim=16, model_free_hidden_depth=2,
        xu_enc_hidden_dim=16, rec_latent_dim=16, rew_hidden_dim=16, done_hidden_dim=16,
        log_every=1, num_train_steps=1000, replay_capacity=10_000,
    )
    base.update(overrides)
    return SVGConfig(**base)


def make_agent(cls, obs_dim=5, act_dim=2, seed=0, **overrides):
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
    act_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    return cls(tiny_config(cls, **overrides), obs_space, act_space, env_id="Hopper-v5", seed=seed)


class LinearToyEnv:
    """Deterministic linear system with terminations and time limits, for agent-level tests."""

    def __init__(self, obs_dim=5, act_dim=2, episode_len=17, seed=0):
        rng = np.random.default_rng(seed)
        self.A = 0.9 * np.eye(obs_dim) + 0.05 * rng.standard_normal((obs_dim, obs_dim))
        self.B = 0.3 * rng.standard_normal((obs_dim, act_dim))
        self.x0 = rng.standard_normal(obs_dim)
        self.episode_len, self.t, self.x = episode_len, 0, None

    def reset(self):
        self.t, self.x = 0, self.x0.copy()
        return self.x.copy()

    def step(self, a):
        self.x = self.A @ self.x + self.B @ np.asarray(a, dtype=np.float64)
        self.t += 1
        reward = float(-np.sum(self.x**2) + 1.0)
        terminated = bool(abs(self.x[0]) > 2.5)
        truncated = self.t >= self.episode_len
        return self.x.copy(), reward, terminated, truncated


def run_steps(agent, env, obs, start, n):
    rows = []
    for step in range(start, start + n):
        a = agent.act(obs, deterministic=False)
        nxt, r, term, trunc = env.step(a)
        agent.observe(obs, a, r, nxt, term, trunc)
        rows.append(agent.update(step))
        obs = env.reset() if (term or trunc) else nxt
    return obs, rows


# ------------------------------------------------------------------------------------------------
# value expansion with a known linear model, reward and done
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("paper_compat", [False, True])
def test_value_expansion_equals_hand_computed_sum_h3(paper_compat):
    """H=3 written out: V = w0 r0 + γ w1 r1 + γ² w2 Q2 − α(ℓ0 + γℓ1 + γ²ℓ2)."""
    A = torch.tensor([[0.9, 0.2], [-0.1, 0.8]], dtype=torch.float64)
    Bm = torch.tensor([[0.5], [-0.3]], dtype=torch.float64)
    K = torch.tensor([[0.4, -0.7]], dtype=torch.float64)
    w_r, v_r = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5
    k_d, b_d = torch.tensor([0.3, 0.6], dtype=torch.float64), -1.0
    w_q = torch.tensor([2.0, 1.0], dtype=torch.float64)
    gamma, alpha = 0.9, 0.2

    def policy(x):
        u = x @ K.T
        return u, 0.1 * x.sum(-1) - 1.0

    def model_step(x, u, h):
        return x @ A.T + u @ Bm.T, h + 1

    x0 = torch.tensor([[1.0, -0.5], [0.2, 0.3]], dtype=torch.float64)
    ve = expand_value(
        x0, 3, policy=policy, model_step=model_step, model_state=0,
        reward=lambda x, u: x @ w_r + v_r * u[:, 0],
        done_logit=lambda x, u: x @ k_d + b_d,
        min_q=lambda x, u: x @ w_q - u[:, 0] ** 2,
        alpha=alpha, discount=gamma, paper_compat=paper_compat,
    )
    for b in range(2):  # by hand, one sample at a time, plain Python floats
        x = [float(v) for v in x0[b]]
        xs, us, ls = [], [], []
        for t in range(3):
            u = 0.4 * x[0] - 0.7 * x[1]
            xs.append(x)
            us.append(u)
            ls.append(0.1 * (x[0] + x[1]) - 1.0)
            x = [0.9 * x[0] + 0.2 * x[1] + 0.5 * u, -0.1 * x[0] + 0.8 * x[1] - 0.3 * u]
        c = [1 - 1 / (1 + math.exp(-(0.3 * s[0] + 0.6 * s[1] - 1.0))) for s in xs]
        w = [c[0], c[0] ** 2, c[0] ** 2 * c[1]] if paper_compat else [1.0, c[0], c[0] * c[1]]
        r = [s[0] - 2 * s[1] + 0.5 * u for s, u in zip(xs, us)]
        q = 2 * xs[2][0] + xs[2][1] - us[2] ** 2
        expected = (w[0] * r[0] + gamma * w[1] * r[1] + gamma**2 * w[2] * q
                    - alpha * (ls[0] + gamma * ls[1] + gamma**2 * ls[2]))
        assert ve.value[b].item() == pytest.approx(expected, rel=1e-12)
        assert ve.terminal_term[b].item() == pytest.approx(gamma**2 * w[2] * q, rel=1e-12)
        assert ve.survival[b].item() == pytest.approx(w[2], rel=1e-12)


@pytest.mark.parametrize("horizon", [1, 2, 4, 6])
def test_value_expansion_general_horizon_matches_loop(horizon):
    """Any H against an independent float64 numpy loop; H=1 is the SAC objective min Q − αℓ."""
    rng = np.random.default_rng(horizon)
    d, a_dim, batch = 3, 2, 4
    A, Bm = 0.3 * rng.standard_normal((d, d)) + np.eye(d), rng.standard_normal((d, a_dim))
    K = rng.standard_normal((a_dim, d))
    wr, wd, wq = rng.standard_normal(d), rng.standard_normal(d), rng.standard_normal(d)
    x0 = rng.standard_normal((batch, d))
    gamma, alpha = 0.97, 0.3
    t = lambda m: torch.tensor(m)  # noqa: E731
    ve = expand_value(
        t(x0), horizon,
        policy=lambda x: (torch.tanh(x @ t(K).T), -(x**2).sum(-1)),
        model_step=lambda x, u, h: (x @ t(A).T + u @ t(Bm).T, h),
        model_state=None,
        reward=lambda x, u: x @ t(wr) + u.sum(-1),
        done_logit=lambda x, u: x @ t(wd),
        min_q=lambda x, u: x @ t(wq) + 2 * u.sum(-1),
        alpha=alpha, discount=gamma,
    )
    expected = np.zeros(batch)
    for b in range(batch):
        x, alive, total = x0[b], 1.0, 0.0
        for step in range(horizon):
            u = np.tanh(K @ x)
            total -= alpha * gamma**step * -(x**2).sum()
            if step == horizon - 1:
                total += gamma**step * alive * (wq @ x + 2 * u.sum())
            else:
                total += gamma**step * alive * (wr @ x + u.sum())
                alive *= 1 - 1 / (1 + np.exp(-(wd @ x)))
                x = A @ x + Bm @ u
        expected[b] = total
    np.testing.assert_allclose(ve.value.numpy(), expected, rtol=1e-10)


def test_survival_weights_formula():
    c = torch.tensor([0.5, 0.8, 0.9, 0.7])[:, None]
    assert survival_weights(c)[:, 0].tolist() == pytest.approx([1.0, 0.5, 0.4, 0.36])
    assert survival_weights(c, paper_compat=True)[:, 0].tolist() == pytest.approx(
        [0.5, 0.25, 0.2, 0.18])


def test_agent_actor_loss_is_value_expansion_over_h():
    """The agent's actor loss is −mean(V̂)/H, V̂ recomputed here by an explicit loop over the
    agent's own networks with the same random draws."""
    agent = make_agent(SVGMSEAgent, horizon=3, discount=0.95)
    obs = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    gen_state = agent.generator.get_state()
    metrics = agent._update_actor_and_alpha(obs, step=10)
    agent2 = make_agent(SVGMSEAgent, horizon=3, discount=0.95)  # same seed = same initial nets
    agent2.generator.set_state(gen_state)
    with torch.no_grad():
        x, h = obs, agent2.dynamics.initial_state(8, obs.device)
        alive, total = torch.ones(8), torch.zeros(8)
        alpha = agent2.alpha
        for t in range(3):
            u, logp = agent2.actor.sample(x, agent2.generator)
            xu = torch.cat([x, u], -1)
            total -= alpha * 0.95**t * logp
            if t == 2:
                total += 0.95**t * alive * agent2.critic(x, u).min(0).values
            else:
                total += 0.95**t * alive * agent2.reward_model(xu).squeeze(-1)
                alive = alive * torch.sigmoid(-agent2.done_model(xu).squeeze(-1))
                x, _, h = agent2.dynamics.step(x, u, h)
    assert metrics["actor_loss"].item() == pytest.approx((-total.mean() / 3).item(), rel=1e-5)
    assert metrics["actor_model_free"].item() == 0.0


def test_warmup_uses_model_free_actor_loss():
    agent = make_agent(SVGMSEAgent, warmup_steps=100)
    obs = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    assert agent._update_actor_and_alpha(obs, step=99)["actor_model_free"].item() == 1.0
    assert agent._update_actor_and_alpha(obs, step=100)["actor_model_free"].item() == 0.0


# ------------------------------------------------------------------------------------------------
# done model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_done", [0, 1, 7, 32])
def test_done_pos_weight_is_class_balance(n_done):
    batch = 32
    term = torch.zeros(batch, dtype=torch.bool)
    term[torch.randperm(batch, generator=torch.Generator().manual_seed(n_done))[:n_done]] = True
    expected = 1.0 if n_done == 0 else (batch - n_done) / n_done
    assert done_pos_weight(term).item() == pytest.approx(expected)


def test_done_model_labels_true_terminations_only():
    """A batch of time-limit ends only has no positive label (pos_weight 1); with terminations the
    BCE equals the hand-written class-balanced formula."""
    agent = make_agent(SVGMSEAgent)
    env = LinearToyEnv(episode_len=5)
    obs = env.reset()
    for _ in range(40):  # every episode ends by time limit (no |x0| > 2.5 within 5 steps here)
        a = np.zeros(2, np.float32)
        nxt, r, term, trunc = env.step(a)
        agent.observe(obs, a, r, nxt, False, trunc)
        obs = env.reset() if trunc else nxt
    batch = agent.replay.sample_transitions(32, agent.generator)
    assert batch["terminated"].sum() == 0 and agent.replay.end.sum() > 0
    x = agent.normalizer.normalize(batch["obs"])
    out = agent._update_reward_and_done(x, batch["action"], batch["reward"], batch["terminated"])
    assert out["done_pos_weight"].item() == 1.0

    term = torch.zeros(32, dtype=torch.bool)
    term[:5] = True
    xu = torch.cat([x, batch["action"]], -1)
    with torch.no_grad():
        z = agent.done_model(xu).squeeze(-1)
    out = agent._update_reward_and_done(x, batch["action"], batch["reward"], term)
    y, pw = term.double(), 27 / 5
    p = torch.sigmoid(z.double())
    manual = -(pw * y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert out["done_pos_weight"].item() == pytest.approx(pw)
    assert out["model_done_loss"].item() == pytest.approx(manual.item(), rel=1e-5)


# ------------------------------------------------------------------------------------------------
# window sampling
# ------------------------------------------------------------------------------------------------
def _fill_episodes(buf: SVGReplayBuffer, n: int, seed: int):
    """obs = (global time, episode id); random episode lengths 1..8, ending by termination or by
    time limit at random."""
    rng = np.random.default_rng(seed)
    ends, ep, left = [], 0, int(rng.integers(1, 9))
    for t in range(n):
        left -= 1
        end = left == 0
        terminated = end and bool(rng.integers(2))
        buf.add(torch.tensor([t, ep], dtype=torch.float32), torch.zeros(1), 0.0,
                torch.tensor([t + 1, ep], dtype=torch.float32), terminated, end and not terminated)
        ends.append(end)
        if end:
            ep, left = ep + 1, int(rng.integers(1, 9))
    return ends


@pytest.mark.parametrize("length", [1, 2, 3, 5])
@pytest.mark.parametrize("allow_final_end", [True, False])
@pytest.mark.parametrize("n_added", [40, 137])  # 137 > capacity: the buffer has wrapped around
def test_windows_stay_inside_episodes_and_before_write_position(length, allow_final_end, n_added):
    capacity = 53
    buf = SVGReplayBuffer(capacity, 2, 1)
    ends = _fill_episodes(buf, n_added, seed=length)
    # Independent brute force over global time: a window of `length` transitions starting at time
    # s is valid iff all are still stored and no transition but (optionally) the last ends.
    oldest_t = max(0, n_added - capacity)
    checked = length - 1 if allow_final_end else length
    valid_times = {s for s in range(oldest_t, n_added - length + 1)
                   if not any(ends[s:s + checked])}
    win = buf.sample_windows(4000, length, torch.Generator().manual_seed(0),
                             allow_final_end=allow_final_end)
    t_obs, ep = win["obs"][..., 0], win["obs"][..., 1]
    assert win["obs"].shape == (length, 4000, 2)
    # consecutive in time, one episode, chained next_obs -> obs
    assert torch.equal(t_obs - t_obs[:1], torch.arange(length, dtype=torch.float32)[:, None].expand_as(t_obs))
    assert torch.equal(ep, ep[:1].expand_as(ep))
    assert torch.equal(win["next_obs"][:-1], win["obs"][1:])
    sampled = set(t_obs[0].long().tolist())
    assert sampled <= valid_times
    assert sampled == valid_times  # uniform over starts: 4000 draws hit every valid start
    assert set(buf.valid_window_starts(length, allow_final_end).tolist()) == {
        t % capacity for t in valid_times}


def test_window_sampling_reports_impossible_lengths():
    buf = SVGReplayBuffer(20, 2, 1)
    for t in range(10):  # episodes of length 1
        buf.add(torch.tensor([t, t], dtype=torch.float32), torch.zeros(1), 0.0,
                torch.tensor([t + 1, t], dtype=torch.float32), True, False)
    from vagram_bench.agents.svg import NoValidWindowError

    with pytest.raises(NoValidWindowError, match="too short"):
        buf.sample_windows(4, 2, torch.Generator().manual_seed(0), max_rounds=3)


# ------------------------------------------------------------------------------------------------
# target entropy schedule
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("init,final,decay", [(0.0, -2.0, 2**-5), (-2.0, -8.0, 2**-4),
                                               (0.0, -2.0, 4.0), (-2.0, -3.0, 1.0)])
def test_target_entropy_schedule_at_sample_steps(init, final, decay):
    n = 1000
    agent = make_agent(SVGMSEAgent, init_targ_entr=init, final_targ_entr=final,
                       entr_decay_factor=decay, num_train_steps=n, warmup_steps=10**9)
    obs = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    for step in [0, 1, 10, 250, 500, 999, 1000, 4000]:
        expected = (init - final) * (1 - min(step, n) / n) ** decay + final
        assert target_entropy_at(step, init, final, decay, n) == pytest.approx(expected)
        recorded = agent._update_actor_and_alpha(obs, step)["target_entropy"].item()
        assert recorded == pytest.approx(expected, abs=1e-6)


def test_default_target_entropy_is_minus_action_dim():
    agent = make_agent(SVGMSEAgent, act_dim=3)
    assert agent.target_entropy(0) == -3 and agent.target_entropy(999) == -3


# ------------------------------------------------------------------------------------------------
# model-loss wiring
# ------------------------------------------------------------------------------------------------
def test_value_function_protocol():
    agent = make_agent(SVGVaGraMAgent)
    assert isinstance(agent.value_fn, ValueFunction)
    x, u = torch.randn(3, 4, 5), torch.rand(3, 4, 2)
    q = agent.value_fn.q_heads(x, u)
    assert q.shape == (4, 3, 4)
    torch.testing.assert_close(q[:2], agent.critic(x, u))
    torch.testing.assert_close(q[2:], agent.critic_target(x, u))
    v0 = agent.value_fn.critic_version
    agent._soft_update_target()
    assert agent.value_fn.critic_version == v0 + 1


def _per_head_gradients(agent, x):
    """∂Q_h(x, μ(x))/∂x per head by four separate autograd calls (independent of
    models.losses.value_gradients)."""
    flat = x.reshape(-1, x.shape[-1])
    a = agent.actor.mean_action(flat).detach()
    grads = []
    for net, i in [(agent.critic, 0), (agent.critic, 1), (agent.critic_target, 0), (agent.critic_target, 1)]:
        leaf = flat.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(leaf, a)[i].sum(), leaf)
        grads.append(g.reshape(x.shape))
    return torch.stack(grads)


@pytest.mark.parametrize("cls", AGENTS)
def test_model_loss_is_computed_on_true_next_states_of_windows(cls):
    """Recompute the dynamics loss by hand from the same window draw: errors of the open-loop
    prediction against the normalised true next states; VaGraM weights = gradients of the current
    critic's 4 heads at those states."""
    agent = make_agent(cls, horizon=4)
    env = LinearToyEnv()
    run_steps(agent, env, env.reset(), 1, 80)
    gen_state = agent.generator.get_state()
    dyn_state = {k: v.clone() for k, v in agent.dynamics.state_dict().items()}
    loss = agent._update_dynamics(step=81)["model_obs_loss"].item()

    agent.dynamics.load_state_dict(dyn_state)
    agent.generator.set_state(gen_state)
    win = agent.replay.sample_windows(16, 3, agent.generator)
    x = agent.normalizer.normalize(win["obs"])
    y = agent.normalizer.normalize(win["next_obs"])
    with torch.no_grad():
        pred, logvar = agent.dynamics.unroll(x[0], win["action"])
    e = pred - y
    if cls is SVGMSEAgent:
        expected = e.pow(2).mean()
    elif cls is SVGMLEAgent:
        assert logvar is not None and (logvar >= -10).all() and (logvar <= 0.5).all()
        expected = (e.pow(2) * torch.exp(-logvar) + logvar).mean()
    elif cls is SVGVaGraMAgent:
        g = _per_head_gradients(agent, y)
        expected = (g * e).pow(2).mean()
    else:
        heads = lambda s: agent.value_fn.q_heads(s, agent.actor.mean_action(s))  # noqa: E731
        with torch.no_grad():
            expected = (heads(pred) - heads(y)).pow(2).mean()
    assert loss == pytest.approx(expected.item(), rel=1e-4)


def test_itervaml_update_leaves_critic_gradients_untouched():
    agent = make_agent(SVGIterVAMLAgent)
    env = LinearToyEnv()
    run_steps(agent, env, env.reset(), 1, 70)
    agent.critic_opt.zero_grad(set_to_none=True)
    agent.actor_opt.zero_grad(set_to_none=True)
    agent._update_dynamics(step=71)
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.grad is None for p in agent.actor.parameters())


# ------------------------------------------------------------------------------------------------
# config, checkpoint, divergence
# ------------------------------------------------------------------------------------------------
def test_config_errors_name_the_bad_value():
    with pytest.raises(AgentConfigError, match="model_loss='vagram' conflicts"):
        make_agent(SVGMSEAgent, model_loss="vagram")
    with pytest.raises(AgentConfigError, match="seq_batch_size=0"):
        make_agent(SVGMSEAgent, seq_batch_size=0)
    with pytest.raises(AgentConfigError, match="'huber' is not valid"):
        make_agent(SVGMSEAgent, model_loss="huber")


@pytest.mark.parametrize("cls", [SVGMSEAgent, SVGVaGraMAgent])
def test_checkpoint_resume_is_exact(cls):
    kw = dict(horizon=3, warmup_steps=95, log_every=7, replay_capacity=80)  # replay wraps
    env = LinearToyEnv(seed=3)
    agent = make_agent(cls, seed=11, **kw)
    obs, _ = run_steps(agent, env, env.reset(), 1, 90)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    env_snapshot = (env.t, env.x.copy())
    _, rows_a = run_steps(agent, env, obs, 91, 25)

    resumed = make_agent(cls, seed=999, **kw)  # a different seed: everything must come from the state
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf, weights_only=False))
    env.t, env.x = env_snapshot[0], env_snapshot[1].copy()
    _, rows_b = run_steps(resumed, env, obs, 91, 25)
    assert rows_a == rows_b and any(rows_a)
    for key, value in agent.state_dict().items():
        if key in ("actor", "critic", "critic_target", "dynamics", "reward_model", "done_model"):
            for name, tensor in value.items():
                assert torch.equal(tensor, resumed.state_dict()[key][name]), (key, name)


def test_same_seed_same_numbers():
    rows = []
    for _ in range(2):
        env = LinearToyEnv()
        agent = make_agent(SVGMLEAgent, seed=5)
        rows.append(run_steps(agent, env, env.reset(), 1, 80)[1])
    assert rows[0] == rows[1]


def test_divergence_guard_names_quantity_and_step():
    agent = make_agent(SVGMSEAgent)
    env = LinearToyEnv()
    run_steps(agent, env, env.reset(), 1, 70)
    with torch.no_grad():
        next(agent.dynamics.dec.parameters()).fill_(float("nan"))
    with pytest.raises(SVGDivergenceError, match="step 71") as info:
        agent.update(71)
    assert isinstance(info.value, FloatingPointError) and info.value.step == 71


def test_actions_are_mapped_onto_action_bounds():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    act_space = gym.spaces.Box(np.array([-0.4, 0.0], np.float32), np.array([0.4, 2.0], np.float32))
    agent = SVGMSEAgent(tiny_config(SVGMSEAgent), obs_space, act_space, env_id="x", seed=0)
    acts = np.stack([agent.act(np.zeros(3), deterministic=False) for _ in range(200)])
    assert act_space.contains(acts[0]) and acts.dtype == np.float32
    assert acts[:, 0].min() < -0.3 and acts[:, 1].max() > 1.7
    agent.observe(np.zeros(3), np.array([0.4, 0.0], np.float32), 0.0, np.zeros(3), False, False)
    assert agent.replay.action[0].tolist() == [1.0, -1.0]
