"""The common runner: ``python -m vagram_bench.run agent=<name> env=<id> [field=value ...]``.

Both command-line spellings work, and can be mixed (the ``key=value`` pre-pass is
:mod:`vagram_bench.cli`; sequence fields take comma-separated values, ``agent.x=1,2``)::

    python -m vagram_bench.run agent=sac env=HopperDistract-15-v0 seed=0 steps=20000 agent.batch_size=512
    python -m vagram_bench.run --agent sac --env HopperDistract-15-v0 --eval-every 500 --agent.batch-size 512
    python -m vagram_bench.run list                      # agents, envs, protocols (and their variants)
    python -m vagram_bench.run list protocol=my.toml     # ... and that protocol file's variants
    python -m vagram_bench.run --agent mbpo_vagram --help   # every field, with that agent's fields

This module is the entry point (``main``, ``list``, exit codes). The run itself lives in
:mod:`vagram_bench.runner`: the command line in :mod:`~vagram_bench.runner.config`, the run
directory and resume in :mod:`~vagram_bench.runner.rundir`, the environment loop in
:mod:`~vagram_bench.runner.loop`, ``summary.json`` in :mod:`~vagram_bench.runner.summary`. Records
and resume are described in ``docs/runner.md``.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import textwrap

from vagram_bench.cli import UsageError, canonical, error_status, normalize_argv, peek_option
from vagram_bench.kernels import reexec_pinned
from vagram_bench.records import CheckpointError
from vagram_bench.runner.config import EXTRA_ENV_IDS, RunConfig, parse_args, suite_env_ids
from vagram_bench.runner.loop import run
from vagram_bench.runner.rundir import RunError, RunInterrupted

__all__ = ["RunConfig", "main", "parse_args", "normalize_argv", "UsageError", "RunError", "run", "list_all"]


def natural_key(text: str) -> list:
    """Sort key that orders the numbers inside names by value (``-0, -5, -10, -15, -20``).

    Examples:
        >>> sorted(["H-10-v0", "H-v0", "H-5-v0", "H-0-v0"], key=natural_key)
        ['H-0-v0', 'H-5-v0', 'H-10-v0', 'H-v0']
    """
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _variant_lines(protocol) -> list[str]:
    """One line per ``[[variants]]`` entry of ``protocol``: its name, its registered agent and its values."""
    lines = []
    for v in protocol.variants:
        values = ", ".join(f"{k}={json.dumps(list(x) if isinstance(x, tuple) else x)}" for k, x in v.values.items())
        lines.append(f"variant {v.name}: {v.agent} with {values}")
    return lines


def list_all(file=None, protocol: str | None = None) -> None:
    """Print the installed agents (with description or why they are broken), envs and protocols, each
    protocol's variants under it; ``protocol`` (a name or a file, e.g. one that is not shipped): that
    protocol and its variants as well.

    Raises:
        UsageError: ``protocol`` cannot be loaded.
    """
    from vagram_bench import registry
    from vagram_bench.protocol import ProtocolError, list_protocols, load_protocol

    try:
        named = load_protocol(protocol) if protocol else None
    except ProtocolError as exc:
        raise UsageError(str(exc)) from None

    file = file or sys.stdout
    print("agents:", file=file)
    infos = registry.discover()
    width = max((len(n) for n in infos), default=4)
    for name, info in infos.items():
        text = info.description if info.ok else f"BROKEN: {info.error}"
        print(f"  {name:<{width}}  {text}", file=file)
    print("envs:", file=file)
    suite = ", ".join(sorted(suite_env_ids(), key=natural_key))
    print(textwrap.fill(suite, width=100, initial_indent="  ", subsequent_indent="  "), file=file)
    extra = "plain gymnasium ids: " + ", ".join(EXTRA_ENV_IDS)
    print(textwrap.fill(extra, width=100, initial_indent="  ", subsequent_indent="    "), file=file)
    print("protocols:", file=file)
    try:
        protocols = list_protocols()
    except Exception as exc:  # a broken protocol file must not break `list`
        print(f"  (cannot list protocols: {type(exc).__name__}: {exc})", file=file)
        return
    if named is not None and all(p.path != named.path for p in protocols):
        protocols.append(named)
    width = max((len(p.name) for p in protocols), default=4)
    for p in protocols:
        desc = (p.description or "").strip().splitlines()[0] if p.description else ""
        where = f"  ({p.path})" if p is named else ""
        print(f"  {p.name:<{width}}  v{p.version}  {desc}{where}", file=file)
        for line in _variant_lines(p):
            print(f"  {'':<{width}}    {line}", file=file)


def resume_command(argv: list[str]) -> str:
    """The command that resumes the run of ``argv``: the same command without ``overwrite``, which
    would discard what was saved.

    Examples:
        >>> resume_command(["agent=sac", "seed=0,1", "overwrite=true", "out=my runs"])
        "python -m vagram_bench.run agent=sac seed=0,1 'out=my runs'"
    """
    kept = [a for a in argv if canonical(a.split("=", 1)[0]) not in ("overwrite", "no_overwrite")]
    return shlex.join(["python", "-m", "vagram_bench.run", *kept])


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vagram_bench.run``; returns the exit code.

    Exit codes: 0 success (also: the run was already complete), 1 a run that failed (non-finite
    loss, corrupt checkpoint), 2 bad input (unknown agent/env/field, wrong type, conflicting run
    directory, capacity id for an agent without a dynamics model), 130 interrupted by Ctrl-C
    (SIGINT; one line says what was saved and the command that resumes).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["list"] or "--list" in argv:
            list_all(protocol=peek_option(normalize_argv([a for a in argv if a not in ("list", "--list")]),
                                          "protocol"))
            return 0
        run(parse_args(argv))
        return 0
    except SystemExit as exc:  # tyro: --help (0) or a parse error (2)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except (UsageError, CheckpointError, RunError) as exc:
        return error_status(exc)
    except KeyboardInterrupt as exc:  # Ctrl-C: say what was kept and how to go on, not a traceback
        saved = exc.saved if isinstance(exc, RunInterrupted) else "before training started"
        print(f"interrupted (Ctrl-C): {saved}. Resume with: {resume_command(argv)}", file=sys.stderr)
        return 130  # 128 + SIGINT, what a shell reports for a process ended by Ctrl-C


def cli(argv: list[str] | None = None) -> int:
    """``python -m vagram_bench.run``: under ``kernels=avx2`` (the default) first restart this process
    once with the pinned kernel environment (:func:`vagram_bench.kernels.reexec_pinned`; it must
    come before torch loads), then :func:`main`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (argv[:1] == ["list"] or {"list", "--list", "-h", "--help"} & set(argv)):
        try:
            reexec_pinned(argv)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return main(argv)


if __name__ == "__main__":
    sys.exit(cli())
