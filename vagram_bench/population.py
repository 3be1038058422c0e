"""Populations: the K seeds of a run trained in one process, the contract the runner steps them by.

``python -m vagram_bench.run agent=sac seed=0,1,2`` trains the three seeds as one population and
writes one run directory per seed, each the records its single-seed run would write (a single seed
is the population of one: the runner has one loop). The runner talks to a
:class:`PopulationAgent`, obtained with :meth:`vagram_bench.interfaces.Agent.make_population`:

* agents with a batched implementation step every member with one batched computation: ``sac``
  (:class:`~vagram_bench.agents.sac.agent.SACPopulation`) and the four MBPO agents
  (:class:`~vagram_bench.agents.mbpo.population.MBPOPopulation`: batched SAC updates, replay buffers
  and dynamics-ensemble training);
* every other agent (``svg_*``, third-party plugins) gets :class:`SeparateAgents`, its K single-seed
  agents side by side.

Member ``k`` must behave exactly as the single-seed agent of ``seeds[k]`` would: every draw from its
own generators, nothing depending on the other members (``tests/test_population_run.py`` and
``tests/test_mbpo_population.py`` check the records of member 0 of populations {0, 1} and {0, 2} are
identical).

Masks: every call takes ``members``, a boolean ``(K,)`` numpy array of the members the call is for
(members at different env steps after a resume, a member that finished or failed). A member left out
must be left exactly as it was: no draw from its generators, no change to its state.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence

import numpy as np
import torch

__all__ = ["PopulationAgent", "PopulationOfOne", "SeparateAgents", "PopulationMetricWindow", "MemberMetrics"]

#: ``update``'s metrics: name -> (``(K,)`` values, boolean ``(K,)`` numpy mask of the members that
#: reported the metric on this call). Values of members outside the mask are meaningless.
MemberMetrics = Mapping[str, tuple[torch.Tensor, np.ndarray]]


class PopulationAgent(abc.ABC):
    """K independent agents of one config, one per seed, stepped together by the runner.

    The single-agent contract (:class:`vagram_bench.interfaces.Agent`) with a leading member
    dimension on every array and a ``members`` mask on every call.

    Attributes:
        seeds: the members' seeds, member ``k`` is the single agent of ``seeds[k]``.
        num_members: ``K``.
    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self.seeds = [int(s) for s in seeds]
        self.num_members = len(self.seeds)

    @abc.abstractmethod
    def act(self, obs: np.ndarray, deterministic: bool, members: np.ndarray) -> np.ndarray:
        """Actions ``(K, *action_shape)`` for observations ``(K, *obs_shape)``; rows of members
        outside ``members`` are ignored by the caller."""

    @abc.abstractmethod
    def observe(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                terminated: np.ndarray, truncated: np.ndarray, members: np.ndarray) -> None:
        """One real transition of each of ``members`` (arrays with a leading ``K`` dimension)."""

    @abc.abstractmethod
    def update(self, env_steps: np.ndarray, members: np.ndarray) -> MemberMetrics:
        """Learn after each member's ``env_steps[k]``-th transition (its own schedule)."""

    @abc.abstractmethod
    def failures(self) -> dict[int, str]:
        """``{member: error message}`` of the members whose learning failed (a non-finite loss).
        May read the device: the runner calls it once per log window, evaluation or checkpoint, and
        stops and records a failed member there (its records end before the failure)."""

    def member_error(self, member: int) -> FloatingPointError | None:
        """Member ``member``'s failure as the exception its single agent's ``update`` raises, or
        ``None``. Populations that know the failure's type (e.g. a model divergence) override this."""
        message = self.failures().get(member)
        return None if message is None else FloatingPointError(message)

    @abc.abstractmethod
    def member_state_dict(self, member: int) -> dict[str, Any]:
        """Everything needed to continue member ``member`` bit-identically (``torch.save``-able)."""

    @abc.abstractmethod
    def load_member_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        """Restore :meth:`member_state_dict` into member ``member``."""

    def member_policy_state_dict(self, member: int) -> dict[str, Any]:
        """Member ``member``'s policy: what its deterministic ``act`` needs (the single agent's
        :meth:`~vagram_bench.interfaces.Agent.policy_state_dict`). The base implementation keeps the
        whole :meth:`member_state_dict`; batched populations override the pair."""
        return self.member_state_dict(member)

    def load_member_policy_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        """Restore :meth:`member_policy_state_dict` into member ``member``."""
        self.load_member_state_dict(member, state)


class PopulationOfOne:
    """The single-agent API (:class:`vagram_bench.interfaces.Agent`) over ``self.population``, a
    batched population of one member: one code path for one seed and for K.

    An agent class lists it before ``Agent`` and sets ``self.population`` in its constructor with
    :meth:`_hold_population`.
    """

    population: PopulationAgent

    def _hold_population(self, population: PopulationAgent) -> None:
        self.population = population
        self._one = np.ones(1, dtype=bool)

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        return self.population.act(np.asarray(obs)[None], deterministic, self._one)[0]

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        self.population.observe(np.asarray(obs)[None], np.asarray(action)[None], np.array([reward]),
                                np.asarray(next_obs)[None], np.array([terminated]), np.array([truncated]),
                                self._one)

    def update(self, env_step: int) -> dict[str, float]:
        """Learn after transition ``env_step``; raises the member's failure (``FloatingPointError``
        or a subclass) as the single-seed runner expects."""
        metrics = self.population.update(np.array([env_step]), self._one)
        error = self.population.member_error(0)
        if error is not None:
            raise error
        return {name: float(values[0]) for name, (values, mask) in metrics.items() if mask[0]}

    def state_dict(self) -> dict[str, Any]:
        return self.population.member_state_dict(0)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.population.load_member_state_dict(0, state)

    def policy_state_dict(self) -> dict[str, Any]:
        return self.population.member_policy_state_dict(0)

    def load_policy_state_dict(self, state: Mapping[str, Any]) -> None:
        self.population.load_member_policy_state_dict(0, state)


class SeparateAgents(PopulationAgent):
    """K single-seed agents side by side: the population of an agent without a batched one.

    Member ``k`` is ``agent_cls(..., seed=seeds[k])``, called exactly as the single-seed runner loop
    calls it (a Python loop over members). A member whose ``update`` raises ``FloatingPointError``
    (a non-finite loss, ``ModelDivergenceError``) is recorded in :meth:`failures` and not called
    again; the others continue.
    """

    def __init__(self, agent_cls: type, config: Any, observation_space: Any, action_space: Any, *,
                 env_id: str, seeds: Sequence[int], device: str | torch.device = "cpu") -> None:
        super().__init__(seeds)
        self.agents = [
            agent_cls(config, observation_space, action_space, env_id=env_id, seed=s, device=device)
            for s in self.seeds
        ]
        self.action_space = action_space
        self._failures: dict[int, str] = {}

    def _live(self, members: np.ndarray) -> list[int]:
        return [int(k) for k in np.flatnonzero(members) if int(k) not in self._failures]

    def act(self, obs: np.ndarray, deterministic: bool, members: np.ndarray) -> np.ndarray:
        actions = np.zeros((self.num_members, *self.action_space.shape), dtype=self.action_space.dtype)
        for k in self._live(members):
            actions[k] = self.agents[k].act(obs[k], deterministic=deterministic)
        return actions

    def observe(self, obs, action, reward, next_obs, terminated, truncated, members) -> None:
        for k in self._live(members):
            self.agents[k].observe(obs[k], action[k], float(reward[k]), next_obs[k],
                                   bool(terminated[k]), bool(truncated[k]))

    def update(self, env_steps: np.ndarray, members: np.ndarray) -> MemberMetrics:
        per_member: dict[int, dict[str, float]] = {}
        for k in self._live(members):
            try:
                per_member[k] = self.agents[k].update(int(env_steps[k]))
            except FloatingPointError as exc:
                self._failures[k] = f"{exc} (env step {int(env_steps[k])})"
        names: dict[str, None] = {}
        for metrics in per_member.values():
            names.update(dict.fromkeys(metrics))
        out = {}
        for name in names:
            values = torch.zeros(self.num_members, dtype=torch.float64)
            mask = np.zeros(self.num_members, dtype=bool)
            for k, metrics in per_member.items():
                if name in metrics:
                    values[k], mask[k] = float(metrics[name]), True
            out[name] = (values, mask)
        return out

    def failures(self) -> dict[int, str]:
        return dict(self._failures)

    def member_state_dict(self, member: int) -> dict[str, Any]:
        return self.agents[member].state_dict()

    def load_member_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        self.agents[member].load_state_dict(state)

    def member_policy_state_dict(self, member: int) -> dict[str, Any]:
        return self.agents[member].policy_state_dict()

    def load_member_policy_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        self.agents[member].load_policy_state_dict(state)


class PopulationMetricWindow:
    """Per-member, per-key means of scalar metrics over a window (one ``train.csv`` row), for every
    member at once: the runner's agent metrics and episode returns, and the SVG agent's losses.

    Each key is averaged, per member, over the calls that reported it for that member (actor metrics
    exist only on actor-update steps). Sums are float64 ``(K,)`` tensors on the window's device (no
    host read per update); adding float32 values to float64 sums rounds as Python's ``float`` adds
    do, so member ``k``'s sums, counts and key order are exactly those of a window of plain Python
    floats fed member ``k``'s metrics, and :meth:`state` is the checkpoint field runs wrote before
    (``tests/reference/metric_window.py`` is that window; ``tests/test_population_run.py`` compares).

    Examples:
        >>> w = PopulationMetricWindow(2)
        >>> both, first = np.array([True, True]), np.array([True, False])
        >>> w.add({"loss": (torch.tensor([1.0, 5.0]), both), "actor": (torch.tensor([4.0, 0.0]), first)})
        >>> w.add({"loss": (torch.tensor([3.0, 0.0]), first)})
        >>> w.pop_means([0, 1]), w.pop_means([0])
        ({0: {'loss': 2.0, 'actor': 4.0}, 1: {'loss': 5.0}}, {0: {}})
    """

    def __init__(self, num_members: int, device: str | torch.device = "cpu") -> None:
        self.num_members = num_members
        self.device = torch.device(device)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.order: list[dict[str, None]] = [{} for _ in range(num_members)]

    def add(self, metrics: MemberMetrics) -> None:
        for name, (values, mask) in metrics.items():
            if not mask.any():
                continue
            if name not in self.sums:
                self.sums[name] = torch.zeros(self.num_members, dtype=torch.float64, device=self.device)
                self.counts[name] = np.zeros(self.num_members, dtype=np.int64)
            for k in np.flatnonzero(mask & (self.counts[name] == 0)):
                self.order[k][name] = None
            mask_t = torch.as_tensor(mask).to(self.device)
            self.sums[name] += torch.where(mask_t, values.to(self.device, torch.float64), 0.0)
            self.counts[name] += mask

    def _host_sums(self) -> dict[str, np.ndarray]:
        if not self.sums:
            return {}
        stacked = torch.stack(list(self.sums.values())).cpu().numpy()  # one read for every key
        return dict(zip(self.sums, stacked))

    def state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s window as a checkpoint field: ``{"sums": {name: float}, "counts":
        {name: int}}`` in the order the names were first reported."""
        sums = self._host_sums()
        return {"sums": {n: float(sums[n][member]) for n in self.order[member]},
                "counts": {n: int(self.counts[n][member]) for n in self.order[member]}}

    def load(self, member: int, state: Mapping[str, Any]) -> None:
        self.clear([member])
        for name, total in state["sums"].items():
            if name not in self.sums:
                self.sums[name] = torch.zeros(self.num_members, dtype=torch.float64, device=self.device)
                self.counts[name] = np.zeros(self.num_members, dtype=np.int64)
            self.sums[name][member] = float(total)
            self.counts[name][member] = int(state["counts"][name])
            self.order[member][name] = None

    def pop_means(self, members: Sequence[int]) -> dict[int, dict[str, float]]:
        """The means of ``members`` since their last pop (one host read), and start their new window."""
        sums = self._host_sums()
        means = {int(k): {n: float(sums[n][k]) / int(self.counts[n][k]) for n in self.order[k]}
                 for k in members}
        self.clear(members)
        return means

    def clear(self, members: Sequence[int]) -> None:
        members = [int(k) for k in members]
        for name in self.sums:
            self.sums[name][members] = 0.0
            self.counts[name][members] = 0
        for k in members:
            self.order[k] = {}
