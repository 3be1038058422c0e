"""Leaderboard tables, learning curves and an HTML report from the run records of one protocol.

.. code-block:: bash

    python -m vagram_bench.leaderboard runs protocol=cpu out=board
    python -m vagram_bench.leaderboard runs --protocol cpu --out board --agents sac mbpo_vagram
    python -m vagram_bench.leaderboard publish protocol=cpu runs=runs out=results/cpu  # vagram_bench.publish

It reads every run record under ``runs`` (``<env>/<agent>/seed<k>/`` with ``config.json``,
``eval.csv`` and, for a finished run, ``summary.json``) and writes to ``out``:

* ``leaderboard.md`` — paste-ready Markdown: the final-return and area-under-the-curve tables (rows agents,
  columns tasks, then an aggregate column of normalised scores and the mean rank), the probability of
  improvement between every pair of agents, the probability of improvement per task for the focus pairs
  (:func:`improvement_focus`), the run-time table, the legend and the excluded runs;
* ``report.html`` — the same tables (both documents are rendered from one list of :class:`Table`) with
  the figures embedded as base64 PNG, one self-contained page;
* ``leaderboard.csv`` — the same numbers in long form;
* ``curves.png`` — learning curves, one panel per task: the metric across seeds, its band and thin per-seed
  lines; ``performance_profile.png`` — the normalised-score profiles with bootstrap bands.

Statistics (see ``docs/protocols.md``), following Agarwal et al. (2021), "Deep reinforcement learning at
the edge of the statistical precipice" (NeurIPS; the ``rliable`` library):

* per run, the **final return** is the mean of the last ``final_evals`` evaluations (each the mean
  over ``eval_episodes`` episodes) and the **AUC** is the area under the evaluation curve divided by
  the span of the eval steps (trapezoid rule), i.e. the average return over training;
* per cell (agent × task), seeds are aggregated with the protocol's metric: the **IQM**
  (``scipy.stats.trim_mean(x, 0.25)``, rliable's definition) or the mean, with a 95% percentile
  bootstrap CI over seeds from ``scipy.stats.bootstrap`` when there are at least
  :data:`MIN_SEEDS_FOR_CI` seeds, and the **range** of the seeds below that (the bootstrap interval is
  the range there and would claim 95% for what is a 50–87.5% interval);
* the **aggregate** column normalises each run's score with the protocol's reference returns,
  ``(x - random) / (reference - random)``, and aggregates all (task, seed) scores of an agent with
  the metric. Its CI is a *stratified* bootstrap: ``scipy.stats.bootstrap`` given one sample per
  task resamples seeds independently within each task (``paired=False``), as rliable does;
* the **mean rank** averages, over tasks, the agent's rank (1 = best) by the cell's point estimate;
* the **probability of improvement** ``P(X > Y)`` is, per task, the Mann–Whitney U statistic over
  ``n·m`` (ties count ½), averaged over tasks, with a stratified bootstrap CI; the same statistic on one
  task at a time (X's and Y's runs resampled independently) gives the per-task table;
* the **performance profile** is, per normalised-score threshold τ, the fraction of runs above τ
  (per task, averaged over tasks), with a stratified bootstrap band.

Statistics come from scipy rather than rliable: rliable 1.2.0 requires ``arch<8``, and arch 7.2 fails to
import under pandas 3, which would put a fragile, heavy dependency into the core install for computations
scipy provides (``trim_mean``, ``bootstrap``, ``mannwhitneyu``).

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
    "MIN_SEEDS_FOR_CI",
    "range_coverage",
    "probability_of_improvement",
    "improvement_focus",
    "performance_profile",
    "performance_profile_ci",
    "Profile",
    "Table",
    "report_tables",
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


MIN_SEEDS_FOR_CI = 5
"""Fewest scores per sample for which a cell shows a bootstrap confidence interval.

Below it the cell shows the **range** of its seeds and says so. At n <= 4 the 95% percentile bootstrap
interval of the IQM is the range itself (at n = 3 a resample repeats the smallest seed three times with
probability 1/27 > 2.5%; at n = 4 the IQM of a resample is the smallest seed whenever three of its four draws
are, 13/256 > 2.5%), so calling it a "95% CI" would be wrong: the range of n seeds contains the population median with probability 1 - 2^(1-n)
(50%, 75%, 87.5% at n = 2, 3, 4; :func:`range_coverage`). From n = 5 on the bootstrap interval is no longer
the range, and its coverage of the population IQM is 0.88-0.93 at n = 5-10 (simulated with normal and
log-normal scores, 1000 repetitions each; docs/protocols.md), close to the nominal 0.95 that Agarwal et al.
(2021) report for percentile bootstrap intervals at a handful of runs."""


def range_coverage(n: int) -> float:
    """Probability that the range ``[min, max]`` of ``n`` i.i.d. draws of a continuous distribution contains
    its median: ``1 - 2 * 0.5**n``."""
    return 1.0 - 2.0 * 0.5**n


def _mwu_probability(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``P(X > Y) + P(X = Y) / 2`` estimated from two samples: the Mann-Whitney U statistic of ``x`` (pairs
    with ``x > y``, ties counted 1/2) divided by ``n * m``; broadcasts over the other axes.

    Counted over all ``n * m`` pairs rather than with ``scipy.stats.mannwhitneyu``: with a handful of seeds
    the pairs are few, and on 10,000 bootstrap resamples this is 3x faster than scipy's rank-based U
    (72 agent pairs x 5 tasks x 5 seeds: 17 s -> 5 s); tests compare it with ``mannwhitneyu``."""
    x = np.moveaxis(x, axis, -1)[..., :, None]
    y = np.moveaxis(y, axis, -1)[..., None, :]
    return np.mean((x > y) + 0.5 * (x == y), axis=(-2, -1))


def probability_of_improvement(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> tuple[float, float, float]:
    """rliable's probability of improvement of X over Y (Agarwal et al. 2021, Sec. 4.3).

    Per task ``t``, ``P(X_t > Y_t)`` is the Mann-Whitney U statistic of ``xs[t]`` against ``ys[t]`` over
    ``n_t * m_t`` (ties count 1/2); the result averages it over tasks. The CI is a stratified percentile
    bootstrap: the runs of X and of Y are resampled independently within each task, as rliable's
    ``get_interval_estimates`` does for a pair of score matrices.

    Returns ``(point, low, high)``; the interval is NaN when some sample has fewer than two runs.
    """
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    ys = [np.asarray(y, dtype=np.float64) for y in ys]
    if len(xs) != len(ys) or not xs:
        raise ValueError(f"need one X and one Y sample per task, got {len(xs)} and {len(ys)}")
    point = float(np.mean([_mwu_probability(x, y) for x, y in zip(xs, ys)]))
    if any(s.size < 2 for s in (*xs, *ys)):
        return point, math.nan, math.nan

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        per_task = [_mwu_probability(x, y, axis=axis) for x, y in zip(samples[::2], samples[1::2])]
        return np.mean(per_task, axis=0)

    paired = [s for x, y in zip(xs, ys) for s in (x, y)]
    with warnings.catch_warnings():
        # one agent beating the other in every run makes every resample 1.0: the interval [1, 1] is right
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        res = scipy.stats.bootstrap(tuple(paired), statistic, n_resamples=n_resamples, vectorized=True,
                                    paired=False, confidence_level=confidence_level, method="percentile",
                                    rng=np.random.default_rng(seed))
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def performance_profile(samples: Sequence[np.ndarray], taus: np.ndarray, axis: int = -1) -> np.ndarray:
    """rliable's score distribution (Agarwal et al. 2021, Sec. 4.2): for each threshold ``tau``, the fraction
    of runs with a normalised score above ``tau``, taken per task and averaged over tasks (so every task
    weighs the same even if seed counts differ). Returns shape ``(len(taus), ...)``."""
    taus = np.asarray(taus, dtype=np.float64)
    per_task = [np.mean(np.moveaxis(np.asarray(s), axis, -1)[..., None, :] > taus[:, None], axis=-1)
                for s in samples]  # each (..., len(taus))
    return np.moveaxis(np.mean(per_task, axis=0), -1, 0)


def performance_profile_ci(
    samples: Sequence[np.ndarray],
    taus: np.ndarray,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified percentile bootstrap band of :func:`performance_profile` (runs resampled within each
    task); NaN when some task has fewer than two runs."""
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(s.size < 2 for s in samples):
        nan = np.full(len(taus), np.nan)
        return nan, nan.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)  # fractions of 0 or 1 everywhere
        res = scipy.stats.bootstrap(
            tuple(samples), lambda *s, axis=-1: performance_profile(s, taus, axis=axis),
            n_resamples=n_resamples, vectorized=True, paired=False, confidence_level=confidence_level,
            method="percentile", rng=np.random.default_rng(seed))
    return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


@dataclasses.dataclass
class CellStats:
    """One table cell: an agent on a task (or the aggregate column)."""

    point: float
    ci_low: float
    ci_high: float
    n: int
    expected: int
    values: np.ndarray
    interval: str = "ci"
    """What ``[ci_low, ci_high]`` is: ``"ci"`` (95% percentile bootstrap), ``"range"`` (min and max of
    fewer than :data:`MIN_SEEDS_FOR_CI` seeds) or ``"none"`` (one seed or none)."""
    few_seeds: bool = False
    """Aggregate only: some task has fewer than :data:`MIN_SEEDS_FOR_CI` seeds, so the stratified
    interval is known to under-cover (docs/protocols.md)."""

    @property
    def complete(self) -> bool:
        return self.n == self.expected


def _cell(values: list[float], expected: int, metric: str, n_resamples: int, seed: int) -> CellStats:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return CellStats(math.nan, math.nan, math.nan, 0, expected, arr, interval="none")
    if arr.size >= MIN_SEEDS_FOR_CI:
        low, high = bootstrap_ci([arr], metric, n_resamples=n_resamples, seed=seed)
        kind = "ci"
    elif arr.size >= 2:
        low, high, kind = float(arr.min()), float(arr.max()), "range"
    else:
        low, high, kind = math.nan, math.nan, "none"
    return CellStats(aggregate(arr, metric), low, high, int(arr.size), expected, arr, interval=kind)


@dataclasses.dataclass
class Profile:
    """Performance profiles of the agents with a complete row (normalised final scores)."""

    taus: np.ndarray
    """Normalised-score thresholds."""
    fraction: dict[str, np.ndarray]
    """agent -> fraction of runs with a normalised score above each ``tau`` (averaged over tasks)."""
    ci_low: dict[str, np.ndarray]
    ci_high: dict[str, np.ndarray]
    few_seeds: bool
    """Some task has fewer than :data:`MIN_SEEDS_FOR_CI` seeds (the bands under-cover)."""


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
    improvement: dict[tuple[str, str], CellStats] = dataclasses.field(default_factory=dict)
    """(X, Y) -> probability that X's final return beats Y's (:func:`probability_of_improvement`), for
    every ordered pair of agents with complete rows."""
    improvement_by_task: dict[tuple[str, str, str], CellStats] = dataclasses.field(default_factory=dict)
    """(X, Y, task) -> probability that X's final return on that task beats Y's, for every task and every
    ordered pair of agents whose cells on that task are complete."""
    improvement_focus: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """The pairs (X, Y) the per-task probability-of-improvement table shows (:func:`improvement_focus`)."""
    profile: Profile | None = None
    """Performance profiles of the normalised final scores (``None``: no complete row or no references)."""

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
    samples = _normalised_samples(per_task, protocol)
    pooled = np.concatenate(samples)
    low, high = bootstrap_ci(samples, protocol.metric, n_resamples=n_resamples, seed=seed)
    return CellStats(aggregate(pooled, protocol.metric), low, high, int(pooled.size),
                     int(pooled.size), pooled, interval="ci" if math.isfinite(low) else "none",
                     few_seeds=min(s.size for s in samples) < MIN_SEEDS_FOR_CI)


def _normalised_samples(per_task: Mapping[str, CellStats], protocol: Protocol) -> list[np.ndarray]:
    """One array of normalised scores per task (the strata of the aggregate's bootstrap)."""
    return [protocol.reference_scores[t].normalise(per_task[t].values) for t in protocol.tasks]


def _improvement_cell(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], n_resamples: int,
                      seed: int) -> CellStats:
    """:func:`probability_of_improvement` of X's over Y's final returns (one sample per task) as a cell: the
    stratified bootstrap CI, flagged ``few_seeds`` when some sample has fewer than MIN_SEEDS_FOR_CI runs."""
    point, low, high = probability_of_improvement(xs, ys, n_resamples=n_resamples, seed=seed)
    n = min(v.size for v in (*xs, *ys))
    return CellStats(point, low, high, n, n, np.asarray([point]),
                     interval="ci" if math.isfinite(low) else "none", few_seeds=n < MIN_SEEDS_FOR_CI)


def _improvement_table(
    final: Mapping[tuple[str, str], CellStats], agents: list[str], tasks: Sequence[str],
    n_resamples: int, seed: int,
) -> dict[tuple[str, str], CellStats]:
    """P(X > Y) on the final returns for every ordered pair of agents whose rows are complete (like ranks,
    a comparison on a partial grid would favour whoever has fewer runs)."""
    complete = [a for a in agents if all(final[(a, t)].complete for t in tasks)]
    return {(x, y): _improvement_cell([final[(x, t)].values for t in tasks],
                                      [final[(y, t)].values for t in tasks], n_resamples, seed)
            for x in complete for y in complete if x != y}


def _improvement_by_task(
    final: Mapping[tuple[str, str], CellStats], agents: list[str], tasks: Sequence[str],
    n_resamples: int, seed: int,
) -> dict[tuple[str, str, str], CellStats]:
    """P(X > Y) on one task's final returns for every task and every ordered pair of agents whose cells on
    that task are both complete (a pair complete on some tasks only keeps those tasks)."""
    return {(x, y, t): _improvement_cell([final[(x, t)].values], [final[(y, t)].values], n_resamples, seed)
            for x in agents for y in agents for t in tasks
            if x != y and final[(x, t)].complete and final[(y, t)].complete}


DEFAULT_FOCUS_AGENT = "mbpo_vagram"
"""The agent whose per-task probability of improvement over every other MBPO agent is reported by default
(the paper's question: does the value-gradient-weighted model beat the MSE / MLE / IterVAML models in each
setting?)."""


class ImprovementPairsError(ValueError):
    """A bad ``improvement_pairs`` entry (the command line exits 2 on it)."""


def improvement_focus(agents: Sequence[str], pairs: Iterable[str | tuple[str, str]] | None = None
                      ) -> list[tuple[str, str]]:
    """The ordered pairs ``(X, Y)`` of the per-task probability-of-improvement table.

    Default: ``(mbpo_vagram, Y)`` for every other ``mbpo_*`` agent when ``mbpo_vagram`` is among ``agents``,
    else every pair with X before Y in ``agents``. ``pairs`` overrides it: ``"X:Y"`` strings or
    ``(X, Y)`` tuples, each naming two different agents of ``agents``.

    Raises:
        ValueError: a pair that is malformed or names an agent that is not a row (the message names the
            pair and the valid agents).
    """
    agents = list(agents)
    if pairs is None:
        if DEFAULT_FOCUS_AGENT in agents:
            return [(DEFAULT_FOCUS_AGENT, y) for y in agents
                    if y.startswith("mbpo_") and y != DEFAULT_FOCUS_AGENT]
        return [(x, y) for i, x in enumerate(agents) for y in agents[i + 1:]]
    focus = []
    for pair in pairs:
        parts = tuple(pair.split(":")) if isinstance(pair, str) else tuple(pair)
        if len(parts) != 2 or parts[0] == parts[1] or not all(a in agents for a in parts):
            shown = pair if isinstance(pair, str) else ":".join(map(str, pair))
            raise ImprovementPairsError(f"improvement_pairs: bad pair {shown!r}; a pair is X:Y with two different "
                             f"agents of the leaderboard, valid agents: {agents}")
        focus.append((str(parts[0]), str(parts[1])))
    return focus


def _performance_profile(
    final: Mapping[tuple[str, str], CellStats], agents: list[str], protocol: Protocol,
    n_resamples: int, seed: int, points: int = 101,
) -> Profile | None:
    tasks = protocol.tasks
    if not all(t in protocol.reference_scores for t in tasks):
        return None
    rows = {a: _normalised_samples({t: final[(a, t)] for t in tasks}, protocol)
            for a in agents if all(final[(a, t)].complete for t in tasks)}
    if not rows:
        return None
    every = np.concatenate([s for samples in rows.values() for s in samples])
    lo, hi = float(min(every.min(), 0.0)), float(max(every.max(), 1.0))
    pad = 0.02 * (hi - lo)
    taus = np.linspace(lo - pad, hi + pad, points)
    fraction, low, high = {}, {}, {}
    for a, samples in rows.items():
        fraction[a] = performance_profile(samples, taus)
        low[a], high[a] = performance_profile_ci(samples, taus, n_resamples=n_resamples, seed=seed)
    few = min(s.size for samples in rows.values() for s in samples) < MIN_SEEDS_FOR_CI
    return Profile(taus, fraction, low, high, few)


def build_leaderboard(
    runs: Iterable[RunRecord],
    protocol: Protocol | str,
    *,
    agents: Sequence[str] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    improvement_pairs: Iterable[str | tuple[str, str]] | None = None,
) -> Leaderboard:
    """Aggregate run records into the numbers of a leaderboard.

    Args:
        runs: run records (:func:`scan_runs`).
        protocol: the protocol (or its name/path) the table is for. Only runs recorded under exactly
            this name, version and content hash are used.
        agents: rows, in order. Default: the protocol's agents, then any other agent with runs.
        n_resamples: bootstrap resamples per CI.
        seed: seed of the bootstrap generator (the tables are deterministic given the records).
        improvement_pairs: the pairs of the per-task probability-of-improvement table, ``"X:Y"`` or
            ``(X, Y)`` (default: :func:`improvement_focus`).

    Raises:
        ImprovementPairsError: a bad pair in ``improvement_pairs`` (checked before any statistic is computed).
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
    focus = improvement_focus(agents, improvement_pairs)

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
        improvement=_improvement_table(final, agents, protocol.tasks, n_resamples, seed),
        improvement_by_task=_improvement_by_task(final, agents, protocol.tasks, n_resamples, seed),
        improvement_focus=focus,
        profile=_performance_profile(final, agents, protocol, n_resamples, seed),
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
    if not c.complete:
        running = f", {in_progress} running" if in_progress else ""
        return f"⚠ incomplete {c.n}/{c.expected}{running} (partial: {_fmt(c.point, digits)})"
    bounds = f"[{_fmt(c.ci_low, digits)}, {_fmt(c.ci_high, digits)}]"
    if c.interval == "ci":
        return f"{_fmt(c.point, digits)} {bounds}{'†' if c.few_seeds else ''} (n={c.n})"
    if c.interval == "range":
        return f"{_fmt(c.point, digits)}, range {bounds} (n={c.n})"
    return f"{_fmt(c.point, digits)} (n={c.n})"


def _estimate_text(c: CellStats, digits: int) -> str:
    """An aggregate or a probability: the point and its interval, † when that interval under-covers."""
    if c.interval != "ci":
        return _fmt(c.point, digits)
    return (f"{_fmt(c.point, digits)} [{_fmt(c.ci_low, digits)}, {_fmt(c.ci_high, digits)}]"
            + ("†" if c.few_seeds else ""))


@dataclasses.dataclass
class Table:
    """One table of the report. The Markdown and the HTML page are both rendered from these, so they carry
    the same tables with the same cells."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    """One paragraph printed under the table."""


def _score_table(board: Leaderboard, which: str) -> Table:
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
            row.append(_estimate_text(g, 3))
        elif not has_refs:
            row.append("n/a (no reference scores)")
        else:
            row.append("⚠ incomplete")
        r = ranks[a]
        row.append(f"{r:.2f}" if r is not None else "⚠ incomplete grid")
        rows.append(row)
    title = ("Final return" if which == "final"
             else "Area under the curve (average return over training)")
    return Table(title, header, rows)


def _improvement_table_view(board: Leaderboard) -> Table | None:
    agents = [a for a in board.agents if any((a, b) in board.improvement for b in board.agents)]
    if len(agents) < 2:
        return None
    rows = [[x] + ["—" if x == y else _estimate_text(board.improvement[(x, y)], 2) for y in agents]
            for x in agents]
    note = ("P(row > column): the probability that a run of the row agent ends with a higher final return "
            "than a run of the column agent on the same task (Mann–Whitney U / (n·m), ties count ½), "
            "averaged over tasks; [95% stratified bootstrap CI]. 0.5 = no difference; P(X > Y) + P(Y > X) = 1. "
            "Only agents with a complete row are compared.")
    return Table("Probability of improvement (final return)", ["P(row > column)", *agents], rows, note)


def _improvement_by_task_view(board: Leaderboard) -> Table | None:
    """Rows tasks, columns the focus pairs, then the mean over tasks (the cross-task table's value)."""
    pairs = [(x, y) for x, y in board.improvement_focus
             if any((x, y, t) in board.improvement_by_task for t in board.protocol.tasks)]
    if not pairs:
        return None

    def cell(c: CellStats | None, missing: str) -> str:
        return missing if c is None else f"{_estimate_text(c, 2)} (n={c.n})"

    rows = [[t] + [cell(board.improvement_by_task.get((x, y, t)), "⚠ incomplete") for x, y in pairs]
            for t in board.protocol.tasks]
    rows.append(["mean over tasks"] + [cell(board.improvement.get((x, y)), "⚠ incomplete row")
                                       for x, y in pairs])
    note = ("P(X > Y) on one task: the probability that a run of X ends that task with a higher final return "
            "than a run of Y (Mann–Whitney U / (n·m), ties count ½); [95% percentile bootstrap CI, X's and Y's "
            "runs resampled independently]; n = fewest seeds of the two. 0.5 = no difference, 1 = every run of "
            "X beats every run of Y. With 5 seeds per agent the interval is wide (about 0.7 when the agents do "
            "not differ) and covers 79–90% of the time, with 3 seeds 55–84% (simulated; docs/protocols.md), so "
            "only an interval that excludes 0.5 is evidence of a difference. The last row is the average over "
            "tasks from the table above. A task where one of the two cells is incomplete is not compared.")
    return Table("Probability of improvement per task (final return)", ["Task", *(f"P({x} > {y})" for x, y in pairs)],
                 rows, note)


def _runtime_table(board: Leaderboard) -> Table:
    p = board.protocol
    rows = [[a] + [_duration(board.wall_hours[(a, t)] * 3600) if (a, t) in board.wall_hours else "—"
                   for t in p.tasks] for a in board.agents]
    return Table("Run time (median wall-clock per completed run)", ["Agent", *p.tasks], rows)


def report_tables(board: Leaderboard) -> list[Table]:
    """Every table of the report, in order: final return, AUC, probability of improvement (with two or more
    complete rows), probability of improvement per task (when some focus pair is complete on some task) and
    run time."""
    tables = [_score_table(board, "final"), _score_table(board, "auc"), _improvement_table_view(board),
              _improvement_by_task_view(board), _runtime_table(board)]
    return [t for t in tables if t is not None]


def report_notes(board: Leaderboard) -> list[str]:
    """The legend paragraphs under the tables (shared by the Markdown and the HTML report)."""
    p = board.protocol
    label = "IQM" if p.metric == "iqm" else "mean"
    final_desc = ("the last evaluation" if p.final_evals == 1
                  else f"the mean of the last {p.final_evals} evaluations")
    k = MIN_SEEDS_FOR_CI
    notes = [
        f"Cells: {label} across seeds (n = completed seeds). With n ≥ {k} the brackets are a 95% percentile "
        f"bootstrap CI ({board.n_resamples} resamples). With 2–{k - 1} seeds they are the range of the seeds, "
        f"marked \"range\": at such n the bootstrap interval is the range itself, and the range of n seeds "
        f"contains the median with probability only {range_coverage(2):.0%} / {range_coverage(3):.0%} / "
        f"{range_coverage(4):.1%} at n = 2 / 3 / 4 (Agarwal et al. 2021, \"Deep RL at the edge of the "
        f"statistical precipice\"; docs/protocols.md). Final return per run = {final_desc}, each the mean of "
        f"{p.eval_episodes} deterministic episodes (reset seeds {p.eval_seed}..{p.eval_seed + p.eval_episodes - 1}). "
        f"Normalised score = (return − random) / (reference − random), aggregated over all tasks and "
        f"seeds with a stratified bootstrap CI; mean rank over tasks, 1 = best. "
        f"⚠ marks cells with fewer than {len(p.seeds)} completed seeds; a row with one has no "
        f"aggregate, and ranks need the whole grid complete.",
    ]
    few = [c for c in (*board.final_aggregate.values(), *board.auc_aggregate.values(),
                       *board.improvement.values(), *board.improvement_by_task.values())
           if c is not None and c.few_seeds]
    if few:
        notes.append(
            f"† Some task has fewer than {k} seeds: the stratified bootstrap interval is shown, as rliable "
            f"does, but it under-covers (about 83–88% for a nominal 95% with 3 seeds per task and 2–10 tasks "
            f"in a simulation with normal scores, and 55–84% for a per-task probability of improvement with 3 "
            f"seeds; docs/protocols.md).")
    if p.reference_scores:
        refs = ", ".join(f"{t}: {r.random:g} / {r.reference:g}" for t, r in p.reference_scores.items())
        notes.append(f"Reference points (random / reference): {refs}. Source: {p.reference_source}")
    return notes


FIGURES = {
    "curves": ("curves.png", "Learning curves"),
    "profile": ("performance_profile.png", "Performance profile (normalised final score)"),
}
"""Figure key -> (file name in ``out``, heading)."""


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(board: Leaderboard, figures: Mapping[str, Path] | None = None) -> str:
    """The paste-ready Markdown document: every table of :func:`report_tables`, the legend, links to the
    figures written next to it, and the exclusions."""
    p = board.protocol
    lines = [
        f"## Leaderboard: protocol `{p.name}` v{p.version} (hash `{p.short_hash}`)",
        "",
        f"{p.description}",
        "",
    ]
    for table in report_tables(board):
        lines += [f"### {table.title}", ""]
        lines.append("| " + " | ".join(_md_escape(h) for h in table.header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|")
        lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in table.rows]
        lines.append("")
        if table.note:
            lines += [table.note, ""]
    for note in report_notes(board):
        lines += [note, ""]
    for key, path in (figures or {}).items():
        lines += [f"![{FIGURES[key][1]}]({Path(path).name})", ""]
    if board.excluded:
        lines += ["Excluded runs:", ""] + [f"- {_md_escape(e)}" for e in board.excluded] + [""]
    return "\n".join(lines)


def write_csv(board: Leaderboard, path: Path) -> None:
    """Long-form CSV: one row per (table, agent, column). ``interval`` says what ``ci_low, ci_high`` are:
    ``ci95`` (bootstrap), ``range`` (min, max of fewer than MIN_SEEDS_FOR_CI seeds) or empty.
    ``table=improvement`` rows hold P(agent > the agent in ``task``) over all tasks; ``table=improvement_task``
    rows hold P(agent > Y) on ``task``, with Y in ``statistic`` (``P(X>Y-name)``)."""
    p = board.protocol
    kinds = {"ci": "ci95", "range": "range", "none": ""}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["protocol", "version", "hash", "table", "agent", "task", "statistic",
                    "point", "ci_low", "ci_high", "n_seeds", "n_expected", "complete", "interval"])
        head = [p.name, p.version, p.content_hash]
        for which in ("final", "auc"):
            cells = board.final if which == "final" else board.auc
            agg = board.final_aggregate if which == "final" else board.auc_aggregate
            ranks = board.final_rank if which == "final" else board.auc_rank
            for a in board.agents:
                for t in p.tasks:
                    c = cells[(a, t)]
                    w.writerow([*head, which, a, t, p.metric, repr(c.point), repr(c.ci_low),
                                repr(c.ci_high), c.n, c.expected, c.complete, kinds[c.interval]])
                g = agg[a]
                if g is not None:
                    w.writerow([*head, which, a, "aggregate", f"normalised_{p.metric}", repr(g.point),
                                repr(g.ci_low), repr(g.ci_high), g.n, g.expected, True, kinds[g.interval]])
                else:
                    w.writerow([*head, which, a, "aggregate", f"normalised_{p.metric}", "nan", "nan", "nan",
                                "", "", False, ""])
                r = ranks[a]
                w.writerow([*head, which, a, "mean_rank", "rank", repr(r) if r is not None else "nan",
                            "", "", "", "", r is not None, ""])
        for (x, y), c in board.improvement.items():
            # ``task`` holds the opponent: the row reads "P(agent > task)"
            w.writerow([*head, "improvement", x, y, "P(X>Y)", repr(c.point), repr(c.ci_low),
                        repr(c.ci_high), c.n, c.expected, True, kinds[c.interval]])
        for (x, y, t), c in board.improvement_by_task.items():
            # one task: ``statistic`` names the opponent, the row reads "P(agent > Y) on task"
            w.writerow([*head, "improvement_task", x, t, f"P(X>{y})", repr(c.point), repr(c.ci_low),
                        repr(c.ci_high), c.n, c.expected, True, kinds[c.interval]])
        for a in board.agents:
            for t in p.tasks:
                c = board.final[(a, t)]
                hours = board.wall_hours.get((a, t), math.nan)
                w.writerow([*head, "wall_hours", a, t, "median", repr(hours), "", "", c.n, c.expected,
                            c.complete, ""])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(values: np.ndarray, metric: str, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per eval step: the 95% bootstrap CI across seeds (n >= MIN_SEEDS_FOR_CI) or their range (n >= 2),
    the same rule as the table cells."""
    n = values.shape[0]
    if n >= MIN_SEEDS_FOR_CI:
        return bootstrap_ci([values], metric, n_resamples=n_resamples, seed=seed, axis=0)
    if n >= 2:
        return values.min(axis=0), values.max(axis=0)
    return None


def plot_curves(board: Leaderboard, path: Path, *, per_seed: bool = True) -> Path:
    """One figure, one panel per task: per agent the metric across completed seeds at every evaluation
    (thick line), its band (95% bootstrap CI, or the range below MIN_SEEDS_FOR_CI seeds) and, with
    ``per_seed``, every seed's curve as a thin line. Agents share colours across panels and one legend."""
    from matplotlib.ticker import EngFormatter

    plt = _pyplot()
    p = board.protocol
    label = "IQM" if p.metric == "iqm" else "mean"
    ncols = min(3, len(p.tasks))
    nrows = math.ceil(len(p.tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.9 * nrows + 0.9), dpi=110,
                             squeeze=False, constrained_layout=True)
    handles = {}
    for k, task in enumerate(p.tasks):
        ax = axes[k // ncols][k % ncols]
        for i, a in enumerate(board.agents):
            if (a, task) not in board.curves:
                continue
            steps, values = board.curves[(a, task)]
            color = f"C{i % 10}"
            complete = board.final[(a, task)].complete
            if per_seed:
                ax.plot(steps, values.T, color=color, linewidth=0.7, alpha=0.35)
            band = _band(values, p.metric, min(board.n_resamples, 2000), board.seed)
            if band is not None:
                ax.fill_between(steps, band[0], band[1], color=color, alpha=0.18, linewidth=0)
            (line,) = ax.plot(steps, _metric_fn(p.metric)(values, axis=0), color=color, linewidth=2.4,
                              linestyle="-" if complete else "--")
            handles.setdefault(a, line)
        seeds = sorted({board.curves[(a, task)][1].shape[0] for a in board.agents if (a, task) in board.curves})
        n_text = "" if not seeds else f"  (n = {seeds[0]}" + (f"–{seeds[-1]}" if len(seeds) > 1 else "") + " seeds)"
        ax.set_title(task + n_text, fontsize=12)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlabel("env steps")
        if k % ncols == 0:
            ax.set_ylabel(f"eval return ({label})")
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no completed runs", ha="center", va="center", transform=ax.transAxes)
    for k in range(len(p.tasks), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    band_desc = f"band: 95% bootstrap CI (n ≥ {MIN_SEEDS_FOR_CI}) or range of seeds (n < {MIN_SEEDS_FOR_CI})"
    fig.suptitle(f"Protocol {p.name} v{p.version}: {label} across seeds; {band_desc}"
                 + ("; thin lines: single seeds" if per_seed else "") + "; dashed: incomplete", fontsize=10)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
                   ncol=min(len(handles), 5), fontsize=10, frameon=False)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_performance_profile(board: Leaderboard, path: Path) -> Path | None:
    """rliable's performance profile of the normalised final scores, one line per complete row with its
    stratified bootstrap band; ``None`` when there is no profile (no complete row or no references)."""
    prof = board.profile
    if prof is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.8), dpi=110, constrained_layout=True)
    for i, a in enumerate(board.agents):
        if a not in prof.fraction:
            continue
        color = f"C{i % 10}"
        ax.fill_between(prof.taus, prof.ci_low[a], prof.ci_high[a], color=color, alpha=0.18, linewidth=0,
                        step=None)
        ax.plot(prof.taus, prof.fraction[a], color=color, linewidth=2.2, label=a)
    for x, name in ((0.0, "random"), (1.0, "reference")):
        ax.axvline(x, color="0.6", linewidth=0.8, linestyle=":")
        ax.text(x, 0.5, f" {name}", ha="left", va="center", rotation=90, fontsize=8, color="0.4",
                transform=ax.get_xaxis_transform())
    ax.set_xlabel("normalised final score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper right")
    ax.set_title(f"Protocol {board.protocol.name} v{board.protocol.version}: fraction of runs above τ, "
                 "95% stratified bootstrap band" + ("†" if prof.few_seeds else ""), fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return path


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222;"
    "background:#fff;line-height:1.45}table{border-collapse:collapse;margin:0.6em 0}"
    "th,td{border:1px solid #bbb;padding:4px 8px;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}th{background:#eef}td.warn{background:#fff3cd}"
    "p.note{color:#444;font-size:0.92em;max-width:70em}img{max-width:100%;margin:0.5em 0}"
    ".scroll{overflow-x:auto}"
)


def to_html(board: Leaderboard, figures: Mapping[str, Path]) -> str:
    """A self-contained HTML report: the tables of :func:`report_tables`, the legend, the figures inline
    (base64 PNG) and the exclusions."""
    p = board.protocol
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>vagram-bench leaderboard: {esc(p.name)} v{p.version}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Protocol <code>{esc(p.name)}</code> v{p.version} <small>(hash {p.short_hash})</small></h1>",
        f"<p>{esc(p.description)}</p>",
    ]
    for table in report_tables(board):
        parts.append(f"<h2>{esc(table.title)}</h2><div class='scroll'><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in table.header]
        parts.append("</tr>")
        for row in table.rows:
            parts.append("<tr>" + "".join(
                f"<td class='warn'>{esc(c)}</td>" if "⚠" in c else f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table></div>")
        if table.note:
            parts.append(f"<p class='note'>{esc(table.note)}</p>")
    parts += [f"<p class='note'>{esc(note)}</p>" for note in report_notes(board)]
    for key, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        title = FIGURES[key][1]
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{data}'>")
    if board.excluded:
        parts.append("<h2>Excluded runs</h2><ul>")
        parts += [f"<li>{esc(e)}</li>" for e in board.excluded]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_leaderboard(board: Leaderboard, out: str | Path, *, per_seed_curves: bool = True) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv``, ``curves.png``, ``performance_profile.png`` (when the
    protocol has reference scores and some row is complete) and ``report.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv",
             "html": out / "report.html"}
    figures = {"curves": plot_curves(board, out / FIGURES["curves"][0], per_seed=per_seed_curves)}
    profile = plot_performance_profile(board, out / FIGURES["profile"][0])
    if profile is not None:
        figures["profile"] = profile
    files["markdown"].write_text(to_markdown(board, figures), encoding="utf-8")
    write_csv(board, files["csv"])
    files["html"].write_text(to_html(board, figures), encoding="utf-8")
    files.update({f"png:{key}": path for key, path in figures.items()})
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
    e.g. `python -m vagram_bench.leaderboard runs protocol=cpu out=board`."""

    protocol: str
    """Protocol name (see `python -m vagram_bench.run list`) or path to a protocol .toml file."""
    runs: tyro.conf.Positional[str] = "runs"
    """Directory holding the run records (searched recursively for config.json)."""
    out: str = "board"
    """Output directory for leaderboard.md, leaderboard.csv, curves.png, performance_profile.png and report.html."""
    agents: tuple[str, ...] | None = None
    """Rows, in order (default: the protocol's agents, then any other agent with runs)."""
    n_resamples: int = 10_000
    """Bootstrap resamples per confidence interval."""
    seed: int = 0
    """Seed of the bootstrap generator."""
    per_seed_curves: bool = True
    """Draw every seed's learning curve as a thin line under the aggregate line."""
    improvement_pairs: tuple[str, ...] | None = None
    """Columns of the per-task probability-of-improvement table, as X:Y pairs, e.g.
    `improvement_pairs=[mbpo_vagram:mbpo_mse,mbpo_vagram:sac]` (default: mbpo_vagram against every other
    mbpo_* agent when mbpo_vagram is a row, else every pair X:Y with X before Y among the rows)."""


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 even for an incomplete grid, which the tables mark)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["publish"]:  # reference results under results/<protocol>/ (vagram_bench.publish)
        from vagram_bench import publish

        return publish.main(argv[1:])
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
        try:
            board = build_leaderboard(runs, protocol, agents=cfg.agents, n_resamples=cfg.n_resamples,
                                      seed=cfg.seed, improvement_pairs=cfg.improvement_pairs)
        except ImprovementPairsError as exc:  # nothing has been written
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    try:
        files = write_leaderboard(board, cfg.out, per_seed_curves=cfg.per_seed_curves)
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
