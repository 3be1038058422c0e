"""Model losses and value gradients against closed forms (quadratic stand-in critics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vagram_bench.interfaces import ValueFunction
from vagram_bench.models.losses import (
    LOSS_NAMES,
    ValueTargets,
    clip_by_norm_quantile,
    gaussian_nll_loss,
    itervaml_loss,
    make_model_loss,
    mse_loss,
    vagram_loss,
    value_gradients,
    values_at,
)


class QuadCritic(nn.Module):
    """``Q_h(x, a) = ½ Σ_k w_hk x_k² + c·Σ_j a_j`` with a policy mean ``μ(x) = tanh(x M)`` that depends on
    the state, so a gradient leaking through the action would change ``∂Q/∂x``."""

    def __init__(self, d: int, act_dim: int = 2, c: float = 0.7, seed: int = 0, heads: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.rand(heads, d, generator=g) * 2.0 + 0.1)
        self.M = nn.Parameter(torch.randn(d, act_dim, generator=g))
        self.c = c
        self.critic_version = 0

    def q_heads(self, obs, action):
        return 0.5 * (obs.pow(2) @ self.w.T).T + self.c * action.sum(-1)

    def policy_mean(self, obs):
        return torch.tanh(obs @ self.M)

    # closed forms
    def grad_true(self, x):
        return self.w.detach()[:, None, :] * x[None]  # (H, N, d)

    def value_true(self, x):
        a = torch.tanh(x @ self.M.detach())
        return 0.5 * (x.pow(2) @ self.w.detach().T).T + self.c * a.sum(-1)


def test_quad_critic_is_a_value_function():
    assert isinstance(QuadCritic(3), ValueFunction)


@pytest.mark.parametrize("batch_shape", [(5,), (3, 4), (2, 3, 2)])
def test_value_gradients_match_closed_form(batch_shape):
    d = 4
    critic = QuadCritic(d)
    x = torch.randn(*batch_shape, d, generator=torch.Generator().manual_seed(1))
    vt = value_gradients(critic, x)
    assert vt.grads.shape == (4, *batch_shape, d)
    assert vt.values.shape == (4, *batch_shape)
    flat = x.reshape(-1, d)
    torch.testing.assert_close(vt.grads.reshape(4, -1, d), critic.grad_true(flat), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(vt.values.reshape(4, -1), critic.value_true(flat), rtol=1e-6, atol=1e-6)
    # no gradient accumulated on the critic's parameters, and the input is untouched
    assert critic.w.grad is None and critic.M.grad is None
    assert not vt.grads.requires_grad and not x.requires_grad


def test_value_gradients_action_is_held_fixed():
    """With a gradient through μ(x) the result would pick up c · ∂Σμ/∂x; it must not."""
    d = 3
    critic = QuadCritic(d, c=5.0)
    x = torch.randn(6, d, generator=torch.Generator().manual_seed(2))
    vt = value_gradients(critic, x)
    xt = x.clone().requires_grad_(True)
    total = critic.q_heads(xt, critic.policy_mean(xt))[0].sum()
    (total_grad,) = torch.autograd.grad(total, xt)
    assert not torch.allclose(total_grad, vt.grads[0], atol=1e-3)  # the two differ...
    torch.testing.assert_close(vt.grads[0], critic.grad_true(x)[0])  # ...and ours is the partial one


def test_value_gradients_does_not_disturb_existing_critic_grads():
    critic = QuadCritic(3)
    critic.w.grad = torch.full_like(critic.w, 3.0)
    value_gradients(critic, torch.randn(5, 3, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(critic.w.grad, torch.full_like(critic.w, 3.0))


# ------------------------------------------------------------------------------- loss formulas
E_ = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # errors of 2 samples, d = 3


def test_mse_hand_computed():
    pred, target = E_ + 1.0, torch.ones(2, 3)
    torch.testing.assert_close(mse_loss(pred, target), torch.tensor([(1 + 4 + 0.25) / 3, (0 + 9 + 1) / 3]))


def test_gaussian_nll_hand_computed():
    lv = torch.tensor([[0.0, np.log(2.0), -1.0], [1.0, 0.0, 0.0]], dtype=torch.float32)
    got = gaussian_nll_loss(E_, lv, torch.zeros(2, 3))
    s0 = (1.0 * 1 + 0) + (4.0 / 2 + np.log(2.0)) + (0.25 * np.e + -1.0)
    s1 = (0.0 + 1.0) + (9.0 + 0.0) + (1.0 + 0.0)
    torch.testing.assert_close(got, torch.tensor([s0 / 3, s1 / 3], dtype=torch.float32))


def test_itervaml_hand_computed():
    vp = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0], [-1.0, 1.0]])
    vt = torch.tensor([[0.0, 2.0], [1.0, 1.0], [0.0, -2.0], [1.0, 1.0]])
    torch.testing.assert_close(itervaml_loss(vp, vt), torch.tensor([(1 + 4 + 0 + 4) / 4, (0 + 1 + 4 + 0) / 4]))


def test_vagram_hand_computed():
    g = torch.tensor(
        [[[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]], [[0.0, 1.0, 0.0], [2.0, 0.0, -1.0]]]
    )  # (H=2, B=2, d=3)
    b = vagram_loss(E_, torch.zeros(2, 3), g, bounded=True)
    # sample 0: head0 (1, 0, 1)²-> 1+0+1 = 2 ; head1 (0, -2, 0) -> 4
    # sample 1: head0 (0, 3, -1) -> 0+9+1 = 10 ; head1 (0, 0, 1) -> 1
    torch.testing.assert_close(b, torch.tensor([(2 / 3 + 4 / 3) / 2, (10 / 3 + 1 / 3) / 2]))
    u = vagram_loss(E_, torch.zeros(2, 3), g, bounded=False)
    # sample 0: head0 (1 + 0 + 1)² = 4 ; head1 (-2)² = 4 ; sample 1: head0 (3 - 1)² = 4 ; head1 (1)² = 1
    torch.testing.assert_close(u, torch.tensor([4.0, 2.5]))


@pytest.mark.parametrize("shape", [(7,), (5, 7)])
def test_bounded_vagram_with_unit_gradients_is_mse(shape):
    gen = torch.Generator().manual_seed(3)
    pred, target = torch.randn(*shape, 6, generator=gen), torch.randn(*shape, 6, generator=gen)
    ones = torch.ones(4, *shape, 6)
    torch.testing.assert_close(vagram_loss(pred, target, ones), mse_loss(pred, target))


@pytest.mark.parametrize("coord", [0, 3])
def test_unbounded_with_one_coordinate_is_bounded_times_d(coord):
    gen = torch.Generator().manual_seed(4)
    d = 5
    pred, target = torch.randn(8, d, generator=gen), torch.randn(8, d, generator=gen)
    g = torch.zeros(4, 8, d)
    g[:, :, coord] = torch.randn(4, 8, generator=gen)
    torch.testing.assert_close(
        vagram_loss(pred, target, g, bounded=False), vagram_loss(pred, target, g, bounded=True) * d
    )


def test_ensemble_and_window_broadcasting():
    """(E, B, d) predictions with shared (4, B, d) or per-member (4, E, B, d) gradients; (T, B, d) windows."""
    gen = torch.Generator().manual_seed(5)
    E, B, d = 3, 4, 2
    pred, target = torch.randn(E, B, d, generator=gen), torch.randn(B, d, generator=gen)
    shared = torch.randn(4, B, d, generator=gen)
    per_member = torch.randn(4, E, B, d, generator=gen)
    loss = make_model_loss("vagram")
    out_shared = loss.per_sample(pred, target, value_targets=ValueTargets(shared, torch.zeros(4, B)))
    out_member = loss.per_sample(pred, target, value_targets=ValueTargets(per_member, torch.zeros(4, E, B)))
    for e in range(E):
        torch.testing.assert_close(out_shared[e], vagram_loss(pred[e], target, shared))
        torch.testing.assert_close(out_member[e], vagram_loss(pred[e], target, per_member[:, e]))
    vp, vt = torch.randn(4, E, B, generator=gen), torch.randn(4, B, generator=gen)
    got = itervaml_loss(vp, vt)
    for e in range(E):
        torch.testing.assert_close(got[e], itervaml_loss(vp[:, e], vt))


def test_clip_by_norm_quantile_matches_numpy():
    gen = torch.Generator().manual_seed(6)
    g = torch.randn(4, 3, 50, 5, generator=gen) * torch.rand(4, 3, 50, 1, generator=gen) * 10
    clipped = clip_by_norm_quantile(g, 0.95)
    for h in range(4):
        n = g[h].norm(dim=-1).numpy().astype(np.float64)
        q = np.quantile(n.reshape(-1), 0.95)
        scale = np.minimum(1.0, q / n)
        np.testing.assert_allclose(clipped[h].numpy(), g[h].numpy() * scale[..., None], rtol=1e-5, atol=1e-6)
    # norms after clipping never exceed the quantile and at least 5 % were clipped
    assert (clipped.norm(dim=-1) <= torch.quantile(g.norm(dim=-1).reshape(4, -1), 0.95, dim=1)[:, None, None] + 1e-5).all()
    with pytest.raises(ValueError, match="quantile"):
        clip_by_norm_quantile(g, 1.5)


def test_model_loss_clip_flag_changes_vagram_only_by_clipping():
    gen = torch.Generator().manual_seed(7)
    pred, target = torch.randn(3, 40, 4, generator=gen), torch.randn(40, 4, generator=gen)
    grads = torch.randn(4, 40, 4, generator=gen) * torch.linspace(0.1, 50, 40)[:, None]
    vt = ValueTargets(grads, torch.zeros(4, 40))
    clipped = make_model_loss("vagram", clip_quantile=0.95).per_sample(pred, target, value_targets=vt)
    expected = vagram_loss(pred, target, clip_by_norm_quantile(grads, 0.95))
    torch.testing.assert_close(clipped, expected)
    assert (clipped <= make_model_loss("vagram").per_sample(pred, target, value_targets=vt) + 1e-6).all()


def test_itervaml_model_loss_values_and_gradient_through_prediction_only():
    d = 3
    critic = QuadCritic(d, c=2.0)
    gen = torch.Generator().manual_seed(8)
    s_true = torch.randn(5, d, generator=gen)
    pred = (s_true + 0.3 * torch.randn(5, d, generator=gen)).requires_grad_(True)
    vt = value_gradients(critic, s_true)
    loss = make_model_loss("itervaml")
    ps = loss.per_sample(pred, s_true, value_targets=vt, value_fn=critic)
    v_pred = critic.value_true(pred.detach())
    v_true = critic.value_true(s_true)
    torch.testing.assert_close(ps, ((v_pred - v_true) ** 2).mean(0))
    ps.sum().backward(inputs=[pred])
    # d/dpred mean_h (V_h(p) − V_h(s))² with μ(p) held fixed: mean_h 2 (V_h(p) − V_h(s)) w_h ⊙ p
    expected = (2 * (v_pred - v_true)[:, :, None] * critic.grad_true(pred.detach())).mean(0)
    torch.testing.assert_close(pred.grad, expected, rtol=1e-5, atol=1e-6)
    assert critic.w.grad is None and critic.M.grad is None


def test_values_at_matches_closed_form():
    critic = QuadCritic(4)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(values_at(critic, x).reshape(4, -1), critic.value_true(x.reshape(-1, 4)))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_make_model_loss_attributes(name):
    loss = make_model_loss(name)
    assert loss.name == name
    assert loss.gaussian == (name == "mle")
    assert loss.needs_value_function == (name in ("itervaml", "vagram"))


def test_model_loss_errors_name_the_problem():
    with pytest.raises(ValueError, match="valid choices: mse, mle, itervaml, vagram"):
        make_model_loss("vaml")
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="pred_logvar"):
        make_model_loss("mle").per_sample(x, x)
    with pytest.raises(ValueError, match="value_targets"):
        make_model_loss("vagram").per_sample(x, x)
    with pytest.raises(ValueError, match="value_fn"):
        make_model_loss("itervaml").per_sample(x, x, value_targets=ValueTargets(torch.zeros(4, 2, 3), torch.zeros(4, 2)))
    with pytest.raises(ValueError, match="clip_quantile"):
        make_model_loss("vagram", clip_quantile=0.0)


def test_reward_term():
    pr, r = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])
    torch.testing.assert_close(make_model_loss("vagram").reward_per_sample(pr, r), torch.tensor([1.0, 4.0]))
    lv = torch.tensor([0.0, np.log(4.0)], dtype=torch.float32)
    torch.testing.assert_close(
        make_model_loss("mle").reward_per_sample(pr, r, pred_reward_logvar=lv),
        torch.tensor([1.0, 1.0 + np.log(4.0)], dtype=torch.float32),
    )


@pytest.mark.parametrize("loss_impl", ["fused", "torchrl"])
def test_value_gradients_with_the_sac_learner(loss_impl):
    """Integration with the real critic: the batched-over-heads backward equals one autograd call per
    head, the critic's parameters get no .grad, and an update bumps critic_version (cache invalidation)."""
    from reference.sac_learner import SACLearner

    from vagram_bench.agents.sac import SACConfig
    learner = SACLearner(6, 2, SACConfig(hidden_size=32), generator=torch.Generator().manual_seed(0),
                         loss_impl=loss_impl)
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(1))
    vt = value_gradients(learner, x)
    xf = x.reshape(-1, 6).clone().requires_grad_(True)
    q = learner.q_heads(xf, learner.policy_mean(x.reshape(-1, 6)).detach())
    for h in range(4):
        (g,) = torch.autograd.grad(q[h].sum(), xf, retain_graph=True)
        torch.testing.assert_close(vt.grads[h].reshape(-1, 6), g, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(vt.values.reshape(4, -1), q.detach())
    params = list(learner.parameters())
    assert params and all(p.grad is None for p in params)


def test_a_fifth_loss_is_one_class_and_one_registry_line(monkeypatch):
    """The worked example of docs/models.md §6 (a MuZero-style value-equivalence L1 loss) trains
    through ModelTrainer with nothing else changed, and matches its closed form."""
    from reference.model_trainer import ModelTrainer
    from vagram_bench.models import EnsembleDynamicsModel
    from vagram_bench.models.losses import MODEL_LOSSES, ModelLoss, align_heads, compute_value_targets

    class ValueEquivalenceL1Loss(ModelLoss):
        name = "ve_l1"
        needs_value_function = True

        def targets(self, value_fn, next_obs):
            return compute_value_targets(value_fn, next_obs, gradients=False)

        def per_sample(self, pred_next_obs, true_next_obs, value_targets=None, *, pred_logvar=None,
                       value_fn=None):
            v_pred = values_at(value_fn, pred_next_obs)
            v_true = align_heads(value_targets.values, v_pred.dim() - 1, 0)
            return (v_pred - v_true).abs().mean(0)

    monkeypatch.setitem(MODEL_LOSSES, ValueEquivalenceL1Loss.name, ValueEquivalenceL1Loss)
    loss = make_model_loss("ve_l1", bounded=False, clip_quantile=0.95)  # options it lacks are ignored
    critic = QuadCritic(3, act_dim=1)
    gen = torch.Generator().manual_seed(10)
    s_true, pred = torch.randn(6, 3, generator=gen), torch.randn(2, 6, 3, generator=gen)
    got = loss.per_sample(pred, s_true, loss.targets(critic, s_true), value_fn=critic)
    want = (critic.value_true(pred.reshape(-1, 3)).reshape(4, 2, 6) - critic.value_true(s_true)[:, None]).abs().mean(0)
    torch.testing.assert_close(got, want)
    obs, act = torch.randn(80, 3, generator=gen), torch.rand(80, 1, generator=gen) * 2 - 1
    model = EnsembleDynamicsModel(3, 1, ensemble_size=2, num_elites=1, num_layers=1, hid_size=8, generator=gen)
    res = ModelTrainer(model, loss, generator=gen, batch_size=16, max_epochs=2).train(
        obs, act, obs.sum(-1), obs + 0.1 * act, value_fn=critic)
    assert res.epochs == 2 and all(np.isfinite(v) for row in res.val_scores for v in row)
