"""Reference implementation for the tests: the single-seed training loop of :class:`ModelTrainer`.

The product trains every member of a population at once
(:meth:`vagram_bench.models.population.PopulationModelTrainer.train_members`, a single seed is its
population of one). This :class:`ModelTrainer` adds to the package's class (the settings and the
per-sample loss, which the population shares) ``torch.optim.Adam``, the objective and the loop of one ensemble, written
member by member in plain torch with mbrl-lib's semantics (see :mod:`vagram_bench.models.trainer`),
so the tests can check the population against an independent computation.
"""

from __future__ import annotations

import copy
import math

import torch

from vagram_bench.interfaces import ValueFunction
from vagram_bench.models import trainer as _product
from vagram_bench.models.losses import ValueTargets
from vagram_bench.models.trainer import ModelDivergenceError, TrainingResult

__all__ = ["ModelTrainer", "ModelDivergenceError", "TrainingResult"]


class ModelTrainer(_product.ModelTrainer):
    """:class:`vagram_bench.models.trainer.ModelTrainer` with the single-ensemble ``train``/``score``,
    its ``objective`` and ``torch.optim.Adam`` (created once and warm-started across calls, as
    upstream's).

    Args: as the package's, with ``lr``, ``weight_decay`` (Adam's) and ``decoupled_weight_decay``
    (``torch.optim.AdamW`` instead), as the population trainer takes them.
    """

    def __init__(self, model, loss, *, generator: torch.Generator, lr: float = 1e-3, weight_decay: float = 5e-5,
                 decoupled_weight_decay: bool = False, **options) -> None:
        super().__init__(model, loss, generator=generator, **options)
        optimizer_cls = torch.optim.AdamW if decoupled_weight_decay else torch.optim.Adam
        self.optimizer = optimizer_cls(model.parameters(), lr=lr, weight_decay=weight_decay)

    def objective(self, per_sample: torch.Tensor) -> torch.Tensor:
        """The scalar Adam minimises for a training batch's ``(E, B)`` per-sample objective: the
        loss's :meth:`~ModelLoss.ensemble_reduce` plus its log-variance-bound penalty."""
        loss = self.loss.ensemble_reduce(per_sample)
        if self.loss.logvar_bound_penalty and self.model.gaussian:
            bounds = self.model.max_logvar.sum() - self.model.min_logvar.sum()
            loss = loss + self.loss.logvar_bound_penalty * bounds
        return loss

    def train(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        *,
        value_fn: ValueFunction | None = None,
        value_targets: ValueTargets | None = None,
        add_mse: bool = False,
        fit_normalizer: bool = True,
        callback: Callable[[int, float, torch.Tensor], None] | None = None,
    ) -> TrainingResult:
        """One model-training call on the given (real-buffer) data.

        Args:
            obs, action, reward, next_obs: ``(N, d)``, ``(N, act_dim)``, ``(N,)`` or ``(N, 1)``,
                ``(N, d)`` — the real transitions, raw units.
            value_fn: the critic/actor view (required by the value-aware losses).
            value_targets: ``loss.targets(value_fn, next_obs)`` if the caller has computed them
                already (MBPO does, to time and record them); computed here otherwise.
            add_mse: add the warm-up MSE term (upstream ``add_mse``) to every sample, in training and scoring.
            fit_normalizer: refit the input normaliser on ``obs, action`` first (upstream does, every call).
            callback: ``callback(epoch, train_loss, val_scores)`` after every epoch.

        Raises:
            ModelDivergenceError: a non-finite loss or prediction.
        """
        n = obs.shape[0]
        reward = reward.reshape(n)
        if action.shape[0] != n or next_obs.shape[0] != n or reward.shape[0] != n:
            raise ValueError("obs, action, reward and next_obs must have the same number of transitions")
        if n < 2:
            raise ValueError(f"need at least 2 transitions to train a model; got {n}")
        if value_targets is None:
            value_targets = self.loss.targets(value_fn, next_obs)
        if fit_normalizer:
            self.model.fit_normalizer(obs, action)
        data = (obs, action, reward, next_obs)
        ctx = dict(value_targets=value_targets, value_fn=value_fn, add_mse=add_mse)

        g = self.generator
        perm = torch.randperm(n, generator=g, device=obs.device)
        n_val = int(n * self.validation_ratio)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        if n_val == 0:  # too little data for a split: score on the training data (as mbrl-lib)
            val_idx = train_idx
        n_train = train_idx.numel()
        E = self.model.ensemble_size
        member_idx = train_idx[torch.randint(0, n_train, (E, n_train), generator=g, device=obs.device)]

        best = self.score(data, val_idx, **ctx)
        val_history = [best.tolist()]
        train_losses: list[float] = []
        best_state, since_improved, epoch = None, 0, 0
        # per_member: each member's own lowest score and its weights from that epoch (initially the
        # pre-training ones); ``best`` stays upstream's running best, which the stopping rule reads
        own_best, own_state = best.clone(), None
        if self.snapshot == "per_member":
            own_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        val = best
        limit = self.fixed_epochs if self.fixed_epochs is not None else self.max_epochs
        while limit is None or epoch < limit:
            train_losses.append(self._train_epoch(data, member_idx, **ctx))
            epoch += 1
            val = self.score(data, val_idx, **ctx)
            val_history.append(val.tolist())
            if callback is not None:
                callback(epoch, train_losses[-1], val)
            if self.snapshot == "per_member":
                better = val < own_best
                if bool(better.any()):
                    own_best = torch.where(better, val, own_best)
                    _copy_members(own_state, self.model, better)
            improvement = (best - val) / best.abs().clamp_min(1e-12)
            if bool((improvement > self.improvement_threshold).any()):
                best = torch.minimum(best, val)
                if self.snapshot == "upstream":
                    best_state = copy.deepcopy(self.model.state_dict())
                since_improved = 0
            else:
                since_improved += 1
                if self.fixed_epochs is None and since_improved >= self.patience:
                    break
        if self.snapshot == "per_member":
            best_state, best = own_state, own_best
        elif self.snapshot == "last":
            best = val
        if best_state is not None:
            self.model.load_state_dict(best_state)
        elites = torch.argsort(best)[: self.model.num_elites]
        self.model.set_elites(elites)
        val_mse = self.score(data, val_idx, **ctx, metric="mse")
        val_score = val_mse if self.val_metric == "mse" else self.score(data, val_idx, **ctx)
        return TrainingResult(
            epochs=epoch,
            train_losses=train_losses,
            val_scores=val_history,
            best_val_scores=best.tolist(),
            elites=elites.tolist(),
            restored_best=best_state is not None,
            train_size=n_train,
            val_size=n_val,
            val_mse=val_mse.tolist(),
            val_score=val_score.tolist(),
        )

    @torch.no_grad()
    def score(
        self, data, idx: torch.Tensor, *, value_targets=None, value_fn=None, add_mse=False, metric: str | None = None
    ) -> torch.Tensor:
        """Per-member mean validation score over the transitions ``idx`` of ``data`` (all members see
        the same transitions); ``metric`` defaults to the trainer's ``val_metric``."""
        obs, action, reward, next_obs = data
        total = torch.zeros(self.model.ensemble_size, dtype=torch.float64, device=obs.device)
        for start in range(0, idx.numel(), self.eval_batch_size):
            bi = idx[start : start + self.eval_batch_size]
            ps = self.per_sample_loss(
                obs[bi], action[bi], reward[bi], next_obs[bi],
                value_targets=_take(value_targets, bi), value_fn=value_fn, add_mse=add_mse,
                metric=self.val_metric if metric is None else metric,
            )
            total += ps.sum(1).to(torch.float64)
        val = (total / idx.numel()).to(torch.float32)
        if not bool(torch.isfinite(val).all()):
            raise ModelDivergenceError(
                f"non-finite validation score of model loss {self.loss.name!r}: {val.tolist()}"
            )
        return val

    # ------------------------------------------------------------------ internals
    def _train_epoch(self, data, member_idx, *, value_targets=None, value_fn=None, add_mse=False) -> float:
        obs, action, reward, next_obs = data
        n_train = member_idx.shape[1]
        order = torch.randperm(n_train, generator=self.generator, device=obs.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        total, batches = 0.0, 0
        for start in range(0, n_train, self.batch_size):
            bi = member_idx[:, order[start : start + self.batch_size]]  # (E, B) data positions
            ps = self.per_sample_loss(
                obs[bi], action[bi], reward[bi], next_obs[bi], value_targets=_take(value_targets, bi),
                value_fn=value_fn, add_mse=add_mse,
            )
            loss = self.objective(ps)
            loss_value, mean_sample = torch.stack([loss.detach(), ps.detach().mean()]).tolist()  # one sync
            if not math.isfinite(loss_value):
                raise ModelDivergenceError(
                    f"non-finite training loss of model loss {self.loss.name!r} ({loss_value}); "
                    "the model diverged (check the learning rate, the data, or the value gradients)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=params)
            self.optimizer.step()
            total += mean_sample
            batches += 1
        return total / max(batches, 1)


def _copy_members(dst: dict[str, torch.Tensor], model: torch.nn.Module, members: torch.Tensor) -> None:
    """Copy the ensemble members ``members`` (a bool ``(E,)`` mask) of ``model``'s parameters (every
    one has the member dimension first) into the state dict ``dst``; the buffers (normaliser,
    log-variance bounds, elites) do not change during a training call."""
    for name, value in model.named_parameters():
        dst[name][members] = value.detach()[members]


def _take(value_targets: ValueTargets | None, idx: torch.Tensor) -> ValueTargets | None:
    """The targets of the transitions at data positions ``idx`` (``None`` stays ``None``)."""
    return None if value_targets is None else value_targets[idx]
