"""Learning check (slow): ``svg_mse`` solves InvertedPendulum-v5 within 10k env steps.

Run with ``pytest -m slow tests/test_svg_learning.py``. To stay within minutes on a 2-core CPU the
networks are narrower than upstream's 512x4 (``LEARNING_OVERRIDES``); everything else (horizon 3,
4 model updates per step, 1000 seed steps, normalisation, schedules) is the agent's default for
this env id.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import vagram_bench  # noqa: F401  (registers the suite's env ids)
from vagram_bench.agents.svg import SVGMSEAgent

LEARNING_OVERRIDES = dict(
    model_free_hidden_dim=128, model_free_hidden_depth=2, xu_enc_hidden_dim=128, rec_latent_dim=128,
    rew_hidden_dim=128, done_hidden_dim=128, step_batch_size=256, seq_batch_size=128,
    num_train_steps=10_000, log_every=1000,
)


def evaluate(agent, env_id: str, episodes: int, seed: int) -> float:
    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(agent.act(obs, deterministic=True))
            total += float(r)
            done = term or trunc
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.slow
def test_svg_mse_solves_inverted_pendulum_within_10k_steps():
    torch.set_num_threads(1)
    env_id, steps, eval_every = "InvertedPendulum-v5", 10_000, 1000
    cfg = dataclasses.replace(SVGMSEAgent.default_config(env_id), **LEARNING_OVERRIDES)
    env = gym.make(env_id)
    agent = SVGMSEAgent(cfg, env.observation_space, env.action_space, env_id=env_id, seed=0)
    obs, _ = env.reset(seed=0)
    history = []
    for step in range(1, steps + 1):
        action = agent.act(obs, deterministic=False)
        next_obs, reward, term, trunc, _ = env.step(action)
        agent.observe(obs, action, reward, next_obs, term, trunc)
        agent.update(step)
        obs = env.reset()[0] if (term or trunc) else next_obs
        if step % eval_every == 0:
            history.append((step, evaluate(agent, env_id, episodes=5, seed=10_000)))
            print(f"step {step}: eval return {history[-1][1]:.1f}", flush=True)
            if history[-1][1] >= 900:
                break
    best = max(r for _, r in history)
    assert best >= 900, f"svg_mse reached only {best:.1f} on {env_id} within {steps} steps: {history}"
