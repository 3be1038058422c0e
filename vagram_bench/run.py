"""The common runner: ``python -m vagram_bench.run agent=<name> env=<id> [field=value ...]``.

The runner owns the environment loop and the evaluation, so every agent is scored the same way; the
agent (a plugin from the ``vagram_bench.agents`` entry-point group, see :mod:`vagram_bench.registry`)
only acts, observes transitions and learns on its own schedule.

Both command-line spellings work (tyro does not accept ``key=value``, ``ecosystem.md`` §7, so a small
pre-pass rewrites it; sequence fields take comma-separated values, ``agent.x=1,2``)::

    python -m vagram_bench.run agent=sac env=HopperDistract-15-v0 seed=0 steps=20000 agent.batch_size=512
    python -m vagram_bench.run --agent sac --env HopperDistract-15-v0 --eval-every 500 --agent.batch-size 512
    python -m vagram_bench.run list                      # agents, envs, protocols
    python -m vagram_bench.run --agent mbpo_vagram --help   # every field, with that agent's fields

Config resolution: ``AgentCls.default_config(env)`` (per-env-family defaults) -> command-line
overrides -> ``AgentCls.apply_model_capacity(config, model_capacity(env), explicit_fields)`` for
capacity ids (agents without a dynamics model refuse them). ``protocol=<name>`` fills ``steps,
eval_every, eval_episodes, eval_seed`` from the protocol (explicit conflicting values are refused).

Records and resume: see :mod:`vagram_bench.records` and ``docs/runner.md``. Checkpoints are taken at
episode boundaries (the first one after every ``checkpoint_every`` env steps and after every
evaluation), where the train env's only state is its RNGs; re-running the same command continues from
the last checkpoint and reproduces exactly the rows an uninterrupted run would have written.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import os
import platform
import random
import subprocess
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any, Generic, Mapping, TypeVar

import numpy as np

from vagram_bench.records import (
    EVAL_COLUMNS,
    CheckpointError,
    CSVLog,
    RunPaths,
    atomic_write_json,
    load_checkpoint,
    read_csv,
    read_json,
    save_checkpoint,
    truncate_csv,
)

__all__ = ["RunConfig", "main", "parse_args", "normalize_argv", "UsageError", "RunError", "run"]

CHECKPOINT_FORMAT = 1
#: config.json keys that may differ between the original command and a resuming one.
OPERATIONAL_FIELDS = frozenset({"quiet", "overwrite", "checkpoint_every", "out", "threads"})
#: Plain gymnasium ids the suite supports besides its own (listed by ``list``).
EXTRA_ENV_IDS = (
    "Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5",
    "InvertedPendulum-v5", "InvertedDoublePendulum-v5",
)


class UsageError(ValueError):
    """Bad command-line input (exit code 2)."""


class RunError(RuntimeError):
    """A run that cannot start or continue (exit code 1, or 2 when ``usage`` is set)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


# ==================================================================================================
# Configuration


@dataclasses.dataclass
class _RunOptions:
    """Top-level options shared by :class:`RunConfig` and the command line."""

    env: str = "HopperDistract-15-v0"
    """gymnasium id of the task (``list`` shows the suite's ids; plain MuJoCo v5 ids work too)"""
    seed: int = 0
    """seed of the run: agent generators and the training env's first reset"""
    steps: int = 100_000
    """real env steps to train for"""
    eval_every: int = 5_000
    """evaluate every this many env steps"""
    eval_episodes: int = 10
    """episodes per evaluation (deterministic actions, separate eval env)"""
    eval_seed: int = 1_000_000
    """evaluation episode i is reset with seed eval_seed + i (the same at every evaluation)"""
    out: str = "runs"
    """root directory of run records; a run writes <out>/<env>/<agent>/seed<seed>/"""
    quiet: bool = False
    """no progress bar"""
    overwrite: bool = False
    """discard an existing run directory (complete or not) and start afresh"""
    checkpoint_every: int = 5_000
    """checkpoint at the first episode boundary after every this many env steps (and after each evaluation)"""
    protocol: str | None = None
    """name or path of an evaluation protocol; fills steps, eval_every, eval_episodes, eval_seed"""
    device: str = "cpu"
    """torch device for the agent's networks"""
    log_every: int = 1_000
    """env steps per train.csv row (agent metrics are averaged over the window)"""
    threads: int = 1
    """torch intra-op threads (0 = torch's default). One suits small nets and sweeps (one process per
    core); wide nets gain from more: MBPO's 2x1024 SAC update ran 1.8x faster with 2 threads on a
    2-core CPU. Exact resume needs the same value."""


@dataclasses.dataclass
class RunConfig(_RunOptions):
    """A fully resolved run: top-level options, the agent's name and its resolved config.

    ``agent_config`` is an instance of the agent plugin's ``Config`` dataclass (per-env defaults,
    command-line overrides and the env's model-capacity constraint applied).
    """

    agent: str = "sac"
    """name of the agent plugin (``list`` shows them)"""
    agent_config: Any = None
    """the agent's resolved ``Config`` instance (``agent.<field>`` on the command line)"""
    protocol_info: dict | None = None
    """``{"name", "version", "hash"}`` of the protocol, filled from ``protocol``"""

    def to_dict(self) -> dict[str, Any]:
        """The config as written to ``config.json`` (without package versions)."""
        top = {f.name: getattr(self, f.name) for f in dataclasses.fields(_RunOptions)}
        return {
            "agent": self.agent,
            **top,
            "protocol": self.protocol_info,
            "agent_config": _to_jsonable(dataclasses.asdict(self.agent_config)),
        }


T = TypeVar("T")


@dataclasses.dataclass
class _RunCLI(_RunOptions, Generic[T]):
    """Command-line form of :class:`RunConfig` (the agent's name is taken by the pre-pass)."""

    agent: T = None  # type: ignore[assignment]
    """configuration of the chosen agent"""


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


# ==================================================================================================
# Command line


def normalize_argv(argv: list[str]) -> list[str]:
    """Rewrite Hydra-style ``key=value`` tokens into ``--key=value`` (tyro/argparse form).

    Tokens that already start with ``-`` and tokens without ``=`` pass through unchanged. Boolean
    values are turned into flags later (:func:`_bool_flags`), once the field types are known.

    Examples:
        >>> normalize_argv(["agent=sac", "agent.batch_size=512", "--seed", "3", "list"])
        ['--agent=sac', '--agent.batch_size=512', '--seed', '3', 'list']
    """
    out = []
    for token in argv:
        if not token.startswith("-") and "=" in token:
            key = token.split("=", 1)[0]
            if key and all(part.replace("_", "").replace("-", "").isalnum() for part in key.split(".")):
                out.append(f"--{token}")
                continue
        out.append(token)
    return out


def _canonical(option: str) -> str:
    """``--agent.batch-size`` -> ``agent.batch_size``."""
    return option.lstrip("-").replace("-", "_")


def _pop_option(tokens: list[str], name: str) -> tuple[list[str], str | None]:
    """Remove ``--name value`` / ``--name=value`` from ``tokens``; return the rest and the value."""
    rest, value, i = [], None, 0
    while i < len(tokens):
        tok = tokens[i]
        head = tok.split("=", 1)[0]
        if head.startswith("--") and _canonical(head) == name:
            if "=" in tok:
                value = tok.split("=", 1)[1]
            elif i + 1 < len(tokens):
                value = tokens[i + 1]
                i += 1
            else:
                raise UsageError(f"--{name} needs a value")
            i += 1
            continue
        rest.append(tok)
        i += 1
    return rest, value


def _peek_option(tokens: list[str], name: str) -> str | None:
    return _pop_option(list(tokens), name)[1]


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls)}


def _is_bool(tp: Any) -> bool:
    return tp is bool


def _is_sequence(tp: Any) -> bool:
    return tp in (tuple, list) or typing.get_origin(tp) in (tuple, list)


def _sequence_values(tokens: list[str], sequence_options: set[str]) -> list[str]:
    """``--agent.rollout_schedule=20,150,1,1`` (or ``=[20,150,1,1]``, as Hydra users write it) ->
    ``--agent.rollout_schedule 20 150 1 1`` (tyro's form)."""
    out = []
    for tok in tokens:
        if tok.startswith("--") and "=" in tok:
            head, value = tok.split("=", 1)
            if _canonical(head) in sequence_options:
                out.append(head)
                value = value.strip().removeprefix("[").removesuffix("]").removeprefix("(").removesuffix(")")
                out.extend(v.strip() for v in value.split(",") if v.strip())
                continue
        out.append(tok)
    return out


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bool_flags(tokens: list[str], bool_options: set[str]) -> list[str]:
    """``--quiet=true`` -> ``--quiet``, ``--agent.learn_alpha=false`` -> ``--agent.no-learn-alpha``."""
    out = []
    for tok in tokens:
        if tok.startswith("--") and "=" in tok:
            head, value = tok.split("=", 1)
            name = _canonical(head)
            if name in bool_options:
                v = value.strip().lower()
                if v in _TRUE:
                    out.append(head)
                elif v in _FALSE:
                    prefix, _, leaf = name.rpartition(".")
                    out.append(f"--{prefix + '.' if prefix else ''}no-{leaf.replace('_', '-')}")
                else:
                    raise UsageError(f"{name}: expected a boolean (true/false), got {value!r}")
                continue
        out.append(tok)
    return out


def _known_env_ids() -> list[str]:
    import gymnasium as gym

    import vagram_bench  # noqa: F401  (registers the suite's ids)

    return sorted(gym.registry.keys())


def _suite_env_ids() -> list[str]:
    from vagram_bench.envs import registered_ids

    return list(registered_ids())


def _check_env(env_id: str) -> None:
    ids = _known_env_ids()
    if env_id in ids:
        return
    matches = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.6)
    if matches:
        raise UsageError(f"unknown env {env_id!r}; closest matches: {', '.join(matches)}")
    raise UsageError(
        f"unknown env {env_id!r}; the suite's ids are: {', '.join(_suite_env_ids())} "
        f"(plain gymnasium ids such as {', '.join(EXTRA_ENV_IDS[:3])} work too; `list` shows all)"
    )


def _load_protocol(name: str):
    try:
        from vagram_bench.protocol import load_protocol
    except ImportError as exc:  # pragma: no cover - PROTOCOLS module missing
        raise UsageError(f"protocol={name!r} given but vagram_bench.protocol is unavailable: {exc}")
    try:
        return load_protocol(name)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise UsageError(f"protocol {name!r}: {exc}") from None


def _model_capacity(env_id: str) -> Mapping[str, int] | None:
    from vagram_bench.envs import model_capacity

    return model_capacity(env_id)


_DESCRIPTION = """Train and evaluate one agent on one env, writing run records under <out>/<env>/<agent>/seed<k>/.

Choose the agent with `agent=NAME` or `--agent NAME` (default: sac); agent fields are set with
`agent.<field>=value` or `--agent.<field> value`, and `--help` after an agent shows its fields.
`key=value` and `--key value` spellings can be mixed. `python -m vagram_bench.run list` shows the
installed agents, the envs and the protocols. Agents: {agents}."""


def parse_args(argv: list[str]) -> RunConfig:
    """Parse a command line into a resolved :class:`RunConfig`.

    Raises:
        UsageError: unknown agent/env/field, bad value, protocol conflict, capacity conflict.
        SystemExit: from tyro for ``--help`` (code 0) and type errors (code 2).
    """
    import tyro

    from vagram_bench import registry
    from vagram_bench.interfaces import AgentConfigError

    tokens = normalize_argv(argv)
    tokens, agent_name = _pop_option(tokens, "agent")
    agent_name = agent_name or "sac"
    try:
        agent_cls = registry.load_agent(agent_name)
    except (registry.UnknownAgentError, registry.PluginError) as exc:
        raise UsageError(str(exc)) from None
    env_id = _peek_option(tokens, "env") or _RunOptions.env
    want_help = any(t in ("-h", "--help") for t in tokens)
    if not want_help:
        _check_env(env_id)

    # Protocol: its values become the defaults; explicit conflicting values are refused below.
    protocol_name = _peek_option(tokens, "protocol")
    protocol = _load_protocol(protocol_name) if protocol_name and not want_help else None
    top_defaults: dict[str, Any] = {"env": env_id}
    if protocol is not None:
        if env_id not in protocol.tasks:
            raise UsageError(
                f"env {env_id!r} is not a task of protocol {protocol.name!r}; its tasks: {', '.join(protocol.tasks)}"
            )
        # A protocol's ``agents`` is the default comparison set of a sweep, not a whitelist: any
        # installed agent (including third-party plugins) can be scored on a protocol's tasks.
        top_defaults.update(
            steps=protocol.steps_for(env_id),
            eval_every=protocol.eval_every,
            eval_episodes=protocol.eval_episodes,
            eval_seed=protocol.eval_seed,
        )

    config_cls = agent_cls.Config
    agent_defaults = agent_cls.default_config(env_id)
    top_types = _field_types(_RunOptions)
    agent_types = _field_types(config_cls)
    known = {**{k: t for k, t in top_types.items()}, **{f"agent.{k}": t for k, t in agent_types.items()}}
    bool_options = {k for k, t in known.items() if _is_bool(t)}

    # Unknown options: our own message with difflib suggestions (tyro's is less specific).
    explicit: set[str] = set()
    for tok in tokens:
        if not tok.startswith("--"):
            continue
        name = _canonical(tok.split("=", 1)[0])
        if name == "help":
            continue
        parent, _, leaf = name.rpartition(".")
        prefix = f"{parent}." if parent else ""
        if name not in known and leaf.startswith("no_") and prefix + leaf[3:] in bool_options:
            name = prefix + leaf[3:]  # tyro's negated flag, e.g. --agent.no-learn-alpha
        if name not in known:
            candidates = sorted(known) + ["agent"]
            matches = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
            scope = (
                f"fields of agent {agent_name!r}: {', '.join(sorted(agent_types))}"
                if name.startswith("agent.")
                else f"top-level fields: agent, {', '.join(sorted(top_types))}"
            )
            hint = f"did you mean {', '.join(matches)}? " if matches else ""
            raise UsageError(f"unknown field {name!r}; {hint}{scope}")
        explicit.add(name)
    tokens = _bool_flags(tokens, bool_options)
    tokens = _sequence_values(tokens, {k for k, t in known.items() if _is_sequence(t)})

    for name in ("steps", "eval_every", "eval_episodes", "eval_seed"):
        if protocol is not None and name in explicit:
            value = _peek_option(tokens, name)
            if value is not None and str(value) != str(top_defaults[name]):
                raise UsageError(
                    f"{name}={value} conflicts with protocol {protocol.name!r} ({name}={top_defaults[name]}); "
                    "drop one of the two"
                )

    default = _RunCLI(agent=agent_defaults, **top_defaults)
    agents_list = ", ".join(registry.agent_names())
    parsed = tyro.cli(
        _RunCLI[config_cls],  # type: ignore[index]
        args=tokens,
        default=default,
        prog="python -m vagram_bench.run",
        description=_DESCRIPTION.format(agents=agents_list),
    )
    agent_config = parsed.agent
    explicit_agent_fields = {n.split(".", 1)[1] for n in explicit if n.startswith("agent.")}
    capacity = _model_capacity(parsed.env)
    if capacity is not None:
        try:
            agent_config = agent_cls.apply_model_capacity(agent_config, capacity, explicit_agent_fields)
        except AgentConfigError as exc:
            raise UsageError(f"env {parsed.env!r}: {exc}") from None
    validate = getattr(agent_config, "validate", None)
    if callable(validate):
        try:
            validate()
        except AgentConfigError as exc:
            raise UsageError(str(exc)) from None
    top = {f.name: getattr(parsed, f.name) for f in dataclasses.fields(_RunOptions)}
    for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every"):
        if top[name] < 1:
            raise UsageError(f"{name} must be a positive integer, got {top[name]}")
    if top["threads"] < 0:
        raise UsageError(f"threads must be >= 0, got {top['threads']}")
    protocol_info = (
        {"name": protocol.name, "version": protocol.version, "hash": protocol.content_hash}
        if protocol is not None
        else None
    )
    return RunConfig(**top, agent=agent_name, agent_config=agent_config, protocol_info=protocol_info)


# ==================================================================================================
# Env state capture (exact resume)


def _rng_objects(env: Any, max_depth: int = 6) -> dict[tuple[str, ...], Any]:
    """Every numpy ``Generator`` / ``RandomState`` reachable from ``env`` through instance
    attributes of gymnasium envs/wrappers and their children (distraction envs own a ``base`` env,
    dm-control tasks own a ``RandomState``). Keyed by attribute path, which is stable across
    processes for the same env id."""
    found: dict[tuple[str, ...], Any] = {}
    seen: set[int] = set()

    def visit(obj: Any, path: tuple[str, ...], depth: int) -> None:
        if id(obj) in seen or depth > max_depth:
            return
        seen.add(id(obj))
        if isinstance(obj, (np.random.Generator, np.random.RandomState)):
            found[path] = obj
            return
        module = type(obj).__module__ or ""
        if isinstance(obj, (np.ndarray, str, bytes, int, float, type, types.ModuleType)):
            return
        if module.startswith(("mujoco", "numpy", "torch", "builtins")):
            if isinstance(obj, (list, tuple)):
                for i, item in enumerate(obj):
                    visit(item, path + (f"[{i}]",), depth + 1)
            elif isinstance(obj, dict):
                for k, item in obj.items():
                    if isinstance(k, str):
                        visit(item, path + (f"{{{k}}}",), depth + 1)
            return
        attrs = getattr(obj, "__dict__", None)
        if not isinstance(attrs, dict):
            return
        for name in sorted(attrs):
            visit(attrs[name], path + (name,), depth + 1)

    visit(env, (), 0)
    return found


def _capture_rng_states(env: Any) -> dict[tuple[str, ...], Any]:
    states = {}
    for path, rng in _rng_objects(env).items():
        if isinstance(rng, np.random.Generator):
            states[path] = ("generator", rng.bit_generator.state)
        else:
            states[path] = ("random_state", rng.get_state())
    return states


def _resolve_parent(env: Any, path: tuple[str, ...]) -> Any:
    obj = env
    for part in path[:-1]:
        if part.startswith("[") and part.endswith("]"):
            obj = obj[int(part[1:-1])]
        elif part.startswith("{") and part.endswith("}"):
            obj = obj[part[1:-1]]
        else:
            obj = getattr(obj, part)
    return obj


def _restore_rng_states(env: Any, states: Mapping[tuple[str, ...], Any]) -> None:
    """Set every saved RNG state. An RNG that is created lazily (e.g. a gymnasium space's
    ``_np_random`` after the first ``sample()``) and does not exist yet in the fresh env is created
    with the saved bit generator, so agents that sample ``action_space`` resume exactly too."""
    live = _rng_objects(env)
    for path, (kind, state) in states.items():
        rng = live.get(path)
        if rng is None:
            leaf = path[-1]
            try:
                parent = _resolve_parent(env, path)
            except (AttributeError, IndexError, KeyError, TypeError):
                parent = None
            if parent is None or leaf.startswith(("[", "{")) or getattr(parent, leaf, None) is not None:
                raise CheckpointError(
                    f"the env's RNG layout changed since the checkpoint (no RNG at {'.'.join(path)}); "
                    "was it written by another version of the env?"
                )
            if kind == "generator":
                rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
            else:
                rng = np.random.RandomState()
            setattr(parent, leaf, rng)
        if kind == "generator":
            rng.bit_generator.state = state
        else:
            rng.set_state(state)


# ==================================================================================================
# Provenance


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("vagram-bench", "torch", "torchrl", "tensordict", "gymnasium", "mujoco", "dm-control", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def _config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key in OPERATIONAL_FIELDS | {"versions", "git_revision", "created"}:
            continue
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(_config_differences(a, b, prefix=f"{prefix}{key}."))
        elif a != b:
            name = f"{prefix}{key}"
            if name.startswith("agent_config."):
                name = "agent." + name[len("agent_config."):]
            diffs.append(f"{name}: {a!r} (run dir) vs {b!r} (this command)")
    return diffs


# ==================================================================================================
# The run


def evaluate(agent: Any, env: Any, episodes: int, eval_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``episodes`` deterministic episodes; episode ``i`` is reset with ``eval_seed + i``.

    A thin raw-gymnasium loop (TorchRL's ``GymEnv`` adds ~0.5-1 ms per step, ``ecosystem.md`` §2.6).
    Returns the episode returns and lengths.
    """
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    for i in range(episodes):
        obs, _ = env.reset(seed=eval_seed + i)
        total, length = 0.0, 0
        while True:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
            total += float(reward)
            length += 1
            if terminated or truncated:
                break
        returns[i], lengths[i] = total, length
    return returns, lengths


class _MetricWindow:
    """Means of agent metrics over a train.csv window (checkpointed with the run)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop_means(self) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return means

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])


def _progress(cfg: RunConfig, initial: int):
    from tqdm import tqdm

    return tqdm(
        total=cfg.steps,
        initial=initial,
        disable=cfg.quiet,
        unit="step",
        desc=f"{cfg.agent} {cfg.env} s{cfg.seed}",
        dynamic_ncols=True,
        file=sys.stderr,
        mininterval=0.5,
    )


def run(cfg: RunConfig) -> Path:
    """Train ``cfg.agent`` on ``cfg.env`` with evaluations and records; returns the run directory.

    Raises:
        RunError: a run directory that conflicts with ``cfg``, a corrupt checkpoint, or a non-finite
            loss (the run stops with the env step and the loss named; records stay intact).
    """
    import gymnasium as gym
    import torch

    import vagram_bench  # noqa: F401  (registers the envs)
    from vagram_bench import registry

    agent_cls = registry.load_agent(cfg.agent)
    # torchrl logs every buffer initialisation at INFO on stderr, through the progress bar.
    import logging

    logging.getLogger("torchrl").setLevel(logging.WARNING)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    paths = RunPaths(Path(cfg.out) / cfg.env / cfg.agent / f"seed{cfg.seed}")
    config_record = cfg.to_dict()

    # ---------------------------------------------------------------- run directory state
    if paths.config.exists() and cfg.overwrite:
        for f in paths.record_files():
            if f.exists():
                f.unlink()
    elif paths.config.exists():
        try:
            old = read_json(paths.config)
        except ValueError as exc:
            raise RunError(f"{paths.config} is not valid JSON ({exc}); pass overwrite=true to start afresh")
        diffs = _config_differences(old, config_record)
        if diffs:
            raise RunError(
                f"run directory {paths.root} holds a run with a different config:\n  "
                + "\n  ".join(diffs)
                + "\nUse another out= directory, or overwrite=true to discard the existing run.",
                usage=True,
            )
        if paths.summary.exists():
            print(
                f"run {paths.root} is already complete (summary.json exists); pass overwrite=true to re-run it",
                file=sys.stderr,
            )
            return paths.root
    paths.root.mkdir(parents=True, exist_ok=True)

    checkpoint = load_checkpoint(paths.checkpoint) if paths.checkpoint.exists() else None
    if checkpoint is not None and checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {paths.checkpoint} has format {checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT}"
        )

    # ---------------------------------------------------------------- envs and agent
    train_env = gym.make(cfg.env)
    eval_env = gym.make(cfg.env)
    try:
        agent = agent_cls(
            cfg.agent_config,
            train_env.observation_space,
            train_env.action_space,
            env_id=cfg.env,
            seed=cfg.seed,
            device=cfg.device,
        )
    except Exception as exc:
        from vagram_bench.interfaces import AgentConfigError

        if isinstance(exc, AgentConfigError):
            raise RunError(f"agent {cfg.agent!r}: {exc}", usage=True) from None
        raise

    window = _MetricWindow()
    episode_window = _MetricWindow()
    obs, _ = train_env.reset(seed=cfg.seed)
    if checkpoint is None:
        env_step, wall_before, last_ckpt_step, last_eval = 0, 0.0, 0, None
        eval_since_ckpt = False
        truncate_csv(paths.eval_csv, 0)
        truncate_csv(paths.train_csv, 0)
        record = dict(config_record)
        record["versions"] = _package_versions()
        record["git_revision"] = _git_revision()
        atomic_write_json(paths.config, record)
    else:
        try:
            agent.load_state_dict(checkpoint["agent"])
            _restore_rng_states(train_env, checkpoint["train_env_rng"])
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {paths.checkpoint} does not fit this agent/env ({type(exc).__name__}: {exc}); "
                "the run's files were left untouched"
            ) from exc
        torch.set_rng_state(checkpoint["torch_rng"])
        np.random.set_state(checkpoint["numpy_rng"])
        random.setstate(checkpoint["python_rng"])
        env_step = int(checkpoint["env_step"])
        wall_before = float(checkpoint["wall_seconds"])
        last_ckpt_step = env_step
        last_eval = checkpoint["last_eval"]
        eval_since_ckpt = False
        window.load(checkpoint["metric_window"])
        episode_window.load(checkpoint["episode_window"])
        truncate_csv(paths.eval_csv, env_step)
        truncate_csv(paths.train_csv, env_step)
        obs, _ = train_env.reset()  # checkpoints are taken at episode ends, before the reset

    eval_log = CSVLog(paths.eval_csv, columns=EVAL_COLUMNS)
    train_log = CSVLog(paths.train_csv)
    start = time.perf_counter()

    def wall() -> float:
        return wall_before + time.perf_counter() - start

    def write_checkpoint() -> None:
        save_checkpoint(
            paths.checkpoint,
            {
                "format": CHECKPOINT_FORMAT,
                "env_step": env_step,
                "agent": agent.state_dict(),
                "train_env_rng": _capture_rng_states(train_env),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state(),
                "python_rng": random.getstate(),
                "wall_seconds": wall(),
                "last_eval": last_eval,
                "metric_window": window.state(),
                "episode_window": episode_window.state(),
            },
        )

    def do_eval() -> None:
        nonlocal last_eval
        returns, lengths = evaluate(agent, eval_env, cfg.eval_episodes, cfg.eval_seed)
        last_eval = float(returns.mean())
        eval_log.append(
            {
                "env_step": env_step,
                "return_mean": float(returns.mean()),
                "return_std": float(returns.std()),
                "return_min": float(returns.min()),
                "return_max": float(returns.max()),
                "episode_length_mean": float(lengths.mean()),
                "wall_seconds": round(wall(), 3),
            }
        )

    bar = _progress(cfg, env_step)
    if last_eval is not None:
        bar.set_postfix(eval=f"{last_eval:.1f}")
    episode_return, episode_length = 0.0, 0
    try:
        while env_step < cfg.steps:
            action = agent.act(obs, deterministic=False)
            next_obs, reward, terminated, truncated, _ = train_env.step(action)
            env_step += 1
            agent.observe(obs, action, float(reward), next_obs, bool(terminated), bool(truncated))
            try:
                metrics = agent.update(env_step)
            except FloatingPointError as exc:
                raise RunError(
                    f"run stopped at env step {env_step}: {exc}. Records up to the last checkpoint "
                    f"(env step {last_ckpt_step}) are intact in {paths.root}."
                ) from None
            if metrics:
                window.add(metrics)
            episode_return += float(reward)
            episode_length += 1
            if terminated or truncated:
                episode_window.add({"episode_return": episode_return, "episode_length": episode_length})
                episode_return, episode_length = 0.0, 0

            # the last, possibly partial, window is written too: short runs keep their metrics
            if env_step % cfg.log_every == 0 or env_step == cfg.steps:
                row = {"env_step": env_step, **episode_window.pop_means(), **window.pop_means()}
                if len(row) > 1:
                    train_log.append(row)
            # Non-protocol runs also evaluate at the last step; protocol runs only at multiples of
            # eval_every (the protocol's evaluation schedule).
            final_eval = env_step == cfg.steps and cfg.protocol_info is None and cfg.steps % cfg.eval_every != 0
            if env_step % cfg.eval_every == 0 or final_eval:
                do_eval()
                eval_since_ckpt = True
                bar.set_postfix(eval=f"{last_eval:.1f}")
            if env_step % 100 == 0 or env_step == cfg.steps:
                bar.update(env_step - bar.n)

            if terminated or truncated:
                if env_step < cfg.steps and (eval_since_ckpt or env_step - last_ckpt_step >= cfg.checkpoint_every):
                    write_checkpoint()
                    last_ckpt_step, eval_since_ckpt = env_step, False
                obs, _ = train_env.reset()
            else:
                obs = next_obs
    finally:
        bar.close()
        train_env.close()
        eval_env.close()

    evals = read_csv(paths.eval_csv)
    final = evals[-1] if evals else None
    atomic_write_json(
        paths.summary,
        {
            "agent": cfg.agent,
            "env": cfg.env,
            "seed": cfg.seed,
            "env_steps": env_step,
            "final_return_mean": float(final["return_mean"]) if final else None,
            "final_return_std": float(final["return_std"]) if final else None,
            "best_return_mean": max(float(r["return_mean"]) for r in evals) if evals else None,
            "num_evals": len(evals),
            "wall_seconds": round(wall(), 3),
            "protocol": cfg.protocol_info,
        },
    )
    if paths.checkpoint.exists():
        paths.checkpoint.unlink()  # a complete run needs no checkpoint (summary.json marks it done)
    return paths.root


# ==================================================================================================
# list


def list_all(file=None) -> None:
    """Print the installed agents (with description or why they are broken), envs and protocols."""
    from vagram_bench import registry

    file = file or sys.stdout
    print("agents:", file=file)
    infos = registry.discover()
    width = max((len(n) for n in infos), default=4)
    for name, info in infos.items():
        text = info.description if info.ok else f"BROKEN: {info.error}"
        print(f"  {name:<{width}}  {text}", file=file)
    print("envs:", file=file)
    import textwrap

    suite = ", ".join(_suite_env_ids())
    print(textwrap.fill(suite, width=100, initial_indent="  ", subsequent_indent="  "), file=file)
    extra = "plain gymnasium ids: " + ", ".join(EXTRA_ENV_IDS)
    print(textwrap.fill(extra, width=100, initial_indent="  ", subsequent_indent="    "), file=file)
    print("protocols:", file=file)
    try:
        from vagram_bench.protocol import list_protocols
    except ImportError:
        print("  (vagram_bench.protocol not installed)", file=file)
        return
    try:
        protocols = list_protocols()
    except Exception as exc:  # a broken protocol file must not break `list`
        print(f"  (cannot list protocols: {type(exc).__name__}: {exc})", file=file)
        return
    width = max((len(p.name) for p in protocols), default=4)
    for p in protocols:
        desc = (p.description or "").strip().splitlines()[0] if p.description else ""
        print(f"  {p.name:<{width}}  v{p.version}  {desc}", file=file)


# ==================================================================================================
# main


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vagram_bench.run``; returns the exit code.

    Exit codes: 0 success (also: the run was already complete), 1 a run that failed (non-finite
    loss, corrupt checkpoint), 2 bad input (unknown agent/env/field, wrong type, conflicting run
    directory, capacity id for an agent without a dynamics model).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["list"]:
            list_all()
            return 0
        cfg = parse_args(argv)
        run(cfg)
        return 0
    except SystemExit as exc:  # tyro: --help (0) or a parse error (2)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if exc.usage else 1


if __name__ == "__main__":
    sys.exit(main())
