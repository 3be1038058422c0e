"""Dynamics models and model losses for decision-aware model-based RL.

* :mod:`~vagram_bench.models.losses` — MSE / Gaussian MLE / IterVAML / VaGraM per-sample losses,
  :func:`value_gradients`, the :class:`ModelLoss` interface (MBPO and SVG both use it) and its
  registry :data:`MODEL_LOSSES`.
* :mod:`~vagram_bench.models.ensemble` — :class:`EnsembleDynamicsModel` (batched-weight ensemble).
* :mod:`~vagram_bench.models.trainer` — :class:`ModelTrainer` (the settings and per-sample objective of mbrl-lib's
  trainer; :class:`~vagram_bench.models.population.PopulationModelTrainer` trains with them).
* :mod:`~vagram_bench.models.model_env` — :func:`model_step`, :func:`branched_rollout` (MBPO's
  rollouts).

See ``docs/models.md``.
"""

from vagram_bench.models.ensemble import EnsembleDynamicsModel, EnsembleLinear, ModelPrediction
from vagram_bench.models.losses import (
    LOSS_NAMES,
    MODEL_LOSSES,
    ModelLoss,
    ValueTargets,
    clip_by_norm_quantile,
    compute_value_targets,
    gaussian_nll_loss,
    itervaml_loss,
    make_model_loss,
    mse_loss,
    vagram_loss,
    value_gradients,
    values_at,
)
from vagram_bench.models.model_env import branched_rollout, model_step
from vagram_bench.models.trainer import ModelDivergenceError, ModelTrainer, TrainingResult

__all__ = [
    "LOSS_NAMES",
    "MODEL_LOSSES",
    "EnsembleDynamicsModel",
    "EnsembleLinear",
    "ModelDivergenceError",
    "ModelLoss",
    "ModelPrediction",
    "ModelTrainer",
    "TrainingResult",
    "branched_rollout",
    "ValueTargets",
    "clip_by_norm_quantile",
    "compute_value_targets",
    "gaussian_nll_loss",
    "itervaml_loss",
    "make_model_loss",
    "model_step",
    "mse_loss",
    "vagram_loss",
    "value_gradients",
    "values_at",
]
