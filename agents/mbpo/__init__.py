"""MBPO agents with the four dynamics-model losses: ``mbpo_mse``, ``mbpo_mle``, ``mbpo_itervaml``,
``mbpo_vagram`` (registered in the ``vagram_bench.agents`` entry-point group).

The algorithm lives in :mod:`vagram_bench.agents.mbpo.population` (``MBPOPopulation``; the agents of
:mod:`vagram_bench.agents.mbpo.agent` are its population of one), its configuration and per-env-family
defaults in :mod:`vagram_bench.agents.mbpo.config`. User documentation: ``docs/mbpo.md``.
"""

from .config import FAMILY_OVERRIDES, MBPOConfig, mbpo_default_config, truncated_linear
from .agent import (
    MBPOAgent,
    MBPOIterVAMLAgent,
    MBPOMLEAgent,
    MBPOMSEAgent,
    MBPOVaGraMAgent,
    ModelDivergenceError,
)

__all__ = [
    "FAMILY_OVERRIDES",
    "MBPOAgent",
    "MBPOConfig",
    "MBPOIterVAMLAgent",
    "MBPOMLEAgent",
    "MBPOMSEAgent",
    "MBPOVaGraMAgent",
    "ModelDivergenceError",
    "mbpo_default_config",
    "truncated_linear",
]
