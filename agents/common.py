"""The small jobs every agent does, written once: action scaling, metric windows, seeded generators,
replay-buffer checkpoints, model-capacity constraints and model-loss checks of configs.

Importable as ``vagram_bench.agents.common``. Agent configs follow one validation convention: a
config dataclass checks its own values in ``__post_init__`` and raises
:class:`~vagram_bench.interfaces.AgentConfigError`, so every construction (the runner's command-line
parsing, ``dataclasses.replace`` after per-env defaults and capacity constraints, a test) is checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from vagram_bench.interfaces import AgentConfigError

__all__ = [
    "ActionScaler",
    "PopulationReplayBuffer",
    "apply_model_capacity",
    "check_model_loss",
    "LossVariants",
    "seeded_init",
    "stream_seeds",
    "torch_generators",
]


# --------------------------------------------------------------------------------------------------
# actions
# --------------------------------------------------------------------------------------------------
class ActionScaler:
    """The affine map between a policy's ``[-1, 1]`` actions and a bounded ``Box`` action space.

    ``to_env(u) = center + half_range · u`` and ``to_unit(a) = clip((a − center) / half_range, −1, 1)``,
    computed in float64 (exact for the usual ``[-1, 1]`` bounds: both maps are then the identity).

    Args:
        action_space: a ``Box`` with finite bounds.
        agent: the agent's name for the error message.

    Raises:
        AgentConfigError: an unbounded action space.

    Examples:
        >>> scaler = ActionScaler(gym.spaces.Box(-3.0, 3.0, (1,), np.float32))
        >>> scaler.to_env(np.array([0.5])), scaler.to_unit(np.array([6.0]))
        (array([1.5], dtype=float32), array([1.]))
    """

    def __init__(self, action_space: gym.spaces.Box, agent: str = "the agent") -> None:
        low = np.asarray(action_space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(action_space.high, dtype=np.float64).reshape(-1)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise AgentConfigError(f"{agent} needs a bounded action space; got low={low}, high={high}")
        self.center, self.half_range = (high + low) / 2.0, (high - low) / 2.0
        self.shape, self.dtype = action_space.shape, action_space.dtype

    def to_env(self, unit_action: np.ndarray | torch.Tensor) -> np.ndarray:
        """A ``[-1, 1]`` action (array or tensor, any device) as an env action of the space's shape
        and dtype."""
        return self.to_env_batch(_flat_rows(unit_action, 1))[0]

    def to_unit(self, env_action: np.ndarray) -> np.ndarray:
        """An env action mapped into ``[-1, 1]`` (float64, flat; clipped onto the box)."""
        return self.to_unit_batch(_flat_rows(env_action, 1))[0]

    def to_env_batch(self, unit_actions: np.ndarray | torch.Tensor) -> np.ndarray:
        """:meth:`to_env` of each row of ``(N, action size)`` -> ``(N, *shape)``."""
        u = _flat_rows(unit_actions, len(unit_actions))
        return (self.center + self.half_range * u).reshape(len(u), *self.shape).astype(self.dtype)

    def to_unit_batch(self, env_actions: np.ndarray) -> np.ndarray:
        """:meth:`to_unit` of each of ``N`` actions -> float64 ``(N, action size)``."""
        a = _flat_rows(env_actions, len(env_actions))
        return np.clip((a - self.center) / self.half_range, -1.0, 1.0)


def _flat_rows(actions: np.ndarray | torch.Tensor, rows: int) -> np.ndarray:
    if isinstance(actions, torch.Tensor):
        actions = actions.detach().cpu().numpy()
    return np.asarray(actions, dtype=np.float64).reshape(rows, -1)


# --------------------------------------------------------------------------------------------------
# seeding
# --------------------------------------------------------------------------------------------------
def stream_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent 63-bit seeds derived from the run ``seed``: words of
    ``numpy.random.SeedSequence(seed).generate_state(count)`` (prefix-stable: stream ``i`` does not
    depend on ``count``, so adding a stream never shifts the others).

    Examples:
        >>> stream_seeds(0, 3)[:2] == stream_seeds(0, 2)
        True
    """
    words = np.random.SeedSequence(int(seed)).generate_state(int(count), dtype=np.uint64)
    return [int(w >> 1) for w in words]  # torch.Generator.manual_seed takes a signed 64-bit seed


def torch_generators(seed: int, count: int, device: str | torch.device = "cpu") -> list[torch.Generator]:
    """``count`` independent ``torch.Generator`` streams seeded with :func:`stream_seeds` (one per
    purpose, so e.g. a longer model rollout does not shift the replay sampling)."""
    return [torch.Generator(device=device).manual_seed(s) for s in stream_seeds(seed, count)]


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build networks whose PyTorch default initialisers draw from the global RNG (they take no
    generator) reproducibly: the global RNG is seeded with ``seed`` inside the block and restored
    afterwards, so nothing outside the agent sees a change."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class PopulationReplayBuffer:
    """The uniform replay buffers of ``K`` population members in one storage ``(K, capacity)``.

    Member ``k`` is the single agents' ``TensorDictReplayBuffer(LazyTensorStorage(capacity),
    RandomSampler(), generator=generators[k])``: the same round-robin write cursor (TorchRL's
    ``RoundRobinWriter``: ``add`` writes at the cursor, ``extend`` at ``cursor + arange(n)`` modulo the
    capacity), and its sample indices drawn by the same call TorchRL's sampler makes
    (``torch.randint(0, len, (count,), generator=g)``, ``torchrl/data/replay_buffers/storages/base.py``,
    TorchRL 0.14), so its batches are the single buffer's, bitwise. Written by hand because TorchRL's
    buffers have one cursor and one generator per storage; here each member has its own (a member that
    is not stepped neither writes nor draws). A sample is ``K`` small ``randint`` calls and one gather.

    Members may have capacities of their own (:meth:`resize`, MBPO's model buffer, whose capacity
    follows each member's rollout length): the storage holds the largest, and member ``k``'s cursor
    wraps at ``member_capacity[k]``.

    Args:
        num_members: ``K``.
        capacity: transitions per member.
        batch_size: transitions per member per :meth:`sample`.
        generators: one per member, the only source of its sample indices.
        device: device of the storage.
    """

    def __init__(self, num_members: int, capacity: int, batch_size: int,
                 generators: Sequence[torch.Generator], device: str | torch.device = "cpu") -> None:
        self.num_members, self.capacity, self.batch_size = int(num_members), int(capacity), int(batch_size)
        self.generators = list(generators)
        self.device = torch.device(device)
        self.storage: Any = None  # allocated on the first write, shaped like the transitions
        self.cursor = np.zeros(self.num_members, dtype=np.int64)
        self.size = np.zeros(self.num_members, dtype=np.int64)
        self.member_capacity = np.full(self.num_members, self.capacity, dtype=np.int64)
        self._rows = torch.arange(self.num_members, device=self.device)

    def _allocate(self, like: Any) -> None:
        """The storage ``(K, capacity)`` shaped like one transition ``like`` (batch ``()``), zeros."""
        self.storage = like.unsqueeze(0).unsqueeze(0).expand(self.num_members, self.capacity).clone().zero_()

    def add(self, transitions: Any, members: np.ndarray) -> None:
        """Write row ``k`` of ``transitions`` (a TensorDict of batch ``(K,)``) into member ``k``'s
        buffer for each ``k`` in the boolean mask ``members``."""
        transitions = transitions.to(self.device)
        if self.storage is None:
            self._allocate(transitions[0])
        index = np.flatnonzero(members)
        rows = torch.as_tensor(index, device=self.device)
        cols = torch.as_tensor(self.cursor[index], device=self.device)
        self.storage[rows, cols] = transitions[rows]
        self.cursor[index] = (self.cursor[index] + 1) % self.member_capacity[index]
        self.size[index] = np.minimum(self.size[index] + 1, self.member_capacity[index])

    def extend(self, transitions: Any, member_of_row: np.ndarray) -> None:
        """Append a flat TensorDict of transitions ``(M,)``, row ``i`` to member ``member_of_row[i]``'s
        buffer (rows grouped by member, each member's in its order of arrival), as TorchRL's
        ``extend`` of each member's rows would: one index write for all members."""
        member_of_row = np.asarray(member_of_row, dtype=np.int64)
        if not len(member_of_row):
            return
        counts = np.bincount(member_of_row, minlength=self.num_members)
        if (counts > self.member_capacity).any():
            raise ValueError(f"extend of {counts.tolist()} transitions exceeds the capacities "
                             f"{self.member_capacity.tolist()}")
        transitions = transitions.to(self.device)
        if self.storage is None:
            self._allocate(transitions[0])
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.arange(len(member_of_row)) - first[member_of_row]
        cols = (self.cursor[member_of_row] + position) % self.member_capacity[member_of_row]
        self.storage[torch.as_tensor(member_of_row, device=self.device),
                     torch.as_tensor(cols, device=self.device)] = transitions
        written = counts > 0
        self.cursor[written] = (self.cursor[written] + counts[written]) % self.member_capacity[written]
        self.size[written] = np.minimum(self.size[written] + counts[written], self.member_capacity[written])

    def contents(self, member: int) -> Any:
        """Member ``member``'s transitions, oldest first (``None`` when empty)."""
        n = int(self.size[member])
        if n == 0:
            return None
        data = self.storage[member, :n]
        if n == self.member_capacity[member]:  # full ring: the cursor holds the oldest entry
            cursor = int(self.cursor[member])
            data = torch.cat([data[cursor:], data[:cursor]], 0)
        return data

    def resize(self, member: int, capacity: int) -> None:
        """Give member ``member`` a new capacity, keeping its newest transitions: what re-creating a
        single buffer with ``capacity`` and extending it by the old contents does (rows from 0, the
        cursor after them)."""
        capacity = int(capacity)
        if capacity == self.member_capacity[member]:  # the single agent keeps its buffer as it is
            return
        kept = self.contents(member)
        if capacity > self.capacity:
            if self.storage is not None:
                grown = self.storage[:, :1].expand(self.num_members, capacity).clone().zero_()
                grown[:, : self.capacity] = self.storage
                self.storage = grown
            self.capacity = capacity
        self.member_capacity[member] = capacity
        self.cursor[member] = self.size[member] = 0
        if kept is not None:
            kept = kept[-capacity:]
            self.storage[member, : kept.shape[0]] = kept
            self.cursor[member], self.size[member] = kept.shape[0] % capacity, kept.shape[0]

    def draw(self, member: int, count: int) -> torch.Tensor:
        """``count`` uniform indices into member ``member``'s filled rows, from its generator (what its
        single buffer's ``sample(count)`` draws)."""
        g = self.generators[member]
        return torch.randint(0, int(self.size[member]), (int(count),), generator=g, device=self.device)

    def gather(self, index: torch.Tensor) -> Any:
        """The transitions at ``index`` ``(K, *shape)``: member ``k``'s rows ``index[k]``."""
        rows = self._rows.reshape(-1, *([1] * (index.dim() - 1)))
        return self.storage[rows, index]

    def sample(self, members: Sequence[int]) -> Any:
        """A batch ``(K, batch_size)``: member ``k``'s rows drawn from its own buffer with its own
        generator for ``k`` in ``members`` (each needs a non-empty buffer); the other members' rows
        are their buffer's first row and draw nothing."""
        chosen = set(int(k) for k in members)
        index = torch.stack([
            self.draw(k, self.batch_size) if k in chosen
            else torch.zeros(self.batch_size, dtype=torch.long, device=self.device)
            for k in range(self.num_members)
        ])
        return self.gather(index)

    def member_state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s filled rows, cursor, size and capacity (its generator is the owner's)."""
        n = int(self.size[member])
        data = self.storage[member, :n].clone() if n else None
        return {"data": data, "cursor": int(self.cursor[member]), "size": n,
                "capacity": int(self.member_capacity[member])}

    def load_member_state(self, member: int, state: Mapping[str, Any]) -> None:
        """Restore :meth:`member_state` into member ``member`` (same rows at the same indices)."""
        n = int(state["size"])
        capacity = int(state.get("capacity", self.member_capacity[member]))
        if n > capacity:
            raise ValueError(f"the replay state holds {n} transitions, more than the capacity {capacity}")
        self.size[member] = 0
        self.resize(member, capacity)
        if n:
            data = state["data"].to(self.device)
            if self.storage is None:
                self._allocate(data[0])
            self.storage[member, :n] = data
        self.cursor[member], self.size[member] = int(state["cursor"]), n


# --------------------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------------------
def apply_model_capacity(
    config: Any, capacity: Mapping[str, int], explicit_fields: set[str],
    fields: Mapping[str, Sequence[str]],
) -> Any:
    """``config`` with an env's dynamics-model capacity constraint applied (the body of
    :meth:`vagram_bench.interfaces.Agent.apply_model_capacity` for model-based agents).

    Args:
        config: the agent's config dataclass.
        capacity: ``{"num_layers": L, "hid_size": H}`` from :func:`vagram_bench.envs.model_capacity`.
        explicit_fields: config fields the user set; one that conflicts with the constraint is an
            error.
        fields: which config fields each capacity key sets, e.g. ``{"hid_size": ("hid_size",)}``.

    Raises:
        AgentConfigError: an unknown capacity key, or an explicit conflicting override.
    """
    unknown = set(capacity) - set(fields)
    if unknown:
        raise AgentConfigError(
            f"unknown model-capacity keys {sorted(unknown)}; this agent understands {sorted(fields)}"
        )
    updates: dict[str, int] = {}
    for key, value in capacity.items():
        for field in fields[key]:
            current = getattr(config, field)
            if field in explicit_fields and current != value:
                raise AgentConfigError(
                    f"agent.{field}={current} conflicts with the env's model-capacity constraint "
                    f"{key}={value} ({dict(capacity)}); drop the override or use an env id without "
                    "a capacity constraint"
                )
            updates[field] = int(value)
    return dataclasses.replace(config, **updates)


def check_model_loss(model_loss: str, agent_loss: str | None = None, family: str = "") -> None:
    """Raise :class:`AgentConfigError` unless ``model_loss`` is a registered model loss and, with
    ``agent_loss``, equal to the loss the agent is named after (``<family>_<loss>``)."""
    from vagram_bench.models.losses import MODEL_LOSSES

    if model_loss not in MODEL_LOSSES:
        raise AgentConfigError(
            f"model_loss={model_loss!r} is not valid; choose one of {', '.join(MODEL_LOSSES)}"
        )
    if agent_loss is not None and model_loss != agent_loss:
        which = f"the agent {family}_{model_loss}" if family else f"the agent of loss {model_loss!r}"
        raise AgentConfigError(
            f"a config with model_loss={model_loss!r} conflicts with the agent, which uses {agent_loss!r}; "
            f"choose {which} (the loss is fixed by the agent, not a setting)"
        )


class LossVariants:
    """Mixin of an agent family whose registered agents differ only in their dynamics-model loss
    (``mbpo_*``, ``svg_*``): :meth:`with_loss` makes the agent of one loss, so the loss is named once,
    where the registered agent is defined (the entry point's target).

    The agent of a loss has a ``Config`` whose ``model_loss`` is fixed at that loss (an ``init=False``
    field: recorded in ``config.json`` like any field, but no setting: ``agent.model_loss=...`` is
    refused, the registered agent of that loss is the way to pick it). The family's own config class
    keeps ``model_loss`` settable for code that builds a population or config directly.
    """

    #: The loss of an agent made by :meth:`with_loss` (empty on the family's base class).
    model_loss_name: ClassVar[str] = ""

    @classmethod
    def with_loss(cls, loss: str, name: str | None = None, description: str | None = None) -> type:
        """The subclass of ``cls`` that trains its model with ``loss`` (made once per class and loss).

        Args:
            loss: a key of :data:`vagram_bench.models.losses.MODEL_LOSSES`.
            name: the class name; give the module attribute it is bound to, so that pickling and
                ``module:attr`` entry points find it.
            description: the agent's one-line description (``python -m vagram_bench.run list``).
        """
        check_model_loss(loss)
        made = cls.__dict__.get("_loss_variants")
        if made is None:
            made = {}
            cls._loss_variants = made  # type: ignore[attr-defined]
        if loss in made:
            return made[loss]
        name = name or f"{cls.__name__}_{loss}"
        config_cls = dataclasses.make_dataclass(
            "Config",
            [("model_loss", str, dataclasses.field(default=loss, init=False))],
            bases=(cls.Config,),  # type: ignore[attr-defined]
        )
        config_cls.__module__ = cls.__module__
        config_cls.__qualname__ = f"{name}.Config"
        config_cls.__doc__ = f"{cls.Config.__doc__ or ''}\n\nThe config of ``{name}``: ``model_loss`` is {loss!r}."  # type: ignore[attr-defined]
        description = description or f"{cls.description} ({loss} model loss)"  # type: ignore[attr-defined]
        variant = type(cls)(name, (cls,), {
            "__module__": cls.__module__, "__qualname__": name, "__doc__": description,
            "Config": config_cls, "model_loss_name": loss, "description": description,
        })
        made[loss] = variant
        return variant

    @classmethod
    def config_for_loss(cls, config: Any) -> Any:
        """``config`` (an instance of the family's config class) as an instance of ``cls.Config``;
        its ``model_loss`` must be this agent's (:class:`AgentConfigError` otherwise)."""
        check_model_loss(config.model_loss, cls.model_loss_name, getattr(cls, "loss_family", ""))
        config_cls = cls.Config  # type: ignore[attr-defined]
        if type(config) is config_cls:
            return config
        return config_cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config_cls) if f.init})
