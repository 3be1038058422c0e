"""Fill a protocol's grid: every (agent, task, seed) cell, on this machine, a Ray cluster or Slurm.

.. code-block:: bash

    python -m vagram_bench.sweep protocol=cpu agents=mbpo_mse,mbpo_vagram launcher=local out=runs
    python -m vagram_bench.sweep --protocol cpu --agents mbpo_mse mbpo_vagram --out runs
    python -m vagram_bench.sweep protocol=distraction launcher=ray ray.address=auto out=/shared/runs
    python -m vagram_bench.sweep protocol=capacity launcher=slurm slurm.partition=cpu out=/shared/runs
    python -m vagram_bench.sweep protocol=cpu dry_run=true          # the grid's status and the job commands
    python -m vagram_bench.sweep protocol=cpu population=false      # one process per seed

By default (``population=true``) the incomplete seeds of one (agent, task) of the grid run as
one job, one runner process that trains them as a population (:mod:`vagram_bench.population`),
``python -m vagram_bench.run agent=<a> env=<task> seed=<s0>,<s1>,... protocol=<p> out=<out> quiet=true``,
which writes the same records as one process per seed (``population=false``: one job per seed).
Every job runs with one torch thread (``OMP_NUM_THREADS=1``); the sweep parallelises across jobs.
A seed whose directory ``<out>/<task>/<agent>/seed<s>/`` holds ``summary.json`` is complete and
left out of its job; a seed with a partial record is launched again, which makes the runner resume
it from its own checkpoint (a job may hold resumed and fresh seeds: members may be at different env
steps). So an interrupted sweep (Ctrl-C, a lost node, a time limit) is finished by re-running the
same command. A seed whose directory holds a run of a different protocol (or another version of
it) is never touched: the sweep stops and names it.

Launchers (``launcher=``):

* ``local`` (default): a process pool sized to the cores (``local.workers``) on this machine.
  Needs nothing beyond the core install.
* ``ray``: an existing Ray cluster, ``ray.init(address=ray.address)``; each job is a Ray task
  reserving ``ray.num_cpus`` CPUs that runs the job's command on its node. ``out`` must be on a file
  system all nodes share. Needs ``pip install "vagram-bench[ray]"``.
* ``slurm``: one Slurm array task per job through submitit (all submitted as one job array), with
  ``slurm.*`` resources per job. ``slurm.cluster=local`` runs the same code path through submitit's local
  executor (no cluster needed). Needs ``pip install "vagram-bench[slurm]"``.

Progress across cells is shown with rich: cells done / running / failed, and per running job
the env steps of its slowest seed (read from the runs' ``eval.csv``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from vagram_bench.cli import UsageError, help_registry, parse_config
from vagram_bench.protocol import Protocol, ProtocolError, load_protocol
from vagram_bench.records import RunPaths, lock_holder, read_evals, read_json, redo_command

__all__ = [
    "Cell",
    "Job",
    "SweepConfig",
    "SweepResult",
    "LocalConfig",
    "RayConfig",
    "SlurmConfig",
    "plan_cells",
    "plan_jobs",
    "runner_argv",
    "run_sweep",
    "main",
]

#: Environment of every job process: one thread for torch and the BLAS libraries.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


# --------------------------------------------------------------------------------------------------
# configuration


@dataclasses.dataclass
class LocalConfig:
    """Options of the ``local`` launcher."""

    workers: int = 0
    """Jobs run at the same time (0 = one per CPU core of this machine)."""


@dataclasses.dataclass
class RayConfig:
    """Options of the ``ray`` launcher."""

    address: str | None = None
    """Address passed to ray.init ('auto' = the cluster this node belongs to, 'ray://host:10001' =
    a remote cluster; unset = start a local Ray instance)."""
    num_cpus: float = 1.0
    """CPUs each job (one runner process, one thread) reserves on its node."""
    python: str | None = None
    """Python executable on the worker nodes (default: the one running the sweep)."""


@dataclasses.dataclass
class SlurmConfig:
    """Options of the ``slurm`` launcher (submitit)."""

    cluster: Literal["slurm", "local", "debug"] = "slurm"
    """submitit executor: 'slurm'; 'local' or 'debug' run the same code path on this machine."""
    folder: str | None = None
    """submitit's job folder (logs, pickles). Default: <out>/.sweep/submitit."""
    partition: str | None = None
    """Slurm partition (--partition)."""
    time_min: int = 24 * 60
    """Wall-clock limit per job in minutes (a population job trains all its seeds: allow for them).
    A job that hits it resumes when the sweep is re-run."""
    mem_gb: float = 8.0
    """Memory per job in GB (a population job holds every seed's networks and replay buffers)."""
    cpus_per_task: int = 1
    """CPUs per job."""
    array_parallelism: int = 256
    """Maximum number of jobs of the job array running at once."""
    account: str | None = None
    """Slurm account (--account)."""
    qos: str | None = None
    """Slurm QOS (--qos)."""


@dataclasses.dataclass
class SweepConfig:
    """Run every (agent, task, seed) cell of a protocol that is not complete yet."""

    protocol: str
    """Protocol name (see `python -m vagram_bench.run list`) or path to a protocol .toml file."""
    agents: tuple[str, ...] | None = None
    """Agents to run (comma-separated in the agents=a,b form). Default: the protocol's agents."""
    launcher: Literal["local", "ray", "slurm"] = "local"
    """Where the cells run."""
    out: str = "runs"
    """Root directory of the run records (<out>/<task>/<agent>/seed<k>/)."""
    tasks: tuple[str, ...] | None = None
    """Restrict to these tasks of the protocol (default: all)."""
    seeds: tuple[int, ...] | None = None
    """Restrict to these seeds of the protocol (default: all)."""
    population: bool = True
    """Run the incomplete seeds of each (agent, task) as one job, a runner process that trains them as
    a population (seed=s0,s1,...; the same records as one process per seed). false: one job per
    seed."""
    dry_run: bool = False
    """Only print the grid, each cell's status and the commands of the jobs; launch nothing."""
    runner_module: str = "vagram_bench.run"
    """Module each job runs with `python -m` (the vagram-bench runner; replaceable by a wrapper
    with the same command-line interface)."""
    local: LocalConfig = dataclasses.field(default_factory=LocalConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)
    slurm: SlurmConfig = dataclasses.field(default_factory=SlurmConfig)


# --------------------------------------------------------------------------------------------------
# the grid


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    agent: str
    task: str
    seed: int
    run_dir: Path
    argv: tuple[str, ...]
    """The runner's arguments (after ``python -m <runner>``)."""
    steps: int
    """The cell's env-step budget."""

    @property
    def label(self) -> str:
        return f"{self.agent} / {self.task} / seed {self.seed}"

    def status(self, protocol: Protocol) -> str:
        """``"complete"``, ``"damaged"`` (``summary.json`` present, but the records are not the protocol's
        whole evaluation schedule: :meth:`problem`), ``"partial"`` (started, no ``summary.json``) or
        ``"pending"``.

        Raises:
            RuntimeError: the directory holds a run of another protocol, protocol version or
                config (it is never overwritten by a sweep).
        """
        paths = RunPaths(self.run_dir)
        if not paths.config.exists():
            return "partial" if paths.eval_csv.exists() else "pending"
        try:
            config = read_json(paths.config)
        except ValueError:
            return "partial"  # being written
        if not protocol.matches_record(config.get("protocol")):
            raise RuntimeError(
                f"{self.run_dir} holds a run recorded under protocol {config.get('protocol')}, not "
                f"{protocol.record()}; a sweep never overwrites it. Use another out= directory "
                "(e.g. out=runs/<protocol>) or move the old run away."
            )
        if paths.summary.exists():
            return "damaged" if self.problem(protocol) else "complete"
        return "partial"

    def problem(self, protocol: Protocol) -> str | None:
        """Why a run marked complete is not a complete record (``None``: it is, or it is not marked complete):
        the rule the leaderboard applies too (:meth:`Protocol.schedule_problem`)."""
        paths = RunPaths(self.run_dir)
        if not paths.summary.exists():
            return None
        try:
            steps = [e.env_step for e in read_evals(paths.eval_csv)]
        except (OSError, ValueError) as exc:
            return f"marked complete (summary.json) but its eval.csv cannot be read ({exc})"
        return protocol.schedule_problem(self.task, steps)

    def live_holder(self) -> str | None:
        """``"process N on host H"`` while a runner process holds the cell's run directory (e.g. one left
        running by a killed sweep), else ``None``."""
        return lock_holder(self.run_dir)

    def env_steps_done(self) -> int:
        """The last evaluated env step in the cell's ``eval.csv`` (0 if none yet)."""
        try:
            evals = read_evals(RunPaths(self.run_dir).eval_csv)
        except (OSError, ValueError):  # progress display only: a bad file shows as no progress
            return 0
        return evals[-1].env_step if evals else 0


@dataclasses.dataclass(frozen=True)
class Job:
    """One runner process: the incomplete seeds of one (agent, task) trained as a population
    (``population=true``), or a single seed."""

    cells: tuple[Cell, ...]
    """The cells it runs (one agent and task, increasing seeds)."""
    protocol_ref: str
    """The protocol as the command names it."""
    out: Path
    """The sweep's (absolute) ``out``."""

    @property
    def agent(self) -> str:
        return self.cells[0].agent

    @property
    def task(self) -> str:
        return self.cells[0].task

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(c.seed for c in self.cells)

    @property
    def steps(self) -> int:
        return self.cells[0].steps

    @property
    def argv(self) -> tuple[str, ...]:
        """The runner's arguments (after ``python -m <runner>``)."""
        return runner_argv(self.agent, self.task, self.seeds, self.protocol_ref, self.out)

    @property
    def label(self) -> str:
        seeds = ",".join(map(str, self.seeds))
        return f"{self.agent} / {self.task} / seed{'s' if len(self.cells) > 1 else ''} {seeds}"

    @property
    def log_name(self) -> str:
        """``<task>__<agent>__seed<s0>_<s1>...``: one log per job (a single seed's is its cell's)."""
        return f"{self.task}__{self.agent}__seed{'_'.join(map(str, self.seeds))}"

    def only(self, cells: Sequence[Cell]) -> "Job":
        """This job restricted to ``cells`` (a subset of its cells)."""
        return dataclasses.replace(self, cells=tuple(c for c in self.cells if c in cells))

    def env_steps_done(self) -> int:
        """The slowest seed's last evaluated env step."""
        return min(c.env_steps_done() for c in self.cells)


def runner_argv(agent: str, task: str, seeds: Sequence[int], protocol_ref: str, out: Path) -> tuple[str, ...]:
    """The runner's arguments for ``seeds`` of one (agent, task): ``seed=s0,s1,...`` trains them as
    one population."""
    return (f"agent={agent}", f"env={task}", f"seed={','.join(map(str, seeds))}",
            f"protocol={protocol_ref}", f"out={out}", "quiet=true")


def _protocol_ref(protocol: Protocol, requested: str) -> str:
    """How the job command names the protocol: its shipped name, or its absolute path."""
    from vagram_bench.protocol import protocol_names

    if requested in protocol_names():
        return requested
    return str(Path(requested).resolve())


def check_agents(agents: Sequence[str], tasks: Sequence[str], protocol: Protocol | None = None) -> None:
    """Fail early, before anything is launched: every requested agent must load (unknown agents and
    broken plugins are named with the reason; a variant of ``protocol`` loads its registered agent) and
    accept every capacity-constrained task (a model-based agent that does not implement the constraint;
    the runner would refuse those cells)."""
    from vagram_bench import registry
    from vagram_bench.envs import model_capacity
    from vagram_bench.interfaces import AgentConfigError

    base = {agent: protocol.base_agent(agent) if protocol is not None else agent for agent in agents}
    problems = registry.agent_problems(list(dict.fromkeys(base.values())))
    if problems:
        variants = [v.name for v in protocol.variants] if protocol is not None else []
        hint = f" (variants of protocol {protocol.name!r}: {', '.join(variants)})" if variants else ""
        names = [a for a in agents if base[a] in problems]
        raise ValueError("cannot run agent(s) " + ", ".join(names) + ":\n  "
                         + "\n  ".join(dict.fromkeys(problems[base[a]] for a in names)) + hint)
    refused = []
    classes = {agent: registry.load_agent(base[agent]) for agent in agents}
    for task in tasks:
        if (capacity := model_capacity(task)) is None:
            continue
        for agent, agent_cls in classes.items():
            try:
                agent_cls.apply_model_capacity(agent_cls.default_config(task), capacity, set())
            except AgentConfigError as exc:
                refused.append(f"{agent} on {task}: {exc}")
    if refused:
        raise ValueError("capacity-constrained task(s) refused; drop those agents (agents=...) or restrict "
                         "tasks=...:\n  " + "\n  ".join(refused))


def plan_cells(cfg: SweepConfig, protocol: Protocol) -> list[Cell]:
    """The cells of the sweep, in launch order (agent-major, then task, then seed)."""
    agents = list(cfg.agents) if cfg.agents else list(protocol.agents or ())
    if not agents:
        from vagram_bench import registry

        raise ValueError(
            f"protocol {protocol.name!r} names no agents; pass agents=<a>,<b> "
            f"(available: {', '.join(registry.available_agents())})"
        )
    tasks = list(cfg.tasks) if cfg.tasks else list(protocol.tasks)
    bad_tasks = [t for t in tasks if t not in protocol.tasks]
    if bad_tasks:
        raise ValueError(f"tasks {bad_tasks} are not in protocol {protocol.name!r}: {list(protocol.tasks)}")
    seeds = list(dict.fromkeys(cfg.seeds)) if cfg.seeds is not None else list(protocol.seeds)
    bad_seeds = [s for s in seeds if s not in protocol.seeds]
    if bad_seeds:
        raise ValueError(f"seeds {bad_seeds} are not in protocol {protocol.name!r}: {list(protocol.seeds)}")
    out = Path(cfg.out).resolve()
    ref = _protocol_ref(protocol, cfg.protocol)
    cells = []
    for agent in agents:
        for task in tasks:
            for seed in seeds:
                cells.append(Cell(agent, task, seed, out / task / agent / f"seed{seed}",
                                  runner_argv(agent, task, (seed,), ref, out), protocol.steps_for(task)))
    return cells


def plan_jobs(cfg: SweepConfig, protocol: Protocol, cells: Sequence[Cell]) -> list[Job]:
    """The jobs that run ``cells`` (the incomplete ones): with ``cfg.population`` one job per
    (agent, task) holding its cells' seeds, else one job per cell. Jobs with more env steps to run
    (seeds x the task's budget) come first, the cells' order breaking ties: on a pool of workers the
    longest jobs then do not start last and run alone at the end (longest-first scheduling).

    Complete seeds must not be passed: the runner would leave them out, but it would also lock their
    directories for the whole job.
    """
    ref, out = _protocol_ref(protocol, cfg.protocol), Path(cfg.out).resolve()
    if not cfg.population:
        jobs = [Job((c,), ref, out) for c in cells]
    else:
        groups: dict[tuple[str, str], list[Cell]] = {}
        for c in cells:
            groups.setdefault((c.agent, c.task), []).append(c)
        jobs = [Job(tuple(sorted(group, key=lambda c: c.seed)), ref, out) for group in groups.values()]
    return sorted(jobs, key=lambda job: -sum(protocol.steps_for(c.task) for c in job.cells))  # stable


# --------------------------------------------------------------------------------------------------
# running one job (module-level so Ray and submitit can pickle it)


def job_command(python: str, runner_module: str, argv: Sequence[str]) -> list[str]:
    return [python, "-m", runner_module, *argv]


def run_job_process(cmd: Sequence[str], log_path: str, cwd: str | None = None) -> int:
    """Run one job's command to completion, single-threaded, output appended to ``log_path``.

    The child runs in its own process group; if this function is interrupted (Ctrl-C, a cancelled
    Ray task, a Slurm signal) the whole group is terminated, leaving partial runs that the next
    sweep resumes.
    """
    env = {**os.environ, **SINGLE_THREAD_ENV}
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        with _CHILDREN_LOCK:  # a Ctrl-C's _terminate_children either sees this child or stops its start
            if _STOPPING.is_set():
                return 130
            proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
            _CHILDREN.add(proc)
        try:
            return proc.wait()
        except BaseException:
            _terminate(proc)
            raise
        finally:
            _CHILDREN.discard(proc)


#: Job processes started by this process (the local launcher's threads block in ``wait``; on
#: Ctrl-C the main thread terminates them through this set).
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
#: Set by :func:`_terminate_children`: no job process starts after it (cleared when a launch starts).
_STOPPING = threading.Event()


def _terminate(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a job's process group: SIGINT (the runner stops at its next env-step boundary, like on
    Ctrl-C), a second SIGINT after ``grace`` seconds (the runner stops at once: a model-training step
    can outlast the grace), then SIGTERM, then SIGKILL. Its partial run records stay and are resumed by
    the next sweep."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGINT, 5.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _log_path(out: Path, job: Job) -> Path:
    return out / ".sweep" / "logs" / f"{job.log_name}.log"


#: A log line that states an error: the runner's ``error: ...`` or a traceback's last line.
_ERROR_LINE = re.compile(r"^(error:|[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b)")


def _last_attempt_lines(log_path: Path, tail_bytes: int) -> list[str]:
    """The non-empty lines of a job log's last attempt (from its last ``$ <command>`` line on: a
    log gathers every attempt of its job). Progress-bar redraws (``\\r``) count as their last state."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [line.rsplit("\r", 1)[-1].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    return lines[starts[-1]:] if starts else lines


def last_error_line(log_path: Path, tail_bytes: int = 65536, seed: int | None = None) -> str | None:
    """The last line of a job log's last attempt that states an error (``error: ...``,
    ``SomeError: ...``), else its last non-empty line; ``None`` when the log is missing or empty.

    ``seed``: in a population job's log, prefer the runner's line about that seed
    (``error: seed <s>: ...``).
    """
    lines = _last_attempt_lines(log_path, tail_bytes)
    if seed is not None:
        mine = [line for line in lines if line.startswith(f"error: seed {seed}: ")]
        if mine:
            return mine[-1]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    return (errors or lines or [None])[-1]


def failure_reason(rc: int, log_path: Path, seed: int | None = None) -> str:
    """``exit status <rc>: <the log's last error line (about seed)> (log <path>)``. In a population job a
    line that names another seed's run directory (the job stopped there, e.g. on its lock, before this
    seed ran) is given as that: ``not run: the job stopped on seed <k>: ...``, not as this seed's error."""
    line = last_error_line(log_path, seed=seed)
    if seed is not None and line and not line.startswith(f"error: seed {seed}: "):
        named = list(dict.fromkeys(re.findall(r"/seed(\d+)\b", line)))
        if named and str(seed) not in named:
            return f"exit status {rc}: not run, the job stopped on seed {named[0]}: {line} (log {log_path})"
    return f"exit status {rc}" + (f": {line}" if line else "") + f" (log {log_path})"


# --------------------------------------------------------------------------------------------------
# launchers


@dataclasses.dataclass
class SweepResult:
    """What a sweep did."""

    cells: list[Cell]
    already_complete: list[Cell]
    launched: list[Cell]
    """Cells started by this sweep (pending or partial when it began)."""
    failed: list[tuple[Cell, str]]
    """Cells whose job failed and left them incomplete, with the reason (exit status, the last error
    line of the job's log about the cell's seed, the log file)."""
    interrupted: bool = False
    busy: list[Cell] = dataclasses.field(default_factory=list)
    """Cells skipped because another sweep on this machine is running them (local launcher)."""
    jobs: list[Job] = dataclasses.field(default_factory=list)
    """The jobs this sweep ran (each ended, successfully or not)."""
    adopted: list[Cell] = dataclasses.field(default_factory=list)
    """Cells completed by a live runner process this sweep waited for (e.g. one a killed sweep left)."""
    damaged: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    """Cells marked complete whose records are not the protocol's whole schedule, with the problem and
    the command that redoes them; a sweep neither skips them as complete nor overwrites them."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and not self.busy and not self.damaged


class _ProgressView:
    """rich progress: one overall bar (env steps of every cell of the grid, so that rich's remaining-time
    column estimates the sweep's end; the description counts cells) and one bar per running job (its
    slowest seed's env steps, with its own estimate). The bars are transient: when the sweep ends they give
    way to the log lines and the summary, which then read in order."""

    def __init__(self, cells: Sequence[Cell], done: Sequence[Cell], console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True,
        )
        self.total_cells, self.cells_done = len(cells), len(done)
        self.done_steps = sum(c.steps for c in done)
        self.overall = self.progress.add_task("cells", total=sum(c.steps for c in cells),
                                              completed=self.done_steps)
        self.running: dict[Job, Any] = {}
        self.failed = 0
        self.lock = threading.Lock()

    def __enter__(self) -> "_ProgressView":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def started(self, job: Job, label: str | None = None) -> None:
        with self.lock:
            self.running[job] = self.progress.add_task(f"  {label or job.label}", total=job.steps)

    def _book(self, job: Job, cells: Sequence[Cell]) -> None:
        task = self.running.pop(job, None)
        if task is not None:
            self.progress.remove_task(task)
        self.cells_done += len(cells)
        self.done_steps += sum(c.steps for c in cells)

    def finished(self, job: Job, failed: Sequence[Cell]) -> None:
        with self.lock:
            self._book(job, job.cells)
            self.failed += len(failed)
            if failed:
                which = "" if len(job.cells) == 1 else f" (seed {','.join(str(c.seed) for c in failed)})"
                self.progress.console.log(f"[red]FAILED[/red]: {job.label}{which}")
            else:
                self.progress.console.log(f"done: {job.label}")
            self._describe()

    def adopted(self, job: Job, completed: Sequence[Cell], holder: str) -> None:
        """A live run of this sweep's cells (``holder``, e.g. left running by a killed sweep) ended; the
        ``completed`` cells need no launch."""
        with self.lock:
            self._book(job, completed)
            if completed:
                self.progress.console.log(f"done (adopted the run of {holder}): "
                                          f"{job.only(completed).label}")
            self._describe()

    def refresh(self) -> None:
        with self.lock:
            running = 0
            for job, task in self.running.items():
                self.progress.update(task, completed=job.env_steps_done())
                running += sum(c.env_steps_done() for c in job.cells)
            self.progress.update(self.overall, completed=self.done_steps + running)
            self._describe()

    def _describe(self) -> None:
        self.progress.update(
            self.overall,
            description=f"cells {self.cells_done}/{self.total_cells} ({len(self.running)} "
            f"job{'' if len(self.running) == 1 else 's'} running"
            + (f", [red]{self.failed} failed[/red])" if self.failed else ")"),
        )


def _job_ended(job: Job, rc: int, out: Path, view: _ProgressView, result: SweepResult,
               reason: str | None = None) -> None:
    """Book a job that ended with exit status ``rc``: its cells were launched; with a non-zero status
    the cells it left incomplete failed (all of them if it completed every one: the failure is shown
    all the same), each with ``reason`` or the job log's last line about its seed."""
    result.jobs.append(job)
    result.launched.extend(job.cells)
    failed: list[Cell] = []
    if rc != 0:
        failed = [c for c in job.cells if not RunPaths(c.run_dir).summary.exists()] or list(job.cells)
        for c in failed:
            seed = c.seed if len(job.cells) > 1 else None
            result.failed.append((c, reason or failure_reason(rc, _log_path(out, job), seed=seed)))
    view.finished(job, failed)


@dataclasses.dataclass
class _Outcome:
    """What one local job came to: the cells it ran (``rc``: their exit status, ``None``: not run), the cells
    another sweep is running, and the cells a live run of this grid (``holder``) completed meanwhile."""

    job: Job
    busy: list[Cell]
    rc: int | None = None
    adopted: list[Cell] = dataclasses.field(default_factory=list)
    holder: str = ""


def _adopt_live_runs(job: Job, view: _ProgressView, stop: threading.Event, poll: float) -> tuple[Job | None, _Outcome]:
    """Wait for the runner processes that still hold some of ``job``'s run directories (a killed sweep's
    orphans keep training: launching the cells again would only fail on their locks), showing their
    progress; then the part of ``job`` that is still incomplete (``None``: nothing left, or stopped)."""
    live = {c: h for c in job.cells if (h := c.live_holder())}
    outcome = _Outcome(job, [])
    if not live:
        return job, outcome
    holder = ", ".join(dict.fromkeys(live.values()))
    waiting = job.only(list(live))
    view.started(waiting, f"{waiting.label} (adopted: a live run of {holder})")
    while not stop.is_set() and any(c.live_holder() for c in live):
        view.refresh()
        time.sleep(poll)
    outcome.adopted = [c for c in live if RunPaths(c.run_dir).summary.exists()]
    outcome.holder = holder
    view.adopted(waiting, outcome.adopted, holder)
    rest = [c for c in job.cells if c not in outcome.adopted]
    if stop.is_set() or not rest:
        return None, outcome
    return job.only(rest), outcome


ADOPT_POLL_SECONDS = 1.0
"""How often the local launcher checks whether an adopted live run has ended."""


def _launch_local(jobs: list[Job], cfg: SweepConfig, out: Path, view: _ProgressView,
                  result: SweepResult) -> None:
    workers = cfg.local.workers or os.cpu_count() or 1
    python = sys.executable
    stop = threading.Event()
    _STOPPING.clear()

    def run(job: Job) -> _Outcome:
        """Lock the job's cells, wait for live runs of them, run what is left."""
        if stop.is_set():
            return _Outcome(job, [])
        # A lock per cell (released by the OS when its holder dies) keeps a second sweep on this
        # machine, e.g. a re-run started while the first is still going, off running cells; a job
        # runs the cells it can lock.
        with contextlib.ExitStack() as locks:
            mine, busy = [], []
            for cell in job.cells:
                lock_path = out / ".sweep" / "locks" / f"{cell.task}__{cell.agent}__seed{cell.seed}.lock"
                lock_path.parent.mkdir(parents=True, exist_ok=True)
                lock = locks.enter_context(open(lock_path, "w"))
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    mine.append(cell)
                except BlockingIOError:
                    busy.append(cell)
            if not mine:
                return _Outcome(job, busy)
            rest, outcome = _adopt_live_runs(job.only(mine), view, stop, ADOPT_POLL_SECONDS)
            outcome.busy = busy
            if rest is not None:
                view.started(rest)
                outcome.job = rest
                outcome.rc = run_job_process(job_command(python, cfg.runner_module, rest.argv),
                                             str(_log_path(out, rest)))
        return outcome

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    futures = [pool.submit(run, j) for j in jobs]
    try:
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=0.5,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                outcome = fut.result()
                for cell in outcome.busy:
                    result.busy.append(cell)
                    view.progress.console.log(f"skipped (running in another sweep): {cell.label}")
                result.adopted.extend(outcome.adopted)
                if outcome.rc is not None:
                    _job_ended(outcome.job, outcome.rc, out, view, result)
            view.refresh()
    except KeyboardInterrupt:
        # Threads block in proc.wait(); SIGINT reached the children only if they share our process
        # group, which they do not (start_new_session). Terminate them explicitly.
        stop.set()
        for fut in futures:
            fut.cancel()
        _terminate_children()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _terminate_children() -> None:
    with _CHILDREN_LOCK:
        _STOPPING.set()
        children = list(_CHILDREN)
    threads = [threading.Thread(target=_terminate, args=(p,)) for p in children]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _launch_ray(jobs: list[Job], cfg: SweepConfig, out: Path, view: _ProgressView,
                result: SweepResult) -> None:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise RuntimeError('launcher=ray needs Ray: pip install "vagram-bench[ray]"') from exc
    if not ray.is_initialized():
        ray.init(address=cfg.ray.address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=cfg.ray.num_cpus, max_retries=0)(run_job_process)
    python = cfg.ray.python or sys.executable
    refs = {}
    for job in jobs:
        ref = remote.remote(job_command(python, cfg.runner_module, job.argv), str(_log_path(out, job)),
                            os.getcwd())
        refs[ref] = job
        view.started(job)
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in done:
                job = refs.pop(ref)
                try:
                    rc, reason = ray.get(ref), None
                except Exception as exc:  # a lost node or worker
                    rc, reason = 1, f"ray task failed: {exc!r}"
                _job_ended(job, rc, out, view, result, reason)
            view.refresh()
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref)  # raises KeyboardInterrupt in the task: it kills its runner process
        raise


def submit_slurm(jobs: list[Job], cfg: SweepConfig, out: Path) -> list[Any]:
    """Submit ``jobs`` as one Slurm job array through submitit; the submitit jobs, in order. Each
    array task runs :func:`run_job_process` on its job's command."""
    try:
        import submitit
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise RuntimeError('launcher=slurm needs submitit: pip install "vagram-bench[slurm]"') from exc
    s = cfg.slurm
    folder = Path(s.folder) if s.folder else out / ".sweep" / "submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=s.cluster)
    params: dict[str, Any] = {
        "timeout_min": s.time_min,
        "cpus_per_task": s.cpus_per_task,
        "mem_gb": s.mem_gb,
        "name": f"vagram-{Path(cfg.out).name}",
        "slurm_array_parallelism": s.array_parallelism,
        "slurm_setup": [f"export {k}={v}" for k, v in SINGLE_THREAD_ENV.items()],
    }
    if s.partition:
        params["slurm_partition"] = s.partition
    if s.account:
        params["slurm_account"] = s.account
    if s.qos:
        params["slurm_qos"] = s.qos
    executor.update_parameters(**params)
    python = sys.executable
    with executor.batch():
        submitted = [executor.submit(run_job_process, job_command(python, cfg.runner_module, j.argv),
                                     str(_log_path(out, j)), os.getcwd()) for j in jobs]
    return submitted


def _launch_slurm(jobs: list[Job], cfg: SweepConfig, out: Path, view: _ProgressView,
                  result: SweepResult) -> None:
    pending = dict(zip(submit_slurm(jobs, cfg, out), jobs))
    for job in jobs:
        view.started(job)
    try:
        while pending:
            for submitted in [s for s in pending if s.done()]:
                job = pending.pop(submitted)
                try:
                    rc, reason = submitted.result(), None
                except Exception as exc:  # submitit.core.utils.FailedJobError, timeouts
                    rc, reason = 1, f"slurm job {submitted.job_id} failed: {str(exc).splitlines()[0]}"
                _job_ended(job, rc, out, view, result, reason)
            view.refresh()
            if pending:
                time.sleep(0.5 if cfg.slurm.cluster != "slurm" else 10.0)
    except KeyboardInterrupt:
        for submitted in pending:
            submitted.cancel(check=False)
        raise


LAUNCHERS: dict[str, Callable[..., None]] = {
    "local": _launch_local,
    "ray": _launch_ray,
    "slurm": _launch_slurm,
}


# --------------------------------------------------------------------------------------------------
# the sweep


def run_sweep(cfg: SweepConfig, *, console: Console | None = None) -> SweepResult:
    """Run every incomplete cell of ``cfg.protocol`` with ``cfg.launcher``, grouped into jobs
    (:func:`plan_jobs`).

    Args:
        cfg: the sweep configuration.
        console: where progress and messages go (default: stderr; lines are not hard-wrapped, so a
            piped log keeps each message on one line).

    Returns:
        A :class:`SweepResult` (``interrupted=True`` after Ctrl-C; re-run to resume).

    Raises:
        ProtocolError: the protocol cannot be loaded.
        ValueError: unknown agents/tasks/seeds, agents that cannot run a task, or agent settings of the
            protocol's ``[[agent_overrides]]`` that its agents refuse.
        RuntimeError: a cell directory holds another protocol's run.
    """
    console = console or Console(stderr=True, soft_wrap=True, log_path=False)
    protocol = load_protocol(cfg.protocol)
    cells = plan_cells(cfg, protocol)
    check_agents(sorted({c.agent for c in cells}), sorted({c.task for c in cells}), protocol)
    # A bad [[agent_overrides]] entry would fail every job it touches at start: refuse the sweep instead.
    from vagram_bench.runner.config import check_protocol_agent_overrides

    if problems := check_protocol_agent_overrides(protocol):
        raise ValueError(f"protocol {protocol.name!r}: " + "\n  ".join(problems))
    status = {c: c.status(protocol) for c in cells}
    complete = [c for c in cells if status[c] == "complete"]
    todo = [c for c in cells if status[c] in ("partial", "pending")]
    jobs = plan_jobs(cfg, protocol, todo)
    result = SweepResult(cells=cells, already_complete=complete, launched=[], failed=[])
    ref = _protocol_ref(protocol, cfg.protocol)
    result.damaged = [(c, f"{c.problem(protocol)}; redo it: {redo_command(c.run_dir, ref)}")
                      for c in cells if status[c] == "damaged"]
    out = Path(cfg.out).resolve()
    n_partial = sum(1 for c in todo if status[c] == "partial")
    console.print(
        f"protocol [bold]{protocol.name}[/bold] v{protocol.version} ({protocol.short_hash}): "
        f"{len(cells)} cells, {len(complete)} complete, {n_partial} partial (resumed), "
        f"{len(todo) - n_partial} pending" + (f", {len(result.damaged)} damaged" if result.damaged else "")
        + f"; {len(jobs)} job{'' if len(jobs) == 1 else 's'} "
        f"({'one per agent and task' if cfg.population else 'one per seed'}: "
        f"population={str(cfg.population).lower()}); launcher {cfg.launcher}; out {out}"
    )
    for cell, reason in result.damaged:  # the leaderboard leaves these runs out: say so before launching
        console.print(f"[red]damaged[/red] {cell.label}: {escape(reason)}")
    if cfg.dry_run:
        for c in cells:
            console.print(f"  {status[c]:>8}  {c.label}  ({c.run_dir})")
        if jobs:
            console.print("jobs (one runner process each):")
        for job in jobs:
            console.print(f"  {escape(shlex.join(job_command('python', cfg.runner_module, job.argv)))}")
        return result
    if not todo:
        return result
    launcher = LAUNCHERS[cfg.launcher]
    started = time.monotonic()
    with _ProgressView(cells, complete, console) as view:
        try:
            launcher(jobs, cfg, out, view, result)
        except KeyboardInterrupt:
            result.interrupted = True
    _report(result, cells, protocol, console, time.monotonic() - started)
    return result


def _report(result: SweepResult, cells: Sequence[Cell], protocol: Protocol, console: Console,
            seconds: float) -> None:
    """The lines after the progress bars: interruption, failures, busy cells, the grid's state."""
    finished = sum(1 for c in cells if c.status(protocol) == "complete")
    if result.interrupted:
        console.print(f"[yellow]interrupted[/yellow]: {finished}/{len(cells)} cells complete; "
                      "re-run the same command to finish the rest (partial runs resume)")
    for cell, reason in result.failed:
        console.print(f"[red]failed[/red] {cell.label}: {escape(reason)}")
    if result.busy:
        console.print(f"[yellow]{len(result.busy)} cell(s) are being run by another sweep[/yellow]: "
                      + ", ".join(c.label for c in result.busy))
    if not result.interrupted:
        console.print(f"{finished}/{len(cells)} cells complete"
                      + (f", {len(result.failed)} failed" if result.failed else "")
                      + (f", {len(result.damaged)} damaged" if result.damaged else "")
                      + f" ({seconds / 60:.1f} min)")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point. Exit status 0 = grid complete, 1 = failed cells, 2 = bad arguments,
    130 = interrupted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    console = Console(stderr=True, soft_wrap=True, log_path=False)
    try:
        cfg = parse_config(SweepConfig, argv, prog="python -m vagram_bench.sweep", registry=help_registry())
    except UsageError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2

    def _sigterm(signum: int, frame: Any) -> None:  # a scheduler stopping the sweep = Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _sigterm)
    try:
        result = run_sweep(cfg, console=console)
    except (ProtocolError, ValueError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    if result.interrupted:
        return 130
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
