"""Configuration of the ``sac`` agent and of the SAC learner MBPO runs inside (``MBPOAgent.sac_config``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

__all__ = ["SACConfig"]


@dataclasses.dataclass
class SACConfig:
    """Soft Actor-Critic hyperparameters (Haarnoja et al., 2018, with automatic temperature tuning).

    The defaults are the common MuJoCo settings (CleanRL / TorchRL's SAC recipe): two 256-wide hidden
    layers, Adam 3e-4, batch 256, gamma 0.99, tau 0.005.
    """

    num_layers: int = 2
    """number of hidden layers of the actor and of each Q-network"""
    hidden_size: int = 256
    """width of every hidden layer of the actor and of each Q-network"""
    batch_size: int = 256
    """transitions per gradient step"""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor"""
    critic_lr: float = 3e-4
    """Adam learning rate of the two Q-networks"""
    alpha_lr: float = 3e-4
    """Adam learning rate of the log-temperature"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak coefficient of the target critic: target <- (1 - tau) * target + tau * online"""
    target_update_interval: int = 1
    """update the target critic every this many gradient steps"""
    actor_update_interval: int = 1
    """update the actor and the temperature every this many gradient steps (critic: every step)"""
    init_alpha: float = 1.0
    """initial entropy temperature alpha"""
    learn_alpha: bool = True
    """tune alpha automatically towards target_entropy (False: keep init_alpha fixed)"""
    target_entropy: float | None = None
    """target policy entropy for the temperature loss; None = -act_dim"""
    log_std_min: float = -5.0
    """lower bound of the actor's log standard deviation (tanh-squashed into [min, max])"""
    log_std_max: float = 2.0
    """upper bound of the actor's log standard deviation"""
    learning_starts: int = 5000
    """env steps of uniformly random actions before the first gradient step"""
    replay_size: int = 1_000_000
    """capacity of the replay buffer (transitions)"""
    updates_per_step: int = 1
    """gradient steps per env step once learning has started"""
    init: Literal["torch_default", "orthogonal"] = "torch_default"
    """initialisation of every linear layer of the actor and both Q-networks, drawn from the learner's
    generator: 'torch_default' = PyTorch's nn.Linear default (U(±1/sqrt(fan_in)) weights and biases;
    the sac baseline, as CleanRL); 'orthogonal' = orthogonal weights (gain 1) and zero biases, the
    pytorch_sac init of the VaGraM paper's MBPO (mbrl/third_party/pytorch_sac/utils.py weight_init,
    pairlab/vagram@caf9b92)"""
    loss_impl: str = dataclasses.field(default="fused", init=False)
    """not a setting: the losses are always the fused batched-matmul ones (the value is recorded in
    config.json, as runs of earlier versions, which could choose TorchRL's SACLoss, recorded it)"""

    def __post_init__(self) -> None:
        """Validate every field on construction (the agents' one convention, see
        :mod:`vagram_bench.agents.common`): raise
        :class:`~vagram_bench.interfaces.AgentConfigError` naming any out-of-range field."""
        from vagram_bench.interfaces import AgentConfigError

        positive_ints = (
            "num_layers",
            "hidden_size",
            "batch_size",
            "target_update_interval",
            "actor_update_interval",
            "replay_size",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise AgentConfigError(f"agent.{name} must be a positive integer, got {value!r}")
        for name in ("learning_starts", "updates_per_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise AgentConfigError(f"agent.{name} must be a non-negative integer, got {value!r}")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise AgentConfigError(f"agent.{name} must be a finite number > 0, got {value!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise AgentConfigError(f"agent.gamma must lie in [0, 1], got {self.gamma!r}")
        if not 0.0 < self.tau <= 1.0:
            raise AgentConfigError(f"agent.tau must lie in (0, 1], got {self.tau!r}")
        if not self.log_std_min < self.log_std_max:
            raise AgentConfigError(
                f"agent.log_std_min ({self.log_std_min}) must be < agent.log_std_max ({self.log_std_max})"
            )
        if self.init not in ("torch_default", "orthogonal"):
            raise AgentConfigError(
                f"agent.init must be 'torch_default' or 'orthogonal', got {self.init!r}"
            )
