"""SACLearner initialisation schemes: PyTorch's default (the ``sac`` baseline) and pytorch_sac's
orthogonal weights with zero biases (the VaGraM paper's MBPO)."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from torch import nn

import vagram_bench  # noqa: F401
from vagram_bench.agents.mbpo import MBPOMSEAgent
from reference.sac_learner import SACLearner
from vagram_bench.agents.sac import SACConfig
from vagram_bench.interfaces import AgentConfigError

OBS, ACT = 11, 3


def _learner(init, seed=0, hidden=64):
    return SACLearner(OBS, ACT, SACConfig(hidden_size=hidden, init=init), generator=torch.Generator().manual_seed(seed))


def _layers(learner):
    """(weight (out, in), bias (out,)) of every linear layer: the actor's, then each Q-network's."""
    out = [(m.weight.detach(), m.bias.detach()) for m in learner.actor_net.modules() if isinstance(m, nn.Linear)]
    for net in range(2):
        out += [(w[net].detach(), b[net].detach()) for w, b in learner._q_online]
    return out


def test_orthogonal_init_has_orthonormal_weights_and_zero_biases():
    learner = _learner("orthogonal")
    layers = _layers(learner)
    assert len(layers) == 3 * 3  # 2 hidden + output layer, for the actor and both Q-networks
    for w, b in layers:
        rows, cols = w.shape
        gram = w @ w.T if rows <= cols else w.T @ w
        torch.testing.assert_close(gram, torch.eye(min(rows, cols)), atol=1e-5, rtol=0)
        assert torch.count_nonzero(b) == 0
    # the two Q-networks are drawn independently, and the target critic starts as the online one
    w0 = learner._q_online[0][0]
    assert not torch.equal(w0[0], w0[1])
    for (w, b), (wt, bt) in zip(learner._q_online, learner._q_target):
        assert torch.equal(w, wt) and torch.equal(b, bt)


def test_init_is_drawn_from_the_learners_generator():
    a, b, c = _learner("orthogonal", 0), _learner("orthogonal", 0), _learner("orthogonal", 1)
    for (wa, _), (wb, _), (wc, _) in zip(_layers(a), _layers(b), _layers(c)):
        assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    state = torch.get_rng_state()
    _learner("orthogonal", 2)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched


def test_default_init_is_pytorchs_uniform_fan_in_bound():
    for w, b in _layers(_learner("torch_default", hidden=256)):
        bound = 1.0 / math.sqrt(w.shape[1])
        assert w.abs().max() <= bound and b.abs().max() <= bound
        # a uniform on ±bound has std bound/√3, unlike the orthogonal rows (std ≈ 1/√fan_in)
        if w.numel() >= 1000:
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert torch.count_nonzero(b) == b.numel()


def test_mbpo_uses_orthogonal_and_sac_keeps_the_default():
    assert SACConfig().init == "torch_default"
    env = gym.make("InvertedPendulum-v5")
    cfg = MBPOMSEAgent.default_config("InvertedPendulum-v5")
    agent = MBPOMSEAgent(cfg, env.observation_space, env.action_space, env_id="InvertedPendulum-v5", seed=0)
    learner = agent.population.learner  # the stacked learners of its population of one
    assert learner.config.init == "orthogonal"
    biases = [b for _, b in learner._actor_layers + learner._q_online]
    assert len(biases) == 6 and all(torch.count_nonzero(b) == 0 for b in biases)


def test_unknown_init_is_refused():
    with pytest.raises(AgentConfigError, match="torch_default"):
        SACConfig(init="xavier")
