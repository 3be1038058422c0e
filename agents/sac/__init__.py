"""The ``sac`` baseline agent; its batched learner (also MBPO's inner policy optimiser) is
:class:`~vagram_bench.agents.sac.population.SACPopulationLearner`."""

from vagram_bench.agents.sac.config import SACConfig
from vagram_bench.agents.sac.learner import TanhGaussianActorNet

__all__ = ["SACConfig", "TanhGaussianActorNet"]

from vagram_bench.agents.sac.agent import SACAgent  # noqa: E402

__all__ += ["SACAgent"]
