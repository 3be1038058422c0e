"""SVG agents: SAC-SVG(H) (Amos et al., L4DC 2021) with four dynamics-model losses.

Registered as ``svg_mse``, ``svg_mle``, ``svg_itervaml`` and ``svg_vagram`` (entry points in
``pyproject.toml``). See ``docs/svg.md``.
"""

from vagram_bench.agents.svg.agent import (
    DoubleQCritic,
    SeqDynamics,
    SquashedGaussianActor,
    SVGAgent,
    SVGDivergenceError,
    SVGIterVAMLAgent,
    SVGMLEAgent,
    SVGMSEAgent,
    SVGValueFunction,
    SVGVaGraMAgent,
    ValueExpansion,
    done_pos_weight,
    expand_value,
    survival_weights,
    target_entropy_at,
)
from vagram_bench.agents.svg.config import (
    CAPACITY_FIELDS,
    ENV_FAMILY_DEFAULTS,
    SVGConfig,
    svg_default_config,
)
from vagram_bench.agents.svg.replay import NoValidWindowError, RunningObsNormalizer, SVGReplayBuffer

__all__ = [
    "SVGConfig", "SVGAgent", "SVGMSEAgent", "SVGMLEAgent", "SVGIterVAMLAgent", "SVGVaGraMAgent",
    "SVGDivergenceError", "SVGValueFunction", "SquashedGaussianActor", "DoubleQCritic",
    "SeqDynamics", "ValueExpansion", "expand_value", "survival_weights", "done_pos_weight",
    "target_entropy_at", "ENV_FAMILY_DEFAULTS", "CAPACITY_FIELDS", "svg_default_config",
    "SVGReplayBuffer", "RunningObsNormalizer", "NoValidWindowError",
]
