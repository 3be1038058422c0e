"""The run's options and its command line: ``argv`` -> a fully resolved :class:`RunConfig`.

``env.<kwarg>=value`` tokens become ``gym.make`` keyword arguments (``RunConfig.env_kwargs``), checked by
making the env once. Config resolution: ``AgentCls.default_config(env)`` (per-env-family defaults) -> the
protocol's ``[[agent_overrides]]`` for this agent and env -> command-line overrides ->
``AgentCls.apply_model_capacity(config, model_capacity(env), explicit_fields)`` for capacity ids (agents
without a dynamics model refuse them); an agent config validates itself in ``__post_init__``
(``AgentConfigError``), so every construction above is checked.
``protocol=<name>`` fills ``steps, eval_every, eval_episodes, eval_seed`` and the agent settings it fixes
(explicit conflicting values are refused, equal ones accepted; an agent setting the env's capacity
constraint fixes to another value is an error).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import json
import re
from typing import Annotated, Any, Generic, Literal, Mapping, TypeVar

import tyro

from vagram_bench.cli import (
    UsageError,
    canonical,
    field_types,
    help_registry,
    int_options,
    normalize_argv,
    option_kinds,
    peek_option,
    pop_option,
    to_tyro_form,
    tyro_error_line,
)

__all__ = ["RunOptions", "RunConfig", "parse_args", "suite_env_ids", "EXTRA_ENV_IDS",
           "check_protocol_agent_overrides"]

#: Plain gymnasium ids the suite supports besides its own (listed by ``list``).
EXTRA_ENV_IDS = (
    "Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5",
    "InvertedPendulum-v5", "InvertedDoublePendulum-v5",
)
#: The options a protocol fills in.
PROTOCOL_FIELDS = ("steps", "eval_every", "eval_episodes", "eval_seed")


@dataclasses.dataclass
class RunOptions:
    """Top-level options shared by :class:`RunConfig` and the command line."""

    env: str = "HopperDistract-15-v0"
    """gymnasium id of the task (``list`` shows the suite's ids; plain MuJoCo v5 ids work too)"""
    seed: tuple[int, ...] = (0,)
    """seed of the run: agent generators and the training env's first reset. Several seeds
    (seed=0,1,2 or --seed 0 1 2) train as one population in one process, one run directory per
    seed, each with the records of that seed's single run"""
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
    """name or path of an evaluation protocol; fills steps, eval_every, eval_episodes, eval_seed and the
    agent settings the protocol fixes for this agent and env ([[agent_overrides]])"""
    device: str = "cpu"
    """torch device for the agent's networks"""
    log_every: int = 1_000
    """env steps per train.csv row (agent metrics are averaged over the window)"""
    threads: int = 1
    """torch intra-op threads (0 = torch's default). One suits small nets and sweeps (one process per
    core); wide nets gain from more: MBPO's 2x1024 SAC update ran 1.8x faster with 2 threads on a
    2-core CPU. Exact resume needs the same value."""
    track: Literal["none", "tensorboard", "wandb"] = "none"
    """send the train.csv and eval.csv rows to TensorBoard (<run dir>/tensorboard/; pip install
    'vagram-bench[track]') or wandb (offline unless WANDB_MODE is set) as well"""
    kernels: Literal["avx2", "native"] = "avx2"
    """CPU kernels of torch, MKL, OpenBLAS and numpy: avx2 fixes them to AVX2 on every x86-64 CPU
    (the command restarts itself once with the pinning environment variables), so a run gives the
    same numbers on an AVX2 and an AVX-512 CPU and published runs reproduce bitwise; native lets
    each library pick its kernels from the CPU (and from your environment). Default: avx2, or
    $VAGRAM_BENCH_KERNELS. config.json records the kernels used ("kernels"); docs/runner.md,
    section Determinism contract"""


@dataclasses.dataclass
class RunConfig(RunOptions):
    """A fully resolved run: top-level options, the agent's name and its resolved config.

    ``agent_config`` is an instance of the agent plugin's ``Config`` dataclass (per-env defaults,
    command-line overrides and the env's model-capacity constraint applied).
    """

    seed: int = 0
    """this run directory's seed (a member of ``seeds``)"""
    seeds: tuple[int, ...] = (0,)
    """the seeds trained together in one process (a population; one seed: the population of one)"""
    agent: str = "sac"
    """name of the agent plugin (``list`` shows them)"""
    agent_config: Any = None
    """the agent's resolved ``Config`` instance (``agent.<field>`` on the command line)"""
    protocol_info: dict | None = None
    """``{"name", "version", "hash"}`` of the protocol, filled from ``protocol``"""
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """keyword arguments of ``gym.make`` for the train and eval envs (``env.<kwarg>=value``)"""
    variant: dict | None = None
    """for an ``agent`` that is a variant of the protocol (``[[variants]]``): ``{"agent", "values", "reason"}``,
    the registered agent it is built from and what it sets; ``None`` for a registered agent"""

    @property
    def base_agent(self) -> str:
        """The registered agent this run builds: a variant's ``agent``, else :attr:`agent`."""
        return str(self.variant["agent"]) if self.variant else self.agent

    def members(self) -> list["RunConfig"]:
        """The run of each seed: this config with ``seed`` set (what its ``config.json`` records)."""
        return [dataclasses.replace(self, seed=s, seeds=(s,)) for s in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        """The config as written to ``config.json`` (without package versions); ``seed`` is this
        run's seed, so a seed trained in a population records what its single run records.
        ``kernels`` is not a field of the record: ``config.json``'s ``"kernels"`` holds what was
        asked for and what was used (:func:`vagram_bench.kernels.kernel_info`), beside ``versions``."""
        top = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunOptions) if f.name != "kernels"}
        # "variant" only for a variant, so a registered agent's record is what it was before variants existed
        variant = {"variant": _to_jsonable(self.variant)} if self.variant else {}
        return {
            "agent": self.agent,
            **variant,
            **top,
            "env_kwargs": _to_jsonable(self.env_kwargs),
            "protocol": self.protocol_info,
            "agent_config": _to_jsonable(dataclasses.asdict(self.agent_config)),
        }


T = TypeVar("T")


@dataclasses.dataclass
class _Choices:
    """``--agent`` and ``--list`` as ``--help`` lists them; the pre-pass and :func:`vagram_bench.run.main`
    act on them before tyro parses the rest."""

    agent_name: Annotated[str, tyro.conf.arg(name="agent", metavar="NAME")] = "sac"
    """the agent plugin; its fields are the agent options below"""
    list_: Annotated[bool, tyro.conf.arg(name="list"), tyro.conf.FlagCreatePairsOff] = False
    """print the installed agents, envs and protocols and exit (also: `python -m vagram_bench.run list`)"""


@dataclasses.dataclass
class _RunCLI(RunOptions, _Choices, Generic[T]):  # _Choices' fields come first
    """Command-line form of :class:`RunConfig`."""

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


# --------------------------------------------------------------------------------------------------
# envs and protocols


def suite_env_ids() -> list[str]:
    """The suite's own env ids."""
    from vagram_bench.envs import registered_ids

    return list(registered_ids())


def _check_env(env_id: str) -> None:
    import gymnasium as gym

    import vagram_bench  # noqa: F401  (registers the suite's ids)

    ids = sorted(gym.registry.keys())
    if env_id in ids:
        return
    matches = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.6)
    if matches:
        raise UsageError(f"unknown env {env_id!r}; closest matches: {', '.join(matches)}")
    raise UsageError(
        f"unknown env {env_id!r}; the suite's ids are: {', '.join(suite_env_ids())} "
        f"(plain gymnasium ids such as {', '.join(EXTRA_ENV_IDS[:3])} work too; `list` shows all)"
    )


_JSON_WORDS = {"true": True, "false": False, "none": None, "null": None}


def _env_value(text: str) -> Any:
    """A command-line env kwarg value: a JSON number, list or string, ``true``/``false``/``none`` in
    any case, else the text itself (``7`` -> 7, ``0.5`` -> 0.5, ``foo.xml`` -> ``"foo.xml"``)."""
    if text.strip().lower() in _JSON_WORDS:
        return _JSON_WORDS[text.strip().lower()]
    try:
        return json.loads(text)
    except ValueError:
        return text


def pop_env_kwargs(tokens: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Remove ``--env.<kwarg>=value`` / ``--env.<kwarg> value`` (tokens as :func:`normalize_argv`
    returns them); return the rest and ``{kwarg: value}``."""
    rest: list[str] = []
    kwargs: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        head = tok.split("=", 1)[0]
        if head.startswith("--env.") and "--" not in tokens[:i]:
            name = canonical(head)[len("env."):]
            if "=" in tok:
                value = tok.split("=", 1)[1]
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                value, i = tokens[i + 1], i + 1
            else:
                raise UsageError(f"env.{name} needs a value (env.{name}=VALUE or --env.{name} VALUE)")
            kwargs[name] = _env_value(value)
        else:
            rest.append(tok)
        i += 1
    return rest, kwargs


def _check_env_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> None:
    """Make the env once with ``kwargs``: a kwarg the env does not take, a bad value, or one the id
    fixes (``HopperDistract-15-v0`` fixes ``distraction_dims``) is a usage error."""
    import gymnasium as gym

    given = ", ".join(f"env.{k}={v!r}" for k, v in kwargs.items())
    try:
        gym.make(env_id, **kwargs).close()
    except (TypeError, ValueError) as exc:
        reason = str(exc).split(" was raised from the environment creator")[0]  # gymnasium's wrapping
        unknown = re.search(r"unexpected keyword argument '(\w+)'", reason)
        names = env_kwarg_names(env_id) if unknown else set()
        if unknown and names:
            name = unknown.group(1)
            matches = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join('env.' + m for m in matches)}? " if matches else ""
            raise UsageError(f"env {env_id!r} takes no keyword argument {name!r} (env.{name}={kwargs[name]!r}); "
                             f"{hint}its keyword arguments: {', '.join(sorted(names))}") from None
        raise UsageError(f"env {env_id!r} refuses {given}: {reason}") from None


def env_kwarg_names(env_id: str) -> set[str]:
    """The keyword arguments ``gym.make(env_id, ...)`` passes on: the entry point's named parameters
    (every ``__init__`` of a class's MRO, which its ``**kwargs`` reach), and for a distraction env
    its base env's (``base_id``); empty when they cannot be read."""
    import inspect

    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    try:
        spec = gym.spec(env_id)
        creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    except Exception:  # an id gymnasium cannot load: no names to suggest
        return set()
    functions = ([vars(c)["__init__"] for c in creator.__mro__ if "__init__" in vars(c) and c is not object]
                 if inspect.isclass(creator) else [creator])
    names: set[str] = set()
    for fn in functions:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        names |= {p.name for p in params if p.name != "self" and not p.name.startswith("_")
                  and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    base_id = getattr(creator, "base_id", "")
    if base_id and base_id != env_id:
        names |= env_kwarg_names(base_id)
    return names


def _protocol_defaults(protocol_name: str, env_id: str) -> tuple[Any, dict[str, Any]]:
    """The protocol and the values it fills in for ``env_id``."""
    from vagram_bench.protocol import ProtocolError, load_protocol

    try:
        protocol = load_protocol(protocol_name)
    except ProtocolError as exc:  # its message names the file (or the unknown name) once
        raise UsageError(str(exc)) from None
    if env_id not in protocol.tasks:
        raise UsageError(
            f"env {env_id!r} is not a task of protocol {protocol.name!r}; its tasks: {', '.join(protocol.tasks)}"
        )
    # A protocol's ``agents`` is the default comparison set of a sweep, not a whitelist: any
    # installed agent (including third-party plugins) can be scored on a protocol's tasks.
    values = dict(
        steps=protocol.steps_for(env_id),
        eval_every=protocol.eval_every,
        eval_episodes=protocol.eval_episodes,
        eval_seed=protocol.eval_seed,
    )
    return protocol, values


def _cli_text(value: Any) -> str:
    """A protocol's TOML scalar as a command-line value (what a user would type for it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _tyro_error_text(text: str) -> str:
    """tyro's boxed error message as one line (title and message; the help text after it dropped)."""
    parts = []
    for line in text.splitlines():
        line = line.strip(" \u2502\u256d\u256e\u2570\u256f\u2500\u2501\u2550")
        if line.startswith(("For full helptext", "Argument helptext")):
            break
        if line and not set(line) <= set("-\u2500 "):
            parts.append(line)
    if len(parts) > 1:  # the box title, e.g. "Value error", then the message
        return f"{parts[0]}: {' '.join(parts[1:])}"
    return " ".join(parts) or "(tyro gave no message)"


def _with_protocol_agent_settings(
    agent_cls: Any, agent_name: str, config: Any, protocol: Any, env_id: str,
) -> Any:
    """``config`` with the values ``protocol``'s ``[[agent_overrides]]`` fix for ``agent_name`` on
    ``env_id`` (unchanged when none apply). The values pass through tyro as command-line values do
    (a TOML array becomes the tuple a tuple field holds, an integer a float field's float).

    Raises:
        UsageError: a field the agent's config does not have, a value it refuses, or a value the
            env's model-capacity constraint fixes otherwise.
    """
    values = protocol.agent_overrides_for(agent_name, env_id)
    if not values:
        return config
    where = f"for agent {agent_name!r} on {env_id!r}"
    fields = field_types(agent_cls.Config)
    variant, base = protocol.variant(agent_name), protocol.base_agent(agent_name)
    for name in values:
        if name not in fields:
            matches = difflib.get_close_matches(name, sorted(fields), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(matches)}? " if matches else ""
            setter = (f"variant {agent_name!r} (of agent {base!r}) sets agent.{name}"
                      if variant is not None and name in variant.values else f"sets agent.{name} {where}")
            raise UsageError(
                f"protocol {protocol.name!r} {setter}, but agent {base!r} has no "
                f"field {name!r}; {hint}fields of agent {base!r}: {', '.join(sorted(fields))}"
            )
    tokens: list[str] = []
    for name, value in values.items():
        if isinstance(value, tuple):
            tokens += [f"--{name}", *(_cli_text(v) for v in value)]
        else:
            tokens.append(f"--{name}={_cli_text(value)}")
    bools, _ = option_kinds(agent_cls.Config)
    given = " ".join(f"agent.{k}={_cli_text(v) if not isinstance(v, tuple) else ','.join(map(_cli_text, v))}"
                     for k, v in values.items())
    messages = io.StringIO()
    try:  # tyro reports a bad value (or a config's own check) on stderr and exits
        with contextlib.redirect_stderr(messages), contextlib.redirect_stdout(messages):
            resolved = tyro.cli(agent_cls.Config, args=to_tyro_form(tokens, bools, set()), default=config,
                                console_outputs=False, registry=help_registry(), prog="agent")
    except SystemExit:
        raise UsageError(
            f"protocol {protocol.name!r} sets {given} {where}, which the agent refuses: "
            f"{_tyro_error_text(messages.getvalue())}"
        ) from None

    from vagram_bench.envs import model_capacity
    from vagram_bench.interfaces import AgentConfigError

    capacity = model_capacity(env_id)
    if capacity is not None:
        try:
            constrained = agent_cls.apply_model_capacity(resolved, capacity, set())
        except AgentConfigError:
            constrained = resolved  # an agent without a dynamics model: the run refuses the env itself
        for name in values:
            if getattr(constrained, name) != getattr(resolved, name):
                raise UsageError(
                    f"protocol {protocol.name!r} sets agent.{name}={getattr(resolved, name)} {where}, but "
                    f"the env's model-capacity constraint {dict(capacity)} fixes agent.{name}="
                    f"{getattr(constrained, name)}; the protocol must not override it"
                )
    return resolved


def _check_protocol_agent_conflicts(
    parsed: Any, protocol_config: Any, explicit_agent_fields: set[str], protocol: Any,
    agent_name: str, env_id: str,
) -> None:
    """Refuse an explicit ``agent.<field>`` that differs from the value ``protocol`` fixes."""
    for entry in protocol.agent_override_entries(agent_name, env_id):
        for name in sorted(explicit_agent_fields & set(entry.values)):
            given, fixed = getattr(parsed, name), getattr(protocol_config, name)
            if given != fixed:
                raise UsageError(
                    f"agent.{name}={given} conflicts with protocol {protocol.name!r} (agent.{name}={fixed} "
                    f"for agent {agent_name!r} on {env_id!r}: {entry.reason}); drop one of the two"
                )


def check_protocol_agent_overrides(protocol: Any) -> list[str]:
    """Every problem of ``protocol``'s ``[[agent_overrides]]`` and ``[[variants]]`` that shows only with the
    agents loaded (a field the agent lacks, a value it refuses, a capacity-fixed field), resolving each
    (agent, task) an entry names as a run would; ``[]`` when every entry applies cleanly."""
    from vagram_bench import registry

    problems: list[str] = []
    entries = protocol.agent_overrides + protocol.pinned_agent_settings
    named = {a for entry in entries for a in entry.agents} | {v.name for v in protocol.variants}
    for agent_name in sorted(named):
        try:
            agent_cls = registry.load_agent(protocol.base_agent(agent_name))
        except (registry.UnknownAgentError, registry.PluginError) as exc:
            problems.append(str(exc))
            continue
        for task in protocol.tasks:
            if protocol.agent_override_entries(agent_name, task):
                try:
                    _with_protocol_agent_settings(
                        agent_cls, agent_name, agent_cls.default_config(task), protocol, task
                    )
                except (UsageError, ValueError) as exc:
                    problems.append(str(exc))
    return problems


# --------------------------------------------------------------------------------------------------
# the command line


#: The text above the options in --help. tyro joins a paragraph's lines and does not wrap it, so
#: each paragraph is one line of at most 100 characters.
_DESCRIPTION = "\n\n".join([
    "Train and evaluate one agent on one env; the records go to <out>/<env>/<agent>/seed<k>/.",
    "Options take `key=value` or `--key value` (mixed as you like), e.g. `agent=mbpo_vagram seed=3`.",
    "Agent fields: `agent.<field>=value`. Keyword arguments of gym.make: `env.<kwarg>=value`.",
    "The defaults shown are this agent's on this env (per-family defaults, capacity ids, protocol=).",
    "Agents: {agents}.",
])


def _fixed_field_message(agent_name: str, field: str, tok: str, tokens: list[str]) -> str | None:
    """Why ``agent.<field>`` cannot be set when the agent's config records ``field`` but fixes it
    (an ``init=False`` field, e.g. ``model_loss`` of ``mbpo_mse``), naming the registered agents whose
    config fixes it at the value asked for; ``None`` when ``field`` is no such field."""
    from vagram_bench import registry

    try:
        config_cls = registry.load_agent(agent_name).Config
    except (registry.UnknownAgentError, registry.PluginError):
        return None
    by_name = {f.name: f for f in dataclasses.fields(config_cls)}
    if field not in by_name or by_name[field].init:
        return None
    fixed = by_name[field].default
    if "=" in tok:
        wanted: str | None = tok.split("=", 1)[1]
    else:
        at = tokens.index(tok) + 1
        wanted = tokens[at] if at < len(tokens) and not tokens[at].startswith("--") else None
    text = f"agent.{field} is not a setting: agent {agent_name!r} fixes it at {fixed!r}"
    if wanted is None or wanted == str(fixed):
        return text
    # The agents whose config fixes the field at the value asked for, within the same config family
    # (e.g. mbpo_mle for agent.model_loss=mle on mbpo_mse).
    family = [c for c in config_cls.__mro__ if dataclasses.is_dataclass(c)
              and any(f.name == field and f.init for f in dataclasses.fields(c))]
    choices = []
    for name, info in registry.available_agents().items():
        other = {f.name: f for f in dataclasses.fields(info.cls.Config)}.get(field)
        if (family and issubclass(info.cls.Config, family[0]) and other is not None and not other.init
                and str(other.default) == wanted):
            choices.append(name)
    if choices:
        return f"{text}; for {field}={wanted} use agent={' or agent='.join(choices)}"
    return f"{text}; no installed agent has {field}={wanted}"


def _explicit_fields(tokens: list[str], known: Mapping[str, Any], bool_options: set[str], agent_name: str) -> set[str]:
    """The fields named on the command line; an unknown one is refused with difflib suggestions
    (tyro's own message is less specific)."""
    explicit: set[str] = set()
    for tok in tokens:
        if not tok.startswith("--"):
            continue
        name = canonical(tok.split("=", 1)[0])
        if name == "help":
            continue
        parent, _, leaf = name.rpartition(".")
        prefix = f"{parent}." if parent else ""
        if name not in known and leaf.startswith("no_") and prefix + leaf[3:] in bool_options:
            name = prefix + leaf[3:]  # tyro's negated flag, e.g. --agent.no-learn-alpha
        if name not in known and name.startswith("agent."):
            fixed = _fixed_field_message(agent_name, name.split(".", 1)[1], tok, tokens)
            if fixed:
                raise UsageError(fixed)
        if name not in known:
            matches = difflib.get_close_matches(name, sorted(known) + ["agent"], n=3, cutoff=0.5)
            agent_fields = sorted(k.split(".", 1)[1] for k in known if k.startswith("agent."))
            top_fields = sorted(k for k in known if not k.startswith("agent."))
            scope = (
                f"fields of agent {agent_name!r}: {', '.join(agent_fields)}"
                if name.startswith("agent.")
                else f"top-level fields: agent, {', '.join(top_fields)}"
            )
            hint = f"did you mean {', '.join(matches)}? " if matches else ""
            raise UsageError(f"unknown field {name!r}; {hint}{scope}")
        explicit.add(name)
    return explicit


def _check_ranges(options: RunOptions) -> None:
    if not options.out.strip():  # an empty value would write the run directories into the current one
        raise UsageError(f"out must name a directory, got {options.out!r}; the default is out=runs, "
                         "and out=. writes into the current directory")
    for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every"):
        if getattr(options, name) < 1:
            raise UsageError(f"{name} must be a positive integer, got {getattr(options, name)}")
    for name in ("eval_seed", "threads"):  # numpy and gymnasium refuse negative seeds
        if getattr(options, name) < 0:
            raise UsageError(f"{name} must be >= 0, got {getattr(options, name)}")
    seeds = list(options.seed)
    if not seeds:
        raise UsageError("seed needs at least one value, e.g. seed=0 or seed=0,1,2")
    negative = [s for s in seeds if s < 0]
    if negative:
        raise UsageError(f"seed must be >= 0, got {', '.join(map(str, negative))} (in seed={','.join(map(str, seeds))})")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UsageError(f"seed lists {', '.join(map(str, repeated))} more than once "
                         f"(seed={','.join(map(str, seeds))}); each seed is one run directory")


#: what users type for a device torch names otherwise
_DEVICE_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "cuda0": "cuda:0", "metal": "mps", "apple": "mps"}


def usable_devices() -> list[str]:
    """The devices a run can use on this machine: ``cpu``, ``cuda`` and ``cuda:<i>`` for each
    visible GPU, ``mps`` where Apple's backend is available."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def check_device(text: str) -> None:
    """Refuse a ``device`` torch cannot parse or this machine cannot use, before anything is written
    (a run would otherwise fail with a traceback once it builds the agent).

    Raises:
        UsageError: naming the value, why, and the devices that work here.
    """
    import torch

    here = f"devices here: {', '.join(usable_devices())}"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        guess = _DEVICE_ALIASES.get(text.strip().lower()) or next(
            iter(difflib.get_close_matches(text.strip().lower(), ["cpu", "cuda", "mps"], n=1, cutoff=0.5)), None)
        hint = f"did you mean {guess}? " if guess and guess != text else ""
        raise UsageError(f"device {text!r} is not a torch device; {hint}{here}") from None
    if device.type == "cpu":
        return
    if device.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            raise UsageError(
                f"device {text!r} is not available: this torch ({torch.__version__}) is a CPU-only build; use "
                "device=cpu, or install a CUDA build of torch (README, Set-up)")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"device {text!r} is not available: no CUDA GPU is visible to torch "
                             f"(torch.cuda.is_available() is False); {here}")
        if device.index is not None and device.index >= count:
            raise UsageError(f"device {text!r} does not exist: {count} CUDA GPU(s) are visible; {here}")
        return
    backend = torch.backends.mps if device.type == "mps" else getattr(torch, device.type, None)
    if not (callable(getattr(backend, "is_available", None)) and backend.is_available()):
        raise UsageError(f"device {text!r} is not available on this machine; {here}")


def _with_capacity(agent_cls: Any, config: Any, env_id: str, explicit_agent_fields: set[str]) -> Any:
    """``config`` under ``env_id``'s model-capacity constraint (unchanged for ids without one).

    Raises:
        UsageError: the agent refuses the constraint (no dynamics model, a conflicting explicit field).
    """
    from vagram_bench.envs import model_capacity
    from vagram_bench.interfaces import AgentConfigError

    capacity = model_capacity(env_id)
    if capacity is None:
        return config
    try:
        return agent_cls.apply_model_capacity(config, capacity, explicit_agent_fields)
    except AgentConfigError as exc:
        raise UsageError(f"env {env_id!r}: {exc}") from None


def parse_args(argv: list[str]) -> RunConfig:
    """Parse a command line into a resolved :class:`RunConfig`.

    Raises:
        UsageError: unknown agent/env/field, bad value, protocol conflict, capacity conflict.
        SystemExit: from tyro for ``--help`` (code 0) and type errors (code 2).
    """
    # ---- the agent comes first: its Config decides which agent.<field> options exist
    tokens, agent_name = pop_option(normalize_argv(argv), "agent")
    agent_name = agent_name or "sac"
    agent_cls, variant = _load_agent(agent_name, peek_option(tokens, "protocol"))
    base_name = variant.agent if variant is not None else agent_name
    tokens, env_kwargs = pop_env_kwargs(tokens)
    env_id = peek_option(tokens, "env") or RunOptions.env
    want_help = any(t in ("-h", "--help") for t in tokens)
    if not want_help:
        _check_env(env_id)

    # ---- a protocol's values become the defaults; explicit conflicting values are refused
    protocol, top_defaults = _top_defaults(peek_option(tokens, "protocol"), env_id, want_help)
    tokens, explicit = _tyro_tokens(tokens, agent_cls, base_name)
    if protocol is not None:
        _check_protocol_options(tokens, explicit, protocol, top_defaults)
    agent_defaults, protocol_agent_config = _agent_defaults(agent_cls, agent_name, env_id, protocol, want_help)

    # ---- the command line over those defaults (tyro), then the checks of the whole
    parsed = _parse_with_tyro(tokens, agent_cls.Config, agent_name, agent_defaults, top_defaults)
    explicit_agent_fields = {n.split(".", 1)[1] for n in explicit if n.startswith("agent.")}
    if protocol is not None:
        _check_protocol_agent_conflicts(parsed.agent, protocol_agent_config, explicit_agent_fields,
                                        protocol, agent_name, parsed.env)
    agent_config = _with_capacity(agent_cls, parsed.agent, parsed.env, explicit_agent_fields)
    top = {f.name: getattr(parsed, f.name) for f in dataclasses.fields(RunOptions)}
    _check_ranges(RunOptions(**top))
    check_device(parsed.device)
    if env_kwargs and protocol is not None:
        raise UsageError(
            f"protocol {protocol.name!r} fixes its tasks, so it takes no env kwargs "
            f"({', '.join('env.' + k for k in env_kwargs)}); drop them or the protocol"
        )
    if env_kwargs:
        _check_env_kwargs(parsed.env, env_kwargs)
    protocol_info = (
        {"name": protocol.name, "version": protocol.version, "hash": protocol.content_hash}
        if protocol is not None
        else None
    )
    seeds = tuple(int(s) for s in top.pop("seed"))
    return RunConfig(**top, seed=seeds[0], seeds=seeds, agent=agent_name, agent_config=agent_config,
                     protocol_info=protocol_info, env_kwargs=env_kwargs,
                     variant=variant.record() if variant is not None else None)


def _load_agent(agent_name: str, protocol_ref: str | None) -> tuple[type, Any]:
    """The agent class of ``agent_name`` and, for a variant of the protocol ``protocol_ref`` names, its
    ``[[variants]]`` entry (the class is then its registered agent's); an unknown name or a broken plugin is
    a usage error, which says where variants are defined."""
    from vagram_bench import registry
    from vagram_bench.protocol import ProtocolError, load_protocol

    try:
        return registry.load_agent(agent_name), None
    except registry.PluginError as exc:
        raise UsageError(str(exc)) from None
    except registry.UnknownAgentError as exc:
        unknown = str(exc)
    if not protocol_ref:
        raise UsageError(f"{unknown}; a protocol's [[variants]] are agents only with that protocol "
                         "(agent=<variant> protocol=<file>)")
    try:
        protocol = load_protocol(protocol_ref)
    except ProtocolError as exc:
        raise UsageError(str(exc)) from None
    variant = protocol.variant(agent_name)
    if variant is None:
        names = [v.name for v in protocol.variants]
        close = difflib.get_close_matches(agent_name, names, n=3, cutoff=0.6)
        hint = f"did you mean the variant {' or '.join(close)}? " if close else ""
        raise UsageError(f"{unknown}; {hint}" + (f"variants of protocol {protocol.name!r}: {', '.join(names)}"
                                                 if names else f"protocol {protocol.name!r} defines no [[variants]]"))
    try:
        return registry.load_agent(variant.agent), variant
    except (registry.UnknownAgentError, registry.PluginError) as exc:
        raise UsageError(f"variant {agent_name!r} of protocol {protocol.name!r}: {exc}") from None


def _top_defaults(protocol_name: str | None, env_id: str, want_help: bool) -> tuple[Any, dict[str, Any]]:
    """The protocol (``None``: none named) and the run options' defaults: the env, the requested
    kernels and the protocol's values. ``--help`` shows the defaults of an unreadable protocol's run."""
    from vagram_bench.kernels import requested_kernels

    protocol = None
    top_defaults: dict[str, Any] = {"env": env_id}
    top_defaults["kernels"] = requested_kernels([])  # $VAGRAM_BENCH_KERNELS, else avx2
    if protocol_name:
        try:
            protocol, protocol_values = _protocol_defaults(protocol_name, env_id)
            top_defaults.update(protocol_values)
        except UsageError:
            if not want_help:
                raise
    return protocol, top_defaults


def _tyro_tokens(tokens: list[str], agent_cls: Any, agent_name: str) -> tuple[list[str], set[str]]:
    """``tokens`` in tyro's form, and the fields the command line sets explicitly."""
    config_cls = agent_cls.Config
    known = {**field_types(RunOptions), **{f"agent.{k}": t for k, t in field_types(config_cls).items()}}
    top_bools, top_sequences = option_kinds(RunOptions)
    agent_bools, agent_sequences = option_kinds(config_cls, prefix="agent.")
    explicit = _explicit_fields(tokens, known, top_bools | agent_bools, agent_name)
    tokens = to_tyro_form(tokens, top_bools | agent_bools, top_sequences | agent_sequences,
                          int_options(RunOptions) | int_options(config_cls, prefix="agent."))
    return tokens, explicit


def _check_protocol_options(tokens: list[str], explicit: set[str], protocol: Any,
                            top_defaults: Mapping[str, Any]) -> None:
    """Refuse an explicit run option that differs from the protocol's value."""
    for name in sorted(explicit & set(PROTOCOL_FIELDS), key=PROTOCOL_FIELDS.index):
        value = peek_option(tokens, name)
        if value is not None and str(value) != str(top_defaults[name]):
            raise UsageError(
                f"{name}={value} conflicts with protocol {protocol.name!r} ({name}={top_defaults[name]}); "
                "drop one of the two"
            )


def _agent_defaults(agent_cls: Any, agent_name: str, env_id: str, protocol: Any, want_help: bool) -> tuple[Any, Any]:
    """The agent config the command line starts from, and the protocol's agent config (without the
    capacity constraint) that explicit agent fields are checked against."""
    agent_defaults = agent_cls.default_config(env_id)
    if protocol is not None:
        try:
            agent_defaults = _with_protocol_agent_settings(agent_cls, agent_name, agent_defaults, protocol, env_id)
        except UsageError:
            if not want_help:
                raise
    protocol_agent_config = agent_defaults
    if want_help:  # --help shows what a run on this env would use, capacity constraint included
        try:
            agent_defaults = _with_capacity(agent_cls, agent_defaults, env_id, set())
        except (UsageError, ValueError):
            pass  # an env this agent cannot run, or an unknown one: the run itself says so
    return agent_defaults, protocol_agent_config


def _parse_with_tyro(tokens: list[str], config_cls: type, agent_name: str, agent_defaults: Any,
                     top_defaults: Mapping[str, Any]) -> Any:
    """tyro's parse of ``tokens`` over the defaults; a parse error becomes a one-line usage error."""
    from vagram_bench import registry

    messages = io.StringIO()
    try:  # tyro prints a parse error as a box on stderr and exits 2: the runner's errors are one line
        with contextlib.redirect_stderr(messages):
            return tyro.cli(
                _RunCLI[config_cls],  # type: ignore[index]
                args=tokens,
                default=_RunCLI(agent=agent_defaults, agent_name=agent_name, **top_defaults),
                prog="python -m vagram_bench.run",
                description=_DESCRIPTION.format(agents=", ".join(registry.available_agents())),
                registry=help_registry(),
            )
    except SystemExit as exc:
        if exc.code in (0, None):  # --help (printed on stdout)
            raise
        raise UsageError(tyro_error_line(messages.getvalue())) from None
