"""The ``sac`` baseline agent and the reusable :class:`SACLearner` (MBPO's inner policy optimiser)."""

from vagram_bench.agents.sac.config import SACConfig
from vagram_bench.agents.sac.learner import SACLearner, TanhGaussianActorNet

__all__ = ["SACConfig", "SACLearner", "TanhGaussianActorNet"]

from vagram_bench.agents.sac.agent import SACAgent, load_replay_buffer_state, replay_buffer_state  # noqa: E402

__all__ += ["SACAgent", "replay_buffer_state", "load_replay_buffer_state"]
