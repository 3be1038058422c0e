"""The model step, branched rollouts and the TorchRL model env against real Hopper-v5 transitions."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from reference.model_env import EnsembleModelEnv
from vagram_bench.envs import termination_fn
from vagram_bench.models import (
    EnsembleDynamicsModel,
    ModelDivergenceError,
    branched_rollout,
    model_step,
)


class OracleEnsemble(EnsembleDynamicsModel):
    """An ensemble "set to the true next state": every member returns the recorded ``(s' − s, r)`` of
    the real transition whose ``(s, a)`` is nearest to its (de-normalised) input. It goes through the
    real normalisation, elite permutation and scatter code of ``sample_step``."""

    def __init__(self, obs, act, rew, nxt, **kw):
        super().__init__(obs.shape[1], act.shape[1], **kw)
        self.keys = torch.cat([obs, act], -1)
        self.targets = torch.cat([nxt - obs, rew[:, None]], -1)
        self.fit_normalizer(obs, act)

    def forward_normalized(self, x, members=None):
        raw = x * self.in_std + self.in_mean  # (E', N, in)
        dist = torch.cdist(raw.reshape(-1, raw.shape[-1]), self.keys, compute_mode="donot_use_mm_for_euclid_dist")
        out = self.targets[dist.argmin(-1)].reshape(*raw.shape[:-1], -1)
        return out, None

    def _forward_elites(self, x, elites, step, bf16):  # the rollout path's per-elite forward
        return self.forward_normalized(x, elites)


@pytest.fixture(scope="module")
def hopper_transitions():
    env = gym.make("Hopper-v5")
    rng = np.random.default_rng(0)
    obs_l, act_l, rew_l, nxt_l, term_l = [], [], [], [], []
    obs, _ = env.reset(seed=0)
    while len(obs_l) < 300:
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(a)
        obs_l.append(obs), act_l.append(a), rew_l.append(r), nxt_l.append(nxt), term_l.append(term)
        obs = env.reset(seed=len(obs_l))[0] if (term or trunc) else nxt
    env.close()
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    out = t(obs_l), t(act_l), t(rew_l), t(nxt_l), torch.as_tensor(term_l)
    assert 0 < int(out[4].sum()) < 300  # the random policy makes the hopper fall a few times
    return out


def _oracle(tr, elites=3):
    obs, act, rew, nxt, _ = tr
    return OracleEnsemble(obs, act, rew, nxt, ensemble_size=5, num_elites=elites, num_layers=1, hid_size=4,
                          generator=torch.Generator().manual_seed(0))


def test_model_env_reproduces_real_rewards_and_terminations(hopper_transitions):
    obs, act, rew, nxt, term = hopper_transitions
    env = EnsembleModelEnv(_oracle(hopper_transitions), "Hopper-v5", generator=torch.Generator().manual_seed(1))
    td = env.reset(TensorDict({"observation": obs}, batch_size=[obs.shape[0]]))
    td["action"] = act
    out = env.step(td)["next"]
    torch.testing.assert_close(out["observation"], nxt, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["reward"][:, 0], rew, atol=1e-5, rtol=1e-5)
    assert torch.equal(out["terminated"][:, 0], term)
    assert torch.equal(out["done"][:, 0], term)


def test_fast_rollout_reproduces_real_rewards_and_terminations(hopper_transitions):
    obs, act, rew, nxt, term = hopper_transitions
    lookup = {tuple(o.tolist()): a for o, a in zip(obs, act)}
    policy = lambda s: torch.stack([lookup[tuple(x.tolist())] for x in s])  # noqa: E731
    step = functools.partial(model_step, _oracle(hopper_transitions), termination_fn=termination_fn("Hopper-v5"),
                             generator=torch.Generator().manual_seed(2))
    td = branched_rollout(obs, 1, policy, step)
    torch.testing.assert_close(td["next", "reward"][:, 0], rew, atol=1e-5, rtol=1e-5)
    assert torch.equal(td["next", "terminated"][:, 0], term)


def test_check_env_specs_and_batched_rollout(hopper_transitions):
    obs = hopper_transitions[0]
    model = EnsembleDynamicsModel(11, 3, ensemble_size=4, num_elites=2, num_layers=2, hid_size=16,
                                  generator=torch.Generator().manual_seed(0))
    model.fit_normalizer(obs, hopper_transitions[1])
    env = EnsembleModelEnv(model, "HopperDistract-0-v0", generator=torch.Generator().manual_seed(0))
    env.set_start_states(obs)
    check_env_specs(env)
    start = env.reset(TensorDict({"observation": obs[:64]}, batch_size=[64]))
    td = env.rollout(4, auto_reset=False, tensordict=start, break_when_any_done=False)
    assert td.batch_size == (64, 4)
    assert td["next", "terminated"].dtype == torch.bool and td["next", "reward"].shape == (64, 4, 1)
    # terminated rollouts are auto-reset to start states drawn from set_start_states
    always = EnsembleModelEnv(model, lambda s: torch.ones(s.shape[:-1], dtype=torch.bool),
                              generator=torch.Generator().manual_seed(0))
    always.set_start_states(obs[:5])
    td = always.rollout(2, auto_reset=False, tensordict=always.reset(start.clone()), break_when_any_done=False)
    assert td["next", "done"].all()
    second = td["observation"][:, 1]
    assert ((second[:, None] - obs[None, :5]).abs().amax(-1).min(-1).values == 0).all()


def test_model_env_and_fast_rollout_agree(hopper_transitions):
    """Same seed, same policy ⇒ TorchRL env rollout == fast-path rollout."""
    obs, act = hopper_transitions[0][:50], hopper_transitions[1]
    model = EnsembleDynamicsModel(11, 3, ensemble_size=4, num_elites=3, num_layers=2, hid_size=16, gaussian=True,
                                  generator=torch.Generator().manual_seed(0))
    model.fit_normalizer(obs, act[:50])
    W = torch.randn(11, 3, generator=torch.Generator().manual_seed(5)) * 0.3
    pol = lambda s: torch.tanh(s @ W)  # noqa: E731
    never = lambda s: torch.zeros(s.shape[:-1], dtype=torch.bool)  # noqa: E731  (no auto-resets)
    step = functools.partial(model_step, model, termination_fn=never, generator=torch.Generator().manual_seed(7))
    fast = branched_rollout(obs, 3, pol, step)
    fast = fast.reshape(3, 50)  # nothing terminates: every step keeps the whole batch, in step order
    env = EnsembleModelEnv(model, never, generator=torch.Generator().manual_seed(7))
    start = env.reset(TensorDict({"observation": obs}, batch_size=[50]))

    def td_policy(td):
        td["action"] = pol(td["observation"])
        return td

    slow = env.rollout(3, policy=td_policy, auto_reset=False, tensordict=start, break_when_any_done=False)
    torch.testing.assert_close(slow["next", "observation"].transpose(0, 1), fast["next", "observation"])
    torch.testing.assert_close(slow["next", "reward"].transpose(0, 1), fast["next", "reward"])
    assert torch.equal(slow["next", "terminated"].transpose(0, 1), fast["next", "terminated"])


def _unit_drift_model():
    model = EnsembleDynamicsModel(2, 1, ensemble_size=2, num_elites=1, num_layers=1, hid_size=4,
                                  generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # Δ = (1, 0) exactly: s'_0 = s_0 + 1
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[:, 0, 0] = 1.0
    return model


def test_branched_rollout_stops_each_rollout_at_its_termination():
    step = functools.partial(model_step, _unit_drift_model(), termination_fn=lambda s: s[..., 0] >= 3.0,
                             generator=torch.Generator().manual_seed(0))
    start = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    td = branched_rollout(start, 4, lambda s: torch.zeros(s.shape[0], 1), step)
    # terminates when s'_0 >= 3: sample 0 at step 2 (s' = 3), samples 1 and 2 at step 0; later steps of
    # a terminated rollout are not produced
    assert td["observation"][:, 0].tolist() == [0.0, 2.0, 10.0, 1.0, 2.0]
    assert td["next", "terminated"][:, 0].tolist() == [False, True, True, False, True]
    with pytest.raises(ValueError, match="horizon"):
        branched_rollout(start, 0, lambda s: s[:, :1], step)


def test_model_step_rejects_non_finite_predictions_in_env_and_rollout():
    model = _unit_drift_model()
    obs = torch.zeros(8, 2)
    obs[3, 1] = float("nan")
    never = lambda s: torch.zeros(s.shape[:-1], dtype=torch.bool)  # noqa: E731
    with pytest.raises(ModelDivergenceError, match="non-finite predictions for 1 of 8"):
        model_step(model, obs, torch.zeros(8, 1), termination_fn=never, generator=torch.Generator())
    env = EnsembleModelEnv(model, never, generator=torch.Generator())
    td = env.reset(TensorDict({"observation": obs}, batch_size=[8]))
    td["action"] = torch.zeros(8, 1)
    with pytest.raises(ModelDivergenceError, match="non-finite"):
        env.step(td)
    assert issubclass(ModelDivergenceError, FloatingPointError)


def test_model_env_reset_without_start_states_errors():
    model = EnsembleDynamicsModel(2, 1, ensemble_size=2, num_elites=1, num_layers=1, hid_size=4)
    env = EnsembleModelEnv(model, lambda s: s[..., 0] > 0, generator=torch.Generator())
    with pytest.raises(RuntimeError, match="set_start_states"):
        env.reset()


@pytest.mark.parametrize("loss_name", ["mse", "mle", "itervaml", "vagram"])
def test_every_loss_trains_on_real_hopper_data(loss_name, hopper_transitions):
    """End to end through ModelTrainer: each loss lowers its own validation score on real transitions,
    and the trained model's mean prediction beats the "no change" predictor s' = s."""
    from reference.model_trainer import ModelTrainer
    from vagram_bench.models import make_model_loss

    from test_losses import QuadCritic

    obs, act, rew, nxt, _ = hopper_transitions
    loss = make_model_loss(loss_name, clip_quantile=0.95 if loss_name == "vagram" else None)
    model = EnsembleDynamicsModel(11, 3, ensemble_size=3, num_elites=2, num_layers=2, hid_size=64,
                                  gaussian=loss.gaussian, generator=torch.Generator().manual_seed(0))
    tr = ModelTrainer(model, loss, generator=torch.Generator().manual_seed(1), batch_size=32, lr=3e-3,
                      max_epochs=25, patience=25)
    critic = QuadCritic(11, act_dim=3)
    res = tr.train(obs, act, rew, nxt, value_fn=critic)
    assert min(res.best_val_scores) < 0.7 * min(res.val_scores[0])
    pred = model.predict(obs, act, members=model.elite_idx)
    model_err = (pred.next_obs - nxt).pow(2).mean()
    assert model_err < (obs - nxt).pow(2).mean()
