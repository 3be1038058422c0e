"""``agent.paper_compat=true`` for MBPO: VaGraM's value gradient where the published code took it,
``∂Q_h(x, μ(x))/∂x`` at ``x = Δ = s' − s`` (``mbrl/models/vaml_mlp.py`` L289–293,
pairlab/vagram@fa539aa / caf9b92), against closed forms on fixed tensors."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import vagram_bench  # noqa: F401
from vagram_bench.agents.mbpo import MBPOIterVAMLAgent, MBPOVaGraMAgent
from vagram_bench.models.losses import ValueTargets
from vagram_bench.models.trainer import TrainingResult

ENV_ID = "InvertedPendulum-v5"  # d = 4, one action
OBS = torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 2.0, 2.0], [2.0, 2.0, 1.0, -1.0]])
NEXT = torch.tensor([[2.0, 2.0, 1.0, 1.0], [1.0, 3.0, 2.0, 0.0], [2.0, 0.0, 3.0, -1.0]])
# Δ = s' − s = [[1, 0, 1, 0], [1, 2, 0, -2], [0, -2, 2, 0]]
W = torch.tensor([1.0, 2.0, 1.0, 3.0])


class QuadCritic:
    """``Q_h(x, a) = ½ Σ_k w_k x_k² + 5 Σ a`` for all four heads: ``∂Q/∂x = w ⊙ x`` whatever the action;
    records where the policy is evaluated."""

    critic_version = 0

    def __init__(self):
        self.policy_inputs = []

    def q_heads(self, x, a):
        return (0.5 * (x.pow(2) * W).sum(-1) + 5.0 * a.sum(-1)).expand(4, -1)

    def policy_mean(self, x):
        self.policy_inputs.append(x.detach().clone())
        return torch.tanh(x[..., :1])


def _captured_targets(cls, **overrides):
    env = gym.make(ENV_ID)
    cfg = dataclasses.replace(cls.default_config(ENV_ID), **overrides)
    agent = cls(cfg, env.observation_space, env.action_space, env_id=ENV_ID, seed=0)
    for s, s2 in zip(OBS, NEXT):
        agent.observe(s.numpy(), [0.0], 1.0, s2.numpy(), False, False)
    pop = agent.population  # the agent's population of one: its member 0 reads the critic
    critic = QuadCritic()
    pop.value_functions = [critic]
    seen = {}

    def fake_train(data, members, *, value_fns, value_targets, add_mse):
        seen["targets"] = ValueTargets(None if value_targets.grads is None else value_targets.grads[:, 0],
                                       value_targets.values[:, 0])  # (H, K=1, n, ...) -> member 0's
        E = pop.model.ensemble_size
        return {0: TrainingResult(epochs=1, train_losses=[1.0], val_scores=[[1.0] * E], best_val_scores=[1.0] * E,
                                  elites=list(range(pop.model.num_elites)), restored_best=False, train_size=2,
                                  val_size=1, val_mse=[1.0] * E)}, {}

    pop.model_trainer.train_members = fake_train
    pop._train_models(np.array([True]), np.array([0]), np.array([len(OBS)]))
    assert not pop._failures  # the model training went through
    return pop, seen["targets"], critic


def test_default_takes_the_value_gradient_at_the_next_state():
    pop, vt, critic = _captured_targets(MBPOVaGraMAgent)
    torch.testing.assert_close(vt.grads, (W * NEXT).expand(4, 3, 4))
    torch.testing.assert_close(critic.policy_inputs[0], NEXT)


def test_paper_compat_takes_it_at_the_delta_with_the_policy_at_the_delta():
    pop, vt, critic = _captured_targets(MBPOVaGraMAgent, paper_compat=True)
    delta = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 2.0, 0.0, -2.0], [0.0, -2.0, 2.0, 0.0]])
    # w ⊙ Δ = [[1, 0, 1, 0], [1, 4, 0, -6], [0, -4, 2, 0]]
    expected = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 4.0, 0.0, -6.0], [0.0, -4.0, 2.0, 0.0]])
    torch.testing.assert_close(vt.grads, expected.expand(4, 3, 4))
    torch.testing.assert_close(critic.policy_inputs[0], delta)  # μ(Δ), as upstream's values(target)

    # The loss these weights give (bounded VaGraM, no clipping) for unit state errors and no reward
    # error: per sample mean_k (w_k Δ_k)² = (1 + 0 + 1 + 0)/4, (1 + 16 + 0 + 36)/4, (0 + 16 + 4 + 0)/4
    # = 0.5, 13.25, 5 → mean 18.75 / 3 = 6.25. At s' (the default) the same errors weigh
    # w ⊙ s' = [[2, 4, 1, 3], [1, 6, 2, 0], [2, 0, 3, -3]]: (4+16+1+9)/4, (1+36+4+0)/4, (4+0+9+9)/4
    # = 7.5, 10.25, 5.5 → 23.25 / 3 = 7.75.
    loss = pop.model_loss.__class__(bounded=True, clip_quantile=None)
    ones, zeros = torch.ones(3, 4), torch.zeros(3)
    value = loss.ensemble_reduce(loss.ensemble_per_sample(
        loss.per_sample(NEXT + ones, NEXT, vt), loss.reward_per_sample(zeros, zeros), 4))
    assert value.item() == pytest.approx(6.25)
    _, vt_default, _ = _captured_targets(MBPOVaGraMAgent)
    value = loss.ensemble_reduce(loss.ensemble_per_sample(
        loss.per_sample(NEXT + ones, NEXT, vt_default), loss.reward_per_sample(zeros, zeros), 4))
    assert value.item() == pytest.approx(7.75)


def test_paper_compat_does_not_touch_itervaml():
    """IterVAML has no upstream implementation to be compatible with: its targets stay at s'."""
    _, vt, critic = _captured_targets(MBPOIterVAMLAgent, paper_compat=True)
    expected = 0.5 * (NEXT.pow(2) * W).sum(-1) + 5.0 * torch.tanh(NEXT[:, 0])
    torch.testing.assert_close(vt.values, expected.expand(4, 3))
