"""SACLearner: the fused update against TorchRL's SACLoss (independent reference), ValueFunction
contract, checkpoints, determinism, non-finite losses, and the SACAgent's action scaling."""

from __future__ import annotations

import dataclasses
import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torch.distributions.utils import _standard_normal

from reference.sac_learner import SACLearner
from vagram_bench.agents.sac import SACAgent, SACConfig
from vagram_bench.interfaces import ValueFunction

OBS, ACT = 9, 3


def _batch(B: int = 64, seed: int = 1, terminated_frac: float = 0.3) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {
            "observation": torch.randn(B, OBS, generator=g),
            "action": torch.rand(B, ACT, generator=g) * 2 - 1,
            "next": {
                "observation": torch.randn(B, OBS, generator=g),
                "reward": torch.randn(B, 1, generator=g),
                "terminated": torch.rand(B, 1, generator=g) < terminated_frac,
            },
        },
        batch_size=[B],
    )


def _learner(seed: int = 0, loss_impl: str = "fused", **overrides) -> SACLearner:
    cfg = dataclasses.replace(SACConfig(hidden_size=32), **overrides)
    return SACLearner(OBS, ACT, cfg, generator=torch.Generator().manual_seed(seed), loss_impl=loss_impl)


def _grads(learner: SACLearner) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in learner.loss_module.named_parameters():
        out[name] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    return out


@pytest.mark.parametrize(
    "overrides,terminated_frac",
    [
        ({}, 0.3),
        ({"init_alpha": 0.05, "gamma": 0.9}, 0.0),
        ({"num_layers": 3, "target_entropy": -1.5}, 1.0),
        ({"learn_alpha": False, "init_alpha": 0.2}, 0.5),
    ],
)
def test_fused_losses_and_gradients_match_torchrl_sacloss(overrides, terminated_frac):
    """Same parameters, batch and reparameterisation noise => the fused path's losses and gradients
    equal TorchRL's ``SACLoss.forward`` (which draws its noise from the global RNG, in the order
    next-state action, then current-state action)."""
    learner = _learner(**overrides)
    # Move the target critic away from the online one so that target and online heads differ.
    with torch.no_grad():
        for weight, bias in learner._q_target:
            weight.add_(0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(7)))
    batch = _batch(terminated_frac=terminated_frac)
    td = batch.copy()
    td.set(("next", "done"), td.get(("next", "terminated")).clone())

    torch.manual_seed(123)
    ref = learner.loss_module(td)
    (ref["loss_qvalue"] + ref["loss_actor"] + ref["loss_alpha"]).backward()
    ref_grads = _grads(learner)
    learner.loss_module.zero_grad(set_to_none=True)

    torch.manual_seed(123)
    next_noise = _standard_normal((64, ACT), dtype=torch.float32, device=torch.device("cpu"))
    noise = _standard_normal((64, ACT), dtype=torch.float32, device=torch.device("cpu"))
    fused = learner.compute_losses(batch, next_noise=next_noise, noise=noise)
    (fused["loss_qvalue"] + fused["loss_actor"] + fused["loss_alpha"]).backward()
    fused_grads = _grads(learner)

    for key in ("loss_qvalue", "loss_actor", "loss_alpha"):
        torch.testing.assert_close(fused[key], ref[key], rtol=1e-5, atol=1e-5, msg=key)
    torch.testing.assert_close(-fused["log_prob"].mean(), ref["entropy"], rtol=1e-5, atol=1e-5)
    assert ref_grads.keys() == fused_grads.keys()
    nonzero = 0
    for name in ref_grads:
        torch.testing.assert_close(fused_grads[name], ref_grads[name], rtol=1e-5, atol=1e-5, msg=name)
        nonzero += int(ref_grads[name].abs().sum() > 0)
    assert nonzero >= len(ref_grads) - 1  # the test is not vacuous (log_alpha is 0 when fixed)


def test_terminated_masks_bootstrap_and_done_is_ignored():
    """The TD target bootstraps unless ``terminated``; ``done``/``truncated`` entries change nothing."""
    learner = _learner(gamma=0.9)
    batch = _batch(terminated_frac=0.0)
    noise = torch.zeros(64, ACT)
    base = learner.compute_losses(batch, next_noise=noise, noise=noise)["loss_qvalue"]
    with_done = batch.copy()
    with_done.set(("next", "done"), torch.ones(64, 1, dtype=torch.bool))
    with_done.set(("next", "truncated"), torch.ones(64, 1, dtype=torch.bool))
    same = learner.compute_losses(with_done, next_noise=noise, noise=noise)["loss_qvalue"]
    assert torch.equal(base, same)

    # Closed form for an all-terminal batch: target = reward, so the loss is sum_i mean (Q_i - r)^2.
    terminal = batch.copy()
    terminal.set(("next", "terminated"), torch.ones(64, 1, dtype=torch.bool))
    loss = learner.compute_losses(terminal, next_noise=noise, noise=noise)["loss_qvalue"]
    q = learner.q_heads(batch["observation"], batch["action"])[:2]
    expected = (q - batch["next", "reward"].view(-1)).pow(2).mean(-1).sum()
    torch.testing.assert_close(loss, expected)


def test_fused_soft_update_equals_torchrl_softupdate():
    a = _learner()
    b = _learner(loss_impl="torchrl")
    with torch.no_grad():
        for weight, bias in a._q_online:
            weight.add_(1.0)
            bias.sub_(0.5)
    b.load_state_dict(a.state_dict())
    a._soft_update()
    b._soft_update()  # TorchRL's SoftUpdate.step()
    for (wa, ba), (wb, bb), (wo, _) in zip(a._q_target, b._q_target, a._q_online):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
        assert not torch.equal(wa, wo)


@pytest.mark.parametrize("impl", ["fused", "torchrl"])
def test_update_trains_and_keeps_the_global_rng_untouched(impl):
    before = torch.get_rng_state()
    learner = _learner(loss_impl=impl)
    batch = _batch()
    first = learner.update(batch)
    for _ in range(30):
        last = learner.update(batch)
    assert torch.equal(torch.get_rng_state(), before)
    assert set(first) == {"loss_qvalue", "loss_actor", "loss_alpha", "alpha", "entropy", "q_mean"}
    assert last["loss_qvalue"] < first["loss_qvalue"]  # fits a fixed batch
    assert learner.num_updates == 31 and learner.critic_version == 31


def test_same_seed_same_numbers_and_state_dict_round_trip():
    a, b = _learner(seed=3), _learner(seed=3)
    batch = _batch()
    for _ in range(3):
        assert a.update(batch) == b.update(batch)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    c = _learner(seed=99)  # different init, overwritten by the checkpoint
    c.load_state_dict(torch.load(buffer, weights_only=False))
    for _ in range(3):
        assert a.update(batch) == c.update(batch)
    obs = torch.randn(4, OBS)
    assert torch.equal(a.act(obs, deterministic=False), c.act(obs, deterministic=False))


def test_value_function_contract():
    learner = _learner()
    assert isinstance(learner, ValueFunction)
    obs = torch.randn(5, 7, OBS, requires_grad=True)
    action = torch.rand(5, 7, ACT) * 2 - 1
    heads = learner.q_heads(obs, action)
    assert heads.shape == (4, 5, 7)
    # At initialisation the target critic is a copy of the online critic.
    torch.testing.assert_close(heads[:2], heads[2:])
    # Q1 and Q2 were initialised independently.
    assert not torch.allclose(heads[0], heads[1])
    (grad,) = torch.autograd.grad(heads.sum(), obs)
    assert grad.shape == obs.shape and grad.abs().sum() > 0
    # Heads agree with TorchRL's own Q-network applied to each stacked parameter set.
    from tensordict import TensorDict as TD

    params = learner.loss_module.qvalue_network_params
    qnet = learner.loss_module.qvalue_network
    for i in range(2):
        td = TD({"observation": obs.detach(), "action": action}, batch_size=[5, 7])
        with params[i].to_module(qnet):
            torch.testing.assert_close(qnet(td)["state_action_value"].squeeze(-1), heads[i].detach())
    mean = learner.policy_mean(obs.detach())
    assert torch.equal(mean, learner.act(obs.detach(), deterministic=True))
    version = learner.critic_version
    learner.update(_batch())
    assert learner.critic_version > version


def test_actions_are_in_unit_box():
    learner = _learner()
    obs = 100 * torch.randn(256, OBS)
    for deterministic in (True, False):
        a = learner.act(obs, deterministic=deterministic)
        assert a.shape == (256, ACT) and a.abs().max() <= 1.0


def test_non_finite_loss_raises_before_any_parameter_changes():
    learner = _learner()
    batch = _batch()
    batch["next", "reward"][3] = float("nan")
    before = {k: v.clone() for k, v in learner.loss_module.state_dict().items()}
    with pytest.raises(FloatingPointError, match="loss_qvalue"):
        learner.update(batch)
    after = learner.loss_module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_actor_update_interval_skips_actor_steps():
    learner = _learner(actor_update_interval=2)
    actor_before = [p.clone() for p in learner.actor_net.parameters()]
    metrics = learner.update(_batch())
    assert "loss_actor" not in metrics
    assert all(torch.equal(a, b) for a, b in zip(actor_before, learner.actor_net.parameters()))
    metrics = learner.update(_batch())
    assert "loss_actor" in metrics
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, learner.actor_net.parameters()))


def test_agent_maps_unit_actions_to_env_bounds():
    """InvertedPendulum-v5 acts in [-3, 3]: the agent scales its [-1, 1] actions (the env does not)
    and stores the unit-box action in the replay buffer."""
    env = gym.make("InvertedPendulum-v5")
    cfg = SACConfig(hidden_size=16, batch_size=4, learning_starts=0)
    agent = SACAgent(cfg, env.observation_space, env.action_space, env_id="InvertedPendulum-v5", seed=0)
    obs, _ = env.reset(seed=0)
    learner = agent.population.learner
    unit = learner.act(torch.as_tensor(obs, dtype=torch.float32)[None, None], deterministic=True)[0, 0]
    action = agent.act(obs, deterministic=True)
    assert action.dtype == env.action_space.dtype and env.action_space.contains(action)
    np.testing.assert_allclose(action, 3.0 * unit.numpy(), rtol=1e-6)
    agent.observe(obs, np.array([1.5], dtype=np.float32), 1.0, obs, False, False)
    stored = agent.population.replay.storage["action"][0, 0]
    assert math.isclose(float(stored[0]), 0.5)


def test_agent_random_exploration_is_seeded():
    env = gym.make("InvertedPendulum-v5")
    cfg = SACConfig(hidden_size=16, learning_starts=100)
    a = SACAgent(cfg, env.observation_space, env.action_space, env_id="InvertedPendulum-v5", seed=4)
    b = SACAgent(cfg, env.observation_space, env.action_space, env_id="InvertedPendulum-v5", seed=4)
    obs = np.zeros(4)
    xs = [a.act(obs, deterministic=False) for _ in range(5)]
    ys = [b.act(obs, deterministic=False) for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(xs, ys))
    assert len({float(x[0]) for x in xs}) == 5 and all(env.action_space.contains(x) for x in xs)
