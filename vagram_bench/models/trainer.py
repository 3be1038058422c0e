"""Model trainer with mbrl-lib's ``ModelTrainer`` semantics (``mbrl/models/model_trainer.py``,
pairlab/vagram@cc7e2e4).

Per training call (:meth:`~vagram_bench.models.population.PopulationModelTrainer.train_members`, each
member of a population as one ensemble; ``tests/reference/model_trainer.py`` is the single-ensemble
loop the tests check it against):

1. Fit the model's input normaliser on all the data given (the whole real replay buffer).
2. Shuffle and split the data 80/20 into train and validation (a fresh split at every call).
3. Each member draws its own bootstrap index list over the train split, **with replacement**.
4. Score the model on the validation split before epoch 0 (the initial best scores).
5. Every epoch reshuffles the batch order; batch positions are shared by the members and member ``e``
   sees transition ``member_indices[e][pos]``. After every epoch the validation split is scored; the
   epoch counts as an improvement if **any** member's relative improvement ``(best − val) / |best|``
   exceeds ``improvement_threshold`` (1 %). Then the whole model is snapshotted and
   ``best = min(best, val)`` per member. Training stops after ``patience`` epochs without improvement
   (or ``max_epochs``), the best snapshot is restored, and the elites are the ``num_elites`` members
   with the lowest best validation scores.

Two of these mechanics have switches (ablations; the defaults are upstream's):

* ``snapshot``: ``"upstream"`` is the rule above -- the *whole ensemble* as it was at the last epoch
  in which *any* member improved, while each member's recorded best (what elites are ranked on) may
  come from another epoch, so a restored member's score can be far from its recorded best.
  ``"per_member"`` restores every member to its own lowest-scoring epoch (its weights from the epoch
  its score was lowest, the pre-training weights if no epoch beat them) and ranks elites on exactly
  those scores. ``"last"`` restores nothing and ranks on the last epoch's scores. Stopping is
  upstream's rule in every case (patience counts epochs in which no member improved by more than
  ``improvement_threshold`` on upstream's running best).
* ``fixed_epochs``: train exactly this many epochs, without early stopping (``patience`` unused);
  ``max_epochs`` is instead a cap on early stopping, as upstream's ``num_epochs``.

The training objective of a minibatch is the loss's own (:meth:`ModelLoss.ensemble_per_sample`,
:meth:`ModelLoss.ensemble_reduce`, plus ``logvar_bound_penalty · (Σ max_logvar − Σ min_logvar)`` for
the Gaussian model): upstream's ``GaussianMLP`` sums the MSE over members, batch and outputs and
averages the NLL over batch and outputs, ``VAMLMLP`` takes a plain mean. Adam's coupled weight decay
therefore has each loss's upstream strength (``decoupled_weight_decay=True`` gives every loss the same,
loss-scale-free decay instead: AdamW, an ablation).

The validation score is, as upstream (``eval_score``), the MSE over the ``d + 1`` outputs
``mean_j e_j²`` for the MSE and Gaussian models (``GaussianMLP.eval_score``) and the per-sample
training loss (state + reward term, plus the warm-up MSE while ``add_mse``) for the value-aware ones
(``VAMLMLP.eval_score``); ``val_metric="auto"`` picks these, ``"loss"`` or ``"mse"`` override. After
training the restored model's plain validation MSE is computed for every loss
(:attr:`TrainingResult.best_val_mse`): a number that means the same for every loss and does not
scale with the critic, which MBPO's divergence guard and ``train.csv`` (``model_val_mse``) use.

Value-aware losses get their :class:`~vagram_bench.models.losses.ValueTargets` from
``loss.targets(value_fn, next_obs)`` once per call, for every transition given (the critic does not
change within a call), and index them with the transitions' data positions: each member uses the
targets of the transitions it trains on, and the validation split those of its own transitions
(upstream's cache keyed by batch position broadcast member 0's gradients to every member and scored
the validation split with training-split gradients; docs/models.md §2). Only the model's parameters
receive gradients (``backward(inputs=model params)``), so IterVAML's pass through the critic leaves
the critic's ``.grad`` untouched.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from vagram_bench.interfaces import ValueFunction
from vagram_bench.models.ensemble import EnsembleDynamicsModel
from vagram_bench.models.losses import ModelLoss

__all__ = ["ModelDivergenceError", "ModelTrainer", "TrainingResult"]


class ModelDivergenceError(FloatingPointError):
    """A non-finite model loss or prediction during model training (MBPO's divergence guard catches
    it). Subclasses :class:`FloatingPointError`, which :meth:`Agent.update` must raise on a non-finite
    loss."""


@dataclasses.dataclass
class TrainingResult:
    """What one training call did for one ensemble."""

    epochs: int
    """Epochs run."""
    train_losses: list[float]
    """Per epoch, the mean over batches, members and samples of the per-sample training objective
    (:meth:`ModelLoss.ensemble_per_sample`; readable across batch and ensemble sizes, unlike the
    reduced objective of the sum-reduced MSE)."""
    val_scores: list[list[float]]
    """Per-member validation score: the pre-training score, then one row per epoch."""
    best_val_scores: list[float]
    """Per-member best validation score (what elites are chosen by)."""
    elites: list[int]
    """The elite members after training."""
    restored_best: bool
    """Whether a best snapshot was restored (``False`` when no epoch improved)."""
    train_size: int
    val_size: int
    val_mse: list[float] = dataclasses.field(default_factory=list)
    """Per-member validation MSE ``mean_{b, j ≤ d+1} e²`` of the model as returned (best snapshot
    restored), whatever the loss."""
    val_score: list[float] = dataclasses.field(default_factory=list)
    """Per-member validation score (the trainer's ``val_metric``) of the model as returned: what
    :attr:`best_val_scores` claims for it. Under the ``"upstream"`` snapshot rule the two differ for
    every member whose lowest score came from another epoch than the restored snapshot."""

    @property
    def best_val_mse(self) -> float:
        """Mean of the elites' :attr:`val_mse` (``nan`` when not computed)."""
        if not self.val_mse:
            return math.nan
        return sum(self.val_mse[e] for e in self.elites) / len(self.elites)

    @property
    def best_val_score(self) -> float:
        """Mean of the elites' best validation scores."""
        return sum(self.best_val_scores[e] for e in self.elites) / len(self.elites)

    @property
    def restored_val_score(self) -> float:
        """Mean of the elites' :attr:`val_score` (the model as returned; ``nan`` when not computed):
        :attr:`best_val_score` is what they were ranked on."""
        if not self.val_score:
            return math.nan
        return sum(self.val_score[e] for e in self.elites) / len(self.elites)


#: ``snapshot`` rules of :class:`ModelTrainer` (module docstring)
SNAPSHOT_RULES = ("upstream", "per_member", "last")
#: ``val_metric`` choices of :class:`ModelTrainer`
VAL_METRICS = ("auto", "loss", "mse")


class ModelTrainer:
    """Train an :class:`~vagram_bench.models.ensemble.EnsembleDynamicsModel` with a
    :class:`~vagram_bench.models.losses.ModelLoss`.

    The settings, their checks and the per-sample objective; the training loop and the optimiser
    are :class:`~vagram_bench.models.population.PopulationModelTrainer`'s (every member at once, its
    Adam warm-started across calls as upstream's; ``tests/reference/model_trainer.py`` adds the
    single-ensemble loop the tests check it against).

    Args:
        model: the ensemble (``model.gaussian`` must match ``loss.gaussian``).
        loss: from :func:`~vagram_bench.models.losses.make_model_loss`.
        generator: seeded generator for the split, the bootstraps and the batch order.
        batch_size: per-member batch size.
        validation_ratio: fraction of the data held out (``0.2``).
        patience: epochs without improvement before stopping (``10``).
        improvement_threshold: relative improvement that counts (``0.01``).
        max_epochs: optional epoch cap on early stopping (``None``: none, as upstream for Hopper).
        val_metric: ``"auto"`` (the MSE for ``mse`` and ``mle``, the loss for the value-aware
            losses), ``"loss"`` or ``"mse"``: the score that stops training and ranks elites.
        snapshot: which weights are restored after training and which scores rank the elites:
            ``"upstream"``, ``"per_member"`` or ``"last"`` (module docstring).
        fixed_epochs: train exactly this many epochs per call, no early stopping (``None``: early
            stopping, as upstream). Not together with ``max_epochs``.
        eval_batch_size: chunk size for scoring the validation split.

    Examples:
        >>> import torch
        >>> from vagram_bench.models import EnsembleDynamicsModel, ModelTrainer, make_model_loss
        >>> g = torch.Generator().manual_seed(0)
        >>> model = EnsembleDynamicsModel(3, 1, ensemble_size=3, num_elites=2, num_layers=2, hid_size=16,
        ...                               generator=g)
        >>> trainer = ModelTrainer(model, make_model_loss("mse"), generator=g, batch_size=32, max_epochs=3)
        >>> trainer.batch_size, trainer.max_epochs
        (32, 3)
    """

    def __init__(
        self,
        model: EnsembleDynamicsModel,
        loss: ModelLoss,
        *,
        generator: torch.Generator,
        batch_size: int = 256,
        validation_ratio: float = 0.2,
        patience: int = 10,
        improvement_threshold: float = 0.01,
        max_epochs: int | None = None,
        val_metric: str = "auto",
        snapshot: str = "upstream",
        fixed_epochs: int | None = None,
        eval_batch_size: int = 4096,
    ):
        if loss.gaussian != model.gaussian:
            raise ValueError(
                f"loss {loss.name!r} {'needs' if loss.gaussian else 'does not use'} a Gaussian model, but the "
                f"model has gaussian={model.gaussian}; build the model with gaussian={loss.gaussian}"
            )
        if not 0.0 <= validation_ratio < 1.0:
            raise ValueError(f"validation_ratio must be in [0, 1); got {validation_ratio}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1; got {patience}")
        if val_metric not in VAL_METRICS:
            raise ValueError(f"val_metric must be one of {', '.join(VAL_METRICS)}; got {val_metric!r}")
        if snapshot not in SNAPSHOT_RULES:
            raise ValueError(f"snapshot must be one of {', '.join(SNAPSHOT_RULES)}; got {snapshot!r}")
        if fixed_epochs is not None and (fixed_epochs < 1 or max_epochs is not None):
            raise ValueError(f"fixed_epochs must be >= 1 and excludes max_epochs; got fixed_epochs={fixed_epochs}, "
                             f"max_epochs={max_epochs}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.model, self.loss, self.generator = model, loss, generator
        self.batch_size, self.validation_ratio = int(batch_size), float(validation_ratio)
        self.patience, self.improvement_threshold = int(patience), float(improvement_threshold)
        self.max_epochs, self.fixed_epochs, self.snapshot = max_epochs, fixed_epochs, snapshot
        if val_metric == "auto":
            val_metric = "loss" if loss.needs_value_function else "mse"
        self.val_metric = val_metric
        self.eval_batch_size = int(eval_batch_size)

    # ------------------------------------------------------------------ public
    def per_sample_loss(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        *,
        value_targets=None,
        value_fn: ValueFunction | None = None,
        add_mse: bool = False,
        metric: str = "loss",
    ) -> torch.Tensor:
        """The model's per-sample training objective ``(E, B)`` for member batches ``(E, B, ·)`` or a
        shared batch ``(B, ·)``: ``loss.ensemble_per_sample(state loss, reward term)`` (+ the warm-up
        MSE), or the plain MSE over the ``d + 1`` outputs ``(Δ, r)`` when ``metric="mse"``."""
        mean, logvar = self.model(obs, action)
        return self.loss_of_prediction(mean, logvar, obs, reward, next_obs, value_targets=value_targets,
                                       value_fn=value_fn, add_mse=add_mse, metric=metric)

    def loss_of_prediction(self, mean: torch.Tensor, logvar: torch.Tensor | None, obs: torch.Tensor,
                           reward: torch.Tensor, next_obs: torch.Tensor, *, value_targets=None,
                           value_fn: ValueFunction | None = None, add_mse: bool = False,
                           metric: str = "loss") -> torch.Tensor:
        """:meth:`per_sample_loss` from the model's output ``(mean, logvar)`` for ``obs``."""
        d = self.model.obs_dim
        pred_next = obs + mean[..., :d]
        pred_rew = mean[..., d]
        mse = ((pred_next - next_obs).pow(2).sum(-1) + (pred_rew - reward).pow(2)) / (d + 1)
        if metric == "mse":
            return mse
        state = self.loss.per_sample(
            pred_next,
            next_obs,
            value_targets,
            pred_logvar=None if logvar is None else logvar[..., :d],
            value_fn=value_fn,
        )
        reward_term = self.loss.reward_per_sample(
            pred_rew, reward, pred_reward_logvar=None if logvar is None else logvar[..., d]
        )
        loss = self.loss.ensemble_per_sample(state, reward_term, d)
        if add_mse:  # upstream VAMLMLP.loss: + mean over the d + 1 outputs of the squared error
            loss = loss + mse
        return loss
