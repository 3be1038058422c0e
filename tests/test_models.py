"""Ensemble, value targets and trainer against independent references."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from reference.model_trainer import ModelTrainer
from vagram_bench.models import (
    EnsembleDynamicsModel,
    ModelDivergenceError,
    compute_value_targets,
    make_model_loss,
    value_gradients,
)
from vagram_bench.models.ensemble import soft_bound_logvar

from test_losses import QuadCritic


def _model(gaussian=False, E=4, elites=3, layers=2, hid=16, d=5, a=2, seed=0):
    return EnsembleDynamicsModel(
        d, a, ensemble_size=E, num_elites=elites, num_layers=layers, hid_size=hid, gaussian=gaussian,
        generator=torch.Generator().manual_seed(seed),
    )


# ------------------------------------------------------------------------------ ensemble
@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("shared_input", [False, True])
def test_batched_ensemble_equals_member_loop(gaussian, shared_input):
    model = _model(gaussian=gaussian).double()
    members = [m.double() for m in model.member_modules()]
    gen = torch.Generator().manual_seed(1)
    E, B = model.ensemble_size, 9
    shape = (B,) if shared_input else (E, B)
    obs = torch.randn(*shape, 5, generator=gen, dtype=torch.float64)
    act = torch.randn(*shape, 2, generator=gen, dtype=torch.float64)
    model.fit_normalizer(torch.randn(50, 5, generator=gen), torch.randn(50, 2, generator=gen))
    mean, logvar = model(obs, act)
    target = torch.randn(E, B, 6, generator=gen, dtype=torch.float64)
    loss = (mean - target).pow(2).sum() + (logvar.sum() if gaussian else 0.0)
    loss.backward()
    ref_loss = 0.0
    x = (torch.cat([obs, act], -1) - model.in_mean) / model.in_std
    for e, m in enumerate(members):
        out = m(x if shared_input else x[e])
        if gaussian:
            mu, raw = out.split(6, -1)
            lv = soft_bound_logvar(raw, model.min_logvar, model.max_logvar)
            torch.testing.assert_close(logvar[e], lv, rtol=1e-6, atol=1e-6)
            ref_loss = ref_loss + (mu - target[e]).pow(2).sum() + lv.sum()
        else:
            mu = out
            ref_loss = ref_loss + (mu - target[e]).pow(2).sum()
        torch.testing.assert_close(mean[e], mu, rtol=1e-6, atol=1e-6)
    ref_loss.backward()
    for li, layer in enumerate(list(model.hidden) + [model.head]):
        for e, m in enumerate(members):
            lin = m[2 * li]
            torch.testing.assert_close(layer.weight.grad[e], lin.weight.grad.T, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(layer.bias.grad[e, 0], lin.bias.grad, rtol=1e-6, atol=1e-6)


def test_capacity_args_set_architecture():
    model = _model(layers=3, hid=64, d=11, a=3)
    assert len(model.hidden) == 3
    assert [tuple(layer.weight.shape) for layer in model.hidden] == [(4, 14, 64), (4, 64, 64), (4, 64, 64)]
    assert tuple(model.head.weight.shape) == (4, 64, 12)
    assert tuple(_model(gaussian=True, d=11, a=3).head.weight.shape) == (4, 16, 24)


def test_init_is_truncated_normal_and_seeded():
    model = _model(layers=1, hid=400, d=30, a=2)
    w = model.hidden[0].weight
    std = 1.0 / (2.0 * np.sqrt(32))
    assert w.abs().max() <= 2 * std + 1e-7  # truncation actually applied (upstream bug: a no-op)
    assert abs(w.std().item() - std * 0.8796) < 0.05 * std  # std of N(0,σ²) truncated at ±2σ
    torch.testing.assert_close(w, _model(layers=1, hid=400, d=30, a=2).hidden[0].weight)
    assert (model.hidden[0].bias == 0).all()


def test_soft_bounded_logvar_stays_in_bounds():
    raw = torch.linspace(-100, 100, 1001)
    lo, hi = torch.tensor(-10.0), torch.tensor(0.5)
    lv = soft_bound_logvar(raw, lo, hi)
    assert (lv >= lo).all() and (lv <= hi + 1e-4).all()  # softplus overshoots max by < 3e-5
    # near the middle of the range it is (almost) the identity
    assert abs(soft_bound_logvar(torch.tensor(-4.0), lo, hi).item() + 4.0) < 0.03


def test_normalizer_matches_numpy():
    model = _model()
    gen = torch.Generator().manual_seed(2)
    obs, act = torch.randn(100, 5, generator=gen) * 3 + 1, torch.rand(100, 2, generator=gen)
    obs[:, 4] = 2.0  # a constant column gets std 1, not a division by 0
    model.fit_normalizer(obs, act)
    x = np.concatenate([obs.numpy(), act.numpy()], 1).astype(np.float64)
    std = x.std(0, ddof=1)
    std[4] = 1.0
    np.testing.assert_allclose(model.in_mean.numpy(), x.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.in_std.numpy(), std, rtol=1e-6)


@pytest.mark.parametrize("n", [30, 31])
def test_sample_step_uses_one_random_elite_per_sample(n):
    model = _model(E=5, elites=3)
    model.set_elites([4, 0, 2])
    gen = torch.Generator().manual_seed(3)
    obs, act = torch.randn(n, 5, generator=gen), torch.randn(n, 2, generator=gen)
    model.fit_normalizer(obs, act)
    pred = model.predict(obs, act)
    nxt, rew = model.sample_step(obs, act, generator=torch.Generator().manual_seed(9))
    # each sample's output equals exactly one member's prediction, and that member is an elite
    match = ((pred.next_obs - nxt).abs().amax(-1) < 1e-5) & ((pred.reward - rew).abs() < 1e-5)  # (E, n)
    assert (match.sum(0) >= 1).all()
    used = match.float().argmax(0)
    assert set(used.tolist()) <= {4, 0, 2}
    counts = torch.bincount(used, minlength=5)[[4, 0, 2]]
    assert counts.max() - counts.min() <= 1  # an even split over the elites
    # seeded: same generator state ⇒ same assignment; chunking does not change results
    nxt2, _ = model.sample_step(obs, act, generator=torch.Generator().manual_seed(9), chunk_size=4)
    torch.testing.assert_close(nxt, nxt2)
    nxt3, _ = model.sample_step(obs, act, generator=torch.Generator().manual_seed(10))
    assert not torch.equal(nxt, nxt3)


def test_sample_step_gaussian_samples_around_the_mean():
    model = _model(gaussian=True, E=2, elites=1)
    model.set_elites([1])
    obs, act = torch.zeros(20000, 5), torch.zeros(20000, 2)
    model.fit_normalizer(torch.randn(10, 5, generator=torch.Generator().manual_seed(0)), torch.randn(10, 2))
    pred = model.predict(obs[:1], act[:1])
    nxt, rew = model.sample_step(obs, act, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(nxt.mean(0), pred.next_obs[1, 0], atol=0.05, rtol=0)
    torch.testing.assert_close(nxt.std(0), torch.exp(0.5 * pred.obs_logvar[1, 0]), atol=0.03, rtol=0.03)
    det, _ = model.sample_step(obs[:3], act[:3], generator=torch.Generator().manual_seed(0), deterministic=True)
    torch.testing.assert_close(det, pred.next_obs[1, 0].expand(3, -1))


def test_bf16_rollout_step_is_close_to_fp32():
    model = _model(E=3, elites=2, layers=3, hid=64)
    gen = torch.Generator().manual_seed(4)
    obs, act = torch.randn(500, 5, generator=gen), torch.randn(500, 2, generator=gen)
    model.fit_normalizer(obs, act)
    a, _ = model.sample_step(obs, act, generator=torch.Generator().manual_seed(0))
    b, _ = model.sample_step(obs, act, generator=torch.Generator().manual_seed(0), bf16=True)
    delta = (a - obs).abs().max()
    assert (a - b).abs().max() < 0.05 * delta + 1e-3
    assert b.dtype == torch.float32


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="num_elites"):
        EnsembleDynamicsModel(3, 1, ensemble_size=3, num_elites=4)
    with pytest.raises(ValueError, match="num_layers"):
        EnsembleDynamicsModel(3, 1, num_layers=0)
    with pytest.raises(ValueError, match="distinct"):
        _model().set_elites([0, 0, 1])


# ------------------------------------------------------------------------------ value targets
def test_value_targets_index_per_member_and_shared():
    """``targets[idx]`` gives each member the targets of the transitions it draws (upstream broadcast
    member 0's gradients by batch position) and a shared batch its own."""
    d = 4
    critic = QuadCritic(d)
    buf = torch.randn(20, d, generator=torch.Generator().manual_seed(6))
    vt = compute_value_targets(critic, buf)
    batch = torch.tensor([2, 5, 11, 17])
    members = torch.stack([batch, batch.flip(0), batch[[1, 3, 0, 2]]])  # (E=3, B=4)
    per_member = vt[members]
    assert per_member.grads.shape == (4, 3, 4, d) and per_member.values.shape == (4, 3, 4)
    for e in range(3):
        torch.testing.assert_close(per_member.grads[:, e], critic.grad_true(buf[members[e]]))
        torch.testing.assert_close(per_member.values[:, e], critic.value_true(buf[members[e]]))
    assert not torch.allclose(per_member.grads[:, 0], per_member.grads[:, 1])
    torch.testing.assert_close(vt[batch].grads, critic.grad_true(buf[batch]))


def test_value_targets_chunked_equals_single_batch_bitwise():
    critic = QuadCritic(3)
    x = torch.randn(25, 3, generator=torch.Generator().manual_seed(1))
    calls = []
    orig = critic.q_heads
    critic.q_heads = lambda o, a: (calls.append(o.shape[0]), orig(o, a))[1]
    chunked = compute_value_targets(critic, x, chunk_size=10)
    assert calls == [10, 10, 5]
    torch.testing.assert_close(chunked.grads, critic.grad_true(x))
    whole = value_gradients(critic, x)
    # chunks are independent rows of the same per-sample computation
    torch.testing.assert_close(chunked.grads, whole.grads, rtol=0, atol=0)
    torch.testing.assert_close(chunked.values, whole.values, rtol=0, atol=0)


def test_value_targets_values_only():
    critic = QuadCritic(3)
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2))
    vt = compute_value_targets(critic, x, gradients=False)
    assert vt.grads is None and vt[torch.tensor([1, 0])].grads is None
    torch.testing.assert_close(vt.values.reshape(4, -1), critic.value_true(x.reshape(-1, 3)))
    with pytest.raises(ValueError, match="chunk_size"):
        compute_value_targets(critic, x, chunk_size=0)


# ------------------------------------------------------------------------------ trainer
def _linear_data(n=400, d=5, a=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs, act = torch.randn(n, d, generator=gen), torch.rand(n, a, generator=gen) * 2 - 1
    A = torch.randn(d, d, generator=gen) * 0.1
    Bm = torch.randn(a, d, generator=gen) * 0.3
    nxt = obs + obs @ A + act @ Bm
    rew = obs[:, 0] - act.pow(2).sum(-1)
    return obs, act, rew, nxt


def test_trainer_learns_and_chooses_elites_by_best_val():
    obs, act, rew, nxt = _linear_data()
    model = _model()
    trainer = ModelTrainer(model, make_model_loss("mse"), generator=torch.Generator().manual_seed(0),
                           batch_size=64, lr=3e-3, max_epochs=30, patience=5)
    res = trainer.train(obs, act, rew, nxt)
    assert res.val_size == 80 and res.train_size == 320
    assert res.val_scores[-1][0] < 0.5 * res.val_scores[0][0]
    assert res.elites == sorted(range(4), key=lambda e: res.best_val_scores[e])[:3]
    assert model.elite_idx.tolist() == res.elites


def test_trainer_early_stopping_restores_best_snapshot():
    obs, act, rew, nxt = _linear_data(n=200)
    model = _model()
    snaps, vals = [], []
    trainer = ModelTrainer(model, make_model_loss("mse"), generator=torch.Generator().manual_seed(1),
                           batch_size=32, lr=2e-2, patience=3, improvement_threshold=0.01, max_epochs=60)

    def cb(epoch, train_loss, val):
        snaps.append(copy.deepcopy(model.state_dict()))
        vals.append(val.clone())

    res = trainer.train(obs, act, rew, nxt, callback=cb)
    # replay the rule independently: improvement if any member improves by > 1 % over its best so far
    best = torch.tensor(res.val_scores[0])
    last_improved, since = None, 0
    for i, v in enumerate(vals):
        if (((best - v) / best.abs()) > 0.01).any():
            best, last_improved, since = torch.minimum(best, v), i, 0
        else:
            since += 1
    assert since == 3 or res.epochs == 60  # stopped by patience (or the cap)
    assert res.epochs == len(vals)
    torch.testing.assert_close(torch.tensor(res.best_val_scores), best)
    assert last_improved is not None and res.restored_best
    for k, v in model.state_dict().items():
        if k != "elite_idx":
            torch.testing.assert_close(v, snaps[last_improved][k])


def test_trainer_split_is_redrawn_per_call_and_deterministic():
    obs, act, rew, nxt = _linear_data(n=100)
    results = []
    for _ in range(2):
        model = _model()
        tr = ModelTrainer(model, make_model_loss("mse"), generator=torch.Generator().manual_seed(3),
                          batch_size=32, max_epochs=2)
        results.append((tr.train(obs, act, rew, nxt).val_scores, tr.train(obs, act, rew, nxt).val_scores))
    assert results[0] == results[1]  # same seed ⇒ same numbers
    # second call: a fresh split, so its initial score differs from the first call's last score
    assert results[0][1][0] != results[0][0][-1]


@pytest.mark.parametrize("loss_name", ["vagram", "itervaml"])
def test_trainer_value_targets_are_those_of_the_transitions_used_from_the_current_critic(loss_name):
    """Every member's minibatch and every validation batch is scored with the targets of exactly the
    transitions it uses (closed form of the critic at those next states), from the critic as it is at
    the call; a changed critic gives the next call its new targets."""
    obs, act, rew, nxt = _linear_data(n=150)
    critic = QuadCritic(5)
    loss = make_model_loss(loss_name)
    seen = []  # (true next states, targets) of every per_sample call
    orig = loss.per_sample

    def recording(pred, true_next, value_targets=None, **kw):
        seen.append((true_next.detach().clone(), value_targets))
        return orig(pred, true_next, value_targets, **kw)

    loss.per_sample = recording
    model = _model()
    tr = ModelTrainer(model, loss, generator=torch.Generator().manual_seed(0), batch_size=32, max_epochs=3)

    def check(scale):
        shapes = set()
        for true_next, vt in seen:
            shapes.add(true_next.dim())
            truth_v = critic.value_true(true_next.reshape(-1, 5)).reshape(4, *true_next.shape[:-1])
            torch.testing.assert_close(vt.values, truth_v)
            if loss_name == "vagram":
                torch.testing.assert_close(vt.grads, critic.grad_true(true_next.reshape(-1, 5)).reshape(
                    4, *true_next.shape))
        assert shapes == {2, 3}  # validation batches (B, d) and per-member batches (E, B, d) both seen
        torch.testing.assert_close(critic.w.detach(), w0 * scale)

    w0 = critic.w.detach().clone()
    tr.train(obs, act, rew, nxt, value_fn=critic)
    check(1.0)
    assert critic.w.grad is None and critic.M.grad is None  # nothing leaked into the critic
    # the critic changes between calls: the next call's targets are the new critic's
    with torch.no_grad():
        critic.w.mul_(3.0)
    seen.clear()
    tr.train(obs, act, rew, nxt, value_fn=critic, fit_normalizer=False)
    check(3.0)


def test_trainer_vagram_per_member_loss_equals_member_loop():
    """The trainer's per-sample loss for per-member batches equals each member's own loss computed with
    the closed-form gradients of the transitions that member sees."""
    obs, act, rew, nxt = _linear_data(n=60)
    critic = QuadCritic(5)
    model = _model()
    model.fit_normalizer(obs, act)
    tr = ModelTrainer(model, make_model_loss("vagram"), generator=torch.Generator().manual_seed(0))
    bi = torch.randint(0, 60, (4, 8), generator=torch.Generator().manual_seed(1))
    vt = tr.loss.targets(critic, nxt)[bi]
    ps = tr.per_sample_loss(obs[bi], act[bi], rew[bi], nxt[bi], value_targets=vt)
    for e in range(4):
        pred = model.predict(obs[bi[e]], act[bi[e]], members=torch.tensor([e]))
        g = critic.grad_true(nxt[bi[e]])
        err = pred.next_obs[0] - nxt[bi[e]]
        ref = (g * err).pow(2).mean(-1).mean(0) + (pred.reward[0] - rew[bi[e]]).pow(2)
        torch.testing.assert_close(ps[e], ref, rtol=1e-5, atol=1e-6)


def test_warmup_mse_term_and_mle_val_metric():
    obs, act, rew, nxt = _linear_data(n=40)
    model = _model(gaussian=True)
    model.fit_normalizer(obs, act)
    tr = ModelTrainer(model, make_model_loss("mle"), generator=torch.Generator().manual_seed(0))
    assert tr.val_metric == "mse"
    base = tr.per_sample_loss(obs, act, rew, nxt)
    warm = tr.per_sample_loss(obs, act, rew, nxt, add_mse=True)
    mse = tr.per_sample_loss(obs, act, rew, nxt, metric="mse")
    torch.testing.assert_close(warm, base + mse)
    pred = model.predict(obs, act)
    ref = (torch.cat([pred.next_obs - nxt, (pred.reward - rew)[..., None]], -1)).pow(2).mean(-1)
    torch.testing.assert_close(mse, ref)


def test_trainer_raises_on_divergence_and_bad_config():
    obs, act, rew, nxt = _linear_data(n=50)
    nxt = nxt.clone()
    nxt[3, 1] = float("nan")
    tr = ModelTrainer(_model(), make_model_loss("mse"), generator=torch.Generator().manual_seed(0), max_epochs=2)
    with pytest.raises(ModelDivergenceError, match="non-finite"):
        tr.train(obs, act, rew, nxt)
    with pytest.raises(ValueError, match="gaussian=True"):
        ModelTrainer(_model(), make_model_loss("mle"), generator=torch.Generator())
    tr = ModelTrainer(_model(), make_model_loss("vagram"), generator=torch.Generator())
    with pytest.raises(ValueError, match="value_fn"):
        tr.train(obs, act, rew, obs)
    assert issubclass(ModelDivergenceError, FloatingPointError)
