"""The ``sac`` baseline agent and the reusable :class:`SACLearner` (MBPO's inner policy optimiser)."""

from vagram_bench.agents.sac.config import SACConfig
from vagram_bench.agents.sac.learner import SACLearner, TanhGaussianActorNet

__all__ = ["SACConfig", "SACLearner", "TanhGaussianActorNet"]

from vagram_bench.agents.sac.agent import SACAgent  # noqa: E402

__all__ += ["SACAgent"]
