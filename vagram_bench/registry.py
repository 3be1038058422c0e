"""Agent plugin registry: discovery and validation of the ``vagram_bench.agents`` entry-point group.

Our agents (``sac``, ``mbpo_*``, ``svg_*``) are declared in ``pyproject.toml`` in the same group a
third-party package uses::

    [project.entry-points."vagram_bench.agents"]
    my_agent = "my_package.agent:MyAgent"

An entry point is valid when it loads, is a concrete subclass of
:class:`vagram_bench.interfaces.Agent`, and has a ``@dataclass`` ``Config`` whose fields all have
defaults and a one-line ``description``. A broken plugin never breaks discovery: :func:`discover`
records the reason and ``python -m vagram_bench.run list`` shows it next to the name.

Examples:
    >>> from vagram_bench import registry
    >>> "sac" in registry.agent_names()
    True
    >>> registry.load_agent("sac").__name__
    'SACAgent'
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import inspect
from typing import Any

from vagram_bench.interfaces import Agent

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentInfo",
    "PluginError",
    "UnknownAgentError",
    "discover",
    "agent_names",
    "available_agents",
    "load_agent",
    "agent_problems",
    "validate_agent_class",
    "unreachable_methods_problem",
    "close_matches",
]

ENTRY_POINT_GROUP = "vagram_bench.agents"


class UnknownAgentError(KeyError):
    """No entry point of that name; the message lists the closest matches / valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(ImportError):
    """An entry point that exists but cannot be used (import error, wrong type, bad Config)."""


@dataclasses.dataclass(frozen=True)
class AgentInfo:
    """One discovered entry point.

    Attributes:
        name: the public agent name (the entry-point name).
        target: ``"module:attr"`` the entry point points to.
        distribution: the installed distribution that declares it (``None`` if unknown).
        cls: the validated agent class, or ``None`` if the plugin is broken.
        description: the class's one-line description (empty if broken).
        error: why the plugin is unusable, or ``None``.
    """

    name: str
    target: str
    distribution: str | None
    cls: type | None
    description: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def close_matches(name: str, candidates: list[str] | set[str], n: int = 3) -> list[str]:
    """The ``n`` closest names (``difflib``, cutoff 0.5)."""
    return difflib.get_close_matches(name, sorted(candidates), n=n, cutoff=0.5)


def validate_agent_class(obj: Any, name: str = "?") -> list[str]:
    """Problems that make ``obj`` unusable as an agent (empty list = valid)."""
    if not (inspect.isclass(obj) and issubclass(obj, Agent)):
        return [f"{obj!r} is not a subclass of vagram_bench.interfaces.Agent"]
    problems = []
    if inspect.isabstract(obj):
        missing = sorted(getattr(obj, "__abstractmethods__", ()))
        problems.append(f"{obj.__name__} does not implement {', '.join(missing)}")
    config_cls = getattr(obj, "Config", None)
    if not (inspect.isclass(config_cls) and dataclasses.is_dataclass(config_cls)):
        problems.append(f"{obj.__name__}.Config must be a @dataclass type, got {config_cls!r}")
    else:
        no_default = [
            f.name
            for f in dataclasses.fields(config_cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if no_default:
            problems.append(f"{obj.__name__}.Config fields without a default: {', '.join(no_default)}")
    if obj.unreachable_methods:
        problems.append(unreachable_methods_problem(obj))
    description = getattr(obj, "description", "")
    if not isinstance(description, str) or not description.strip():
        problems.append(f"{obj.__name__}.description must be a non-empty one-line string")
    elif "\n" in description.strip():
        problems.append(f"{obj.__name__}.description must be a single line")
    return problems


def unreachable_methods_problem(cls: type[Agent]) -> str:
    """Why a subclass of a batched agent (``sac``, ``mbpo_*``) whose new methods nothing calls is
    refused (:attr:`Agent.unreachable_methods`): the batched population would train the baseline
    under the subclass's name."""
    base = cls.__mro__[1]
    names = ", ".join(f"{n}()" for n in cls.unreachable_methods)
    return (
        f"{cls.__name__} defines {names}, which nothing calls: {base.__name__} trains through its batched "
        f"population, which calls none of the agent's own methods, so {cls.__name__} would train as "
        f"{base.__name__}; override act/observe/update (then each seed runs as a separate {cls.__name__}) "
        "or make_population to change what it learns (docs/runner.md, \"Extending a built-in agent\")"
    )


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _distribution_name(ep: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) if dist is not None else None


def _load(ep: importlib.metadata.EntryPoint) -> AgentInfo:
    dist = _distribution_name(ep)
    try:
        obj = ep.load()
    except Exception as exc:  # any import-time failure of a plugin is reported, never raised
        return AgentInfo(ep.name, ep.value, dist, None, "", f"cannot import {ep.value}: {type(exc).__name__}: {exc}")
    problems = validate_agent_class(obj, ep.name)
    if problems:
        return AgentInfo(ep.name, ep.value, dist, None, "", "; ".join(problems))
    return AgentInfo(ep.name, ep.value, dist, obj, obj.description.strip(), None)


def discover() -> dict[str, AgentInfo]:
    """Load and validate every entry point of the group, sorted by name.

    A name declared by two distributions keeps the first one found and marks the clash in the
    later one's entry (under ``"<name> (<distribution>)"``).
    """
    found: dict[str, AgentInfo] = {}
    seen_targets: dict[str, str] = {}
    for ep in _entry_points():
        if ep.name in found:
            if seen_targets[ep.name] == ep.value:
                continue  # the same declaration seen twice (e.g. editable + egg-info metadata)
            key = f"{ep.name} ({_distribution_name(ep) or ep.value})"
            found[key] = AgentInfo(
                ep.name, ep.value, _distribution_name(ep), None, "",
                f"duplicate agent name {ep.name!r}: already provided by {seen_targets[ep.name]}",
            )
            continue
        seen_targets[ep.name] = ep.value
        found[ep.name] = _load(ep)
    return dict(sorted(found.items()))


def agent_names() -> list[str]:
    """Every declared agent name (valid or not), sorted; imports nothing."""
    return sorted({ep.name for ep in _entry_points()})


def available_agents() -> dict[str, AgentInfo]:
    """The valid agents only (name -> :class:`AgentInfo`)."""
    return {name: info for name, info in discover().items() if info.ok}


def _unknown_message(name: str, infos: dict[str, AgentInfo]) -> str:
    """``unknown agent ...`` naming the usable agents (close matches first) and, apart, the broken ones."""
    usable = sorted(n for n, info in infos.items() if info.ok)
    broken = sorted(n for n, info in infos.items() if not info.ok)
    suggestions = close_matches(name, usable)
    hint = f"did you mean {', '.join(suggestions)}? " if suggestions else ""
    text = f"unknown agent {name!r}; {hint}available agents: {', '.join(usable) or '(none installed)'}"
    if broken:
        text += f" (installed but broken, `python -m vagram_bench.run list` says why: {', '.join(broken)})"
    return text


def agent_problems(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Why each of ``names`` cannot be used (unknown, or a plugin that fails to load or validate);
    the names that can be used are absent. Loads every plugin of the group once."""
    infos = discover()
    problems = {}
    for name in names:
        info = infos.get(name)
        if info is None:
            problems[name] = _unknown_message(name, infos)
        elif not info.ok:
            problems[name] = f"agent {name!r} ({info.target}) is unusable: {info.error}"
    return problems


def load_agent(name: str) -> type[Agent]:
    """The validated agent class registered as ``name``.

    Raises:
        UnknownAgentError: no such name (the message lists close matches among the usable agents,
            the usable agents, and apart the broken ones).
        PluginError: the plugin exists but fails to import or to validate (the message says why).
    """
    eps = [ep for ep in _entry_points() if ep.name == name]
    if not eps:
        raise UnknownAgentError(_unknown_message(name, discover()))
    info = _load(eps[0])
    if not info.ok:
        raise PluginError(f"agent {name!r} ({info.target}) is unusable: {info.error}")
    assert info.cls is not None
    return info.cls
