"""``policy.pt``: the final policy a complete run keeps, and the agent rebuilt around it.

A finished run removes its checkpoint (replay buffers, optimisers: everything needed to continue), so
what it keeps to be reloaded, re-evaluated or rendered is small: the member's
:meth:`~vagram_bench.population.PopulationAgent.member_policy_state_dict` (what ``act`` with
``deterministic=True`` reads: the actor, an observation normaliser) and the run's config record (the
content of ``config.json`` without the provenance), from which :func:`load_policy_agent` rebuilds the
agent exactly as the runner built it -- the plugin's own ``make_population`` with the run's seed --
and loads the policy into it. ``python -m vagram_bench.evaluate`` scores it with the runner's own
evaluation (:func:`vagram_bench.runner.loop.evaluate`).

The file is written atomically at the run's last env step, after its last evaluation and before
``summary.json``, so a complete run always has one (runs recorded before policies were kept have none).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from vagram_bench.records import CheckpointError, RunPaths, load_checkpoint, read_json, save_checkpoint

__all__ = ["POLICY_FORMAT", "PolicyError", "write_policy", "read_policy", "run_config_from_record",
           "load_policy_agent"]

#: Version of ``policy.pt``'s layout.
POLICY_FORMAT = 1
_KIND = "vagram-bench policy"


class PolicyError(ValueError):
    """A run directory without a usable kept policy (bad input: exit code 2)."""


def write_policy(paths: RunPaths, config_record: Mapping[str, Any], agent: Any, member: int, env_step: int) -> None:
    """Keep member ``member``'s policy in ``paths.policy`` (atomic), with ``config_record`` (the
    member's :meth:`~vagram_bench.runner.config.RunConfig.to_dict`) and the env step it was trained to."""
    save_checkpoint(paths.policy, {
        "format": POLICY_FORMAT,
        "kind": _KIND,
        "env_step": int(env_step),
        "config": dict(config_record),
        "policy": agent.member_policy_state_dict(member),
    })


def read_policy(run_dir: str | Path) -> dict[str, Any]:
    """The kept policy of the run in ``run_dir``.

    Raises:
        PolicyError: ``run_dir`` is not a run directory, or its run kept no policy (not finished,
            stopped, recorded before policies were kept); the message says which and what to do.
        CheckpointError: ``policy.pt`` cannot be read.
    """
    paths = RunPaths(run_dir)
    if not paths.root.is_dir():
        raise PolicyError(f"no run directory {paths.root}")
    if not paths.config.exists():
        raise PolicyError(f"{paths.root} is not a run directory (no config.json)")
    if not paths.policy.exists():
        if paths.error.exists():
            try:
                reason = read_json(paths.error).get("error", "see error.json")
            except ValueError:
                reason = "see error.json"
            raise PolicyError(f"run {paths.root} stopped ({reason}) and kept no policy; fix the cause and "
                              "re-run its command to finish it")
        if paths.summary.exists():
            raise PolicyError(f"run {paths.root} is complete but kept no policy (policy.pt): it was recorded "
                              "before runs kept their policy; re-run its command with overwrite=true to keep one")
        raise PolicyError(f"run {paths.root} is not finished, so it has no policy.pt yet; re-run its command "
                          "to resume it to the end")
    state = load_checkpoint(paths.policy)
    if state.get("kind") != _KIND or state.get("format") != POLICY_FORMAT:
        raise CheckpointError(f"{paths.policy} is not a vagram-bench policy of format {POLICY_FORMAT} "
                              f"(kind {state.get('kind')!r}, format {state.get('format')!r})")
    return state


def agent_config_from_record(agent_cls: type, agent_name: str, record: Mapping[str, Any]) -> Any:
    """``agent_cls.Config`` with the values of a ``config.json``'s ``agent_config`` (JSON lists back
    to tuples); the result must record as ``record`` again, so nothing is lost in the round trip.

    Raises:
        PolicyError: a field the agent's config does not have (a record of another version), a value
            it refuses, or one that does not survive the round trip.
    """
    from vagram_bench.runner.config import _to_jsonable

    names = {f.name for f in dataclasses.fields(agent_cls.Config)}
    unknown = sorted(set(record) - names)
    if unknown:
        raise PolicyError(f"the run's agent config has fields agent {agent_name!r} does not know: "
                          f"{', '.join(unknown)} (recorded by another version of the agent?)")
    settable = {f.name for f in dataclasses.fields(agent_cls.Config) if f.init}
    # a recorded init=False field is checked by the round trip below, not passed
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in settable}
    try:
        config = agent_cls.Config(**values)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"agent {agent_name!r} refuses the run's recorded config: {exc}") from None
    again = _to_jsonable(dataclasses.asdict(config))
    changed = sorted(k for k in record if again.get(k) != record[k])
    if changed:
        raise PolicyError(f"agent {agent_name!r} cannot rebuild the run's config exactly "
                          f"(fields {', '.join(changed)} differ)")
    return config


def run_config_from_record(record: Mapping[str, Any]) -> Any:
    """The :class:`~vagram_bench.runner.config.RunConfig` of a ``config.json``-style record (the
    agent plugin loaded by name).

    Raises:
        PolicyError: the agent is not installed, or its config cannot be rebuilt.
    """
    from vagram_bench import registry
    from vagram_bench.runner.config import RunConfig, RunOptions

    agent_name = str(record["agent"])
    variant = record.get("variant") or None  # a protocol's variant: its record names the registered agent
    base_name = str(variant["agent"]) if variant else agent_name
    try:
        agent_cls = registry.load_agent(base_name)
    except (registry.UnknownAgentError, registry.PluginError) as exc:
        raise PolicyError(str(exc)) from None
    top = {f.name: record[f.name] for f in dataclasses.fields(RunOptions) if f.name in record and f.name != "seed"}
    seed = int(record["seed"])
    return RunConfig(**top, seed=seed, seeds=(seed,), agent=agent_name,
                     agent_config=agent_config_from_record(agent_cls, base_name, record["agent_config"]),
                     protocol_info=record.get("protocol"), env_kwargs=dict(record.get("env_kwargs") or {}),
                     variant=variant)


def load_policy_agent(policy: Mapping[str, Any], envs: Any, device: str | None = None) -> tuple[Any, Any]:
    """The run's agent as the runner builds it (a population of one: the run's seed, on ``envs``'
    spaces) with the kept policy loaded; returns ``(population, run config)``.

    Raises:
        PolicyError: the agent or its config cannot be rebuilt.
        CheckpointError: the policy does not fit the rebuilt agent.
    """
    from vagram_bench import registry
    from vagram_bench.runner.loop import make_population

    cfg = run_config_from_record(policy["config"])
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    agent = make_population(cfg, registry.load_agent(cfg.base_agent), envs, [cfg.seed])
    try:
        agent.load_member_policy_state_dict(0, policy["policy"])
    except Exception as exc:
        raise CheckpointError(f"the kept policy does not fit agent {cfg.agent!r} ({type(exc).__name__}: {exc})") from exc
    return agent, cfg
