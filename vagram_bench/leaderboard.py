"""Leaderboard tables, learning curves and an HTML report from the run records of one protocol.

.. code-block:: bash

    python -m vagram_bench.leaderboard runs protocol=quick out=board
    python -m vagram_bench.leaderboard runs --protocol quick --out board --agents sac mbpo_vagram

It reads every run record under ``runs`` (``<env>/<agent>/seed<k>/`` with ``config.json``,
``eval.csv`` and, for a finished run, ``summary.json``) and writes to ``out``:

* ``leaderboard.md`` — paste-ready Markdown: the final-return table and the area-under-the-curve
  table (rows agents, columns tasks), each with an aggregate column (normalised score) and the mean
  rank, then the list of excluded runs;
* ``leaderboard.csv`` — the same numbers in long form (one row per table × agent × column);
* ``curves_<task>.png`` — learning curves per task (IQM or mean across seeds with a 95% CI band);
* ``report.html`` — a self-contained page with the tables and the plots (PNG embedded as base64).

Statistics (see ``docs/protocols.md``):

* per run, the **final return** is the mean of the last ``final_evals`` evaluations (each the mean
  over ``eval_episodes`` episodes) and the **AUC** is the area under the evaluation curve divided by
  the span of the eval steps (trapezoid rule), i.e. the average return over training;
* per cell (agent × task), seeds are aggregated with the protocol's metric: the **IQM**
  (``scipy.stats.trim_mean(x, 0.25)``, rliable's definition) or the mean, with a 95% percentile
  bootstrap CI over seeds from ``scipy.stats.bootstrap`` (the method rliable uses by default; BCa
  is unstable with the 3–10 seeds a benchmark has);
* the **aggregate** column normalises each run's score with the protocol's reference returns,
  ``(x - random) / (reference - random)``, and aggregates all (task, seed) scores of an agent with
  the metric. Its CI is a *stratified* bootstrap: ``scipy.stats.bootstrap`` given one sample per
  task resamples seeds independently within each task (``paired=False``), as rliable does;
* the **mean rank** averages, over tasks, the agent's rank (1 = best) by the cell's point estimate.

Statistics come from scipy rather than rliable: rliable 1.2.0 pins ``arch<8``, and arch 7.2 does
not import under pandas 3 (``shared/spec/ecosystem.md`` §1), which would put a fragile, heavy
dependency into the core install for two function calls scipy provides.

Honesty rules: a cell with fewer completed seeds than the protocol asks for is marked
``⚠ incomplete`` and left out of the aggregate and the ranks (its partial value is shown only in
parentheses); a row with an incomplete cell has no aggregate. Runs recorded under another version or
content hash of the protocol are excluded with a warning, never mixed in.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.stats
import tyro

from vagram_bench.cli import kv_to_tyro
from vagram_bench.protocol import Protocol, ProtocolError, load_protocol
from vagram_bench.records import RunPaths, find_run_dirs, read_evals, read_json

__all__ = [
    "RunRecord",
    "CellStats",
    "Leaderboard",
    "LeaderboardConfig",
    "scan_runs",
    "build_leaderboard",
    "aggregate",
    "bootstrap_ci",
    "run_final_return",
    "run_auc",
    "write_leaderboard",
    "random_policy_return",
    "main",
]

# --------------------------------------------------------------------------------------------------
# run records


@dataclasses.dataclass
class RunRecord:
    """One run directory as the runner wrote it."""

    path: Path
    agent: str
    env: str
    seed: int
    protocol: Mapping[str, Any] | None
    """``config.json["protocol"]``: ``{"name", "version", "hash"}`` or ``None``."""
    eval_steps: np.ndarray
    """``eval.csv`` column ``env_step`` (int)."""
    eval_returns: np.ndarray
    """``eval.csv`` column ``return_mean``."""
    summary: Mapping[str, Any] | None
    """``summary.json`` (present only for a completed run)."""

    @property
    def complete(self) -> bool:
        return self.summary is not None


def load_run(run_dir: Path) -> RunRecord:
    """Read one run directory (``config.json`` required).

    Raises:
        ValueError: ``config.json`` or ``eval.csv`` cannot be parsed (the message names the file).
        KeyError: ``config.json`` lacks ``agent``, ``env`` or ``seed``.
    """
    paths = RunPaths(run_dir)
    config = read_json(paths.config)
    evals = read_evals(paths.eval_csv)
    steps = np.asarray([e.env_step for e in evals], dtype=np.int64)
    returns = np.asarray([e.return_mean for e in evals], dtype=np.float64)
    summary = read_json(paths.summary) if paths.summary.exists() else None
    return RunRecord(
        path=run_dir,
        agent=str(config["agent"]),
        env=str(config["env"]),
        seed=int(config["seed"]),
        protocol=config.get("protocol"),
        eval_steps=steps,
        eval_returns=returns,
        summary=summary,
    )


def scan_runs(root: str | Path) -> list[RunRecord]:
    """Every run record under ``root`` (any directory holding a ``config.json``), sorted by path.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory {str(root)!r} does not exist")
    runs = []
    for run_dir in find_run_dirs(root):
        try:
            runs.append(load_run(run_dir))
        except (KeyError, ValueError) as exc:
            warnings.warn(f"skipping unreadable run record {run_dir}: {exc}", stacklevel=2)
    return runs


# --------------------------------------------------------------------------------------------------
# per-run scores


def run_final_return(run: RunRecord, final_evals: int) -> float:
    """Mean of the last ``final_evals`` evaluation returns of a run."""
    return float(np.mean(run.eval_returns[-final_evals:]))


def run_auc(run: RunRecord) -> float:
    """Area under the evaluation curve divided by the span of its eval steps (the average return
    over training, trapezoid rule); the single evaluation's return if there is only one."""
    if len(run.eval_steps) == 1:
        return float(run.eval_returns[0])
    span = float(run.eval_steps[-1] - run.eval_steps[0])
    return float(np.trapezoid(run.eval_returns, run.eval_steps) / span)


# --------------------------------------------------------------------------------------------------
# statistics


def _metric_fn(metric: str) -> Callable[..., Any]:
    if metric == "iqm":
        return lambda x, axis=-1: scipy.stats.trim_mean(x, 0.25, axis=axis)
    if metric == "mean":
        return lambda x, axis=-1: np.mean(x, axis=axis)
    raise ValueError(f"unknown metric {metric!r}; valid: ['iqm', 'mean']")


def aggregate(values: Sequence[float] | np.ndarray, metric: str) -> float:
    """The point estimate across seeds: IQM (``trim_mean(x, 0.25)``) or mean."""
    return float(_metric_fn(metric)(np.asarray(values, dtype=np.float64), axis=-1))


def bootstrap_ci(
    samples: Sequence[np.ndarray],
    metric: str,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence_level: float = 0.95,
    axis: int = -1,
) -> tuple[Any, Any]:
    """95% percentile bootstrap CI of the metric over the pooled samples.

    With one sample this is the ordinary bootstrap over seeds. With one sample per task it is the
    stratified bootstrap: scipy resamples every sample independently (``paired=False``) and the
    statistic pools the resamples, so each task keeps its number of seeds.

    Returns ``(low, high)`` (arrays when the samples have more than one dimension), NaN when any
    sample has fewer than two values (no spread to resample).
    """
    fn = _metric_fn(metric)
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(s.shape[axis] < 2 for s in samples):
        shape = np.delete(np.asarray(samples[0].shape), axis % samples[0].ndim)
        nan = np.full(tuple(shape), np.nan) if shape.size else math.nan
        return nan, nan

    def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        return fn(np.concatenate(xs, axis=axis), axis=axis)

    with warnings.catch_warnings():
        # Identical values (e.g. every seed failed at the same return) make the bootstrap
        # distribution degenerate; the percentile interval is then [x, x], which is correct.
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        res = scipy.stats.bootstrap(
            tuple(samples),
            statistic,
            n_resamples=n_resamples,
            vectorized=True,
            paired=False,
            axis=axis,
            confidence_level=confidence_level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = res.confidence_interval
    if np.ndim(low) == 0:
        return float(low), float(high)
    return np.asarray(low), np.asarray(high)


@dataclasses.dataclass
class CellStats:
    """One table cell: an agent on a task (or the aggregate column)."""

    point: float
    ci_low: float
    ci_high: float
    n: int
    expected: int
    values: np.ndarray

    @property
    def complete(self) -> bool:
        return self.n == self.expected


def _cell(values: list[float], expected: int, metric: str, n_resamples: int, seed: int) -> CellStats:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return CellStats(math.nan, math.nan, math.nan, 0, expected, arr)
    low, high = bootstrap_ci([arr], metric, n_resamples=n_resamples, seed=seed)
    return CellStats(aggregate(arr, metric), low, high, int(arr.size), expected, arr)


# --------------------------------------------------------------------------------------------------
# the board


@dataclasses.dataclass
class Leaderboard:
    """All numbers of one protocol's leaderboard (see :func:`build_leaderboard`)."""

    protocol: Protocol
    agents: list[str]
    final: dict[tuple[str, str], CellStats]
    """(agent, task) -> final-return cell."""
    auc: dict[tuple[str, str], CellStats]
    """(agent, task) -> AUC cell."""
    final_aggregate: dict[str, CellStats | None]
    """agent -> normalised final-return aggregate (``None``: row incomplete or no references)."""
    auc_aggregate: dict[str, CellStats | None]
    final_rank: dict[str, float | None]
    """agent -> mean rank over tasks (``None``: row incomplete)."""
    auc_rank: dict[str, float | None]
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
    """(agent, task) -> (eval steps, returns of the completed seeds, shape ``(n, T)``)."""
    in_progress: dict[tuple[str, str], int]
    """(agent, task) -> number of started but unfinished runs."""
    wall_hours: dict[tuple[str, str], float]
    """(agent, task) -> median wall-clock hours of a completed run (``summary.json``)."""
    excluded: list[str]
    """One line per excluded run or group of runs (also emitted as warnings)."""
    n_resamples: int
    seed: int

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.final.values())

    def incomplete_cells(self) -> list[tuple[str, str, int, int]]:
        """``(agent, task, n_complete, n_expected)`` for every incomplete cell."""
        return [(a, t, c.n, c.expected) for (a, t), c in self.final.items() if not c.complete]


def _mean_ranks(
    cells: Mapping[tuple[str, str], CellStats], agents: list[str], tasks: Sequence[str]
) -> dict[str, float | None]:
    """Mean over tasks of each agent's rank (1 = best, ties share the average rank).

    Ranks compare agents, so they are only defined on a complete grid: one incomplete competitor
    would otherwise promote everyone else on that task. Any incomplete cell => no ranks (None).
    """
    if not agents or not all(cells[(a, t)].complete for a in agents for t in tasks):
        return {a: None for a in agents}
    ranks = np.stack([
        scipy.stats.rankdata([-cells[(a, t)].point for a in agents], method="average")
        for t in tasks
    ])  # (tasks, agents)
    return {a: float(r) for a, r in zip(agents, ranks.mean(axis=0))}


def _normalised_aggregate(
    per_task: Mapping[str, CellStats], protocol: Protocol, n_resamples: int, seed: int
) -> CellStats | None:
    tasks = protocol.tasks
    if not all(per_task[t].complete for t in tasks):
        return None
    if not all(t in protocol.reference_scores for t in tasks):
        return None
    samples = [protocol.reference_scores[t].normalise(per_task[t].values) for t in tasks]
    pooled = np.concatenate(samples)
    low, high = bootstrap_ci(samples, protocol.metric, n_resamples=n_resamples, seed=seed)
    return CellStats(aggregate(pooled, protocol.metric), low, high, int(pooled.size),
                     int(pooled.size), pooled)


def build_leaderboard(
    runs: Iterable[RunRecord],
    protocol: Protocol | str,
    *,
    agents: Sequence[str] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Leaderboard:
    """Aggregate run records into the numbers of a leaderboard.

    Args:
        runs: run records (:func:`scan_runs`).
        protocol: the protocol (or its name/path) the table is for. Only runs recorded under exactly
            this name, version and content hash are used.
        agents: rows, in order. Default: the protocol's agents, then any other agent with runs.
        n_resamples: bootstrap resamples per CI.
        seed: seed of the bootstrap generator (the tables are deterministic given the records).
    """
    protocol = load_protocol(protocol, check_ids=False) if not isinstance(protocol, Protocol) else protocol
    excluded: list[str] = []
    other_version: list[RunRecord] = []
    kept: dict[tuple[str, str, int], RunRecord] = {}
    for run in runs:
        rec = run.protocol or {}
        if rec.get("name") != protocol.name:
            continue  # another protocol's (or an ad-hoc) run: not part of this table
        if not protocol.matches_record(rec):
            other_version.append(run)
            continue
        if run.env not in protocol.tasks or run.seed not in protocol.seeds:
            excluded.append(f"{run.path}: task {run.env!r} / seed {run.seed} is not in the protocol's grid")
            continue
        key = (run.agent, run.env, run.seed)
        if key in kept:
            excluded.append(f"{run.path}: duplicate of {kept[key].path} (agent {run.agent}, "
                            f"task {run.env}, seed {run.seed}); the first is used")
            continue
        if run.complete:
            expected = np.asarray(protocol.eval_steps_for(run.env))
            if run.eval_steps.shape != expected.shape or not np.array_equal(run.eval_steps, expected):
                excluded.append(
                    f"{run.path}: marked complete but its eval steps {run.eval_steps.tolist()[:4]}... "
                    f"do not follow the protocol schedule (every {protocol.eval_every} to "
                    f"{protocol.steps_for(run.env)})"
                )
                continue
        kept[key] = run
    if other_version:
        versions = sorted({(r.protocol.get("version"), str(r.protocol.get("hash"))[:12])
                           for r in other_version if r.protocol})
        excluded.insert(0,
            f"{len(other_version)} run(s) recorded under protocol {protocol.name!r} with another "
            f"version/hash {versions} (this table: version {protocol.version}, hash "
            f"{protocol.short_hash}) were excluded, e.g. {other_version[0].path}"
        )
    for line in excluded:
        warnings.warn(line, stacklevel=2)

    if agents is None:
        found = sorted({a for a, _, _ in kept})
        base = list(protocol.agents or ())
        agents = base + [a for a in found if a not in base]
    agents = list(agents)

    final: dict[tuple[str, str], CellStats] = {}
    auc: dict[tuple[str, str], CellStats] = {}
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    in_progress: dict[tuple[str, str], int] = {}
    wall_hours: dict[tuple[str, str], float] = {}
    expected_n = len(protocol.seeds)
    for a in agents:
        for t in protocol.tasks:
            done = [kept[(a, t, s)] for s in protocol.seeds if (a, t, s) in kept and kept[(a, t, s)].complete]
            in_progress[(a, t)] = sum(
                1 for s in protocol.seeds if (a, t, s) in kept and not kept[(a, t, s)].complete
            )
            final[(a, t)] = _cell([run_final_return(r, protocol.final_evals) for r in done],
                                  expected_n, protocol.metric, n_resamples, seed)
            auc[(a, t)] = _cell([run_auc(r) for r in done], expected_n, protocol.metric,
                                n_resamples, seed)
            if done:
                curves[(a, t)] = (done[0].eval_steps, np.stack([r.eval_returns for r in done]))
                walls = [float(r.summary["wall_seconds"]) for r in done
                         if isinstance(r.summary.get("wall_seconds"), (int, float))]
                if walls:
                    wall_hours[(a, t)] = float(np.median(walls)) / 3600.0
    final_agg = {a: _normalised_aggregate({t: final[(a, t)] for t in protocol.tasks}, protocol,
                                          n_resamples, seed) for a in agents}
    auc_agg = {a: _normalised_aggregate({t: auc[(a, t)] for t in protocol.tasks}, protocol,
                                        n_resamples, seed) for a in agents}
    return Leaderboard(
        protocol=protocol,
        agents=agents,
        final=final,
        auc=auc,
        final_aggregate=final_agg,
        auc_aggregate=auc_agg,
        final_rank=_mean_ranks(final, agents, protocol.tasks),
        auc_rank=_mean_ranks(auc, agents, protocol.tasks),
        curves=curves,
        in_progress=in_progress,
        wall_hours=wall_hours,
        excluded=excluded,
        n_resamples=n_resamples,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------------
# rendering


def _fmt(x: float, digits: int) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _cell_text(c: CellStats, digits: int = 1, in_progress: int = 0) -> str:
    if c.n == 0:
        return f"⚠ missing (0/{c.expected})" + (f", {in_progress} running" if in_progress else "")
    ci = "" if not math.isfinite(c.ci_low) else f" [{_fmt(c.ci_low, digits)}, {_fmt(c.ci_high, digits)}]"
    if not c.complete:
        running = f", {in_progress} running" if in_progress else ""
        return f"⚠ incomplete {c.n}/{c.expected}{running} (partial: {_fmt(c.point, digits)})"
    return f"{_fmt(c.point, digits)}{ci} (n={c.n})"


def _table_rows(board: Leaderboard, which: str) -> tuple[list[str], list[list[str]]]:
    p = board.protocol
    cells = board.final if which == "final" else board.auc
    agg = board.final_aggregate if which == "final" else board.auc_aggregate
    ranks = board.final_rank if which == "final" else board.auc_rank
    label = "IQM" if p.metric == "iqm" else "mean"
    header = ["Agent", *p.tasks, f"Normalised {label} (all tasks)", "Mean rank"]
    rows = []
    has_refs = all(t in p.reference_scores for t in p.tasks)
    for a in board.agents:
        row = [a]
        for t in p.tasks:
            row.append(_cell_text(cells[(a, t)], 1, board.in_progress.get((a, t), 0)))
        g = agg[a]
        if g is not None:
            row.append(f"{_fmt(g.point, 3)} [{_fmt(g.ci_low, 3)}, {_fmt(g.ci_high, 3)}]")
        elif not has_refs:
            row.append("n/a (no reference scores)")
        else:
            row.append("⚠ incomplete")
        r = ranks[a]
        row.append(f"{r:.2f}" if r is not None else "⚠ incomplete grid")
        rows.append(row)
    return header, rows


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(board: Leaderboard) -> str:
    """The paste-ready Markdown document (both tables, legend and exclusions)."""
    p = board.protocol
    label = "IQM" if p.metric == "iqm" else "mean"
    lines = [
        f"## Leaderboard: protocol `{p.name}` v{p.version} (hash `{p.short_hash}`)",
        "",
        f"{p.description}",
        "",
    ]
    for which, title in (("final", "Final return"), ("auc", "Area under the curve (average return over training)")):
        header, rows = _table_rows(board, which)
        lines += [f"### {title}", ""]
        lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for row in rows:
            lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
        lines.append("")
    lines += ["### Run time (median wall-clock per completed run)", ""]
    lines.append("| Agent | " + " | ".join(p.tasks) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * len(p.tasks)) + "|")
    for a in board.agents:
        cells = [_duration(board.wall_hours[(a, t)] * 3600) if (a, t) in board.wall_hours else "—"
                 for t in p.tasks]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines.append("")
    final_desc = ("the last evaluation" if p.final_evals == 1
                  else f"the mean of the last {p.final_evals} evaluations")
    lines += [
        f"Cells: {label} across seeds [95% percentile bootstrap CI, {board.n_resamples} resamples] "
        f"(n = completed seeds). Final return per run = {final_desc}, each the mean of "
        f"{p.eval_episodes} deterministic episodes (reset seeds {p.eval_seed}..{p.eval_seed + p.eval_episodes - 1}). "
        f"Normalised score = (return − random) / (reference − random), aggregated over all tasks and "
        f"seeds with a stratified bootstrap CI; mean rank over tasks, 1 = best. "
        f"⚠ marks cells with fewer than {len(p.seeds)} completed seeds; a row with one has no "
        f"aggregate, and ranks need the whole grid complete.",
        "",
    ]
    if p.reference_scores:
        refs = ", ".join(f"{t}: {r.random:g} / {r.reference:g}" for t, r in p.reference_scores.items())
        lines += [f"Reference points (random / reference): {refs}. Source: {p.reference_source}", ""]
    if board.excluded:
        lines += ["Excluded runs:", ""] + [f"- {_md_escape(e)}" for e in board.excluded] + [""]
    return "\n".join(lines)


def write_csv(board: Leaderboard, path: Path) -> None:
    """Long-form CSV: one row per (table, agent, column)."""
    p = board.protocol
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["protocol", "version", "hash", "table", "agent", "task", "statistic",
                    "point", "ci_low", "ci_high", "n_seeds", "n_expected", "complete"])
        for which in ("final", "auc"):
            cells = board.final if which == "final" else board.auc
            agg = board.final_aggregate if which == "final" else board.auc_aggregate
            ranks = board.final_rank if which == "final" else board.auc_rank
            for a in board.agents:
                for t in p.tasks:
                    c = cells[(a, t)]
                    w.writerow([p.name, p.version, p.content_hash, which, a, t, p.metric,
                                repr(c.point), repr(c.ci_low), repr(c.ci_high), c.n, c.expected,
                                c.complete])
                g = agg[a]
                if g is not None:
                    w.writerow([p.name, p.version, p.content_hash, which, a, "aggregate",
                                f"normalised_{p.metric}", repr(g.point), repr(g.ci_low),
                                repr(g.ci_high), g.n, g.expected, True])
                else:
                    w.writerow([p.name, p.version, p.content_hash, which, a, "aggregate",
                                f"normalised_{p.metric}", "nan", "nan", "nan", "", "", False])
                r = ranks[a]
                w.writerow([p.name, p.version, p.content_hash, which, a, "mean_rank", "rank",
                            repr(r) if r is not None else "nan", "", "", "", "", r is not None])
        for a in board.agents:
            for t in p.tasks:
                c = board.final[(a, t)]
                hours = board.wall_hours.get((a, t), math.nan)
                w.writerow([p.name, p.version, p.content_hash, "wall_hours", a, t, "median",
                            repr(hours), "", "", c.n, c.expected, c.complete])


def plot_curves(board: Leaderboard, out: Path) -> dict[str, Path]:
    """One PNG per task: the metric across completed seeds per eval step, with a 95% CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = board.protocol
    label = "IQM" if p.metric == "iqm" else "mean"
    paths = {}
    for task in p.tasks:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for i, a in enumerate(board.agents):
            if (a, task) not in board.curves:
                continue
            steps, values = board.curves[(a, task)]
            n = values.shape[0]
            point = _metric_fn(p.metric)(values, axis=0)
            color = f"C{i % 10}"
            complete = board.final[(a, task)].complete
            ax.plot(steps, point, color=color, linestyle="-" if complete else "--",
                    label=f"{a} (n={n}{'' if complete else ', incomplete'})")
            if n >= 2:
                low, high = bootstrap_ci([values], p.metric, n_resamples=min(board.n_resamples, 2000),
                                         seed=board.seed, axis=0)
                ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_title(f"{task} — protocol {p.name} v{p.version}")
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"eval return ({label}, 95% CI)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no completed runs", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        path = out / f"curves_{task}.png"
        fig.savefig(path)
        plt.close(fig)
        paths[task] = path
    return paths


def to_html(board: Leaderboard, pngs: Mapping[str, Path]) -> str:
    """A self-contained HTML report: both tables and every plot inline (base64 PNG)."""
    p = board.protocol
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>vagram-bench leaderboard: {html.escape(p.name)} v{p.version}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fff}"
        "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:4px 8px;"
        "text-align:right}th:first-child,td:first-child{text-align:left}th{background:#eef}"
        "td.warn{background:#fff3cd}img{max-width:100%;margin:0.5em 0}</style></head><body>",
        f"<h1>Protocol <code>{html.escape(p.name)}</code> v{p.version} "
        f"<small>(hash {p.short_hash})</small></h1>",
        f"<p>{html.escape(p.description)}</p>",
    ]
    for which, title in (("final", "Final return"), ("auc", "Area under the curve")):
        header, rows = _table_rows(board, which)
        parts.append(f"<h2>{title}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in header]
        parts.append("</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(
                f"<td class='warn'>{html.escape(c)}</td>" if "⚠" in c else f"<td>{html.escape(c)}</td>"
                for c in row) + "</tr>")
        parts.append("</table>")
    md = to_markdown(board).split("\n")
    legend = [l for l in md if l.startswith("Cells:") or l.startswith("Reference points")]
    parts += [f"<p>{html.escape(l)}</p>" for l in legend]
    if board.excluded:
        parts.append("<h2>Excluded runs</h2><ul>")
        parts += [f"<li>{html.escape(e)}</li>" for e in board.excluded]
        parts.append("</ul>")
    parts.append("<h2>Learning curves</h2>")
    for task, path in pngs.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(f"<h3>{html.escape(task)}</h3><img alt='learning curves {html.escape(task)}' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_leaderboard(board: Leaderboard, out: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv``, ``curves_<task>.png`` and ``report.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv",
             "html": out / "report.html"}
    files["markdown"].write_text(to_markdown(board), encoding="utf-8")
    write_csv(board, files["csv"])
    pngs = plot_curves(board, out)
    files["html"].write_text(to_html(board, pngs), encoding="utf-8")
    files.update({f"png:{t}": pth for t, pth in pngs.items()})
    return files


# --------------------------------------------------------------------------------------------------
# reference points


def random_policy_return(env_id: str, *, episodes: int = 10, eval_seed: int = 1_000_000,
                         action_seed: int = 0) -> float:
    """Mean return of the uniform-random policy: episode ``i`` reset with ``eval_seed + i``, actions
    from ``env.action_space`` seeded with ``action_seed``. This is how the ``random`` reference
    points of the shipped protocols were measured."""
    import gymnasium as gym

    import vagram_bench  # noqa: F401  (registers the ids)

    env = gym.make(env_id)
    env.action_space.seed(action_seed)
    returns = []
    for i in range(episodes):
        env.reset(seed=eval_seed + i)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


# --------------------------------------------------------------------------------------------------
# CLI


@dataclasses.dataclass
class LeaderboardConfig:
    """Build a protocol's leaderboard (Markdown, CSV, PNG curves, HTML report) from run records,
    e.g. `python -m vagram_bench.leaderboard runs protocol=quick out=board`."""

    protocol: str
    """Protocol name (see `python -m vagram_bench.run list`) or path to a protocol .toml file."""
    runs: tyro.conf.Positional[str] = "runs"
    """Directory holding the run records (searched recursively for config.json)."""
    out: str = "board"
    """Output directory for leaderboard.md, leaderboard.csv, curves_<task>.png and report.html."""
    agents: tuple[str, ...] | None = None
    """Rows, in order (default: the protocol's agents, then any other agent with runs)."""
    n_resamples: int = 10_000
    """Bootstrap resamples per confidence interval."""
    seed: int = 0
    """Seed of the bootstrap generator."""


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 even for an incomplete grid, which the tables mark)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = tyro.cli(LeaderboardConfig, prog="python -m vagram_bench.leaderboard",
                   args=kv_to_tyro(argv, LeaderboardConfig))
    try:
        protocol = load_protocol(cfg.protocol, check_ids=False)
        runs = scan_runs(cfg.runs)
    except (ProtocolError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        board = build_leaderboard(runs, protocol, agents=cfg.agents, n_resamples=cfg.n_resamples,
                                  seed=cfg.seed)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    try:
        files = write_leaderboard(board, cfg.out)
    except OSError as exc:  # a read-only or mistyped out=: the run records are only read
        print(f"error: cannot write the leaderboard to {cfg.out}: {exc.strerror or exc} ({exc.filename or cfg.out})",
              file=sys.stderr)
        return 2
    print(files["markdown"].read_text(encoding="utf-8"))
    missing = board.incomplete_cells()
    if missing:
        print(f"warning: {len(missing)} incomplete cell(s): "
              + ", ".join(f"{a}/{t} {n}/{e}" for a, t, n, e in missing[:8])
              + (" ..." if len(missing) > 8 else ""), file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in files.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
