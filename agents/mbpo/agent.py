"""The MBPO agents (``mbpo_mse``, ``mbpo_mle``, ``mbpo_itervaml``, ``mbpo_vagram``): the single-seed view
of :class:`~vagram_bench.agents.mbpo.population.MBPOPopulation`, where the algorithm lives (its module
docstring has the loop, top to bottom).

:class:`MBPOAgent` is the population of one behind the single-agent API (``act``, ``observe``,
``update``, ``state_dict``), as :class:`~vagram_bench.agents.sac.SACAgent` is for ``sac``: a single seed
is the population of one, so there is one code path. The class also carries what the runner reads
before building an agent (``default_config``, ``apply_model_capacity``, ``phase``) and
:meth:`~MBPOAgent.make_population`, which builds the population of any number of seeds directly.
Deviations from mbrl-lib and why are listed in ``docs/mbpo.md``.
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

import gymnasium as gym
import torch

from vagram_bench.agents.common import LossVariants, apply_model_capacity, check_model_loss
from vagram_bench.agents.sac import SACConfig
from vagram_bench.envs import env_family, env_variant
from vagram_bench.interfaces import Agent, AgentConfigError
from vagram_bench.models.trainer import ModelDivergenceError
from vagram_bench.population import PopulationOfOne

from .config import MBPOConfig, mbpo_default_config
from .population import MBPOPopulation

__all__ = [
    "MBPOAgent",
    "MBPOMSEAgent",
    "MBPOMLEAgent",
    "MBPOIterVAMLAgent",
    "MBPOVaGraMAgent",
    "ModelDivergenceError",
]


class MBPOAgent(LossVariants, PopulationOfOne, Agent):
    """MBPO with a bootstrap ensemble trained by one of the four model losses: the
    :class:`~vagram_bench.agents.mbpo.population.MBPOPopulation` of the one seed (:attr:`population`).

    The registered agents (``mbpo_mse``, ``mbpo_mle``, ``mbpo_itervaml``, ``mbpo_vagram``) are
    ``MBPOAgent.with_loss(loss)`` (:class:`~vagram_bench.agents.common.LossVariants`), bound at the
    bottom of this module. See :mod:`vagram_bench.agents.mbpo.population` for the loop and
    :class:`MBPOConfig` for the fields. ``update`` raises what the population records as this seed's
    failure: :class:`ModelDivergenceError` for a diverged model, ``FloatingPointError`` for a
    non-finite SAC loss or metric.

    Args:
        config: a resolved :class:`MBPOConfig` whose ``model_loss`` equals the agent's (``cls.Config``
            fixes it).
        observation_space: the env's observation ``Box``.
        action_space: the env's action ``Box`` (any bounds; the policy acts in ``[-1, 1]`` and is
            rescaled affinely).
        env_id: registered env id (termination function, per-family defaults).
        seed: seeds every generator of the agent.
        device: torch device.

    Examples:
        >>> import gymnasium as gym, vagram_bench
        >>> from vagram_bench.agents.mbpo import MBPOVaGraMAgent
        >>> env = gym.make("InvertedPendulum-v5")
        >>> cfg = MBPOVaGraMAgent.default_config("InvertedPendulum-v5")
        >>> agent = MBPOVaGraMAgent(cfg, env.observation_space, env.action_space,
        ...                         env_id="InvertedPendulum-v5", seed=0)
    """

    Config: ClassVar[type] = MBPOConfig
    uses_dynamics_model: ClassVar[bool] = True
    description: ClassVar[str] = "MBPO"
    loss_family: ClassVar[str] = "mbpo"

    # ------------------------------------------------------------------ configuration
    @classmethod
    def default_config(cls, env_id: str) -> MBPOConfig:
        """Per-env-family and variant defaults (``vagram_bench.envs.env_family`` / ``env_variant``) for this
        agent's loss."""
        return cls.config_for_loss(mbpo_default_config(env_family(env_id), cls.model_loss_name, env_variant(env_id)))

    @classmethod
    def apply_model_capacity(
        cls, config: MBPOConfig, capacity: Mapping[str, int], explicit_fields: set[str]
    ) -> MBPOConfig:
        """Set ``num_layers``/``hid_size`` from a capacity id; an explicit conflicting override is
        an :class:`AgentConfigError`."""
        fields = {"num_layers": ("num_layers",), "hid_size": ("hid_size",)}
        return apply_model_capacity(config, capacity, explicit_fields, fields)

    @classmethod
    def check_setup(cls, config: MBPOConfig, observation_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
        """Raise :class:`AgentConfigError` unless ``config`` is this agent's and the spaces are flat."""
        if not isinstance(config, MBPOConfig):
            raise AgentConfigError(f"{cls.__name__} needs an MBPOConfig, got {type(config).__name__}")
        check_model_loss(config.model_loss, cls.model_loss_name, cls.loss_family)
        if len(observation_space.shape) != 1 or len(action_space.shape) != 1:
            raise AgentConfigError(
                f"MBPO needs flat Box spaces; got observation {observation_space.shape}, "
                f"action {action_space.shape}"
            )

    @classmethod
    def make_population(cls, config: MBPOConfig, observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
                        *, env_id: str, seeds: Sequence[int], device: str | torch.device = "cpu"):
        """The seeds' agents as one :class:`~vagram_bench.agents.mbpo.population.MBPOPopulation`
        (batched SAC, buffers, ensembles and rollouts; member ``k`` is ``cls(..., seed=seeds[k])``)."""
        return MBPOPopulation(cls, config, observation_space, action_space, env_id=env_id, seeds=seeds,
                              device=device)

    # ------------------------------------------------------------------ components
    @staticmethod
    def sac_config(cfg: MBPOConfig) -> SACConfig:
        """The :class:`~vagram_bench.agents.sac.SACConfig` of the agent's SAC learner: the VaGraM
        paper's MBPO uses pytorch_sac (``conf/algorithm/mbpo.yaml``, pairlab/vagram@caf9b92), whose
        layers are initialised orthogonally with zero biases."""
        return SACConfig(
            init="orthogonal",
            num_layers=cfg.sac_num_layers,
            hidden_size=cfg.sac_hidden_size,
            batch_size=cfg.sac_batch_size,
            actor_lr=cfg.sac_actor_lr,
            critic_lr=cfg.sac_critic_lr,
            alpha_lr=cfg.sac_alpha_lr,
            gamma=cfg.sac_gamma,
            tau=cfg.sac_tau,
            target_update_interval=cfg.sac_target_update_interval,
            actor_update_interval=cfg.sac_actor_update_interval,
            init_alpha=cfg.sac_init_alpha,
            learn_alpha=cfg.sac_learnable_alpha,
            target_entropy=cfg.sac_target_entropy,
        )

    # ------------------------------------------------------------------ construction
    def __init__(self, config: MBPOConfig, observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
                 *, env_id: str, seed: int, device: str | torch.device = "cpu") -> None:
        super().__init__(config, observation_space, action_space, env_id=env_id, seed=seed, device=device)
        self._hold_population(MBPOPopulation(type(self), config, observation_space, action_space,
                                             env_id=env_id, seeds=[seed], device=device))

    # ------------------------------------------------------------------ learning
    @classmethod
    def phase(cls, config: MBPOConfig, env_step: int) -> str:
        # Nothing is learned before the first model training (SAC needs model rollouts).
        step = env_step - config.initial_exploration_steps
        if step < config.freq_train_model:
            return "exploring"
        return "training the model" if step % config.freq_train_model == 0 else "learning"


# The registered agents (pyproject.toml's entry points name these attributes): the one place that
# says which loss each trains its model with.
MBPOMSEAgent = MBPOAgent.with_loss("mse", "MBPOMSEAgent", "MBPO, deterministic ensemble, MSE model loss")
MBPOMLEAgent = MBPOAgent.with_loss("mle", "MBPOMLEAgent", "MBPO, Gaussian ensemble, maximum-likelihood model loss")
MBPOIterVAMLAgent = MBPOAgent.with_loss(
    "itervaml", "MBPOIterVAMLAgent", "MBPO, deterministic ensemble, IterVAML value-difference model loss")
MBPOVaGraMAgent = MBPOAgent.with_loss(
    "vagram", "MBPOVaGraMAgent", "MBPO, deterministic ensemble, VaGraM (bounded) model loss")
