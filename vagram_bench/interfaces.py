"""The two contracts every part of vagram-bench is built against.

* :class:`Agent` — what the common runner (:mod:`vagram_bench.run`) talks to. Our agents (``sac``,
  ``mbpo_*``, ``svg_*``) and third-party agents implement it and register a subclass in the
  ``vagram_bench.agents`` entry-point group.
* :class:`ValueFunction` — the narrow view of an agent's critic and actor that the decision-aware
  model losses (:mod:`vagram_bench.models.losses`) need: Q-values of the four heads and the
  deterministic policy mean, plus a version counter that changes whenever the critic changes.

The runner owns the environment loop and the evaluation, so every agent is scored the same way:

.. code-block:: text

    agent = AgentCls(config, observation_space, action_space, env_id=..., seed=...)
    obs, _ = env.reset(seed=...)
    for env_step in range(1, steps + 1):
        action = agent.act(obs, deterministic=False)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(obs, action, reward, next_obs, terminated, truncated)
        metrics = agent.update(env_step)          # the agent's own learning schedule
        obs = reset if (terminated or truncated) else next_obs
        # every eval_every steps: runner evaluates agent.act(obs, deterministic=True)
        # every checkpoint_every steps: runner saves agent.state_dict()
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

if TYPE_CHECKING:
    from vagram_bench.population import PopulationAgent

__all__ = ["Agent", "ValueFunction", "AgentConfigError"]


class AgentConfigError(ValueError):
    """An agent configuration that cannot be honoured (e.g. a capacity id for an agent without a
    dynamics model, or an override that conflicts with the env's model-capacity constraint)."""


class Agent(abc.ABC):
    """Base class of every vagram-bench agent (ours and third-party plugins).

    Subclasses set the class attributes and implement the abstract methods. They are registered in
    the ``vagram_bench.agents`` entry-point group under their public name, e.g.::

        [project.entry-points."vagram_bench.agents"]
        my_agent = "my_package.agent:MyAgent"

    Class attributes:
        Config: a ``@dataclass`` type with a docstring under each field (tyro shows them in
            ``--help``). Every field must have a default.
        description: one line shown by ``python -m vagram_bench.run list``.
        uses_dynamics_model: ``True`` for model-based agents. Capacity-constrained env ids
            (``HopperCapacity-3x64-v0``) bound the dynamics model; an agent without one runs them
            unconstrained (the model-free reference in every row of a capacity table), and a
            model-based agent must implement :meth:`apply_model_capacity` to run them.

    Args:
        config: an instance of ``Config`` (already resolved: per-env defaults, capacity, overrides).
        observation_space: the training env's observation space (a ``Box``).
        action_space: the training env's action space (a ``Box``, usually ``[-1, 1]^n``).
        env_id: the registered id of the training env, e.g. ``"HopperDistract-15-v0"``; agents use it
            for per-family defaults and :func:`vagram_bench.envs.termination_fn`.
        seed: the run's seed. Every random draw of the agent must come from generators seeded from it
            (``torch.Generator``, ``np.random.Generator``), never from the global RNGs.
        device: torch device for networks (``"cpu"`` by default).
    """

    Config: ClassVar[type]
    description: ClassVar[str] = ""
    uses_dynamics_model: ClassVar[bool] = False

    def __init__(
        self,
        config: Any,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        *,
        env_id: str,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.env_id = env_id
        self.seed = seed
        self.device = torch.device(device)

    #: Set on a subclass of an agent with a batched population (``sac``, ``mbpo_*``) that overrides
    #: instance methods (``act``, ``update``, ``__init__``, ...): their names. Such a subclass is
    #: trained as :class:`~vagram_bench.population.SeparateAgents` (see :meth:`__init_subclass__`).
    unbatched_overrides: ClassVar[tuple[str, ...]] = ()
    #: Set on such a subclass that defines new instance methods but overrides none that the runner
    #: calls: their names (the registry refuses the class, see :func:`unreachable_methods_problem`).
    unreachable_methods: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Keep a subclass's overrides from being silently bypassed by a batched population.

        ``sac`` and ``mbpo_*`` train through a batched population (their ``make_population``) that
        never calls the single agent's ``act`` / ``observe`` / ``update`` / ``state_dict`` /
        ``__init__``; a subclass that overrides any of those (or any other instance method of the
        built-in class) would train as the baseline while labelled as itself. Such a subclass is
        therefore trained as :class:`~vagram_bench.population.SeparateAgents`: one instance of the
        subclass per seed, exactly the single-agent loop, running its own methods. The class hooks
        (``default_config``, ``apply_model_capacity``, ``phase``, MBPO's ``check_setup`` and
        ``sac_config``) are called on the class itself, so overriding them keeps the batched
        population. A subclass that defines its own ``make_population`` is left as it is.
        """
        super().__init_subclass__(**kwargs)
        owner = next(c for c in cls.__mro__ if "make_population" in vars(c))
        if owner is cls or owner.make_population.__func__ is Agent.make_population.__func__:
            return  # its own population, or the single-agent one: every method it defines is called
        chain = cls.__mro__[: cls.__mro__.index(owner)]
        defined = {name for c in chain for name, attr in vars(c).items() if inspect.isfunction(attr)}
        # object's dunders (__repr__, __eq__, ...) do not change what an agent learns
        defined -= {name for name in vars(object) if name != "__init__"}
        overridden = sorted(name for name in defined if hasattr(owner, name))
        if overridden:
            cls.unbatched_overrides = tuple(overridden)
            cls.make_population = classmethod(Agent.make_population.__func__)  # type: ignore[method-assign]
        else:
            cls.unreachable_methods = tuple(sorted(name for name in defined if not name.startswith("__")))

    # ------------------------------------------------------------------ configuration (class level)
    @classmethod
    def default_config(cls, env_id: str) -> Any:
        """The agent's config for ``env_id`` before command-line overrides (per-env-family defaults).

        The base implementation returns ``cls.Config()``.
        """
        return cls.Config()

    @classmethod
    def apply_model_capacity(
        cls, config: Any, capacity: Mapping[str, int], explicit_fields: set[str]
    ) -> Any:
        """Return ``config`` with the env's dynamics-model capacity constraint applied.

        Args:
            config: the resolved config (defaults + overrides).
            capacity: ``{"num_layers": L, "hid_size": H}`` from
                :func:`vagram_bench.envs.model_capacity`.
            explicit_fields: names of config fields the user set on the command line; a user value
                that conflicts with the constraint must raise :class:`AgentConfigError`.

        The base implementation returns ``config`` unchanged for an agent without a dynamics model
        (there is nothing to constrain, and the env's dynamics are its base env's), and raises
        :class:`AgentConfigError` for a model-based agent that does not override it, which could not
        honour the constraint.
        """
        if not cls.uses_dynamics_model:
            return config
        raise AgentConfigError(
            f"agent {cls.__name__} has a dynamics model but does not implement apply_model_capacity, so "
            f"it cannot honour the model-capacity constraint {dict(capacity)}; implement it or use an id "
            "without a capacity constraint"
        )

    @classmethod
    def make_population(
        cls,
        config: Any,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        *,
        env_id: str,
        seeds: Sequence[int],
        device: str | torch.device = "cpu",
    ) -> "PopulationAgent":
        """The agents of ``seeds`` as one :class:`~vagram_bench.population.PopulationAgent`, which
        the runner trains in one process (one run directory per seed; a single seed is the
        population of one).

        The base implementation returns :class:`~vagram_bench.population.SeparateAgents`, the
        single-seed agents side by side; an agent with a batched implementation overrides it (the
        ``sac`` agent). Member ``k`` must behave exactly as ``cls(config, ..., seed=seeds[k])``.
        """
        from vagram_bench.population import SeparateAgents

        return SeparateAgents(cls, config, observation_space, action_space, env_id=env_id, seeds=seeds,
                              device=device)

    # ------------------------------------------------------------------ acting and learning
    @abc.abstractmethod
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """Action for one observation: stochastic for training, the policy mode for evaluation.

        During the agent's own initial-exploration phase it may return random actions (drawn from
        its seeded generator) when ``deterministic`` is ``False``.
        """

    @abc.abstractmethod
    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Receive one real transition. ``terminated`` (a true terminal state: no bootstrap) and
        ``truncated`` (a time limit: bootstrap from ``next_obs``) are kept apart."""

    @abc.abstractmethod
    def update(self, env_step: int) -> dict[str, float]:
        """Learn after the ``env_step``-th real transition, following the agent's own schedule.

        Returns scalar metrics for ``train.csv`` (empty when nothing was learned or logged this
        step). A non-finite loss must raise :class:`FloatingPointError` naming the loss.
        """

    @classmethod
    def phase(cls, config: Any, env_step: int) -> str:
        """What :meth:`update` does at ``env_step`` under ``config``, for the runner's progress bar:
        ``"exploring"`` (nothing is learned yet), ``"training the model"``, ``"learning"``, or any
        short phrase.

        The runner asks before each update (of the slowest member of a population) and estimates the
        time left from the rate of the current phase, so a phase should name a stretch of steps that
        cost alike. A class method, cheap, and a function of ``config`` and ``env_step`` only. The base
        implementation returns ``""`` (no phase shown; the ETA then uses the rate since the run, or its
        resume, began).
        """
        return ""

    # ------------------------------------------------------------------ checkpoints
    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: networks, optimisers, replay buffers,
        normalisers, the agent's RNG states and counters (a dict ``torch.save`` can store)."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict`."""

    def policy_state_dict(self) -> dict[str, Any]:
        """What ``act(obs, deterministic=True)`` needs (the actor, an observation normaliser), kept
        as the run's final policy (``policy.pt``) and re-scored by ``python -m vagram_bench.evaluate``.

        :meth:`load_policy_state_dict` restores it into an agent freshly built with the same config
        and seed, after which its deterministic actions must be those of this agent. The base
        implementation keeps the whole :meth:`state_dict` (correct for any agent, but with replay
        buffers and optimisers); an agent overrides the pair to keep the policy alone.
        """
        return self.state_dict()

    def load_policy_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`policy_state_dict` (the rest of the agent stays as built)."""
        self.load_state_dict(state)

    # ------------------------------------------------------------------ helpers
    @classmethod
    def config_fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Config)]


@runtime_checkable
class ValueFunction(Protocol):
    """The view of an actor-critic that the value-aware model losses use.

    ``q_heads(obs, action)`` returns a tensor of shape ``(4, *batch)``: the online double critic
    ``Q1, Q2`` followed by the target critic ``Q̄1, Q̄2`` (upstream VaGraM's ``use_all_vf``,
    ``mbrl/models/vaml_mlp.py``). It must be
    differentiable with respect to ``obs``. ``policy_mean(obs)`` is the deterministic action
    ``tanh(loc(obs))``. ``critic_version`` increases every time the critic's (online or target)
    parameters change.
    """

    def q_heads(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor: ...

    def policy_mean(self, obs: torch.Tensor) -> torch.Tensor: ...

    @property
    def critic_version(self) -> int: ...
