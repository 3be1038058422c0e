"""Fixed evaluation protocols: what a benchmark number means.

A protocol is a versioned TOML file (``protocols/<name>.toml``, shipped as package data in
``vagram_bench.protocols``) that fixes everything a result depends on besides the agent: the tasks
(env ids), the training seeds, the env-step budget, the evaluation schedule (every ``eval_every``
env steps, ``eval_episodes`` episodes, episode ``i`` reset with seed ``eval_seed + i``), the metric
the leaderboard aggregates seeds with (``"iqm"`` or ``"mean"``), and optionally the agents it
compares and the reference returns used to normalise scores. ``[[agent_overrides]]`` entries list
the reductions a protocol makes against an agent's (the paper's) settings, e.g. smaller networks
on a CPU-sized budget, each with its reason: the runner makes their values the agent's defaults
for those agents on those tasks (``vagram_bench.runner.config``). ``[[variants]]`` name a registered agent
with other settings under a new agent name, so one grid can hold the same agent twice (e.g. ``mbpo_mle`` and
``mbpo_mle`` with mean rollouts as two rows).

Runs record the protocol's ``name``, ``version`` and ``content_hash`` (``config.json``), and the
leaderboard never mixes runs recorded under different versions or hashes of a protocol.

File format (every key is validated; unknown keys are errors)::

    name = "cpu"                         # must equal the file stem for shipped protocols
    version = 1                          # integer >= 1; bump on any change
    description = "..."
    tasks = ["HopperDistract-0-v0", "HopperDistract-15-v0"]
    seeds = [0, 1, 2]                    # training seeds (distinct, >= 0)
    steps = 20000                        # env-step budget per run ...
    eval_every = 2000                    # ... a multiple of eval_every
    eval_episodes = 5
    eval_seed = 1000000                  # eval episode i resets with eval_seed + i
    metric = "iqm"                       # or "mean"
    final_evals = 1                      # optional: final return = mean of the last N evaluations
    agents = ["sac", "mbpo_mse"]         # optional: the agents this protocol compares
    reference_source = "..."             # optional: where the reference returns come from

    [task_steps]                         # optional per-task budgets overriding ``steps``
    "Walker2d-v5" = 2000000

    [reference_scores]                   # optional, per task: normalised = (x - random) / (reference - random)
    "HopperDistract-0-v0" = { random = 18.1, reference = 3428.3 }

    [[agent_overrides]]                  # optional, repeatable: agent settings this protocol fixes
    agents = ["mbpo_mse", "mbpo_vagram"] # required: agent names
    tasks = ["HopperDistract-15-v0"]     # optional (default: every task); tasks of this protocol
    values = { sac_hidden_size = 256, initial_exploration_steps = 5000 }  # agent config fields
    reason = "..."                       # required: why the protocol departs from the agent's defaults

    [[variants]]                         # optional, repeatable: a registered agent under another name with other settings
    name = "mbpo_mle_mean"               # required: the row's agent name (run dirs, leaderboard); not a registered agent
    agent = "mbpo_mle"                   # required: the registered agent it is built from
    values = { rollout_sampling = "mean" }  # required: agent config fields (as in [[agent_overrides]])
    reason = "..."                       # required: why this variant is in the grid

    [[interaction]]                      # optional, repeatable: the setting x loss interaction (docs/protocols.md)
    anchor = "InvertedDoublePendulumDistract-0-v0"   # required: the undistracted, full-model task
    settings = ["InvertedDoublePendulumDistract-5-v0", "InvertedDoublePendulumCapacity-2x16-v0"]  # required
    solved_threshold = 9100.0            # optional: a run is solved at its first evaluation >= this (time to solve)
    pairs = ["mbpo_vagram:mbpo_mle"]     # optional: the (VaGraM, X) pairs (default: each *_vagram agent
                                         # against every other agent of its family)

Examples:
    >>> from vagram_bench.protocol import load_protocol, list_protocols
    >>> p = load_protocol("smoke")
    >>> p.name, p.metric, len(p.seeds) >= 1
    ('smoke', 'iqm', True)
    >>> p.steps_for(p.tasks[0]) % p.eval_every
    0
    >>> sorted(q.name for q in list_protocols())[:2]
    ['capacity', 'distraction']
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "AgentOverride",
    "AgentVariant",
    "InteractionSpec",
    "Protocol",
    "ProtocolError",
    "ReferenceScore",
    "load_protocol",
    "list_protocols",
    "protocol_names",
    "registered_agent_names",
    "registered_env_ids",
]

PROTOCOL_PACKAGE = "vagram_bench.protocols"
METRICS = ("iqm", "mean")


class ProtocolError(ValueError):
    """A protocol file that cannot be used. The message names the file once, then every offending
    key and its problem (``problems``, one ``"key '<key>': <problem>"`` string each)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


@dataclasses.dataclass(frozen=True)
class ReferenceScore:
    """Reference returns of one task for score normalisation: ``random`` maps to 0, ``reference`` to 1."""

    random: float
    """Return of the uniform-random policy (the score's zero)."""
    reference: float
    """Return of a documented reference agent (the score's one)."""

    def normalise(self, value: Any) -> Any:
        """``(value - random) / (reference - random)``; works elementwise on numpy arrays."""
        return (value - self.random) / (self.reference - self.random)


@dataclasses.dataclass(frozen=True)
class AgentOverride:
    """One ``[[agent_overrides]]`` entry: agent config values a protocol fixes for some agents on
    some of its tasks, and why."""

    agents: tuple[str, ...]
    """Agent names the entry applies to."""
    tasks: tuple[str, ...]
    """Tasks the entry applies to (every task of the protocol when the file names none)."""
    values: Mapping[str, Any] = dataclasses.field(hash=False)
    """``{config field: value}``: TOML scalars, arrays as tuples; the runner converts them as it
    converts command-line values."""
    reason: str = ""
    """Why the protocol departs from the agent's own settings."""

    def applies_to(self, agent: str, task: str) -> bool:
        """Whether this entry sets ``agent``'s config on ``task``."""
        return agent in self.agents and task in self.tasks


@dataclasses.dataclass(frozen=True)
class AgentVariant:
    """One ``[[variants]]`` entry: a registered agent run under another agent name with some config fields set,
    so that a grid can hold the same agent twice with different settings (one row each)."""

    name: str
    """The variant's agent name: what ``agent=`` takes with this protocol, the run directories' and the
    leaderboard's agent."""
    agent: str
    """The registered agent it is built from."""
    values: Mapping[str, Any] = dataclasses.field(hash=False)
    """``{config field: value}`` set on top of the agent's defaults (as ``[[agent_overrides]]`` values are)."""
    reason: str = ""
    """Why the variant is in the grid."""

    def record(self) -> dict[str, Any]:
        """What a run of the variant stores under ``"variant"`` in ``config.json``."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()}
        return {"agent": self.agent, "values": values, "reason": self.reason}

    def as_override(self, tasks: Sequence[str]) -> AgentOverride:
        """The variant's values as an ``[[agent_overrides]]``-style entry for its name on every task."""
        return AgentOverride(agents=(self.name,), tasks=tuple(tasks), values=self.values,
                             reason=f"variant {self.name!r} of agent {self.agent!r}: {self.reason}")


@dataclasses.dataclass(frozen=True)
class InteractionSpec:
    """One ``[[interaction]]`` entry: the anchor task and the settings whose change from it the leaderboard
    reports as the primary statistic (:mod:`vagram_bench.interaction`)."""

    anchor: str
    """The undistracted, full-model task every setting is compared with."""
    settings: tuple[str, ...]
    """Tasks of the same family under another setting (distractor count, model size)."""
    solved_threshold: float | None = None
    """Return at or above which an evaluation counts as solved (time to solve; ``None``: not reported)."""
    pairs: tuple[tuple[str, str], ...] | None = None
    """The ``(VaGraM, X)`` pairs compared (``None``: the default, :func:`vagram_bench.interaction.default_pairs`)."""


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A loaded, validated evaluation protocol (see the module docstring for the file format).

    Attributes are read-only. ``content_hash`` is the SHA-256 of the canonicalised content (the
    parsed TOML as sorted-key JSON, without ``description`` and the ``reason`` of agent overrides and variants),
    so reformatting, reordering keys or editing comments and prose does not change it, while any
    change to what a run or a table depends on does.
    """

    name: str
    version: int
    content_hash: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    eval_every: int
    eval_episodes: int
    eval_seed: int
    metric: str
    agents: tuple[str, ...] | None
    description: str
    final_evals: int = 1
    task_steps: Mapping[str, int] = dataclasses.field(default_factory=dict, hash=False)
    reference_scores: Mapping[str, ReferenceScore] = dataclasses.field(
        default_factory=dict, hash=False
    )
    reference_source: str = ""
    agent_overrides: tuple[AgentOverride, ...] = ()
    variants: tuple[AgentVariant, ...] = ()
    """The ``[[variants]]`` entries: agent names this protocol defines on top of the registered agents."""
    interaction: tuple[InteractionSpec, ...] = ()
    """The ``[[interaction]]`` entries (``()``: a protocol without an anchor, whose report has no interaction
    section)."""
    pinned_agent_settings: tuple[AgentOverride, ...] = ()
    """Agent settings this exact version ran with that the agents' defaults have since changed
    (``vagram_bench.protocols.PINNED_AGENT_SETTINGS``; not part of the file, so not of the hash): applied
    as ``agent_overrides`` are."""
    path: Path | None = dataclasses.field(default=None, compare=False, hash=False)

    def steps_for(self, task: str) -> int:
        """The env-step budget of ``task`` (``task_steps[task]`` if set, else ``steps``)."""
        if task not in self.tasks:
            raise KeyError(f"task {task!r} is not in protocol {self.name!r}; tasks: {list(self.tasks)}")
        return int(self.task_steps.get(task, self.steps))

    def eval_steps_for(self, task: str) -> tuple[int, ...]:
        """The env steps at which a run of ``task`` is evaluated: ``eval_every, 2*eval_every, ..., steps``."""
        return tuple(range(self.eval_every, self.steps_for(task) + 1, self.eval_every))

    def variant(self, agent: str) -> AgentVariant | None:
        """The ``[[variants]]`` entry named ``agent`` (``None``: ``agent`` is no variant of this protocol)."""
        return next((v for v in self.variants if v.name == agent), None)

    def base_agent(self, agent: str) -> str:
        """The registered agent ``agent`` is built from: a variant's ``agent``, else ``agent`` itself."""
        variant = self.variant(agent)
        return variant.agent if variant is not None else agent

    def agent_override_entries(self, agent: str, task: str) -> list[AgentOverride]:
        """The settings this protocol fixes for ``agent`` on ``task``, in the order they apply: a variant's
        values (as an entry for every task), then the ``[[agent_overrides]]`` entries naming ``agent`` (in file
        order; no two set the same field, but one may set a variant's field anew), then the
        :attr:`pinned_agent_settings` that apply."""
        if task not in self.tasks:
            raise KeyError(f"task {task!r} is not in protocol {self.name!r}; tasks: {list(self.tasks)}")
        variant = self.variant(agent)
        own = [variant.as_override(self.tasks)] if variant is not None else []
        entries = self.agent_overrides + self.pinned_agent_settings
        return own + [entry for entry in entries if entry.applies_to(agent, task)]

    def agent_overrides_for(self, agent: str, task: str) -> dict[str, Any]:
        """``{config field: value}`` this protocol fixes for ``agent`` on ``task`` (``{}``: none); a later
        entry's value wins (an ``[[agent_overrides]]`` value over a variant's)."""
        return {k: v for entry in self.agent_override_entries(agent, task) for k, v in entry.values.items()}

    @property
    def short_hash(self) -> str:
        """The first 12 hex digits of ``content_hash`` (for display)."""
        return self.content_hash[:12]

    def record(self) -> dict[str, Any]:
        """What a run stores under ``"protocol"`` in ``config.json``."""
        return {"name": self.name, "version": self.version, "hash": self.content_hash}

    def schedule_problem(self, task: str, eval_steps: Sequence[int]) -> str | None:
        """Why the evaluations of a run marked complete (``summary.json``) are not a complete record of
        ``task`` under this protocol (``None``: they are exactly :meth:`eval_steps_for`). The one rule the
        sweep (which cells to skip) and the leaderboard (which runs to count) both apply."""
        steps, expected = [int(s) for s in eval_steps], list(self.eval_steps_for(task))
        if steps == expected:
            return None
        shown = ", ".join(map(str, steps[:3])) + (f", ..., {steps[-1]}" if len(steps) > 3 else "")
        return (f"marked complete (summary.json) but its eval.csv holds {len(steps)} evaluation(s) at env steps "
                f"[{shown}], not the protocol's {len(expected)} (every {self.eval_every} to "
                f"{self.steps_for(task)}): a truncated or damaged record")

    def matches_record(self, record: Mapping[str, Any] | None) -> bool:
        """Whether a run's ``config.json["protocol"]`` was recorded under exactly this protocol."""
        if not record:
            return False
        return (
            record.get("name") == self.name
            and record.get("version") == self.version
            and record.get("hash") == self.content_hash
        )

    def cells(self, agents: list[str] | tuple[str, ...] | None = None) -> list[tuple[str, str, int]]:
        """Every ``(agent, task, seed)`` cell of the grid, agents ordered as given (default: ``agents``)."""
        agents = tuple(agents) if agents else self.agents
        if not agents:
            raise ValueError(
                f"protocol {self.name!r} names no agents; pass the agents to compare explicitly"
            )
        return [(a, t, s) for a in agents for t in self.tasks for s in self.seeds]


# --------------------------------------------------------------------------------------------------
# registries the ids are checked against


def registered_env_ids() -> set[str]:
    """Env ids registered with gymnasium after ``import vagram_bench`` (which registers ours)."""
    import gymnasium as gym

    from vagram_bench.envs import registered_ids

    return set(gym.registry.keys()) | set(registered_ids())


def registered_agent_names() -> set[str]:
    """Public agent names: the ``vagram_bench.agents`` entry-point group (our agents and
    third-party plugins), as :func:`vagram_bench.registry.agent_names` lists them."""
    from vagram_bench import registry

    return set(registry.agent_names())


# --------------------------------------------------------------------------------------------------
# schema


class _Problems:
    """Collects every problem of one protocol file (``key '<key>': <problem>``), so a malformed file
    is reported in one message that names the file once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def __call__(self, key: str, problem: str) -> None:
        self.problems.append(f"key {key!r}: {problem}")

    def raise_if_any(self) -> None:
        if len(self.problems) == 1:
            raise ProtocolError(f"{self.source}: {self.problems[0]}", self.problems)
        if self.problems:
            raise ProtocolError(
                f"{self.source}: {len(self.problems)} problems:\n  " + "\n  ".join(self.problems), self.problems
            )


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) and math.isfinite(x)


def _pos_int(err: _Problems, key: str, value: Any, minimum: int = 1) -> int | None:
    """``value`` if it is an integer >= ``minimum``, else ``None`` (and the problem recorded)."""
    if not _is_int(value) or value < minimum:
        err(key, f"expected an integer >= {minimum}, got {value!r}")
        return None
    return value


def _str_list(err: _Problems, key: str, value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        err(key, f"expected a non-empty list of non-empty strings, got {value!r}")
        return None
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        err(key, f"duplicate entries {dupes}")
    return tuple(value)


def _not_an_agent(agent: str, agent_names: set[str], variant_names: Sequence[str]) -> str:
    """Why ``agent`` names no agent: not registered and (``variant_names``) no variant of this protocol."""
    registered = sorted(set(agent_names) - set(variant_names))
    if not variant_names:
        return f"{agent!r} is not a registered agent; registered: {registered}"
    return (f"{agent!r} is not a registered agent or a variant of this protocol; registered: {registered}, "
            f"variants: {sorted(variant_names)}")


def _is_override_scalar(x: Any) -> bool:
    """A value an agent config field can take from a protocol: string, boolean, integer or a number
    that is not NaN (NaN would never equal itself, so no command-line value could agree with it)."""
    if isinstance(x, float):
        return not math.isnan(x)
    return isinstance(x, (str, bool, int))


def _override_values(err: _Problems, prefix: str, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """An entry's ``values`` table, ``None`` if missing or invalid (problems recorded)."""
    values = entry.get("values")
    if "values" not in entry:
        return None
    if not isinstance(values, dict) or not values:
        err(f"{prefix}.values", f"expected a non-empty table of agent config fields, got {values!r}")
        return None
    for field, value in values.items():
        ok = _is_override_scalar(value) or (
            isinstance(value, list) and all(_is_override_scalar(v) for v in value)
        )
        if not ok:
            err(f"{prefix}.values.{field}", "expected a string, boolean, number (not NaN) or an "
                                            f"array of them, got {value!r}")
            values = None
    return values


def _override_entry(err: _Problems, prefix: str, entry: Mapping[str, Any], tasks: tuple[str, ...] | None,
                    agent_names: set[str] | None, variant_names: Sequence[str] = ()) -> tuple[Any, Any, Any, Any]:
    """One entry's ``agents``, ``tasks``, ``values`` and ``reason`` (``None`` where invalid)."""
    for key in sorted(set(entry) - set(_OVERRIDE_KEYS)):
        err(f"{prefix}.{key}", f"unknown key; valid keys are {list(_OVERRIDE_KEYS)}")
    for key in ("agents", "values", "reason"):
        if key not in entry:
            err(f"{prefix}.{key}", "missing required key")
    agents = _str_list(err, f"{prefix}.agents", entry["agents"]) if "agents" in entry else None
    if agents is not None and agent_names is not None:
        for agent in agents:
            if agent not in agent_names:
                err(f"{prefix}.agents", _not_an_agent(agent, agent_names, variant_names))
    entry_tasks = tasks
    if "tasks" in entry:
        entry_tasks = _str_list(err, f"{prefix}.tasks", entry["tasks"])
        if entry_tasks is not None and tasks is not None:
            for task in entry_tasks:
                if task not in tasks:
                    err(f"{prefix}.tasks", f"task {task!r} is not in tasks {list(tasks)}")
    values = _override_values(err, prefix, entry)
    reason = entry.get("reason")
    if "reason" in entry and (not isinstance(reason, str) or not reason.strip()):
        err(f"{prefix}.reason", f"expected a non-empty string saying why, got {reason!r}")
    return agents, entry_tasks, values, reason


def _agent_overrides(
    err: _Problems, raw: Any, tasks: tuple[str, ...] | None, agent_names: set[str] | None,
    variant_names: Sequence[str] = (),
) -> tuple[AgentOverride, ...]:
    """Validate the ``[[agent_overrides]]`` entries (problems under ``agent_overrides[i].<key>``).

    ``tasks``: the protocol's tasks (``None`` if invalid: membership is then not checked);
    ``agent_names``: the registered agents and the protocol's ``variant_names`` to check names against
    (``None``: not checked).
    """
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        err("agent_overrides", f"expected [[agent_overrides]] tables, got {raw!r}")
        return ()
    entries: list[AgentOverride] = []
    setters: dict[tuple[str, str, str], int] = {}  # (agent, task, field) -> the entry that sets it
    for i, entry in enumerate(raw):
        prefix = f"agent_overrides[{i}]"
        agents, entry_tasks, values, reason = _override_entry(err, prefix, entry, tasks, agent_names, variant_names)
        if agents is None or entry_tasks is None or values is None:
            continue
        clashes: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for agent in agents:
            for task in entry_tasks:
                for field in values:
                    earlier = setters.setdefault((agent, task, field), i)
                    if earlier != i:
                        clashes.setdefault((field, earlier), []).append((agent, task))
        for (field, earlier), pairs in clashes.items():
            err(f"{prefix}.values.{field}", f"agent_overrides[{earlier}] already sets {field!r} for "
                                            f"(agent, task) {pairs}; set each field once per agent and task")
        if isinstance(reason, str) and reason.strip():
            entries.append(AgentOverride(
                agents=agents, tasks=tuple(entry_tasks),
                values={k: tuple(v) if isinstance(v, list) else v for k, v in values.items()},
                reason=reason.strip(),
            ))
    return tuple(entries)


_VARIANT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def _variant_entry(err: _Problems, prefix: str, entry: Mapping[str, Any], agent_names: set[str] | None,
                   seen: Mapping[str, int]) -> AgentVariant | None:
    """One ``[[variants]]`` entry (``None`` where invalid; problems under ``variants[i].<key>``)."""
    for key in sorted(set(entry) - set(_VARIANT_KEYS)):
        err(f"{prefix}.{key}", f"unknown key; valid keys are {list(_VARIANT_KEYS)}")
    for key in _VARIANT_KEYS:
        if key not in entry:
            err(f"{prefix}.{key}", "missing required key")
    name, agent, reason = entry.get("name"), entry.get("agent"), entry.get("reason")
    registered = f"registered agents: {sorted(agent_names)}" if agent_names is not None else ""
    ok = True
    if "name" in entry:
        # The name becomes a run-directory component and a leaderboard row; "X:Y" pairs split on ':'.
        if not isinstance(name, str) or not _VARIANT_NAME.match(name):
            err(f"{prefix}.name", "expected a name of ASCII letters, digits and '_' that starts with a letter "
                                  f"(it names run directories and leaderboard rows), got {name!r}")
            ok = False
        elif agent_names is not None and name in agent_names:
            err(f"{prefix}.name", f"{name!r} is a registered agent; a variant needs a name of its own "
                                  f"(not one of the {registered})")
            ok = False
        elif name in seen:
            err(f"{prefix}.name", f"{name!r} is already the name of variants[{seen[name]}]; each variant "
                                  "needs its own name")
            ok = False
    if "agent" in entry:
        if not isinstance(agent, str) or not agent:
            err(f"{prefix}.agent", f"expected a registered agent's name, got {agent!r}")
            ok = False
        elif agent_names is not None and agent not in agent_names:
            hint = " (a variant is built from a registered agent, not from another variant)" if agent in seen else ""
            err(f"{prefix}.agent", f"{agent!r} is not a registered agent{hint}; {registered}")
            ok = False
        elif agent_names is None and agent in seen:
            err(f"{prefix}.agent", f"{agent!r} is a variant; a variant is built from a registered agent")
            ok = False
    values = _override_values(err, prefix, entry)
    if "reason" in entry and (not isinstance(reason, str) or not reason.strip()):
        err(f"{prefix}.reason", f"expected a non-empty string saying why the variant is in the grid, got {reason!r}")
        ok = False
    if not ok or values is None or "name" not in entry or "agent" not in entry or "reason" not in entry:
        return None
    return AgentVariant(name=name, agent=agent, reason=reason.strip(),
                        values={k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _variants(err: _Problems, raw: Any, agent_names: set[str] | None) -> tuple[AgentVariant, ...]:
    """Validate the ``[[variants]]`` entries. ``agent_names``: the registered agents (``None``: not checked;
    a variant's name must then still differ from every other variant's, and its agent from every variant)."""
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        err("variants", f"expected [[variants]] tables, got {raw!r}")
        return ()
    # every name first, so that an entry built from a later entry's variant is named as such
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        if isinstance(entry.get("name"), str):
            seen.setdefault(entry["name"], i)
    variants = []
    for i, entry in enumerate(raw):
        others = {n: j for n, j in seen.items() if j != i}
        variant = _variant_entry(err, f"variants[{i}]", entry, agent_names, others)
        if variant is not None:
            variants.append(variant)
    return tuple(variants)


def _task_of(err: _Problems, key: str, value: Any, tasks: tuple[str, ...] | None) -> str | None:
    """``value`` if it is one of the protocol's tasks (``tasks`` ``None``: any non-empty string)."""
    if not isinstance(value, str) or not value:
        err(key, f"expected a task id (a non-empty string), got {value!r}")
        return None
    if tasks is not None and value not in tasks:
        err(key, f"task {value!r} is not in tasks {list(tasks)}")
        return None
    return value


def _interaction_pairs(err: _Problems, key: str, raw: Any, agents: tuple[str, ...] | None,
                       agent_names: set[str] | None) -> tuple[tuple[str, str], ...] | None:
    """``pairs = ["X:Y", ...]`` of one entry, each naming two different agents (of ``agents`` when the
    protocol lists them, else registered ones)."""
    valid = list(agents) if agents is not None else (sorted(agent_names) if agent_names is not None else None)
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
        err(key, f"expected a non-empty list of \"X:Y\" strings (X the VaGraM agent), got {raw!r}")
        return None
    pairs = []
    for pair in raw:
        parts = pair.split(":")
        if len(parts) != 2 or parts[0] == parts[1] or not all(parts) or \
                (valid is not None and not all(a in valid for a in parts)):
            err(key, f"bad pair {pair!r}; a pair is X:Y with two different agents"
                     + (f", valid agents: {valid}" if valid is not None else ""))
            return None
        pairs.append((parts[0], parts[1]))
    return tuple(pairs)


def _interaction_entry(err: _Problems, prefix: str, entry: Mapping[str, Any], tasks: tuple[str, ...] | None,
                       refs: Mapping[str, ReferenceScore], agents: tuple[str, ...] | None,
                       agent_names: set[str] | None) -> InteractionSpec | None:
    for key in sorted(set(entry) - set(_INTERACTION_KEYS)):
        err(f"{prefix}.{key}", f"unknown key; valid keys are {list(_INTERACTION_KEYS)}")
    for key in ("anchor", "settings"):
        if key not in entry:
            err(f"{prefix}.{key}", "missing required key")
    anchor = _task_of(err, f"{prefix}.anchor", entry["anchor"], tasks) if "anchor" in entry else None
    settings = _str_list(err, f"{prefix}.settings", entry["settings"]) if "settings" in entry else None
    if settings is not None:
        checked = [_task_of(err, f"{prefix}.settings", t, tasks) for t in settings]
        settings = tuple(checked) if all(t is not None for t in checked) else None
        if settings is not None and anchor in settings:
            err(f"{prefix}.settings", f"the anchor {anchor!r} is not a setting of itself")
            settings = None
    # The drops are differences of normalised returns, so every task compared needs its reference points.
    compared = [t for t in ([anchor] if anchor else []) + list(settings or ()) if t not in refs]
    if compared:
        err(f"{prefix}", f"tasks {compared} have no reference_scores; the interaction's drops are in "
                         "normalised return, so add them under [reference_scores]")
    threshold = entry.get("solved_threshold")
    if "solved_threshold" in entry and not _is_number(threshold):
        err(f"{prefix}.solved_threshold", f"expected a finite number (a return), got {threshold!r}")
        threshold = None
    pairs = (_interaction_pairs(err, f"{prefix}.pairs", entry["pairs"], agents, agent_names)
             if "pairs" in entry else None)
    if anchor is None or settings is None or compared or ("pairs" in entry and pairs is None):
        return None
    return InteractionSpec(anchor, tuple(settings), None if threshold is None else float(threshold), pairs)


def _interaction(err: _Problems, raw: Any, tasks: tuple[str, ...] | None, refs: Mapping[str, ReferenceScore],
                 agents: tuple[str, ...] | None, agent_names: set[str] | None) -> tuple[InteractionSpec, ...]:
    """Validate the ``[[interaction]]`` entries (problems under ``interaction[i].<key>``); a task is the anchor
    or a setting of at most one entry, so every table row names one comparison."""
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        err("interaction", f"expected [[interaction]] tables, got {raw!r}")
        return ()
    specs, owner = [], {}
    for i, entry in enumerate(raw):
        spec = _interaction_entry(err, f"interaction[{i}]", entry, tasks, refs, agents, agent_names)
        if spec is None:
            continue
        for task in (spec.anchor, *spec.settings):
            if owner.setdefault(task, i) != i:
                err(f"interaction[{i}]", f"task {task!r} is already compared by interaction[{owner[task]}]; "
                                         "each task belongs to one [[interaction]] entry")
        specs.append(spec)
    return tuple(specs)


_REQUIRED = ("name", "version", "description", "tasks", "seeds", "steps", "eval_every",
             "eval_episodes", "eval_seed", "metric")
_OPTIONAL = ("final_evals", "agents", "task_steps", "reference_scores", "reference_source",
             "agent_overrides", "variants", "interaction")
_KNOWN = _REQUIRED + _OPTIONAL
_OVERRIDE_KEYS = ("agents", "tasks", "values", "reason")
_INTERACTION_KEYS = ("anchor", "settings", "solved_threshold", "pairs")
_VARIANT_KEYS = ("name", "agent", "values", "reason")


def _canonical_hash(content: Mapping[str, Any]) -> str:
    # Prose (the description, an override's or a variant's reason) is not part of what a run depends on.
    # A protocol without entries hashes as before either table existed.
    payload = {k: v for k, v in content.items() if k != "description"}
    for table in ("agent_overrides", "variants"):
        if payload.get(table):
            payload[table] = [{k: v for k, v in entry.items() if k != "reason"} for entry in payload[table]]
        else:
            payload.pop(table, None)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _identity(err: _Problems, content: Mapping[str, Any], expected_name: str | None) -> tuple[Any, Any, Any]:
    """``name``, ``version``, ``description`` (``None``/invalid values after recording their problems)."""
    name = content.get("name")
    if "name" in content:
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
            err("name", f"expected a non-empty string of letters, digits, '-' or '_', got {name!r}")
        elif expected_name is not None and name != expected_name:
            err("name", f"{name!r} does not match the file name {expected_name!r}")
    version = _pos_int(err, "version", content["version"]) if "version" in content else None
    description = content.get("description", "")
    if "description" in content and (not isinstance(description, str) or not description.strip()):
        err("description", f"expected a non-empty string, got {description!r}")
    return name, version, description


def _tasks_and_seeds(err: _Problems, content: Mapping[str, Any], check_ids: bool
                     ) -> tuple[tuple[str, ...] | None, tuple[int, ...] | None]:
    tasks = _str_list(err, "tasks", content["tasks"]) if "tasks" in content else None
    if check_ids and tasks is not None:
        env_ids = registered_env_ids()
        for task in tasks:
            if task not in env_ids:
                ours = sorted(i for i in env_ids if "Distract" in i or "Capacity" in i or "Truncated" in i)
                err("tasks", f"{task!r} is not a registered env id (vagram-bench registers "
                             f"{len(ours)} ids, e.g. {ours[:6]}; gymnasium's include Hopper-v5)")
    seeds: tuple[int, ...] | None = None
    if "seeds" in content:
        seeds_raw = content["seeds"]
        if not isinstance(seeds_raw, list) or not seeds_raw or not all(_is_int(s) and s >= 0 for s in seeds_raw):
            err("seeds", f"expected a non-empty list of integers >= 0, got {seeds_raw!r}")
        elif len(set(seeds_raw)) != len(seeds_raw):
            err("seeds", f"duplicate seeds in {seeds_raw!r}")
        else:
            seeds = tuple(seeds_raw)
    return tasks, seeds


@dataclasses.dataclass
class _Schedule:
    """The validated budget and evaluation keys (``None``: invalid or missing)."""

    steps: int | None
    eval_every: int | None
    eval_episodes: int | None
    eval_seed: int | None
    task_steps: dict[str, int]
    final_evals: int | None


def _schedule(err: _Problems, content: Mapping[str, Any], tasks: tuple[str, ...] | None,
              seeds: tuple[int, ...] | None) -> _Schedule:
    steps = _pos_int(err, "steps", content["steps"]) if "steps" in content else None
    eval_every = _pos_int(err, "eval_every", content["eval_every"]) if "eval_every" in content else None
    eval_episodes = _pos_int(err, "eval_episodes", content["eval_episodes"]) if "eval_episodes" in content else None
    eval_seed = _pos_int(err, "eval_seed", content["eval_seed"], minimum=0) if "eval_seed" in content else None
    if steps is not None and eval_every is not None and steps % eval_every:
        err("steps", f"{steps} is not a multiple of eval_every ({eval_every}), so the last "
                     "evaluation would not fall on the budget")
    # Evaluation episodes must never replay a training seed's initial states.
    if seeds is not None and eval_seed is not None and eval_episodes is not None:
        eval_range = range(eval_seed, eval_seed + eval_episodes)
        clash = sorted(s for s in seeds if s in eval_range)
        if clash:
            err("eval_seed", f"evaluation seeds {eval_seed}..{eval_seed + eval_episodes - 1} "
                             f"overlap the training seeds {clash}; choose a disjoint eval_seed")
    metric = content.get("metric")
    if "metric" in content and metric not in METRICS:
        err("metric", f"{metric!r} is not one of {list(METRICS)}")
    task_steps = _task_steps(err, content.get("task_steps", {}), tasks, eval_every)
    final_evals = _pos_int(err, "final_evals", content.get("final_evals", 1))
    if final_evals is not None and tasks is not None and steps is not None and eval_every is not None:
        min_evals = min(task_steps.get(t, steps) // eval_every for t in tasks)
        if final_evals > min_evals:
            err("final_evals", f"{final_evals} exceeds the number of evaluations of the shortest "
                               f"task ({min_evals})")
    return _Schedule(steps, eval_every, eval_episodes, eval_seed, task_steps, final_evals)


def _task_steps(err: _Problems, raw: Any, tasks: tuple[str, ...] | None, eval_every: int | None
                ) -> dict[str, int]:
    task_steps: dict[str, int] = {}
    if not isinstance(raw, dict):
        err("task_steps", f"expected a table task -> steps, got {raw!r}")
        raw = {}
    for task, n in raw.items():
        key = f"task_steps.{task}"
        if tasks is not None and task not in tasks:
            err(key, f"task {task!r} is not in tasks {list(tasks)}")
        value = _pos_int(err, key, n)
        if value is None:
            continue
        task_steps[task] = value
        if eval_every is not None and value % eval_every:
            err(key, f"{value} is not a multiple of eval_every ({eval_every})")
    return task_steps


def _references(err: _Problems, content: Mapping[str, Any], tasks: tuple[str, ...] | None
                ) -> tuple[dict[str, ReferenceScore], str]:
    """``reference_scores`` and ``reference_source``."""
    refs_raw = content.get("reference_scores", {})
    refs: dict[str, ReferenceScore] = {}
    if not isinstance(refs_raw, dict):
        err("reference_scores", f"expected a table task -> {{random, reference}}, got {refs_raw!r}")
        refs_raw = {}
    for task, ref in refs_raw.items():
        key = f"reference_scores.{task}"
        if tasks is not None and task not in tasks:
            err(key, f"task {task!r} is not in tasks {list(tasks)}")
        if not isinstance(ref, dict) or set(ref) != {"random", "reference"}:
            err(key, f"expected exactly the keys 'random' and 'reference', got {ref!r}")
        elif not (_is_number(ref["random"]) and _is_number(ref["reference"])):
            err(key, f"'random' and 'reference' must be finite numbers, got {ref!r}")
        elif ref["reference"] <= ref["random"]:
            err(key, f"'reference' ({ref['reference']}) must exceed 'random' ({ref['random']})")
        else:
            refs[task] = ReferenceScore(float(ref["random"]), float(ref["reference"]))
    reference_source = content.get("reference_source", "")
    if not isinstance(reference_source, str):
        err("reference_source", f"expected a string, got {reference_source!r}")
        reference_source = ""
    elif refs_raw and not reference_source.strip():
        err("reference_source", "reference_scores are given, so say where they come from")
    return refs, reference_source


def _agent_names(err: _Problems, content: Mapping[str, Any], check_ids: bool
                 ) -> tuple[tuple[AgentVariant, ...], set[str] | None, list[str]]:
    """The ``[[variants]]``, the agent names the protocol may name (registered agents and its variants;
    ``None``: not checked) and its variants' names: every name an entry gives, valid entry or not (its own
    problems are reported under it, not again wherever the name is used)."""
    needs = check_ids and bool({"agents", "agent_overrides", "variants"} & set(content))
    registered = registered_agent_names() if needs else None
    raw = content.get("variants", [])
    variants = _variants(err, raw, registered)
    names = {e["name"] for e in raw if isinstance(e, dict) and isinstance(e.get("name"), str)} \
        if isinstance(raw, list) else set()
    if registered is None:
        return variants, None, sorted(names)
    return variants, registered | names, sorted(names - registered)


def parse_protocol(
    content: Mapping[str, Any],
    source: str,
    *,
    check_ids: bool = True,
    expected_name: str | None = None,
    path: Path | None = None,
) -> Protocol:
    """Validate parsed TOML ``content`` and build a :class:`Protocol`.

    Every key is checked (a check that needs another key's value runs when that value is valid),
    and all problems are reported together.

    Args:
        content: the parsed TOML document.
        source: how errors name the file (its path).
        check_ids: check tasks against the gymnasium registry and agents against the agent registry.
        expected_name: if given, ``name`` must equal it (shipped protocols: the file stem).
        path: the file the content came from (stored on the protocol).

    Raises:
        ProtocolError: naming ``source`` once, then every offending key and its problem.
    """
    err = _Problems(source)
    for key in sorted(set(content) - set(_KNOWN)):
        err(key, f"unknown key; valid keys are {list(_KNOWN)}")
    for key in _REQUIRED:
        if key not in content:
            err(key, "missing required key")
    name, version, description = _identity(err, content, expected_name)
    tasks, seeds = _tasks_and_seeds(err, content, check_ids)
    schedule = _schedule(err, content, tasks, seeds)
    agents = _str_list(err, "agents", content["agents"]) if "agents" in content else None
    refs, reference_source = _references(err, content, tasks)
    variants, agent_names, variant_names = _agent_names(err, content, check_ids)
    if agent_names is not None and agents is not None:
        for agent in agents:
            if agent not in agent_names:
                err("agents", _not_an_agent(agent, agent_names, variant_names))
    agent_overrides = _agent_overrides(err, content.get("agent_overrides", []), tasks, agent_names, variant_names)
    interaction = _interaction(err, content.get("interaction", []), tasks, refs, agents, agent_names)
    err.raise_if_any()
    return Protocol(
        name=name,
        version=version,
        content_hash=_canonical_hash(content),
        tasks=tasks,
        seeds=seeds,
        steps=schedule.steps,
        eval_every=schedule.eval_every,
        eval_episodes=schedule.eval_episodes,
        eval_seed=schedule.eval_seed,
        metric=content.get("metric"),
        agents=agents,
        description=description.strip(),
        final_evals=schedule.final_evals,
        task_steps=schedule.task_steps,
        reference_scores=refs,
        reference_source=reference_source.strip(),
        agent_overrides=agent_overrides,
        variants=variants,
        interaction=interaction,
        pinned_agent_settings=_pinned_agent_settings(name, version, _canonical_hash(content)),
        path=path,
    )


def _pinned_agent_settings(name: Any, version: Any, content_hash: str) -> tuple[AgentOverride, ...]:
    """The pinned agent settings of exactly this protocol version (``vagram_bench.protocols``)."""
    from vagram_bench.protocols import PINNED_AGENT_SETTINGS

    return tuple(
        AgentOverride(agents=tuple(e["agents"]), tasks=tuple(e["tasks"]),
                      values={k: tuple(v) if isinstance(v, list) else v for k, v in e["values"].items()},
                      reason=e["reason"])
        for e in PINNED_AGENT_SETTINGS.get((name, version, content_hash), ())
    )


def _shipped_files() -> dict[str, Any]:
    root = importlib.resources.files(PROTOCOL_PACKAGE)
    return {
        entry.name[: -len(".toml")]: entry
        for entry in root.iterdir()
        if entry.name.endswith(".toml")
    }


def protocol_names() -> list[str]:
    """Names of the shipped protocols (sorted)."""
    return sorted(_shipped_files())


def load_protocol(name_or_path: str | Path | Protocol, *, check_ids: bool = True) -> Protocol:
    """Load a shipped protocol by name (``"cpu"``) or any protocol file by path.

    Args:
        name_or_path: a shipped protocol's name, a path to a ``.toml`` file, or a ``Protocol``
            (returned unchanged).
        check_ids: validate task ids against the gymnasium registry and agent names against the
            agent registry (on by default).

    Raises:
        ProtocolError: unknown name (listing the shipped ones), unreadable file, invalid TOML, or a
            schema violation (naming the file, the key and the problem).

    Examples:
        >>> load_protocol("distraction").tasks
        ('HopperDistract-0-v0', 'HopperDistract-5-v0', 'HopperDistract-10-v0', 'HopperDistract-15-v0')
    """
    if isinstance(name_or_path, Protocol):
        return name_or_path
    text = str(name_or_path)
    shipped = _shipped_files()
    if text in shipped:
        entry = shipped[text]
        source = f"{PROTOCOL_PACKAGE}/{entry.name}"
        raw = entry.read_text(encoding="utf-8")
        expected: str | None = text
        path = Path(str(entry))
    else:
        path = Path(text)
        if path.suffix != ".toml" or not path.exists():
            raise ProtocolError(
                f"unknown protocol {text!r}: not a shipped protocol {sorted(shipped)} "
                "and not an existing .toml file"
            )
        source = str(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProtocolError(f"{source}: cannot read: {exc}") from exc
        expected = None
    try:
        content = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{source}: invalid TOML: {exc}") from exc
    return parse_protocol(content, source, check_ids=check_ids, expected_name=expected, path=path)


def list_protocols(*, check_ids: bool = True) -> list[Protocol]:
    """Every shipped protocol, loaded and validated, sorted by name."""
    return [load_protocol(n, check_ids=check_ids) for n in protocol_names()]
