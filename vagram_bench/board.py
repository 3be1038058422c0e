"""The numbers of a protocol's leaderboard, built from run records (:func:`build_leaderboard`).

Per run, the **final return** is the mean of the last ``final_evals`` evaluations (each the mean over
``eval_episodes`` episodes) and the **AUC** is the area under the evaluation curve divided by the span of
the eval steps (trapezoid rule), i.e. the average return over training. Per cell (agent × task) the seeds
are aggregated with the protocol's metric and an interval (:mod:`vagram_bench.stats`); the **aggregate**
column normalises each run's score with the protocol's reference returns, ``(x - random) / (reference -
random)``, and aggregates all (task, seed) scores of an agent; the **mean rank** averages, over tasks,
the agent's rank (1 = best) by the cell's point estimate.

Honesty rules: a cell with fewer completed seeds than the protocol asks for is incomplete and left out of
the aggregate and the ranks; a row with an incomplete cell has no aggregate. Runs recorded under another
version or content hash of the protocol are excluded with a warning, never mixed in.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import scipy.stats

from vagram_bench.interaction import InteractionResult, build_interaction
from vagram_bench.protocol import Protocol, load_protocol, protocol_names
from vagram_bench.records import RunRecord, redo_command
from vagram_bench.stats import (MIN_SEEDS_FOR_CI, aggregate, aggregate_interval_estimates, bootstrap_ci,
                                performance_profile, performance_profile_ci, probability_of_improvement,
                                separation_p_value)

__all__ = [
    "CellStats",
    "DEFAULT_FOCUS_AGENT",
    "ImprovementPairsError",
    "Leaderboard",
    "Profile",
    "build_leaderboard",
    "improvement_focus",
    "one_config_per_cell",
    "run_auc",
    "run_final_return",
    "select_runs",
]


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
    fewer than :data:`MIN_SEEDS_FOR_CI` seeds), ``"none"`` (one seed or none) or, for a probability of
    improvement, ``"separation"`` (complete separation: no interval, see ``separation_p``)."""
    few_seeds: bool = False
    """Aggregate only: some task has fewer than :data:`MIN_SEEDS_FOR_CI` seeds, so the stratified
    interval is known to under-cover (docs/protocols.md)."""
    separation_p: float | None = None
    """Probability of improvement only: the exact one-sided Mann–Whitney p-value of a complete separation
    (:func:`vagram_bench.stats.separation_p_value`), ``None`` without one."""

    @property
    def degenerate(self) -> bool:
        """An interval of zero width (every resample, or every seed, gave the same value)."""
        return self.interval in ("ci", "range") and self.ci_low == self.ci_high

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
    configs: dict[tuple[str, str], Mapping[str, Any] | None] = dataclasses.field(default_factory=dict)
    """(agent, task) -> the one agent configuration (``config.json["agent_config"]``) of the cell's runs,
    for every cell with runs (:func:`select_runs` leaves out a run with another configuration)."""
    interaction: list[InteractionResult] = dataclasses.field(default_factory=list)
    """One result per ``[[interaction]]`` entry of the protocol (empty without one: a v1 report)."""
    aggregate_estimates: dict[str, dict[str, tuple[float, float, float]]] = dataclasses.field(default_factory=dict)
    """agent -> rliable's aggregate metrics of the normalised final scores over all tasks, each ``(point, low,
    high)`` (:func:`vagram_bench.stats.aggregate_interval_estimates`), for complete rows; computed only for a
    protocol with ``[[interaction]]`` (the report's aggregate interval plot)."""

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
    p = separation_p_value(xs, ys)
    if p is not None:  # the bootstrap interval is [P, P]: report the separation instead
        return CellStats(point, low, high, n, n, np.asarray([point]), interval="separation", separation_p=p)
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


def _interaction(final: Mapping[tuple[str, str], CellStats], grid_curves: Mapping[tuple[str, str], Any],
                 agents: list[str], protocol: Protocol, n_resamples: int, seed: int) -> list[InteractionResult]:
    """The interaction statistics of every ``[[interaction]]`` entry, from the complete cells only."""
    values = {k: c.values for k, c in final.items() if c.complete}
    curves = {k: v for k, v in grid_curves.items() if k in values}
    return [build_interaction(spec, protocol, agents, values, curves, n_resamples=n_resamples, seed=seed)
            for spec in protocol.interaction]


def _aggregate_estimates(final: Mapping[tuple[str, str], CellStats], agents: list[str], protocol: Protocol,
                         n_resamples: int, seed: int) -> dict[str, dict[str, tuple[float, float, float]]]:
    """rliable's four aggregate metrics per complete row (needs every task's reference scores)."""
    tasks = protocol.tasks
    if not protocol.interaction or not all(t in protocol.reference_scores for t in tasks):
        return {}
    return {a: aggregate_interval_estimates(_normalised_samples({t: final[(a, t)] for t in tasks}, protocol),
                                            n_resamples=n_resamples, seed=seed)
            for a in agents if all(final[(a, t)].complete for t in tasks)}


def select_runs(runs: Iterable[RunRecord], protocol: Protocol) -> tuple[dict[tuple[str, str, int], RunRecord],
                                                                         list[str]]:
    """The runs of ``protocol``'s grid, by ``(agent, task, seed)``, and one line per excluded run or group
    of runs: another version or hash of the protocol, a task or seed outside the grid, a duplicate, a
    complete run whose evaluations do not follow the protocol's schedule, or a run whose agent configuration
    differs from the rest of its cell (:func:`one_config_per_cell`). Runs of other protocols are not part
    of the table and are not listed."""
    excluded: list[str] = []
    other_version: list[RunRecord] = []
    kept: dict[tuple[str, str, int], RunRecord] = {}
    ad_hoc: list[RunRecord] = []
    for run in runs:
        rec = run.protocol or {}
        if not rec and run.env in protocol.tasks:
            ad_hoc.append(run)  # made without protocol= on one of its tasks: say why it is not counted
            continue
        if rec.get("name") != protocol.name:
            continue  # another protocol's run: not part of this table
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
        if run.complete and (problem := protocol.schedule_problem(run.env, run.eval_steps)):
            excluded.append(f"{run.path}: {problem}; redo it: {redo_command(run.path, protocol_ref(protocol))}")
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
    if ad_hoc:
        excluded.append(
            f"{len(ad_hoc)} run(s) on this protocol's tasks were made without protocol= and are not counted (a "
            f"protocol's table holds only runs recorded under it, with its budget and evaluation schedule): "
            + ", ".join(str(r.path) for r in ad_hoc[:4]) + (", ..." if len(ad_hoc) > 4 else "")
            + f"; run them again with protocol={protocol_ref(protocol)}")
    excluded += one_config_per_cell(kept)
    return kept, excluded


def protocol_ref(protocol: Protocol) -> str:
    """How a command names ``protocol``: its shipped name when it is the shipped protocol, else its file."""
    if protocol.name in protocol_names() and \
            load_protocol(protocol.name, check_ids=False).content_hash == protocol.content_hash:
        return protocol.name
    return str(protocol.path) if protocol.path is not None else protocol.name


def _config_key(config: Mapping[str, Any] | None) -> str:
    return json.dumps(config, sort_keys=True)


def _config_differences(config: Mapping[str, Any] | None, reference: Mapping[str, Any] | None) -> str:
    config, reference = dict(config or {}), dict(reference or {})

    def shown(d: Mapping[str, Any], k: str) -> str:
        return json.dumps(d[k]) if k in d else "absent"

    fields = [k for k in dict.fromkeys([*reference, *config]) if shown(config, k) != shown(reference, k)]
    return ", ".join(f"{k}={shown(config, k)} (the cell's: {shown(reference, k)})" for k in fields)


def one_config_per_cell(kept: dict[tuple[str, str, int], RunRecord]) -> list[str]:
    """Leave one agent configuration in each cell: a run whose ``agent_config`` differs from the one most of
    its cell's runs share (ties: the lowest seed's) is removed from ``kept``; returns one line per removed run
    naming the fields that differ. Hyperparameters are not mixed in one cell without a word."""
    cells: dict[tuple[str, str], list[RunRecord]] = {}
    for (agent, task, _), run in sorted(kept.items()):
        cells.setdefault((agent, task), []).append(run)
    excluded = []
    for (agent, task), runs in cells.items():
        keys = [_config_key(r.agent_config) for r in runs]
        reference = max(dict.fromkeys(keys), key=keys.count)  # most common; first (lowest seed) on ties
        ref_run = runs[keys.index(reference)]
        same = [r.seed for r, k in zip(runs, keys) if k == reference]
        for run, key in zip(runs, keys):
            if key != reference:
                del kept[(agent, task, run.seed)]
                excluded.append(
                    f"{run.path}: its agent config differs from the cell's ({agent} on {task}, seed(s) "
                    f"{', '.join(map(str, same))}): {_config_differences(run.agent_config, ref_run.agent_config)}; "
                    "a cell holds one configuration, so this run is left out (runs with other hyperparameters "
                    "belong under another out= or another agent name)")
    return excluded


@dataclasses.dataclass
class _Grid:
    """Per (agent, task): the cells and what the tables print next to them."""

    final: dict[tuple[str, str], CellStats] = dataclasses.field(default_factory=dict)
    auc: dict[tuple[str, str], CellStats] = dataclasses.field(default_factory=dict)
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    in_progress: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    wall_hours: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)


def _grid(kept: Mapping[tuple[str, str, int], RunRecord], agents: list[str], protocol: Protocol,
          n_resamples: int, seed: int) -> _Grid:
    grid = _Grid()
    expected_n = len(protocol.seeds)
    for a in agents:
        for t in protocol.tasks:
            done = [kept[(a, t, s)] for s in protocol.seeds if (a, t, s) in kept and kept[(a, t, s)].complete]
            grid.in_progress[(a, t)] = sum(
                1 for s in protocol.seeds if (a, t, s) in kept and not kept[(a, t, s)].complete
            )
            grid.final[(a, t)] = _cell([run_final_return(r, protocol.final_evals) for r in done],
                                       expected_n, protocol.metric, n_resamples, seed)
            grid.auc[(a, t)] = _cell([run_auc(r) for r in done], expected_n, protocol.metric,
                                     n_resamples, seed)
            if done:
                grid.curves[(a, t)] = (done[0].eval_steps, np.stack([r.eval_returns for r in done]))
                walls = [float(r.summary["wall_seconds"]) for r in done
                         if isinstance(r.summary.get("wall_seconds"), (int, float))]
                if walls:
                    grid.wall_hours[(a, t)] = float(np.median(walls)) / 3600.0
    return grid


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
        runs: run records (:func:`vagram_bench.records.scan_runs`).
        protocol: the protocol (or its name/path) the table is for. Only runs recorded under exactly
            this name, version and content hash are used (:func:`select_runs`).
        agents: rows, in order. Default: the protocol's agents, then any other agent with runs.
        n_resamples: bootstrap resamples per CI.
        seed: seed of the bootstrap generator (the tables are deterministic given the records).
        improvement_pairs: the pairs of the per-task probability-of-improvement table, ``"X:Y"`` or
            ``(X, Y)`` (default: :func:`improvement_focus`).

    Raises:
        ImprovementPairsError: a bad pair in ``improvement_pairs`` (checked before any statistic is computed).
    """
    protocol = load_protocol(protocol, check_ids=False) if not isinstance(protocol, Protocol) else protocol
    kept, excluded = select_runs(runs, protocol)
    for line in excluded:
        warnings.warn(line, stacklevel=2)
    if agents is None:
        found = sorted({a for a, _, _ in kept})
        base = list(protocol.agents or ())
        agents = base + [a for a in found if a not in base]
    agents = list(agents)
    focus = improvement_focus(agents, improvement_pairs)
    grid = _grid(kept, agents, protocol, n_resamples, seed)
    final, auc, tasks = grid.final, grid.auc, protocol.tasks
    return Leaderboard(
        protocol=protocol,
        agents=agents,
        final=final,
        auc=auc,
        final_aggregate={a: _normalised_aggregate({t: final[(a, t)] for t in tasks}, protocol, n_resamples, seed)
                         for a in agents},
        auc_aggregate={a: _normalised_aggregate({t: auc[(a, t)] for t in tasks}, protocol, n_resamples, seed)
                       for a in agents},
        final_rank=_mean_ranks(final, agents, tasks),
        auc_rank=_mean_ranks(auc, agents, tasks),
        curves=grid.curves,
        in_progress=grid.in_progress,
        wall_hours=grid.wall_hours,
        excluded=excluded,
        n_resamples=n_resamples,
        seed=seed,
        improvement=_improvement_table(final, agents, tasks, n_resamples, seed),
        improvement_by_task=_improvement_by_task(final, agents, tasks, n_resamples, seed),
        improvement_focus=focus,
        profile=_performance_profile(final, agents, protocol, n_resamples, seed),
        configs={(a, t): r.agent_config for (a, t, _), r in sorted(kept.items()) if a in agents},
        interaction=_interaction(final, grid.curves, agents, protocol, n_resamples, seed),
        aggregate_estimates=_aggregate_estimates(final, agents, protocol, n_resamples, seed),
    )
