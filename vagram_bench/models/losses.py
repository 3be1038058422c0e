"""Dynamics-model losses: MSE, Gaussian MLE, IterVAML and VaGraM.

Everything here is a pure tensor function (no state, no parameters) plus :class:`ModelLoss`, the one
interface through which MBPO's ensemble (:mod:`vagram_bench.models.trainer`) and SVG's recurrent model
use the four losses.

Shapes and broadcasting
-----------------------
State predictions and targets have shape ``(*batch, d)``; every loss returns a *per-sample* loss of
shape ``batch`` and leaves the reduction to the caller. Value-related tensors carry a leading head
dimension ``H`` (``H = 4``: online ``Q1, Q2`` then target ``Q̄1, Q̄2``):

* value gradients ``g``: ``(H, *gbatch, d)``,
* values ``V``: ``(H, *gbatch)``,

where ``gbatch`` may be a *suffix* of ``batch``. This is what lets the same call serve

* an MBPO ensemble prediction ``(E, B, d)`` with gradients ``(4, B, d)`` (every member sees the same
  transitions, e.g. validation) or ``(4, E, B, d)`` (per-member bootstrap batches), and
* an SVG window prediction ``(T, B, d)`` with gradients ``(4, T, B, d)``.

Formulas (``e = pred − target`` over the state dims, raw units)::

    mse_loss            = mean_k e_k²
    gaussian_nll_loss   = mean_k [ e_k² · exp(−logvar_k) + logvar_k ]        (mbrl-lib: no ½, no log 2π)
    itervaml_loss       = mean_h ( V_h(ŝ') − V_h(s') )²
    vagram_loss bounded = mean_h mean_k ( g_hk · e_k )²                       (the paper's default)
    vagram_loss unbound = mean_h ( Σ_k g_hk · e_k )²                          (first-order Taylor VAML)

The reward error is *not* part of these state losses; :meth:`ModelLoss.reward_per_sample` gives the
term the model wrapper adds for every loss (a plain squared error; the Gaussian NLL of the reward
output for ``mle``, whose model predicts a reward log-variance as in mbrl-lib).

How MBPO's ensemble trainer weights the reward against the state and reduces over members and batch
is each loss's own (:meth:`ModelLoss.ensemble_per_sample`, :meth:`ModelLoss.ensemble_reduce`), as in
upstream's ``GaussianMLP`` / ``VAMLMLP`` (pairlab/vagram@caf9b92): under Adam with coupled weight
decay the reduction *is* the strength of the regularisation (scaling the loss by ``c`` equals dividing
``weight_decay`` by ``c``), so it is part of each loss's definition (table in ``docs/models.md``).
SVG does not use these two methods: it takes the mean of :meth:`ModelLoss.per_sample` over its window,
as its upstream (facebookresearch/svg ``svg/dx.py``) does for the MSE.

Value gradients are upstream's (``VAMLMLP.values``, ``mbrl/models/vaml_mlp.py``): ``g_h = ∂Q_h(s', a)/∂s'``
at the **true** next state with ``a = μ(s')`` held fixed, for the four heads, in one batched autograd
call. The upstream bugs (gradient at ``Δ = s' − s``; cumulative heads because one leaf's ``.grad`` was
never zeroed) are not reproduced: :func:`value_gradients` uses :func:`torch.autograd.grad`, which
accumulates nothing anywhere.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from vagram_bench.interfaces import ValueFunction

__all__ = [
    "MODEL_LOSSES",
    "GaussianNLLLoss",
    "IterVAMLLoss",
    "LOSS_NAMES",
    "MSELoss",
    "ModelLoss",
    "VaGraMLoss",
    "ValueTargets",
    "align_heads",
    "clip_by_norm_quantile",
    "gaussian_nll_loss",
    "itervaml_loss",
    "make_model_loss",
    "mse_loss",
    "value_gradients",
    "compute_value_targets",
    "values_at",
    "vagram_loss",
]


# --------------------------------------------------------------------------------------------------
# value targets
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ValueTargets:
    """What the critic says about the true next states, for the value-aware losses.

    Attributes:
        grads: ``(H, *batch, d)`` — ``∂Q_h(s', μ(s'))/∂s'`` (action held fixed), or ``None`` when the
            loss needs only the values (IterVAML).
        values: ``(H, *batch)`` — ``Q_h(s', μ(s'))``.

    ``targets[idx]`` selects along the batch dimensions and keeps the head dimension, so targets
    computed once for a whole data set are indexed per minibatch: ``targets[perm]`` for a shared
    batch ``(B,)``, ``targets[member_idx]`` for per-member bootstrap batches ``(E, B)``.
    """

    grads: torch.Tensor | None
    values: torch.Tensor

    def __getitem__(self, idx) -> "ValueTargets":
        grads = None if self.grads is None else self.grads[:, idx]
        return ValueTargets(grads, self.values[:, idx])


VALUE_TARGET_CHUNK = 32_768
"""Transitions per batched critic pass in :func:`compute_value_targets`: bounds the critic's activation memory
when a whole replay buffer (e.g. 500k transitions) is evaluated at once."""


def compute_value_targets(
    value_fn: ValueFunction, next_obs: torch.Tensor, *, gradients: bool = True,
    chunk_size: int = VALUE_TARGET_CHUNK,
) -> ValueTargets:
    """:class:`ValueTargets` for every state of ``next_obs`` ``(*batch, d)`` from the current critic.

    The states are flattened and evaluated in chunks of ``chunk_size`` (one batched autograd call
    per chunk with ``gradients``, :func:`value_gradients`; a plain forward pass without, which is
    what IterVAML needs and ~6x cheaper).

    Examples:
        >>> class Quad:
        ...     critic_version = 0
        ...     def q_heads(self, x, a):
        ...         return 0.5 * x.pow(2).sum(-1).expand(4, -1) + a.sum(-1)
        ...     def policy_mean(self, x):
        ...         return torch.zeros(x.shape[0], 1)
        >>> vt = compute_value_targets(Quad(), torch.ones(5, 2, 3), chunk_size=4)
        >>> vt.grads.shape, vt.values.shape
        (torch.Size([4, 5, 2, 3]), torch.Size([4, 5, 2]))
        >>> compute_value_targets(Quad(), torch.ones(5, 3), gradients=False).grads is None
        True
    """
    if int(chunk_size) <= 0:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size}")
    batch_shape, d = next_obs.shape[:-1], next_obs.shape[-1]
    flat = next_obs.detach().reshape(-1, d).to(torch.float32)
    pieces = []
    for start in range(0, flat.shape[0], int(chunk_size)):
        chunk = flat[start : start + int(chunk_size)]
        if gradients:
            pieces.append(value_gradients(value_fn, chunk))
        else:
            with torch.no_grad():
                pieces.append(ValueTargets(None, values_at(value_fn, chunk).to(torch.float32)))
    num_heads = pieces[0].values.shape[0]
    values = torch.cat([p.values for p in pieces], 1).reshape(num_heads, *batch_shape)
    grads = None
    if gradients:
        grads = torch.cat([p.grads for p in pieces], 1).reshape(num_heads, *batch_shape, d)
    return ValueTargets(grads, values)


def _flat_policy_action(value_fn: ValueFunction, flat_obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return value_fn.policy_mean(flat_obs).detach()


def _q_heads_flat(value_fn: ValueFunction, flat_obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    q = value_fn.q_heads(flat_obs, action)
    if q.dim() == 3 and q.shape[-1] == 1:  # tolerate critics that keep a trailing value dim
        q = q.squeeze(-1)
    if q.dim() != 2 or q.shape[1] != flat_obs.shape[0]:
        raise ValueError(
            f"value_fn.q_heads(obs (N, d), action) must return (H, N) Q-values; got shape "
            f"{tuple(q.shape)} for N={flat_obs.shape[0]}"
        )
    return q


def value_gradients(value_fn: ValueFunction, next_obs: torch.Tensor) -> ValueTargets:
    """Value gradients ``g_h = ∂Q_h(s', μ(s'))/∂s'`` and values of all Q heads at ``next_obs``.

    One forward pass of the critic over the whole (flattened) batch and **one** autograd call for all
    heads (``torch.autograd.grad(..., is_grads_batched=True)`` vmaps the backward over the head
    dimension), no Python loop over heads, samples or members. The policy action ``μ(s')`` is computed
    under ``no_grad`` and held fixed, so ``g`` is the partial derivative in the state input (as upstream
    ``VAMLMLP.values``).
    Gradients are taken with :func:`torch.autograd.grad` with respect to a detached copy of ``next_obs``,
    so nothing is accumulated in the critic's (or anyone's) ``.grad``.

    Args:
        value_fn: a :class:`~vagram_bench.interfaces.ValueFunction` (``q_heads`` → ``(H, N)``).
        next_obs: true next observations, ``(*batch, d)`` in raw units.

    Returns:
        :class:`ValueTargets` with ``grads (H, *batch, d)`` and ``values (H, *batch)``, float32,
        detached.

    Examples:
        >>> import torch
        >>> class Quad:  # Q_h(x, a) = ½ Σ_k w_hk x_k² + c·Σa
        ...     critic_version = 0
        ...     w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.5, 0.5], [1.0, 0.0]])
        ...     def q_heads(self, x, a):
        ...         return 0.5 * (x.pow(2) @ self.w.T).T + a.sum(-1)
        ...     def policy_mean(self, x):
        ...         return torch.tanh(x[..., :1])
        >>> vt = value_gradients(Quad(), torch.tensor([[1.0, -2.0]]))
        >>> vt.grads[:, 0]
        tensor([[ 1.0000, -4.0000],
                [ 3.0000, -8.0000],
                [ 0.5000, -1.0000],
                [ 1.0000, -0.0000]])
    """
    if next_obs.dim() < 1:
        raise ValueError(f"next_obs must have shape (*batch, d); got {tuple(next_obs.shape)}")
    batch_shape, d = next_obs.shape[:-1], next_obs.shape[-1]
    flat = next_obs.detach().reshape(-1, d)
    action = _flat_policy_action(value_fn, flat)
    with torch.enable_grad():
        x = flat.clone().requires_grad_(True)
        q = _q_heads_flat(value_fn, x, action)  # (H, N)
        num_heads = q.shape[0]
        # grad_outputs[h] selects head h: a batched vector-Jacobian product over the head dim. The
        # per-sample independence of the critic makes d(Σ_n Q_h(x_n))/dx_n = ∂Q_h(x_n)/∂x_n.
        eye = torch.eye(num_heads, dtype=q.dtype, device=q.device)
        grad_out = eye[:, :, None].expand(num_heads, num_heads, q.shape[1])
        try:
            (grads,) = torch.autograd.grad(q, x, grad_outputs=grad_out, is_grads_batched=True, retain_graph=True)
        except RuntimeError:
            # some ops have no batching rule for the vmapped backward (e.g. in-place ops inside a
            # third-party critic): fall back to one vector-Jacobian product per head on the same graph
            grads = torch.stack(
                [torch.autograd.grad(q, x, grad_outputs=grad_out[h], retain_graph=True)[0] for h in range(num_heads)]
            )
    grads = grads.detach().to(torch.float32).reshape(num_heads, *batch_shape, d)
    values = q.detach().to(torch.float32).reshape(num_heads, *batch_shape)
    return ValueTargets(grads, values)


def values_at(value_fn: ValueFunction, obs: torch.Tensor) -> torch.Tensor:
    """``V_h(x) = Q_h(x, μ(x))`` for all heads, differentiable in ``obs`` only through the critic's
    state input (the action ``μ(x)`` is detached, as in :func:`value_gradients`).

    Note that autograd *will* reach the critic's parameters if the caller back-propagates a loss built
    from these values; call ``loss.backward(inputs=model_params)`` (what
    :class:`~vagram_bench.models.trainer.ModelTrainer` does) so only the model accumulates gradients.

    Args:
        value_fn: the critic/actor view.
        obs: ``(*batch, d)``.

    Returns:
        ``(H, *batch)`` values.
    """
    batch_shape, d = obs.shape[:-1], obs.shape[-1]
    flat = obs.reshape(-1, d)
    action = _flat_policy_action(value_fn, flat)
    q = _q_heads_flat(value_fn, flat, action)
    return q.reshape(q.shape[0], *batch_shape)


def clip_by_norm_quantile(grads: torch.Tensor, q: float = 0.95, member_dims: int = 0) -> torch.Tensor:
    """Clip per-sample gradient vectors at the ``q``-quantile of their norms, per head.

    For each head ``h``: ``n_j = ||g_{h,j}||₂`` over all samples ``j`` of the tensor (all batch dims,
    e.g. ``E·B`` for per-member gradients), ``c_h = quantile(n, q)`` (linear interpolation, like
    ``np.quantile``), and ``g_{h,j} ← g_{h,j} · min(1, c_h / n_j)``. This is the paper-era behaviour
    (``bound_clipping_quantile``, pairlab/vagram@caf9b92); the later "keep if n < 1e5" condition that
    disabled it is not reproduced. The
    result is detached.

    Args:
        grads: ``(H, *batch, d)``.
        q: quantile in ``(0, 1]``.
        member_dims: leading batch dims that index independent models (population members,
            ``(H, K, E, B, d)`` with ``member_dims=1``): the quantile is taken per head and member,
            over the remaining batch dims, as each member alone would.

    Examples:
        >>> g = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [0.0, 2.0]]])  # norms 5, 1, 2
        >>> clip_by_norm_quantile(g, q=0.5)  # median norm 2
        tensor([[[1.2000, 1.6000],
                 [0.0000, 1.0000],
                 [0.0000, 2.0000]]])
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"clip quantile must be in (0, 1]; got {q}")
    if grads.dim() < 2:
        raise ValueError(f"grads must have shape (H, *batch, d); got {tuple(grads.shape)}")
    grads = grads.detach()
    norms = grads.norm(dim=-1)  # (H, *batch)
    groups = norms.shape[: 1 + member_dims]
    flat = norms.reshape(*groups, -1)
    if flat.shape[-1] > 2**24 - 1:  # torch.quantile's input-size limit; subsample deterministically
        flat = flat[..., :: flat.shape[-1] // (2**23) + 1]
    thresh = torch.quantile(flat.to(torch.float64), q, dim=-1).to(grads.dtype)  # (H, *members)
    thresh = thresh.reshape(*groups, *([1] * (norms.dim() - len(groups))))
    scale = torch.where(norms > thresh, thresh / norms.clamp_min(1e-30), torch.ones_like(norms))
    return grads * scale.unsqueeze(-1)


# --------------------------------------------------------------------------------------------------
# pure per-sample losses
# --------------------------------------------------------------------------------------------------
def _check_same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{what}: state dims differ ({a.shape[-1]} vs {b.shape[-1]})")


def align_heads(t: torch.Tensor, batch_ndim: int, trailing: int) -> torch.Tensor:
    """View ``t`` of shape ``(H, *tbatch, *trail)`` as ``(H, 1, ..., 1, *tbatch, *trail)`` with
    ``batch_ndim`` batch dims, so it broadcasts against a ``(*batch, *trail)`` tensor whose batch shape
    ends with ``tbatch``."""
    tb = t.dim() - 1 - trailing
    if tb > batch_ndim:
        # more batch dims on the value side (e.g. per-member grads for a shared prediction): broadcast
        return t
    shape = (t.shape[0],) + (1,) * (batch_ndim - tb) + tuple(t.shape[1:])
    return t.reshape(shape)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over the last (state) dim: ``mean_k (pred_k − target_k)²``.

    Examples:
        >>> mse_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]))
        tensor([2.5000])
    """
    _check_same_shape(pred, target, "mse_loss")
    return (pred - target).pow(2).mean(-1)


def gaussian_nll_loss(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian NLL in mbrl-lib's form: ``mean_k [ e_k² · exp(−logvar_k) + logvar_k ]``
    with ``e = mean − target`` (no ½, no log 2π).

    Examples:
        >>> gaussian_nll_loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[0.0]]))
        tensor([1.])
    """
    _check_same_shape(mean, target, "gaussian_nll_loss")
    _check_same_shape(mean, logvar, "gaussian_nll_loss (logvar)")
    return ((mean - target).pow(2) * torch.exp(-logvar) + logvar).mean(-1)


def itervaml_loss(values_pred: torch.Tensor, values_true: torch.Tensor) -> torch.Tensor:
    """Per-sample IterVAML loss ``mean_h (V_h(ŝ') − V_h(s'))²``.

    Args:
        values_pred: ``(H, *batch)`` values at the predicted next states (differentiable).
        values_true: ``(H, *tbatch)`` values at the true next states (constants); ``tbatch`` is a
            suffix of ``batch`` (or equal).

    Examples:
        >>> itervaml_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]]))
        tensor([5.])
    """
    if values_pred.shape[0] != values_true.shape[0]:
        raise ValueError(
            f"itervaml_loss: head counts differ ({values_pred.shape[0]} vs {values_true.shape[0]})"
        )
    vt = align_heads(values_true, values_pred.dim() - 1, 0)
    return (values_pred - vt).pow(2).mean(0)


def vagram_loss(
    pred: torch.Tensor, target: torch.Tensor, value_grads: torch.Tensor, bounded: bool = True
) -> torch.Tensor:
    """Per-sample VaGraM loss.

    * ``bounded=True`` (the paper's default, ``use_scaling`` in ``mbrl/models/vaml_mlp.py``): ``mean_h
    mean_k (g_hk · e_k)²`` — a
      per-dimension rescaled MSE.
    * ``bounded=False`` (``use_vaml``, first-order Taylor VAML): ``mean_h (Σ_k g_hk · e_k)²``.

    Args:
        pred: ``(*batch, d)`` predicted next states.
        target: ``(*batch, d)`` true next states (or any tensor broadcasting against ``pred``).
        value_grads: ``(H, *gbatch, d)``; ``gbatch`` is a suffix of ``batch`` — e.g. ``(4, B, d)``
            against an ensemble prediction ``(E, B, d)`` — or the full ``batch``.
        bounded: which form.

    Returns:
        ``batch``-shaped loss (the broadcast of ``batch`` and ``gbatch``).

    Examples:
        >>> e = torch.tensor([[1.0, 2.0]])
        >>> g = torch.ones(1, 1, 2)
        >>> vagram_loss(e, torch.zeros_like(e), g)          # == mse
        tensor([2.5000])
        >>> vagram_loss(e, torch.zeros_like(e), g, bounded=False)  # (1 + 2)²
        tensor([9.])
    """
    _check_same_shape(pred, target, "vagram_loss")
    _check_same_shape(pred, value_grads, "vagram_loss (value_grads)")
    err = pred - target  # (*batch, d)
    g = align_heads(value_grads, err.dim() - 1, 1)  # (H, ..., d)
    if bounded:
        # mean_h mean_k (g_hk e_k)² = mean_k (mean_h g_hk²) e_k²: fold the heads into one weight per
        # dim first, so the differentiable part is a (*batch, d) tensor instead of (H, *batch, d)
        weight = g.pow(2).mean(0)
        return (weight * err.pow(2)).mean(-1)
    return (g * err).sum(-1).pow(2).mean(0)


# --------------------------------------------------------------------------------------------------
# the four losses behind one interface (MBPO's trainer and SVG's model update use them unchanged)
# --------------------------------------------------------------------------------------------------
class ModelLoss:
    """The interface every dynamics-model loss implements; the plain squared error over the state.

    A caller (``PopulationModelTrainer.train_members`` for MBPO, ``SVGAgent._update_dynamics`` for SVG) does, for any
    loss and without asking which one it has::

        targets = loss.targets(value_fn, true_next_obs)     # once per training call; None if unused
        ... per minibatch ``idx``:
        state_loss = loss.per_sample(pred_next_obs, true_next_obs[idx], targets[idx],
                                     pred_logvar=..., value_fn=value_fn)
        reward_loss = loss.reward_per_sample(pred_reward, true_reward[idx], pred_reward_logvar=...)

    (``targets[idx]`` only when ``targets`` is not ``None``.) Adding a loss is one subclass and one
    line in :data:`MODEL_LOSSES` (worked example in ``docs/models.md``).

    Class attributes:
        name: the registry name (``agent=mbpo_<name>`` / ``svg_<name>``).
        gaussian: the model needs a log-variance head (Gaussian NLL).
        needs_value_function: the loss reads the critic (``targets`` needs a ``value_fn``).
    """

    name: ClassVar[str] = "mse"
    gaussian: ClassVar[bool] = False
    needs_value_function: ClassVar[bool] = False
    logvar_bound_penalty: ClassVar[float] = 0.0
    """Coefficient ``c`` of ``c · (Σ max_logvar − Σ min_logvar)`` added to the ensemble objective
    (mbrl-lib's Gaussian models; a constant while the bounds are not learned)."""

    def targets(self, value_fn: ValueFunction | None, next_obs: torch.Tensor) -> ValueTargets | None:
        """What the loss needs from the critic at the true next states ``(*batch, d)``, computed
        once per training call (the critic does not change within one); ``None`` for losses that do
        not read the critic."""
        return None

    def per_sample(
        self,
        pred_next_obs: torch.Tensor,
        true_next_obs: torch.Tensor,
        value_targets: ValueTargets | None = None,
        *,
        pred_logvar: torch.Tensor | None = None,
        value_fn: ValueFunction | None = None,
    ) -> torch.Tensor:
        """State part of the loss, per sample.

        Args:
            pred_next_obs: ``(*batch, d)`` predicted next states, raw units (``s + Δ̂``).
            true_next_obs: ``(*batch, d)`` or a suffix-shaped tensor (e.g. ``(B, d)`` against an
                ensemble ``(E, B, d)``).
            value_targets: :meth:`targets` of these transitions (value-aware losses; required
                there). Their batch dims must be a suffix of (or equal to) ``batch``.
            pred_logvar: ``(*batch, d)`` state log-variances (Gaussian losses; required there).
            value_fn: the critic/actor view (losses that evaluate the critic at the prediction).

        Returns:
            ``batch``-shaped per-sample loss.

        Raises:
            ValueError: a required argument is missing, naming it and the loss.
        """
        return mse_loss(pred_next_obs, true_next_obs.expand_as(pred_next_obs))

    def reward_per_sample(
        self,
        pred_reward: torch.Tensor,
        true_reward: torch.Tensor,
        *,
        pred_reward_logvar: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reward part of the loss, per sample: ``(r̂ − r)²`` (the Gaussian loss overrides it).

        Args:
            pred_reward: ``(*batch)`` predicted rewards.
            true_reward: ``(*batch)`` or a suffix shape.
            pred_reward_logvar: ``(*batch)`` (Gaussian losses only).
        """
        return (pred_reward - true_reward).pow(2)

    def ensemble_per_sample(self, state_loss: torch.Tensor, reward_loss: torch.Tensor, obs_dim: int) -> torch.Tensor:
        """The per-sample objective of MBPO's ensemble trainer from :meth:`per_sample` (a mean over
        the ``obs_dim`` state dims) and :meth:`reward_per_sample`.

        Default (the value-aware losses, upstream ``VAMLMLP._vaml_loss``, ``mbrl/models/vaml_mlp.py``
        L280–348 @caf9b92): ``state + reward`` — the reward error keeps weight 1 against the
        *per-dim mean* of the state term.
        """
        return state_loss + reward_loss

    def ensemble_reduce(self, per_sample: torch.Tensor) -> torch.Tensor:
        """Reduce the ``(E, B)`` per-sample objective of a training batch to the scalar Adam
        minimises. Default (``VAMLMLP.loss``, ``vaml_mlp.py`` L378 @caf9b92): the plain mean over
        members and batch."""
        return per_sample.mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _require(self, what: str, value, why: str):
        if value is None:
            raise ValueError(f"model loss {self.name!r} needs {what} ({why})")
        return value


class MSELoss(ModelLoss):
    """``mse``: ``mean_k (ŝ'_k − s'_k)²`` over the state dims (the :class:`ModelLoss` defaults).

    In MBPO's ensemble it is upstream's deterministic ``GaussianMLP._mse_loss``
    (``mbrl/models/gaussian_mlp.py`` L270–276, pairlab/vagram@caf9b92): summed over members, batch
    and the ``d + 1`` outputs, the reward being one output among them.
    """

    name = "mse"

    def ensemble_per_sample(self, state_loss, reward_loss, obs_dim):
        """``Σ_k e_k² + e_r² = d · mean_k e_k² + e_r²``."""
        return obs_dim * state_loss + reward_loss

    def ensemble_reduce(self, per_sample):
        """The sum over members and batch (with the sum over outputs above, weight decay is
        effectively ``λ / (B (d + 1))`` of a mean loss's: nearly off, as upstream)."""
        return per_sample.sum()


class GaussianNLLLoss(ModelLoss):
    """``mle``: the Gaussian NLL of mbrl-lib's ``GaussianMLP`` on the state and the reward output."""

    name = "mle"
    gaussian = True
    logvar_bound_penalty = 0.01  # gaussian_mlp.py L290 @caf9b92

    def ensemble_per_sample(self, state_loss, reward_loss, obs_dim):
        """The mean of the NLL over the ``d + 1`` outputs: ``(d · mean_k NLL_k + NLL_r) / (d + 1)``
        (``GaussianMLP._nll_loss``, ``gaussian_mlp.py`` L278–292 @caf9b92: ``.mean((1, 2))``)."""
        return (obs_dim * state_loss + reward_loss) / (obs_dim + 1)

    def ensemble_reduce(self, per_sample):
        """Mean over the batch, sum over members (``.mean((1, 2)).sum()``)."""
        return per_sample.mean(-1).sum()

    def per_sample(self, pred_next_obs, true_next_obs, value_targets=None, *, pred_logvar=None, value_fn=None):
        pred_logvar = self._require("pred_logvar", pred_logvar, "the model's log-variance head")
        return gaussian_nll_loss(pred_next_obs, pred_logvar, true_next_obs.expand_as(pred_next_obs))

    def reward_per_sample(self, pred_reward, true_reward, *, pred_reward_logvar=None):
        """``(r̂ − r)² · exp(−lv) + lv`` with a reward log-variance (mbrl-lib's Gaussian model treats
        the reward as one more output of the same likelihood), else ``(r̂ − r)²``."""
        err2 = (pred_reward - true_reward).pow(2)
        if pred_reward_logvar is not None:
            return err2 * torch.exp(-pred_reward_logvar) + pred_reward_logvar
        return err2


class IterVAMLLoss(ModelLoss):
    """``itervaml``: ``mean_h (V_h(ŝ') − V_h(s'))²`` over the Q heads; the true-state values are
    the targets, the predicted-state values are evaluated through the critic (differentiable)."""

    name = "itervaml"
    needs_value_function = True

    def targets(self, value_fn, next_obs):
        value_fn = self._require("value_fn", value_fn, "the agent's ValueFunction")
        return compute_value_targets(value_fn, next_obs, gradients=False)

    def per_sample(self, pred_next_obs, true_next_obs, value_targets=None, *, pred_logvar=None, value_fn=None):
        value_targets = self._require("value_targets", value_targets, "from loss.targets(value_fn, next_obs)")
        value_fn = self._require("value_fn", value_fn, "to evaluate V at the prediction")
        v_pred = values_at(value_fn, pred_next_obs)
        return itervaml_loss(v_pred, value_targets.values.to(v_pred.dtype))


@dataclasses.dataclass(repr=True)
class VaGraMLoss(ModelLoss):
    """``vagram``: the value-gradient weighted error, bounded ``mean_h mean_k (g_hk e_k)²`` (the
    paper's objective, ``use_scaling`` in upstream ``mbrl/models/vaml_mlp.py``) or unbounded ``mean_h (Σ_k
    g_hk e_k)²``.

    Attributes:
        bounded: which form.
        clip_quantile: clip the per-sample gradient norms of each minibatch at this quantile
            (:func:`clip_by_norm_quantile`; the paper's 0.95); ``None`` disables clipping.
        member_dims: leading batch dims of the predictions that index independent models (an MBPO
            population's members): the clipping quantile is taken per member.
    """

    name: ClassVar[str] = "vagram"
    needs_value_function: ClassVar[bool] = True
    bounded: bool = True
    clip_quantile: float | None = None
    member_dims: int = dataclasses.field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.clip_quantile is not None and not 0.0 < self.clip_quantile <= 1.0:
            raise ValueError(f"clip_quantile must be None or in (0, 1]; got {self.clip_quantile}")

    def targets(self, value_fn, next_obs):
        value_fn = self._require("value_fn", value_fn, "the agent's ValueFunction")
        return compute_value_targets(value_fn, next_obs, gradients=True)

    def per_sample(self, pred_next_obs, true_next_obs, value_targets=None, *, pred_logvar=None, value_fn=None):
        value_targets = self._require("value_targets", value_targets, "from loss.targets(value_fn, next_obs)")
        grads = value_targets.grads
        if self.clip_quantile is not None:
            grads = clip_by_norm_quantile(grads, self.clip_quantile, self.member_dims)
        return vagram_loss(pred_next_obs, true_next_obs.expand_as(pred_next_obs), grads, self.bounded)


MODEL_LOSSES: dict[str, type[ModelLoss]] = {
    cls.name: cls for cls in (MSELoss, GaussianNLLLoss, IterVAMLLoss, VaGraMLoss)
}
"""The registry: loss name -> class. The one list of valid ``model_loss`` names."""

LOSS_NAMES = tuple(MODEL_LOSSES)
"""The valid names for :func:`make_model_loss` (the keys of :data:`MODEL_LOSSES`)."""


def make_model_loss(name: str, **options) -> ModelLoss:
    """Build the registered model loss ``name``.

    Args:
        name: a key of :data:`MODEL_LOSSES`: ``"mse"``, ``"mle"`` (Gaussian NLL; the model needs a
            log-variance head), ``"itervaml"`` or ``"vagram"``.
        options: loss options; each loss takes the ones it defines and ignores the rest, so an
            agent passes its config's loss options without asking which loss it has
            (``vagram``: ``bounded``, ``clip_quantile``).

    Examples:
        >>> make_model_loss("vagram", clip_quantile=0.95)
        VaGraMLoss(bounded=True, clip_quantile=0.95)
        >>> make_model_loss("mle", clip_quantile=0.95).gaussian
        True
        >>> make_model_loss("l1")
        Traceback (most recent call last):
        ...
        ValueError: unknown model loss 'l1'; valid choices: mse, mle, itervaml, vagram
    """
    if name not in MODEL_LOSSES:
        raise ValueError(f"unknown model loss {name!r}; valid choices: {', '.join(MODEL_LOSSES)}")
    cls = MODEL_LOSSES[name]
    accepted = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return cls(**{k: v for k, v in options.items() if k in accepted})
