"""The dynamics ensembles of ``K`` population members as one batched model, and their training.

:class:`EnsemblePopulation` stacks ``K`` :class:`~vagram_bench.models.ensemble.EnsembleDynamicsModel`
(each built, and initialised, as its single agent builds it) into weights ``(K, E, in, out)``, which
one optimiser steps for all members; a forward pass and the loss run member by member on the member's
own slices, with its single model's kernels and shapes.
:class:`PopulationModelTrainer` is :class:`~vagram_bench.models.trainer.ModelTrainer` for all members
at once: the same splits, bootstraps, minibatch orders and validation scores, drawn and computed per
member, with **per-member early stopping** -- a member whose patience ran out (or that reached the
epoch cap) draws nothing more, neither its weights nor its optimiser state change
(:class:`~vagram_bench.optim.MemberAdam`), and it is not computed any more (each epoch's minibatches and validation
scoring compute the members still training only, :meth:`EnsemblePopulation.only`),
while the others go on; its best snapshot is restored as a single run restores it. Host reads: one
per epoch (the validation scores, the epoch's training losses and the non-finite flags of every member
together).

Member ``k``'s numbers equal its single trainer's bitwise on CPU with one intra-op thread, by
construction (``tests/test_mbpo_population.py``, at sizes that leave elementwise kernels scalar tails
too): its forward pass, loss and critic run on tensors of its own with the single trainer's operations
and shapes (:meth:`EnsemblePopulation.forward`, :meth:`PopulationModelTrainer.per_sample_loss`), the
members' objectives are summed into one backward pass (each member's gradient is its own, the others'
are zeros), and Adam is torch's own single-tensor implementation on each member's slices
(``MemberAdam`` with ``kernel="single_tensor"``: the one the single trainer's ``torch.optim.Adam`` runs
for CPU tensors). With several threads the kernels may partition work differently from the single
run's (about 1e-8 relative), as for the SAC population.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vagram_bench.models.ensemble import EnsembleDynamicsModel, soft_bound_logvar
from vagram_bench.models.losses import ModelLoss, ValueTargets
from vagram_bench.models.trainer import ModelTrainer, TrainingResult
from vagram_bench.optim import MemberAdam

__all__ = ["EnsemblePopulation", "PopulationModelTrainer", "stack_value_targets"]


class EnsemblePopulation(nn.Module):
    """``K`` bootstrap ensembles of one architecture with a leading member dimension.

    Args:
        models: member ``k``'s ensemble, built as its single agent builds it. The models stay usable
            as views: their parameters and buffers are re-pointed to member ``k``'s slices of the
            stacked tensors (:meth:`member_model`), so a member's rollouts, normaliser fit, elites and
            checkpoints are its single model's code on its own slices.

    Attributes:
        weights, biases: per layer (hidden layers, then the head) ``(K, E, in, out)`` / ``(K, E, 1, out)``.
        in_mean, in_std: ``(K, in)`` input statistics; elite_idx: ``(K, num_elites)``.
    """

    def __init__(self, models: Sequence[EnsembleDynamicsModel]) -> None:
        super().__init__()
        first = models[0]
        self.num_members = len(models)
        for name in ("obs_dim", "act_dim", "ensemble_size", "num_elites", "gaussian", "out_dim"):
            setattr(self, name, getattr(first, name))
        layers = [list(m.hidden) + [m.head] for m in models]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].weight.detach() for ls in layers]).clone()) for i in range(len(layers[0]))]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].bias.detach() for ls in layers]).clone()) for i in range(len(layers[0]))]
        )
        self.register_buffer("min_logvar", first.min_logvar.clone())
        self.register_buffer("max_logvar", first.max_logvar.clone())
        for name in ("in_mean", "in_std", "elite_idx"):
            self.register_buffer(name, torch.stack([getattr(m, name) for m in models]).clone())
        for k, (model, model_layers) in enumerate(zip(models, layers)):
            for layer, weight, bias in zip(model_layers, self.weights, self.biases):
                layer.weight = nn.Parameter(weight.detach()[k], requires_grad=False)
                layer.bias = nn.Parameter(bias.detach()[k], requires_grad=False)
            for name in ("in_mean", "in_std", "elite_idx"):
                setattr(model, name, getattr(self, name)[k])
            model.min_logvar, model.max_logvar = self.min_logvar, self.max_logvar
        self._members = list(models)  # a plain list: not submodules (their tensors are views of ours)
        self._rows: list[int] | None = None  # forward passes compute only these members (None: all)

    def member_model(self, member: int) -> EnsembleDynamicsModel:
        """Member ``member``'s ensemble as an :class:`EnsembleDynamicsModel` whose parameters and
        buffers are views of its slices (reads and in-place writes go to the population)."""
        return self._members[member]

    def parameters_in_order(self) -> list[nn.Parameter]:
        """The stacked parameters in the single model's ``parameters()`` order (weight, bias per layer)."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    @contextlib.contextmanager
    def only(self, members: Sequence[int] | None) -> Iterator[None]:
        """Forward passes inside compute only the members ``members`` (member indices; ``None``: all):
        their inputs and outputs have ``len(members)`` leading rows, in that order, and gradients reach
        only those members' slices of the weights."""
        previous, self._rows = self._rows, None if members is None else [int(k) for k in members]
        try:
            yield
        finally:
            self._rows = previous

    # ------------------------------------------------------------------ forward passes
    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar)`` of ``(Δ, r)`` for every member of every ensemble (of the members of
        :meth:`only`, when inside it), each member's computed as its single model's forward
        (:meth:`EnsembleDynamicsModel.forward`) computes it: the same operations on tensors of the
        single model's shapes, the member's own.

        Why member by member: an elementwise kernel (``silu``, ``softplus`` and their derivatives) over
        one stacked ``(K·E, n, ·)`` tensor computes its last partial SIMD block with scalar code that
        rounds differently from the vectorised body, so which of a member's elements fall into that
        tail would depend on ``K`` (docs/runner.md, "Determinism contract"); over a member's own tensor
        the loop covers exactly its single model's elements. The weights are per-member views
        (``unbind``: one autograd node per layer, whose backward stacks the members' gradients once).
        No slower than the stacked pass it replaced: one ``train_members`` call at the cpu2 sizes (K=8,
        E=7, 4×200, 2,001 transitions, 4 epochs, one thread, process CPU, the two commits' checkouts
        alternating in one script beside other jobs) took 5.85 / 5.26 / 5.81 s against 6.50 / 5.50 /
        5.83 s for ``mle``, and 108 / 100 s against 155 / 146 / 146 s for ``itervaml``, whose critic now
        runs per member with the single learner's kernels. (On CPU; on a GPU the ``K`` small launches per
        layer may cost more than one batched kernel: not measured.)

        Args:
            obs: ``(K, E, N, d)`` (one batch per ensemble member) or ``(K, 1, N, d)`` (one batch
                per population member, shared by its ensemble).
            action: same leading shape as ``obs``.

        Returns:
            ``(K, E, N, d + 1)`` means and log-variances (``None`` for a deterministic model).
        """
        members = range(self.num_members) if self._rows is None else self._rows
        if obs.shape[0] != len(members) or action.shape[0] != len(members):
            raise ValueError(f"obs and action need one row per member computed ({len(members)}); "
                             f"got {tuple(obs.shape)} and {tuple(action.shape)}")
        layers = [(w.unbind(0), b.unbind(0)) for w, b in zip(self.weights, self.biases)]
        last = len(layers) - 1
        means, logvars = [], []
        for i, k in enumerate(members):
            x = (torch.cat([obs[i], action[i]], -1) - self.in_mean[k]) / self.in_std[k]
            h = x.expand(self.ensemble_size, -1, -1)  # a shared batch: as the single model's forward expands it
            for j, (weights, biases) in enumerate(layers):
                h = torch.baddbmm(biases[k], h, weights[k])
                if j < last:
                    h = F.silu(h)
            if not self.gaussian:
                means.append(h)
                continue
            mean, raw_lv = h.split(self.out_dim, dim=-1)
            means.append(mean)
            logvars.append(soft_bound_logvar(raw_lv, self.min_logvar, self.max_logvar))
        return torch.stack(means), (torch.stack(logvars) if self.gaussian else None)


@dataclasses.dataclass
class _MemberFit:
    """The bookkeeping of one :meth:`PopulationModelTrainer.train_members` call, per member ``k`` (a
    member leaves ``running`` when it stops, and enters ``errors`` when it fails)."""

    running: list[int]
    errors: dict[int, str]
    best: torch.Tensor
    """``(K, E)``: upstream's running best validation score, which early stopping reads."""
    own_best: torch.Tensor
    """``(K, E)``: each ensemble member's own lowest score (the ``per_member`` snapshot rule)."""
    last_val: torch.Tensor
    """``(K, E)``: the last epoch's scores (the ``last`` snapshot rule)."""
    best_params: list[torch.Tensor]
    """The snapshot's weights (initially the pre-training ones), in ``parameters_in_order``."""
    val_history: dict[int, list[list[float]]]
    train_losses: dict[int, list[float]]
    epochs: dict[int, int]
    since_improved: dict[int, int]
    restored: dict[int, bool]


class PopulationModelTrainer(ModelTrainer):
    """:class:`ModelTrainer` for the ``K`` ensembles of an :class:`EnsemblePopulation`.

    Args: as :class:`ModelTrainer`, with ``generators`` (member ``k``'s split, bootstrap and batch
    order come from ``generators[k]``, as its single trainer's from its ``generator``), and the
    optimiser's settings (:class:`~vagram_bench.optim.MemberAdam` with the single trainer's
    ``torch.optim.Adam`` kernel, ``"single_tensor"``, created once and warm-started across calls as
    upstream's): ``lr``, ``weight_decay`` (MBPO Hopper: ``1e-3``, ``5e-5``) and
    ``decoupled_weight_decay`` (AdamW's decay ``lr · weight_decay · θ`` per step, independent of the
    loss's scale, hence equal for every loss, instead of Adam's coupled L2 term, upstream's).
    """

    def __init__(self, model: EnsemblePopulation, loss: ModelLoss, *, generators: Sequence[torch.Generator],
                 lr: float = 1e-3, weight_decay: float = 5e-5, decoupled_weight_decay: bool = False,
                 **options: Any) -> None:
        super().__init__(model, loss, generator=generators[0], **options)
        self.generators = list(generators)
        self.optimizer = MemberAdam(model.parameters_in_order(), model.num_members, lr, weight_decay,
                                    decoupled_weight_decay, kernel="single_tensor")

    def member_objectives(self, per_sample: torch.Tensor) -> torch.Tensor:
        """The scalar each member's Adam minimises, for the ``(E, B)`` slices of a ``(K, E, B)`` per-sample
        objective: ``(K,)``, the loss's :meth:`~ModelLoss.ensemble_reduce` plus its log-variance-bound penalty."""
        loss = torch.vmap(self.loss.ensemble_reduce)(per_sample)
        if self.loss.logvar_bound_penalty and self.model.gaussian:
            loss = loss + self.loss.logvar_bound_penalty * (self.model.max_logvar.sum() - self.model.min_logvar.sum())
        return loss

    # ------------------------------------------------------------------ training
    def train_members(
        self,
        data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        members: Sequence[int],
        *,
        value_fns: Sequence[Any] | None = None,
        value_targets: ValueTargets | None = None,
        add_mse: bool = False,
    ) -> tuple[dict[int, TrainingResult], dict[int, str]]:
        """One model-training call of ``members`` on their real data (the others are left untouched).

        Args:
            data: ``obs (K, n, d), action (K, n, a), reward (K, n), next_obs (K, n, d)``; member
                ``k``'s ``n`` transitions in row ``k`` (rows of other members: any finite values).
            members: the members to train (each has ``n`` transitions).
            value_fns: member ``k``'s critic as a single learner's
                :class:`~vagram_bench.interfaces.ValueFunction` at ``value_fns[k]`` (e.g.
                ``SACPopulationLearner.member_value_function``), for losses that evaluate the critic at the
                prediction.
            value_targets: ``grads (H, K, n, d)``, ``values (H, K, n)``: each member's
                ``loss.targets`` (value-aware losses).
            add_mse: the warm-up MSE term.

        Returns:
            ``{member: TrainingResult}`` of the members that trained, ``{member: error}`` of those whose
            loss or prediction was not finite (what the single trainer raises as
            ``ModelDivergenceError``).
        """
        obs, action = data[0], data[1]
        members = [int(k) for k in members]
        if not members:
            return {}, {}
        for k in members:
            self.model.member_model(k).fit_normalizer(obs[k], action[k])
        ctx = dict(value_targets=value_targets, value_fns=value_fns, add_mse=add_mse)

        # ---- the splits and bootstraps of each member, drawn as its single trainer draws them
        n_val = int(obs.shape[1] * self.validation_ratio)
        n_train = obs.shape[1] - n_val
        val_idx, member_idx = self._draw_splits(members, n_train, n_val, obs.device)

        # ---- the scores before training: the first snapshot (a member already non-finite fails here)
        fit = self._start_fit(data, val_idx, members, ctx)

        # ---- epochs, each of the members still training, until patience (or the epoch cap) stops each
        limit = self.fixed_epochs if self.fixed_epochs is not None else self.max_epochs
        while fit.running:
            fit.running = [k for k in fit.running if limit is None or fit.epochs[k] < limit]
            if not fit.running:
                break
            self._fit_epoch(fit, data, member_idx, val_idx, ctx)
            fit.running = [k for k in fit.running if k not in fit.errors
                           and (self.fixed_epochs is not None or fit.since_improved[k] < self.patience)]

        # ---- the snapshot rule's weights back, the elites, and each member's result
        self._restore_snapshots(fit)
        results = self._member_results(fit, data, val_idx, (n_train, n_val), ctx)
        return results, fit.errors

    def _draw_splits(self, members: list[int], n_train: int, n_val: int,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's validation rows ``(K, n_val)`` (its training rows when ``n_val`` is 0: too
        little data, score on the training data) and its ensemble's bootstraps ``(K, E, n_train)``, drawn
        from its generator in its single trainer's order; zeros for the other members."""
        K, E = self.model.num_members, self.model.ensemble_size
        n = n_train + n_val
        perm = torch.zeros(K, n, dtype=torch.long, device=device)
        member_idx = torch.zeros(K, E, n_train, dtype=torch.long, device=device)
        for k in members:
            g = self.generators[k]
            perm[k] = torch.randperm(n, generator=g, device=device)
            member_idx[k] = perm[k, n_val:][torch.randint(0, n_train, (E, n_train), generator=g, device=device)]
        val_idx = perm[:, :n_val] if n_val else perm[:, n_val:]
        return val_idx, member_idx

    def _start_fit(self, data, val_idx: torch.Tensor, members: list[int], ctx: dict[str, Any]) -> _MemberFit:
        """The bookkeeping of a training call from the members' scores before training; a member whose
        score is not finite fails and does not train."""
        best = self.score_members(data, val_idx, self._rows(members), **ctx)
        bad_val = ~torch.isfinite(best).all(-1)
        best_host, bad_host = best.cpu(), bad_val.cpu()
        errors = {k: self._nonfinite_validation(best_host[k]) for k in members if bad_host[k]}
        running = [k for k in members if k not in errors]
        return _MemberFit(
            running=running, errors=errors, best=best, own_best=best.clone(), last_val=best.clone(),
            best_params=[p.detach().clone() for p in self.model.parameters_in_order()],
            val_history={k: [best_host[k].tolist()] for k in running}, train_losses={k: [] for k in running},
            epochs=dict.fromkeys(running, 0), since_improved=dict.fromkeys(running, 0),
            restored=dict.fromkeys(running, self.snapshot == "per_member"),
        )

    def _fit_epoch(self, fit: _MemberFit, data, member_idx: torch.Tensor, val_idx: torch.Tensor,
                   ctx: dict[str, Any]) -> None:
        """One epoch of ``fit.running``: train, score, and update each member's snapshot (the rules of
        :class:`ModelTrainer`: ``best`` is upstream's running best, which stopping reads; ``per_member``
        keeps each (member, ensemble member)'s own lowest score and its weights from that epoch in
        ``best_params``; ``last`` ranks on each member's last scores)."""
        device = member_idx.device
        per_member, last = self.snapshot == "per_member", self.snapshot == "last"
        params = self.model.parameters_in_order()
        rows = self._rows(fit.running)
        train_loss, first_bad_loss = self._train_epoch_members(data, member_idx, fit.running, rows, **ctx)
        val = self.score_members(data, val_idx, rows, **ctx)
        improvement = (fit.best - val) / fit.best.abs().clamp_min(1e-12)
        improved = (improvement > self.improvement_threshold).any(-1)
        better = val < fit.own_best
        # one host read per epoch: validation scores, training losses, improvements, failures
        host = torch.cat([val.double(), train_loss[:, None], first_bad_loss[:, None],
                          improved[:, None].double(), better.double()], 1).cpu().numpy()
        stepped, own = self._read_epoch(fit, val, host)
        if stepped:
            rows = torch.as_tensor(stepped, device=device)
            fit.best[rows] = torch.minimum(fit.best[rows], val[rows])
            if not (per_member or last):
                for p, b in zip(params, fit.best_params):
                    b[rows] = p.detach()[rows]
        if last:
            rows = torch.as_tensor([k for k in fit.running if k not in fit.errors], dtype=torch.long, device=device)
            fit.last_val[rows] = val[rows]
        if own:
            kk, ee = (torch.as_tensor(v, dtype=torch.long, device=device) for v in zip(*own))
            fit.own_best[kk, ee] = val[kk, ee]
            for p, b in zip(params, fit.best_params):
                b[kk, ee] = p.detach()[kk, ee]

    def _read_epoch(self, fit: _MemberFit, val: torch.Tensor, host: np.ndarray) -> tuple[list[int], list]:
        """Each running member's epoch from the host copy ``host`` (columns: ``E`` validation scores,
        training loss, first non-finite loss, improved, ``E`` better-than-own-best flags): its failure,
        or its history and patience. Returns the members that improved and, for ``per_member``, the
        ``(member, ensemble member)`` pairs that beat their own best."""
        E = self.model.ensemble_size
        per_member, last = self.snapshot == "per_member", self.snapshot == "last"
        stepped, own = [], []
        for k in fit.running:
            fit.epochs[k] += 1
            if not math.isnan(host[k, E + 1]):
                fit.errors[k] = self._nonfinite_training(host[k, E + 1])
                continue
            if not np.isfinite(host[k, :E]).all():
                fit.errors[k] = self._nonfinite_validation(torch.from_numpy(host[k, :E]).float())
                continue
            fit.train_losses[k].append(float(host[k, E]))
            fit.val_history[k].append(val[k].tolist())
            if host[k, E + 2]:
                fit.since_improved[k] = 0
                fit.restored[k] = fit.restored[k] or not (per_member or last)
                stepped.append(k)
            else:
                fit.since_improved[k] += 1
            if per_member:
                own += [(k, e) for e in np.flatnonzero(host[k, E + 3:])]
        return stepped, own

    @torch.no_grad()
    def _restore_snapshots(self, fit: _MemberFit) -> None:
        """The snapshot weights back into the members that restore them (and did not fail)."""
        back = [k for k, r in fit.restored.items() if r and k not in fit.errors]
        if back:
            rows = torch.as_tensor(back, device=fit.best.device)
            for p, b in zip(self.model.parameters_in_order(), fit.best_params):
                p[rows] = b[rows]

    def _member_results(self, fit: _MemberFit, data, val_idx: torch.Tensor, sizes: tuple[int, int],
                        ctx: dict[str, Any]) -> dict[int, TrainingResult]:
        """Each trained member's elites (ranked by its snapshot rule's scores) and result; a member whose
        final validation MSE is not finite fails instead."""
        model = self.model
        rank = fit.own_best if self.snapshot == "per_member" else fit.last_val if self.snapshot == "last" else fit.best
        trained = [k for k in fit.epochs if k not in fit.errors]
        for k in trained:
            model.member_model(k).set_elites(torch.argsort(rank[k])[: model.num_elites])
        if trained:
            val_mse_host = self.score_members(data, val_idx, self._rows(trained), **ctx, metric="mse").cpu()
            val_score_host = (val_mse_host if self.val_metric == "mse"
                              else self.score_members(data, val_idx, self._rows(trained), **ctx).cpu())
        results = {}
        for k in trained:
            if not torch.isfinite(val_mse_host[k]).all():
                fit.errors[k] = self._nonfinite_validation(val_mse_host[k])
                continue
            results[k] = TrainingResult(
                epochs=fit.epochs[k], train_losses=fit.train_losses[k], val_scores=fit.val_history[k],
                best_val_scores=rank[k].tolist(), elites=model.elite_idx[k].tolist(), restored_best=fit.restored[k],
                train_size=sizes[0], val_size=sizes[1], val_mse=val_mse_host[k].tolist(), val_score=val_score_host[k].tolist(),
            )
        return results

    def _nonfinite_validation(self, val: torch.Tensor) -> str:
        return f"non-finite validation score of model loss {self.loss.name!r}: {val.tolist()}"

    def _nonfinite_training(self, loss_value: float) -> str:
        return (f"non-finite training loss of model loss {self.loss.name!r} ({loss_value}); "
                "the model diverged (check the learning rate, the data, or the value gradients)")

    # Per-member early stopping leaves members idle while the slowest one trains on: measured at K=5
    # (mbpo_mse on Hopper, benchmarks/profile_population.py), epochs per member 436, 184, 351, 508, 370 in
    # one call, i.e. 16-27% of the batched model training computed members that had already stopped.
    # So every epoch computes only the members still training (each member computes on tensors of its own,
    # so a subset's numbers are its members' own): that call took 101 s of process CPU instead of 140 s
    # (one thread, measured when the members were computed as one stacked tensor; a subset's epoch scales
    # with its members).
    #: compute every member in every epoch, stopped or not (the old behaviour: for the benchmark's
    #: before/after comparison only)
    _compute_stopped_members = False

    def _rows(self, members: Sequence[int]) -> list[int] | None:
        """The members an epoch (or a scoring) computes: ``None`` (all, without gathering) when
        ``members`` is the whole population in order, else the members."""
        if self._compute_stopped_members or list(members) == list(range(self.model.num_members)):
            return None
        return list(members)

    def _index(self, rows: list[int] | None) -> torch.Tensor | None:
        return None if rows is None else torch.as_tensor(rows, dtype=torch.long, device=self.model.in_mean.device)

    def per_sample_loss(self, obs, action, reward, next_obs, *, value_targets=None, value_fns=None,
                        add_mse=False, metric="loss") -> torch.Tensor:
        """:meth:`ModelTrainer.per_sample_loss` of the members computed (:meth:`EnsemblePopulation.only`)
        on their ``(K', E, B, ·)`` batches: ``(K', E, B)``, each member's objective computed on tensors of
        its own from its own predictions, value targets and critic (``value_fns[k]``), as its single
        trainer computes it: the losses' ``exp`` and the critic's kernels over a stacked tensor would
        round a member's scalar-tail elements by ``K`` (see :meth:`EnsemblePopulation.forward`)."""
        members = range(self.model.num_members) if self.model._rows is None else self.model._rows
        mean, logvar = self.model(obs, action)
        return torch.cat([
            self.loss_of_prediction(
                mean[i : i + 1], None if logvar is None else logvar[i : i + 1], obs[i : i + 1], reward[i : i + 1],
                next_obs[i : i + 1], value_targets=None if value_targets is None else value_targets[i : i + 1],
                value_fn=None if value_fns is None else value_fns[k], add_mse=add_mse, metric=metric)
            for i, k in enumerate(members)
        ])

    def _gather(self, data, value_targets, index: torch.Tensor, rows: torch.Tensor | None = None):
        """Member ``rows[i]``'s transitions at ``index[i]`` (``index`` ``(K', ...)``; ``rows``: the
        members' indices on the device, built once per epoch by the caller; ``None``: every member) and
        their value targets."""
        if rows is None:
            rows = torch.arange(index.shape[0], device=index.device)
        rows = rows.view(-1, *([1] * (index.dim() - 1)))
        picked = [t[rows, index] for t in data]
        targets = None
        if value_targets is not None:
            grads = None if value_targets.grads is None else value_targets.grads[:, rows, index]
            targets = ValueTargets(grads, value_targets.values[:, rows, index])
        return picked, targets

    def _train_epoch_members(self, data, member_idx: torch.Tensor, running: list[int], rows: list[int] | None,
                             *, value_targets=None, value_fns=None, add_mse=False) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch of ``running`` (computing the members ``rows``, :meth:`_rows`): ``(K,)`` mean training
        objective per sample (float64) and the first non-finite objective of each member (NaN: none; both
        0 / NaN for members not computed), on the device."""
        K, E, n_train = member_idx.shape
        device = member_idx.device
        order = torch.zeros(K, n_train, dtype=torch.long, device=device)
        for k in running:
            order[k] = torch.randperm(n_train, generator=self.generators[k], device=device)
        row_index = self._index(rows)  # once per epoch: a host-to-device copy on a GPU
        if rows is not None:
            order, member_idx = order[row_index], member_idx[row_index]
        computed = order.shape[0]
        total = torch.zeros(computed, dtype=torch.float64, device=device)
        first_bad = torch.full((computed,), math.nan, dtype=torch.float64, device=device)
        batches = 0
        for start in range(0, n_train, self.batch_size):
            cols = order[:, start : start + self.batch_size]
            bi = member_idx.gather(2, cols[:, None, :].expand(computed, E, cols.shape[1]))  # (K', E, B) positions
            (obs, action, reward, next_obs), targets = self._gather(data, value_targets, bi, row_index)
            with self.model.only(rows):
                ps = self.per_sample_loss(obs, action, reward, next_obs, value_targets=targets, value_fns=value_fns,
                                          add_mse=add_mse)
            objective = self.member_objectives(ps)
            with torch.no_grad():
                bad = ~torch.isfinite(objective) & torch.isnan(first_bad)
                first_bad = torch.where(bad, objective.double(), first_bad)
                total += ps.detach().mean((1, 2)).double()
            self.optimizer.zero_grad()
            objective.sum().backward(inputs=self.optimizer.params)
            self.optimizer.step(running)
            batches += 1
        return _all_members(total / max(batches, 1), rows, K, 0.0), _all_members(first_bad, rows, K, math.nan)

    @torch.no_grad()
    def score_members(self, data, idx: torch.Tensor, rows: list[int] | None = None, *, value_targets=None,
                      value_fns=None, add_mse=False, metric: str | None = None) -> torch.Tensor:
        """:meth:`ModelTrainer.score` of the members ``rows`` (default: every member) on their transitions
        ``idx[k]``: ``(K, E)`` float32, zeros for members not scored (not checked for finiteness: the caller
        reads it)."""
        K, E = self.model.num_members, self.model.ensemble_size
        row_index = self._index(rows)
        if rows is not None:
            idx = idx[row_index]
        total = torch.zeros(idx.shape[0], E, dtype=torch.float64, device=idx.device)
        for start in range(0, idx.shape[1], self.eval_batch_size):
            bi = idx[:, None, start : start + self.eval_batch_size]  # (K', 1, B): shared by the ensemble
            (obs, action, reward, next_obs), targets = self._gather(data, value_targets, bi, row_index)
            with self.model.only(rows):
                ps = self.per_sample_loss(obs, action, reward, next_obs, value_targets=targets, value_fns=value_fns,
                                          add_mse=add_mse, metric=self.val_metric if metric is None else metric)
            total += ps.sum(-1).to(torch.float64)
        return _all_members((total / idx.shape[1]).to(torch.float32), rows, K, 0.0)


def _all_members(values: torch.Tensor, rows: list[int] | None, num_members: int, fill: float) -> torch.Tensor:
    """``values`` of the members ``rows`` (``None``: all, returned as is) as rows of a ``(K, ...)`` tensor,
    ``fill`` in the other members' rows."""
    if rows is None:
        return values
    index = torch.as_tensor(rows, dtype=torch.long, device=values.device)
    return values.new_full((num_members, *values.shape[1:]), fill).index_copy_(0, index, values)


def stack_value_targets(targets: Sequence[ValueTargets]) -> ValueTargets:
    """Member targets ``(H, n, ...)`` stacked to ``(H, K, n, ...)``."""
    grads = None if targets[0].grads is None else torch.stack([t.grads for t in targets], 1)
    return ValueTargets(grads, torch.stack([t.values for t in targets], 1))

