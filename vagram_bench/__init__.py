"""vagram-bench: a Gymnasium-compatible benchmark suite for decision-aware model-based RL.

Importing the package registers every environment id with gymnasium (gymnasium 1.x has no plugin
entry points), so ``import vagram_bench; gym.make("HopperDistract-15-v0")`` works, as does
``gym.make("vagram_bench:HopperDistract-15-v0")`` without an explicit import.
"""

__version__ = "0.1.0"

from vagram_bench import envs as envs  # noqa: E402  (registers the env ids on import)

__all__ = ["envs", "__version__"]
