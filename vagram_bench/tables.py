"""The tables of a leaderboard report as text cells (:func:`report_tables`) and the legend under them
(:func:`report_notes`). The Markdown and the HTML page (:mod:`vagram_bench.report`) are both rendered
from these, so they carry the same tables with the same cells.
"""

from __future__ import annotations

import dataclasses
import math

from vagram_bench.board import CellStats, Leaderboard
from vagram_bench.stats import MIN_SEEDS_FOR_CI, range_coverage

__all__ = ["Table", "report_notes", "report_tables"]


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
