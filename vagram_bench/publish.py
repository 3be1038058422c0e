"""Reference results of a protocol: publish a sweep's run records under ``results/<protocol>/`` and
check a published directory.

.. code-block:: bash

    python -m vagram_bench.leaderboard publish protocol=cpu runs=runs/cpu out=results/cpu
    python -m vagram_bench.leaderboard publish protocol=cpu runs=results/cpu out=results/cpu  # regenerate
    python -m vagram_bench.publish protocol=cpu runs=results/cpu out=results/cpu              # the same

A published directory holds:

* ``runs/<task>/<agent>/seed<k>/`` — each run's ``config.json``, ``eval.csv``, ``train.csv`` and
  ``summary.json`` (never ``checkpoint.pt``; a complete run has none);
* ``leaderboard.md``, ``leaderboard.csv``, ``curves.png``, ``performance_profile.png``, ``report.html`` (and,
  for a protocol with ``[[interaction]]``, ``aggregate_intervals.png`` and ``probability_of_improvement.png``) —
  :func:`vagram_bench.report.write_leaderboard` of exactly these runs;
* ``publish.json`` — the record: protocol name, version and content hash, the rows (agents), the
  bootstrap settings, the machine, the summed wall time of the runs, the sweep's span when known, and
  the commands;
* ``README.md`` — the same record for people, rendered from ``publish.json`` alone.

The tables carry no timestamps and no paths, so publishing again from the published directory
(``runs=results/<p>``) rewrites ``leaderboard.md`` and ``leaderboard.csv`` byte for byte; when ``runs``
holds a ``publish.json``, its machine, span and sweep command are carried over, so README.md is
rewritten unchanged too. :func:`check_published` is what ``tests/test_results.py`` runs on every
committed ``results/<protocol>/``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shlex
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence


from vagram_bench.board import Leaderboard, build_leaderboard
from vagram_bench.cli import UsageError, parse_config
from vagram_bench.protocol import Protocol, ProtocolError, load_protocol
from vagram_bench.records import (RunPaths, RunRecord, atomic_write_bytes, atomic_write_json, find_run_dirs,
                                  read_evals, read_json, scan_runs)
from vagram_bench.report import write_leaderboard

__all__ = ["PublishConfig", "PublishError", "RECORD_FILES", "publish", "check_published", "main"]

RECORD_FILES = ("config.json", "eval.csv", "train.csv", "summary.json")
"""The files of a run that are published (``checkpoint.pt`` and ``error.json`` never are)."""

METADATA = "publish.json"
TABLES = ("leaderboard.md", "leaderboard.csv")
"""The files that regenerating from the published runs must reproduce byte for byte."""


class PublishError(ValueError):
    """Runs that cannot be published as they are; nothing was written."""


@dataclasses.dataclass
class PublishConfig:
    """Publish a protocol's reference results: copy the run records (no checkpoints), write the leaderboard,
    publish.json and README.md, e.g.
    `python -m vagram_bench.leaderboard publish protocol=cpu runs=runs/cpu out=results/cpu`."""

    protocol: str
    """Protocol name (see `python -m vagram_bench.run list`) or path to a protocol .toml file."""
    runs: str = "runs"
    """The sweep's out directory (or a published directory, to regenerate it)."""
    out: str = "results"
    """The published directory (results/<protocol> in the repository)."""
    agents: tuple[str, ...] | None = None
    """Rows, in order (default: those of runs' publish.json, else the protocol's agents, then any other
    agent with runs)."""
    n_resamples: int | None = None
    """Bootstrap resamples per confidence interval (default: runs' publish.json, else 10000)."""
    seed: int | None = None
    """Seed of the bootstrap generator (default: runs' publish.json, else 0)."""
    machine: str | None = None
    """Where the runs ran (default: runs' publish.json, else this machine: CPU model, logical CPUs, OS,
    Python)."""
    sweep_command: str | None = None
    """The exact sweep command (default: runs' publish.json, else the sweep command for these agents and
    runs=, marked as reconstructed)."""
    allow_incomplete: bool = False
    """Publish a grid with missing or unfinished seeds (the tables mark them)."""
    note: str | None = None
    """One line on the publication that the records cannot say (e.g. why cells were not run), recorded in
    publish.json and README.md (default: runs' publish.json, else none)."""
    preregistration: str | None = None
    """The commit that fixed the protocol (and its docs page) before the grid's first run, recorded in
    publish.json and README.md (default: runs' publish.json, else none)."""


# --------------------------------------------------------------------------------------------------
# the record


def this_machine() -> str:
    """``<CPU model>, <n> logical CPUs, <OS> <release>, Python <version>``."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def sweep_span(run_dirs: Sequence[Path], wall_seconds: Sequence[float]) -> dict[str, Any]:
    """The sweep's span estimated from the records: from the earliest run start (its ``summary.json``'s
    modification time minus its ``wall_seconds``) to the last ``summary.json``. Only meaningful on the
    sweep's own directory (copies do not keep the file times)."""
    ends = [RunPaths(d).summary.stat().st_mtime for d in run_dirs]
    start = min(e - w for e, w in zip(ends, wall_seconds))
    end = max(ends)
    return {"start": _utc(start), "end": _utc(end), "seconds": round(end - start, 1)}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h ({seconds:.0f} s)"


def _cell_walls(runs: Sequence[Any], walls: Sequence[float]) -> dict[tuple[str, str], float]:
    """The longest run's wall time of each (agent, task) cell."""
    out: dict[tuple[str, str], float] = {}
    for run, wall in zip(runs, walls):
        out[(run.agent, run.env)] = max(out.get((run.agent, run.env), 0.0), wall)
    return out


def cpu_cost(runs: Sequence[Any]) -> dict[tuple[str, str], float] | None:
    """Each (agent, task) cell's CPU time from its runs' ``summary.json`` (``None`` unless every run has
    ``cpu_seconds``, recorded since issue 24), never counting a process's time twice:

    * a cell whose runs were each finished by a process of its own (``population=false``: one run per
      ``cpu_process``) costs the sum of its runs;
    * otherwise the cell ran as one population (the sweep's default): its members record the whole
      process's time, and members resumed by a later process after a kill carry the history they shared, so
      the cell costs the largest time any of its runs records, however many processes finished them (adding
      the processes up would count the shared history once per process). Records without ``cpu_process``
      count as one process per cell.

    A lower bound when runs were interrupted: CPU time spent after a process's last checkpoint, by a process
    that then died, is in no record, and neither is a killed process's work after the checkpoint its resumed
    members carry on from."""
    if not runs or any(r.summary.get("cpu_seconds") is None for r in runs):
        return None
    processes: dict[tuple[str, str], dict[str | None, list[float]]] = {}
    for r in runs:
        cell = processes.setdefault((r.agent, r.env), {})
        cell.setdefault(r.summary.get("cpu_process"), []).append(float(r.summary["cpu_seconds"]))
    cells: dict[tuple[str, str], float] = {}
    for cell, by_process in processes.items():
        separate = len(by_process) > 1 and all(len(v) == 1 for v in by_process.values())
        times = [t for v in by_process.values() for t in v]
        cells[cell] = sum(times) if separate else max(times)
    return cells


def _cpu_cost(runs: Sequence[Any]) -> dict[str, Any]:
    """publish.json's CPU keys: the total and per cell (:func:`cpu_cost`); none for older records."""
    cells = cpu_cost(runs)
    if cells is None:
        return {}
    return {
        "cpu_seconds_total": round(sum(cells.values()), 3),
        "cell_cpu_seconds": {f"{agent} / {task}": round(s, 3) for (agent, task), s in sorted(cells.items())},
    }


def check_preregistration(commit: str, protocol: Protocol, first_run_start: float | None) -> None:
    """Refuse a ``preregistration=`` commit that does not hold this protocol or came after the grid's first
    run (:class:`PublishError`, one line): the commit must exist in the git repository of the protocol's
    file, hold that file with the same content hash, and be committed no later than ``first_run_start``
    (the earliest run's ``config.json`` time, written when a run starts and never rewritten)."""
    import subprocess
    import tomllib

    from vagram_bench.protocol import parse_protocol

    where = Path(protocol.path).resolve() if protocol.path else None

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(where.parent), *args], capture_output=True, text=True)
        if done.returncode:
            raise PublishError(f"preregistration={commit}: git {' '.join(args)} failed: "
                               f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        return done.stdout

    if where is None or not where.exists():
        raise PublishError(f"preregistration={commit}: protocol {protocol.name!r} has no file to look up in git")
    top = Path(git("rev-parse", "--show-toplevel").strip())
    rel = where.relative_to(top).as_posix()
    git("cat-file", "-e", f"{commit}^{{commit}}")
    try:
        then = parse_protocol(tomllib.loads(git("show", f"{commit}:{rel}")), f"{commit}:{rel}", check_ids=False)
    except ValueError as exc:  # ProtocolError, TOMLDecodeError
        raise PublishError(f"preregistration={commit}: {rel} at that commit does not load: {exc}") from None
    if then.content_hash != protocol.content_hash:
        raise PublishError(f"preregistration={commit}: {rel} at that commit has content hash "
                           f"{then.content_hash[:12]}, not this protocol's {protocol.content_hash[:12]}")
    committed = int(git("show", "-s", "--format=%ct", commit).strip())
    if first_run_start is not None and committed > first_run_start:
        raise PublishError(f"preregistration={commit}: committed at {_utc(committed)}, after the grid's first "
                           f"run started ({_utc(first_run_start)})")


def render_readme(meta: dict[str, Any], protocol: Protocol) -> str:
    """README.md of a published directory, from ``publish.json`` alone (deterministic)."""
    p = meta["protocol"]
    span = meta.get("sweep_span")
    lines = [
        f"# Reference results: protocol `{p['name']}` v{p['version']}",
        "",
        protocol.description,
        "",
        f"- Protocol content hash: `{p['hash']}`",
        f"- Agents: {', '.join(meta['agents'])}; tasks: {', '.join(protocol.tasks)}; seeds: "
        f"{', '.join(map(str, protocol.seeds))} ({meta['n_runs']} runs, grid "
        + ("complete" if meta["complete"] else "**incomplete**") + ")",
        f"- Machine: {meta['machine']}",
        f"- Wall time: {_hours(meta['wall_seconds_total'])} summed over the runs' `wall_seconds`"
        + (f"; {_hours(meta['cell_wall_seconds_total'])} summed over the (agent, task) cells' longest run, "
           "the compute when each cell's seeds trained as one population process (the sweep's default: "
           "every member records the whole process's time)" if "cell_wall_seconds_total" in meta else "")
        + (f"; the sweep ran from {span['start']} to {span['end']} ({_hours(span['seconds'])})" if span else
           "; the sweep's span is not known"),
    ]
    if "cpu_seconds_total" in meta:
        lines.append(f"- CPU time: {_hours(meta['cpu_seconds_total'])} summed over the processes that ran the "
                     "cells, each once (every thread; per cell in `publish.json` `cell_cpu_seconds`)")
    if meta.get("preregistration"):
        lines.append(f"- Preregistered: the protocol and its design were committed at `{meta['preregistration']}`, "
                     "before the grid's first run")
    if meta.get("missing_cells"):
        lines.append("- Incomplete cells (completed / expected seeds): "
                     + "; ".join(meta["missing_cells"]))
    if meta.get("note"):
        lines.append(f"- Note: {meta['note']}")
    lines += [
        "",
        "The leaderboard: [leaderboard.md](leaderboard.md) (also `leaderboard.csv`, `report.html`, the figures).",
        "Each run's `config.json`, `eval.csv`, `train.csv` and `summary.json` are under `runs/<task>/<agent>/seed<k>/`.",
        "",
        "## Commands",
        "",
        "Sweep" + (" (reconstructed from the records)" if meta.get("sweep_command_reconstructed") else "") + ":",
        "",
        "```bash",
        meta["sweep_command"],
        "```",
        "",
        "Publish (copies the records, writes the leaderboard and this file):",
        "",
        "```bash",
        meta["publish_command"],
        "```",
        "",
        "Regenerate from the committed runs (rewrites `leaderboard.md` and `leaderboard.csv` byte for byte; "
        "`tests/test_results.py` checks it):",
        "",
        "```bash",
        meta["regenerate_command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _command(module: str, *args: str) -> str:
    return shlex.join(["python", "-m", module, *args])


# --------------------------------------------------------------------------------------------------
# publishing


def _board(cfg: PublishConfig, protocol: Protocol, previous: dict[str, Any] | None
           ) -> tuple[list[RunRecord], Leaderboard]:
    """The runs to publish and their leaderboard; :class:`PublishError` when the leaderboard would exclude
    any of them or the grid is incomplete (unless ``allow_incomplete``)."""
    agents = cfg.agents or (tuple(previous["agents"]) if previous else None)
    n_resamples = cfg.n_resamples if cfg.n_resamples is not None else (previous or {}).get("n_resamples", 10_000)
    seed = cfg.seed if cfg.seed is not None else (previous or {}).get("seed", 0)
    found = scan_runs(cfg.runs)
    other = [r for r in found if (r.protocol or {}).get("name") == protocol.name
             and not protocol.matches_record(r.protocol)]
    if other:
        warnings.warn(f"not published: {len(other)} run(s) recorded under another version/hash of protocol "
                      f"{protocol.name!r}, e.g. {other[0].path}", stacklevel=3)
    selected = [r for r in found if protocol.matches_record(r.protocol) and (agents is None or r.agent in agents)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exclusions are raised below, once
        board = build_leaderboard(selected, protocol, agents=agents, n_resamples=n_resamples, seed=seed)
    if board.excluded:
        raise PublishError("a published leaderboard excludes nothing; fix or move these runs first:\n  "
                           + "\n  ".join(board.excluded))
    if not board.complete and not cfg.allow_incomplete:
        missing = ", ".join(f"{a}/{t} {n}/{e}" for a, t, n, e in board.incomplete_cells())
        raise PublishError(f"the grid of protocol {protocol.name!r} is incomplete ({missing} completed seeds); "
                           "finish the sweep or pass allow_incomplete=true")
    return selected, board


def _metadata(cfg: PublishConfig, protocol: Protocol, previous: dict[str, Any] | None,
              selected: Sequence[RunRecord], board: Leaderboard) -> dict[str, Any]:
    """``publish.json``: where and how the runs were made (carried over from ``previous``, the runs'
    own ``publish.json``, when there is one) and what is published. Read before copying: the sweep's
    span needs the source's file times."""
    runs_root, out = Path(cfg.runs), Path(cfg.out)
    complete_runs = [r for r in selected if r.complete]
    walls = [float(r.summary.get("wall_seconds") or 0.0) for r in complete_runs]
    if previous:  # the record of where and how the runs were made, and of the publication's place
        carried = {k: previous.get(k) for k in ("machine", "sweep_span", "sweep_command",
                                                "sweep_command_reconstructed", "publish_command",
                                                "regenerate_command")}
        carried.update({k: previous[k] for k in ("note", "preregistration") if previous.get(k)})
    else:
        reconstructed = _command("vagram_bench.sweep", f"protocol={cfg.protocol}",
                                 f"agents={','.join(board.agents)}", f"out={runs_root}")
        carried = {
            "machine": this_machine(),
            "sweep_span": sweep_span([r.path for r in complete_runs], walls) if complete_runs else None,
            "sweep_command": reconstructed,
            "sweep_command_reconstructed": True,
            "publish_command": _command(
                "vagram_bench.leaderboard", "publish", f"protocol={cfg.protocol}", f"runs={runs_root}",
                f"out={out}", f"n_resamples={board.n_resamples}", f"seed={board.seed}"),
            "regenerate_command": _command("vagram_bench.leaderboard", "publish", f"protocol={cfg.protocol}",
                                           f"runs={out}", f"out={out}"),
        }
    if cfg.machine is not None:
        carried["machine"] = cfg.machine
    if cfg.sweep_command is not None:
        carried.update(sweep_command=cfg.sweep_command, sweep_command_reconstructed=False)
    if cfg.note is not None:
        carried["note"] = cfg.note
    if cfg.preregistration is not None:
        starts = [RunPaths(r.path).config.stat().st_mtime for r in selected]
        check_preregistration(cfg.preregistration, protocol, min(starts) if starts else None)
        carried["preregistration"] = cfg.preregistration
    missing = [f"{a} / {t}: {n}/{e} seeds" for a, t, n, e in board.incomplete_cells()]
    _record_options(carried, cfg, incomplete=bool(missing))
    return {
        "protocol": protocol.record(),
        "agents": list(board.agents),
        "n_resamples": board.n_resamples,
        "seed": board.seed,
        "n_runs": len(selected),
        "complete": board.complete,
        **({"missing_cells": missing} if missing else {}),
        "wall_seconds_total": round(sum(walls), 3),
        # Every member of a population records its process's whole wall time, so with the sweep's
        # default (one process per agent and task) the compute is the cells' longest runs summed.
        "cell_wall_seconds_total": round(sum(_cell_walls(complete_runs, walls).values()), 3),
        **_cpu_cost(complete_runs),
        # note and preregistration last, in this order, whether fresh or carried over: a regeneration
        # rewrites publish.json byte for byte
        **{k: v for k, v in carried.items() if k not in ("note", "preregistration")},
        **{k: carried[k] for k in ("note", "preregistration") if k in carried},
    }


def _record_options(carried: dict[str, Any], cfg: PublishConfig, *, incomplete: bool) -> None:
    """Put the options given to this publication into the recorded commands, so that the publish command
    run as written rewrites this README (a regeneration that changes one, e.g. a corrected ``note=``,
    updates it there too), and an incomplete grid's commands, which publish only with
    ``allow_incomplete=true``, say so."""
    given = {"agents": ",".join(cfg.agents) if cfg.agents else None, "preregistration": cfg.preregistration,
             "note": cfg.note, "machine": cfg.machine, "sweep_command": cfg.sweep_command}
    flag = {"allow_incomplete": "true" if incomplete else None}
    carried["publish_command"] = _with_options(carried["publish_command"], {**given, **flag})
    carried["regenerate_command"] = _with_options(carried["regenerate_command"], flag)


def _with_options(command: str, options: dict[str, str | None]) -> str:
    """``command`` with ``key=value`` set for each option that is not ``None`` (replacing an earlier value
    of the key); unchanged, byte for byte, when there is nothing to set."""
    argv = shlex.split(command)
    for key, value in options.items():
        if value is not None and f"{key}={value}" not in argv:
            argv = [a for a in argv if not a.startswith(f"{key}=")] + [f"{key}={value}"]
    return shlex.join(argv) if argv != shlex.split(command) else command


def publish(cfg: PublishConfig) -> dict[str, Path]:
    """Publish ``cfg.runs`` under ``cfg.out``; returns the written files by name.

    Raises:
        ProtocolError: the protocol cannot be loaded.
        FileNotFoundError: ``runs`` does not exist.
        PublishError: runs the leaderboard would exclude, an incomplete grid (unless
            ``allow_incomplete``), or run records in ``out`` that are not part of this publication.
            Nothing is written then.
    """
    if cfg.note is not None and (not cfg.note.strip() or "\n" in cfg.note):
        raise PublishError(f"note={cfg.note!r}: a note is one line of text (it becomes a line of README.md)")
    protocol = load_protocol(cfg.protocol, check_ids=False)
    runs_root, out = Path(cfg.runs), Path(cfg.out)
    previous = read_json(runs_root / METADATA) if (runs_root / METADATA).exists() else None
    selected, board = _board(cfg, protocol, previous)
    destinations = {r.path: out / "runs" / r.env / r.agent / f"seed{r.seed}" for r in selected}
    published = {d.resolve() for d in destinations.values()}
    stale = ([d for d in find_run_dirs(out / "runs") if d.resolve() not in published]
             if (out / "runs").is_dir() else [])
    if stale:
        raise PublishError(f"{out / 'runs'} holds run records that are not part of this publication, e.g. "
                           f"{stale[0]}; remove them or publish to another out=")
    meta = _metadata(cfg, protocol, previous, selected, board)
    # read every source file before writing any: runs= may be out itself
    contents = {dst / name: (r.path / name).read_bytes() for r in selected
                for dst in [destinations[r.path]] for name in RECORD_FILES if (r.path / name).exists()}
    for path, data in contents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    files = write_leaderboard(board, out)
    atomic_write_json(out / METADATA, meta)
    atomic_write_bytes(out / "README.md", render_readme(meta, protocol).encode())
    files.update({"metadata": out / METADATA, "readme": out / "README.md"})
    return files


# --------------------------------------------------------------------------------------------------
# checking a published directory


def check_published(results: str | Path, protocol: Protocol | str | None = None) -> list[str]:
    """Every problem of a published directory (``[]``: none).

    Checks that ``publish.json`` and README.md carry the protocol's current content hash, that every
    agent x task x seed of the grid has ``summary.json`` and an ``eval.csv`` following the protocol's
    evaluation schedule to its budget, and that the leaderboard regenerated from the published runs
    equals the published ``leaderboard.md`` and ``leaderboard.csv`` byte for byte.

    Args:
        results: the published directory.
        protocol: the protocol it must be for (default: the shipped protocol named like the directory).
    """
    results = Path(results)
    protocol = load_protocol(protocol or results.name, check_ids=False)
    if not (results / METADATA).exists():
        return [f"{results}: no {METADATA}"]
    meta = read_json(results / METADATA)
    problems = []
    if meta.get("protocol") != protocol.record():
        problems.append(f"{METADATA} records protocol {meta.get('protocol')}, the shipped protocol is "
                        f"{protocol.record()}")
    readme = (results / "README.md").read_text(encoding="utf-8") if (results / "README.md").exists() else ""
    if protocol.content_hash not in readme:
        problems.append(f"README.md does not state the protocol's content hash {protocol.content_hash}")
    agents = list(meta.get("agents") or protocol.agents or ())
    missing_agents = [a for a in protocol.agents or () if a not in agents]
    if missing_agents:
        problems.append(f"agents {missing_agents} of the protocol are not published")
    for agent, task, seed in protocol.cells(agents):
        paths = RunPaths(results / "runs" / task / agent / f"seed{seed}")
        label = f"{agent} / {task} / seed {seed}"
        if not paths.summary.exists():
            problems.append(f"{label}: no summary.json")
        try:
            steps = tuple(e.env_step for e in read_evals(paths.eval_csv))
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            continue
        if steps != protocol.eval_steps_for(task):
            problems.append(f"{label}: eval.csv reaches env step {steps[-1] if steps else 0}, not the "
                            f"protocol's schedule to {protocol.steps_for(task)}")
        if paths.config.exists() and not protocol.matches_record(read_json(paths.config).get("protocol")):
            problems.append(f"{label}: config.json was recorded under another protocol version or hash")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exclusions show up as a table difference
        board = build_leaderboard(scan_runs(results / "runs") if (results / "runs").is_dir() else [],
                                  protocol, agents=agents, n_resamples=int(meta.get("n_resamples", 10_000)),
                                  seed=int(meta.get("seed", 0)))
    with tempfile.TemporaryDirectory() as tmp:
        write_leaderboard(board, tmp)
        for name in TABLES:
            committed = results / name
            if not committed.exists() or committed.read_bytes() != (Path(tmp) / name).read_bytes():
                problems.append(f"{name} differs from the leaderboard regenerated from the published runs")
    return problems


# --------------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None, *, prog: str = "python -m vagram_bench.publish") -> int:
    """``python -m vagram_bench.publish ...`` (or ``python -m vagram_bench.leaderboard publish ...``):
    0 published, 2 bad input (nothing written)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        cfg = parse_config(PublishConfig, argv, prog=prog)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            files = publish(cfg)
    except (ProtocolError, FileNotFoundError, PublishError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot publish to {cfg.out}: {exc.strerror or exc} ({exc.filename or cfg.out})",
              file=sys.stderr)
        return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in files.values())} and the run records under {Path(cfg.out) / 'runs'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
