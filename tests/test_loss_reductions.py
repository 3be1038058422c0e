"""Each model loss's reward weighting and reduction in MBPO's ensemble trainer against values derived by
hand from upstream's formulas (pairlab/vagram@caf9b92):

* ``mse`` (``GaussianMLP._mse_loss``, ``mbrl/models/gaussian_mlp.py`` L270–276):
  ``Σ_e Σ_b [Σ_k e_ebk² + e^r_eb²]``;
* ``mle`` (``GaussianMLP._nll_loss``, L278–292): ``Σ_e mean_b mean_{j≤d+1} [e² exp(−lv) + lv]
  + 0.01 (Σ max_logvar − Σ min_logvar)``;
* ``vagram`` (``VAMLMLP._vaml_loss`` + ``loss``, ``mbrl/models/vaml_mlp.py`` L280–378):
  ``mean_{e,b} [mean_k (1/H) Σ_h (g_hk e_k)² + e_r²]``; ``itervaml`` takes the same reduction.

The fixed errors (E = 2 members, B = 2 samples, d = 2 state dims)::

    e   = [[[1, 0], [0, 2]],     e_r = [[1, 0],
           [[1, 1], [2, 0]]]            [0, 1]]
"""

from __future__ import annotations

import math

import pytest
import torch

from reference.model_trainer import ModelTrainer
from vagram_bench.models import EnsembleDynamicsModel, make_model_loss
from vagram_bench.models.losses import ValueTargets

E, B, D = 2, 2, 2
ERR = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [2.0, 0.0]]])  # (E, B, d)
ERR_R = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # (E, B)


def _objective(name, *, grads=None, logvar=None, reward_logvar=None, **options):
    """loss → per-sample state and reward terms on (pred = ERR, target = 0) → the ensemble objective."""
    loss = make_model_loss(name, **options)
    pred = ERR.clone().requires_grad_(True)
    pred_r = ERR_R.clone().requires_grad_(True)
    vt = None if grads is None else ValueTargets(grads, torch.zeros(grads.shape[:-1]))
    state = loss.per_sample(pred, torch.zeros(E, B, D), vt, pred_logvar=logvar)
    reward = loss.reward_per_sample(pred_r, torch.zeros(E, B), pred_reward_logvar=reward_logvar)
    return loss.ensemble_reduce(loss.ensemble_per_sample(state, reward, D)), pred, pred_r


def test_mse_is_summed_over_members_batch_and_outputs():
    # member 0: (1² + 0² + 1²) + (0² + 2² + 0²) = 2 + 4 = 6
    # member 1: (1² + 1² + 0²) + (2² + 0² + 1²) = 2 + 5 = 7          L = 6 + 7 = 13
    total, pred, pred_r = _objective("mse")
    assert total.item() == pytest.approx(13.0)
    # the reward is one output among d + 1 with the same weight: ∂L/∂Δ̂ = 2e, ∂L/∂r̂ = 2e_r
    total.backward()
    torch.testing.assert_close(pred.grad, 2 * ERR)
    torch.testing.assert_close(pred_r.grad, 2 * ERR_R)


def test_gaussian_nll_is_averaged_over_batch_and_outputs_and_summed_over_members():
    # logvar ≡ 0: NLL_j = e_j². Per sample mean over d + 1 = 3 outputs:
    # member 0: (2/3 + 4/3) / 2 = 1;  member 1: (2/3 + 5/3) / 2 = 7/6;  Σ_e = 13/6
    zeros = torch.zeros(E, B, D)
    total, pred, pred_r = _objective("mle", logvar=zeros, reward_logvar=torch.zeros(E, B))
    assert total.item() == pytest.approx(13.0 / 6.0)
    total.backward()  # ∂/∂Δ̂_ebk = 2 e / (B (d + 1)) = e / 3, the reward the same weight
    torch.testing.assert_close(pred.grad, ERR / 3)
    torch.testing.assert_close(pred_r.grad, ERR_R / 3)
    # logvar ≡ 1 everywhere: NLL_j = e² e⁻¹ + 1 → 13/6 · e⁻¹ + Σ_e 1 = 13/(6e) + 2
    ones = torch.ones(E, B, D)
    total, _, _ = _objective("mle", logvar=ones, reward_logvar=torch.ones(E, B))
    assert total.item() == pytest.approx(13.0 / (6.0 * math.e) + 2.0)


def test_vagram_is_a_plain_mean_with_reward_weight_one_against_the_per_dim_mean():
    # g ≡ 1 for all 4 heads: per sample mean_k e² + e_r²
    # (0.5 + 1) + (2 + 0) + (1 + 0) + (2 + 1) = 7.5, mean over E·B = 4 → 1.875
    total, pred, pred_r = _objective("vagram", grads=torch.ones(4, E, B, D))
    assert total.item() == pytest.approx(1.875)
    total.backward()  # ∂/∂Δ̂ = 2 e / (d E B) = e / 4;  ∂/∂r̂ = 2 e_r / (E B) = e_r / 2
    torch.testing.assert_close(pred.grad, ERR / 4)
    torch.testing.assert_close(pred_r.grad, ERR_R / 2)
    # g_h = (2, 0) for every head: weight mean_h g² = (4, 0); per sample mean_k = 2 e_0²
    # (2 + 1) + (0 + 0) + (2 + 0) + (8 + 1) = 14 → 14 / 4 = 3.5
    g = torch.tensor([2.0, 0.0]).expand(4, E, B, D)
    total, _, _ = _objective("vagram", grads=g)
    assert total.item() == pytest.approx(3.5)
    # unbounded: (1/H) Σ_h (Σ_k g e)² = (2 e_0)²: (4 + 1) + (0 + 0) + (4 + 0) + (16 + 1) = 26 → 6.5
    total, _, _ = _objective("vagram", grads=g, bounded=False)
    assert total.item() == pytest.approx(6.5)


def test_itervaml_reduction_follows_vagram():
    loss = make_model_loss("itervaml")
    state = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # (1 + 1) + (2 + 0) + (3 + 0) + (4 + 1) = 12 → 12 / 4 = 3
    assert loss.ensemble_reduce(loss.ensemble_per_sample(state, ERR_R.pow(2), D)).item() == pytest.approx(3.0)


def _zero_model(gaussian=False):
    """A model whose prediction is exactly its head bias (all weights zero, bias zero): Δ̂ = 0, r̂ = 0."""
    model = EnsembleDynamicsModel(D, 1, ensemble_size=E, num_elites=1, num_layers=1, hid_size=4,
                                  gaussian=gaussian, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def _per_member_data():
    """4 transitions with s = 0, s' = −e, r = −e_r, so that member e's batch [2e, 2e + 1] of a model
    predicting Δ̂ = r̂ = 0 has errors ERR[e], ERR_R[e]."""
    obs = torch.zeros(4, D)
    act = torch.zeros(4, 1)
    nxt = -ERR.reshape(4, D)
    rew = -ERR_R.reshape(4)
    bi = torch.tensor([[0, 1], [2, 3]])
    return obs[bi], act[bi], rew[bi], nxt[bi]


def test_trainer_objective_is_the_losses_reduction():
    obs, act, rew, nxt = _per_member_data()
    tr = ModelTrainer(_zero_model(), make_model_loss("mse"), generator=torch.Generator())
    assert tr.objective(tr.per_sample_loss(obs, act, rew, nxt)).item() == pytest.approx(13.0)
    tr = ModelTrainer(_zero_model(), make_model_loss("vagram"), generator=torch.Generator())
    vt = ValueTargets(torch.ones(4, E, B, D), torch.zeros(4, E, B))
    assert tr.objective(tr.per_sample_loss(obs, act, rew, nxt, value_targets=vt)).item() == pytest.approx(1.875)
    # warm-up MSE (upstream add_mse): + mean over the d + 1 outputs, averaged like the loss:
    # per sample (2/3, 4/3, 2/3, 5/3) → mean 13/12
    ps = tr.per_sample_loss(obs, act, rew, nxt, value_targets=vt, add_mse=True)
    assert tr.objective(ps).item() == pytest.approx(1.875 + 13.0 / 12.0)


def test_trainer_adds_the_logvar_bound_penalty_to_the_gaussian_objective():
    # 0.01 · (Σ_{j≤3} 0.5 − Σ_{j≤3} (−10)) = 0.01 · 3 · 10.5 = 0.315
    tr = ModelTrainer(_zero_model(gaussian=True), make_model_loss("mle"), generator=torch.Generator())
    ps = torch.tensor([[1.0, 1.0], [2.0, 4.0]])  # Σ_e mean_b = 1 + 3 = 4
    assert tr.objective(ps).item() == pytest.approx(4.0 + 0.315)
    assert tr.objective(ps).item() == pytest.approx(4.315)
    tr = ModelTrainer(_zero_model(), make_model_loss("mse"), generator=torch.Generator())
    assert tr.objective(ps).item() == pytest.approx(8.0)  # no penalty, plain sum


def test_validation_metric_and_val_mse_are_the_upstream_eval_scores():
    g = torch.Generator().manual_seed(3)
    obs, act = torch.randn(50, D, generator=g), torch.randn(50, 1, generator=g)
    nxt, rew = obs + 0.1 * act, obs.sum(-1)
    for name, metric in (("mse", "mse"), ("mle", "mse"), ("vagram", "loss"), ("itervaml", "loss")):
        model = EnsembleDynamicsModel(D, 1, ensemble_size=E, num_elites=1, num_layers=1, hid_size=8,
                                      gaussian=name == "mle", generator=torch.Generator().manual_seed(0))
        tr = ModelTrainer(model, make_model_loss(name), generator=torch.Generator().manual_seed(5), max_epochs=2)
        assert tr.val_metric == metric
    tr = ModelTrainer(_zero_model(), make_model_loss("mse"), generator=torch.Generator().manual_seed(5), max_epochs=2)
    res = tr.train(obs, act, rew, nxt)
    # the same split, drawn a second way: the first draw of the trainer's generator is the permutation
    val_idx = torch.randperm(50, generator=torch.Generator().manual_seed(5))[:10]
    pred = tr.model.predict(obs[val_idx], act[val_idx])
    err2 = torch.cat([pred.next_obs - nxt[val_idx], (pred.reward - rew[val_idx])[..., None]], -1).pow(2)
    torch.testing.assert_close(torch.tensor(res.val_mse), err2.mean((1, 2)))
    assert res.best_val_mse == pytest.approx(res.val_mse[res.elites[0]])


def test_decoupled_weight_decay_is_an_explicit_option():
    model = _zero_model()
    assert type(ModelTrainer(model, make_model_loss("mse"), generator=torch.Generator()).optimizer) is torch.optim.Adam
    tr = ModelTrainer(model, make_model_loss("mse"), generator=torch.Generator(), weight_decay=0.1,
                      decoupled_weight_decay=True)
    assert type(tr.optimizer) is torch.optim.AdamW
    assert tr.optimizer.param_groups[0]["weight_decay"] == 0.1
