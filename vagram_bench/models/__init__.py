"""Dynamics models and model losses for decision-aware model-based RL.

* :mod:`~vagram_bench.models.losses` — MSE / Gaussian MLE / IterVAML / VaGraM per-sample losses,
  :func:`value_gradients` and the :class:`ModelLoss` interface (MBPO and SVG both use it).
* :mod:`~vagram_bench.models.value_cache` — :class:`ValueGradientCache` keyed by replay-buffer index.
* :mod:`~vagram_bench.models.ensemble` — :class:`EnsembleDynamicsModel` (batched-weight ensemble).
* :mod:`~vagram_bench.models.trainer` — :class:`ModelTrainer` (mbrl-lib semantics).
* :mod:`~vagram_bench.models.model_env` — :class:`EnsembleModelEnv` (TorchRL) and :func:`rollout`.

See ``docs/models.md``.
"""

from vagram_bench.models.ensemble import EnsembleDynamicsModel, EnsembleLinear, ModelPrediction
from vagram_bench.models.losses import (
    LOSS_NAMES,
    ModelLoss,
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
from vagram_bench.models.model_env import EnsembleModelEnv, rollout
from vagram_bench.models.trainer import ModelDivergenceError, ModelTrainer, TrainingResult
from vagram_bench.models.value_cache import ValueGradientCache

__all__ = [
    "LOSS_NAMES",
    "EnsembleDynamicsModel",
    "EnsembleLinear",
    "EnsembleModelEnv",
    "ModelDivergenceError",
    "ModelLoss",
    "ModelPrediction",
    "ModelTrainer",
    "TrainingResult",
    "ValueGradientCache",
    "ValueTargets",
    "clip_by_norm_quantile",
    "gaussian_nll_loss",
    "itervaml_loss",
    "make_model_loss",
    "mse_loss",
    "rollout",
    "vagram_loss",
    "value_gradients",
    "values_at",
]
