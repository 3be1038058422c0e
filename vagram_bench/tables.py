"""The tables of a leaderboard report as text cells (:func:`report_tables`) and the legend under them
(:func:`report_notes`). The Markdown and the HTML page (:mod:`vagram_bench.report`) are both rendered
from these, so they carry the same tables with the same cells.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from vagram_bench.board import CellStats, Leaderboard
from vagram_bench.interaction import SOLVE_FRACTIONS, Estimate, InteractionResult, SolveTimes
from vagram_bench.protocol import Protocol
from vagram_bench.stats import MIN_SEEDS_FOR_CI, range_coverage

__all__ = ["Table", "hyperparameter_tables", "interaction_tables", "report_notes", "report_tables"]


def _fmt(x: float, digits: int) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _p_text(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _degenerate_text(c: CellStats, digits: int) -> str:
    """A zero-width interval printed as what it is, never as ``x [x, x]``, which reads as certainty."""
    if c.values.size > 1 and np.all(c.values == c.values[0]):
        return f"{_fmt(c.point, digits)}, all {c.values.size} equal"
    return f"{_fmt(c.point, digits)}, no spread in the bootstrap"


def _cell_text(c: CellStats, digits: int = 1, in_progress: int = 0) -> str:
    if c.n == 0:
        return f"⚠ missing (0/{c.expected})" + (f", {in_progress} running" if in_progress else "")
    if not c.complete:
        running = f", {in_progress} running" if in_progress else ""
        return f"⚠ incomplete {c.n}/{c.expected}{running} (partial: {_fmt(c.point, digits)})"
    bounds = f"[{_fmt(c.ci_low, digits)}, {_fmt(c.ci_high, digits)}]"
    if c.degenerate:
        return f"{_degenerate_text(c, digits)} (n={c.n})"
    if c.interval == "ci":
        return f"{_fmt(c.point, digits)} {bounds}{'†' if c.few_seeds else ''} (n={c.n})"
    if c.interval == "range":
        return f"{_fmt(c.point, digits)}, range {bounds} (n={c.n})"
    return f"{_fmt(c.point, digits)} (n={c.n})"


def _estimate_text(c: CellStats, digits: int) -> str:
    """An aggregate or a probability: the point and its interval, † when that interval under-covers; a
    complete separation with its exact p-value; a zero-width interval labelled as such."""
    if c.interval == "separation":
        return f"{_fmt(c.point, digits)}, complete separation, p = {_p_text(c.separation_p)}"
    if c.degenerate:
        return _degenerate_text(c, digits) + ("†" if c.few_seeds else "")
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
    collapsed: bool = False
    """Rendered folded (``<details>``), opened by a click: long reference tables such as hyperparameters."""


def _score_table(board: Leaderboard, which: str) -> Table:
    """Rows agents; the headline columns (the normalised aggregate, the mean rank) first, then the tasks."""
    p = board.protocol
    cells = board.final if which == "final" else board.auc
    agg = board.final_aggregate if which == "final" else board.auc_aggregate
    ranks = board.final_rank if which == "final" else board.auc_rank
    label = "IQM" if p.metric == "iqm" else "mean"
    header = ["Agent", f"Normalised {label} (all tasks)", "Mean rank", *p.tasks]
    rows = []
    has_refs = all(t in p.reference_scores for t in p.tasks)
    for a in board.agents:
        g, r = agg[a], ranks[a]
        if g is not None:
            headline = _estimate_text(g, 3)
        elif not has_refs:
            headline = "n/a (no reference scores)"
        else:
            headline = "⚠ incomplete"
        rows.append([a, headline, f"{r:.2f}" if r is not None else "⚠ incomplete grid",
                     *(_cell_text(cells[(a, t)], 1, board.in_progress.get((a, t), 0)) for t in p.tasks)])
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
    """Every table of the report, in order: the interaction tables first when the protocol declares an anchor
    (:func:`interaction_tables`, the primary statistic), then final return, AUC, probability of improvement
    (with two or more complete rows), probability of improvement per task (when some focus pair is complete on
    some task) and run time."""
    tables = [*interaction_tables(board), _score_table(board, "final"), _score_table(board, "auc"),
              _improvement_table_view(board), _improvement_by_task_view(board), _runtime_table(board)]
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
    notes += _interval_notes(board)
    if p.reference_scores:
        refs = ", ".join(f"{t}: {r.random:g} / {r.reference:g}" for t, r in p.reference_scores.items())
        notes.append(f"Reference points (random / reference): {refs}. Source: {p.reference_source}")
    return notes


def _interval_notes(board: Leaderboard) -> list[str]:
    """The legend of the marks a cell's interval can carry: †, complete separation, no spread."""
    aggregates = [c for c in (*board.final_aggregate.values(), *board.auc_aggregate.values()) if c is not None]
    probabilities = [*board.improvement.values(), *board.improvement_by_task.values()]
    scores = [c for c in (*board.final.values(), *board.auc.values()) if c.complete]
    notes = []
    if any(c.few_seeds for c in (*aggregates, *probabilities)):
        notes.append(
            f"† Some task has fewer than {MIN_SEEDS_FOR_CI} seeds: the stratified bootstrap interval is shown, "
            f"as rliable does, but it under-covers (about 83–88% for a nominal 95% with 3 seeds per task and "
            f"2–10 tasks in a simulation with normal scores, and 55–84% for a per-task probability of "
            f"improvement with 3 seeds; docs/protocols.md).")
    if any(c.interval == "separation" for c in probabilities):
        notes.append(
            "Complete separation: every run of X ended above every run of Y (P = 1.00), or below (P = 0.00). "
            "Every bootstrap resample then gives the same P, so its interval would be a single point however few "
            "the runs; instead p is the exact one-sided Mann–Whitney p-value of so complete a separation if the "
            "two agents did not differ, 1 / C(n+m, n) on a task (0.004 with 5 vs 5 runs, 0.167 with 2 vs 2; "
            "scipy.stats.mannwhitneyu, method=\"exact\"), the product of the tasks' p-values over several tasks.")
    if any(c.degenerate for c in (*aggregates, *probabilities, *scores)):
        notes.append(
            "\"all n equal\": every seed (or normalised score) has the same value, so there is no interval to "
            "show; \"no spread in the bootstrap\": the values differ, but every resample gave the same "
            "estimate. Neither is certainty: with few runs the next seed may differ.")
    return notes


def hyperparameter_tables(board: Leaderboard) -> list[Table]:
    """One folded table per row (agent) with runs: its resolved agent configuration (``config.json``'s
    ``agent_config``), one column per group of tasks that share a configuration (per-family defaults, a
    protocol's ``[[agent_overrides]]`` and capacity ids make them differ by task), one row per field."""
    tables = []
    for agent in board.agents:
        groups: dict[str, list[str]] = {}
        configs: dict[str, dict] = {}
        for task in board.protocol.tasks:
            if (agent, task) in board.configs and board.configs[(agent, task)] is not None:
                config = dict(board.configs[(agent, task)])
                key = json.dumps(config, sort_keys=True)
                groups.setdefault(key, []).append(task)
                configs[key] = config
        if not groups:
            continue
        fields = list(dict.fromkeys(f for c in configs.values() for f in c))
        rows = [[field, *(json.dumps(configs[k][field]) if field in configs[k] else "—" for k in groups)]
                for field in fields]
        header = ["Field", *(", ".join(tasks) if len(tasks) < len(board.protocol.tasks) else "all tasks"
                             for tasks in groups.values())]
        tables.append(Table(f"Hyperparameters: {agent}", header, rows, collapsed=True,
                            note=_variant_note(board.protocol, agent)))
    if tables:
        tables[0].note = " ".join(filter(None, (
            "The resolved agent configuration of each row's runs (config.json's agent_config). Every run of a "
            "cell shares one; a run with another is left out and listed under the excluded runs. Columns group "
            "the tasks on which the configuration is the same.", tables[0].note)))
    return tables


def _variant_note(protocol: Protocol, agent: str) -> str:
    """What a ``[[variants]]`` row is: its registered agent, the fields it sets and why (``""``: no variant)."""
    variant = protocol.variant(agent)
    if variant is None:
        return ""
    values = ", ".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in variant.values.items())
    return (f"{agent} is a variant of {variant.agent} defined by protocol {protocol.name} ([[variants]]): "
            f"{values}. Why: {variant.reason}")


# --------------------------------------------------------------------------------------------------
# the interaction (protocols with [[interaction]])


def _steps_text(t: float) -> str:
    return f"{int(t):,}"


def _interval_text(e: Estimate, digits: int = 2) -> str:
    """An interaction estimate: point [95% stratified bootstrap CI] (n), † when it under-covers; a zero-width
    interval said as what it is, never ``[x, x]``."""
    n = f" (n={e.n})"
    if not math.isfinite(e.low):
        return f"{e.point:+.{digits}f}, no interval (fewer than 2 seeds){n}"
    if e.degenerate:
        return f"{e.point:+.{digits}f}, no spread in the bootstrap{n}"
    return f"{e.point:+.{digits}f} [{e.low:+.{digits}f}, {e.high:+.{digits}f}]{'†' if e.few_seeds else ''}{n}"


def _delta_p_text(e: Estimate) -> str:
    """ΔP with the two probabilities it is the difference of; at complete separation in both settings (the
    interval would be a point, e.g. [−1.00, −1.00]) the separations' exact one-sided Mann–Whitney p-values."""
    pa, ps = e.parts
    if e.separation is not None:
        qa, qs = e.separation
        return (f"{e.point:+.2f}: complete separation, exact one-sided Mann–Whitney p = {_p_text(qa)} at the "
                f"anchor (P = {pa:.2f}) and p = {_p_text(qs)} in the setting (P = {ps:.2f}) (n={e.n})")
    return f"{_interval_text(e)}; P {pa:.2f} → {ps:.2f}"


def _interaction_pair_table(board: Leaderboard, result: InteractionResult, which: str) -> Table | None:
    """Rows the settings, columns the pairs: ΔP (``which="delta_p"``) or the difference of drops."""
    cells = result.delta_p if which == "delta_p" else result.drop_difference
    pairs = [(v, x) for v, x in result.pairs if any((v, x, s) in cells for s in result.spec.settings)]
    if not pairs:
        return None
    fmt = _delta_p_text if which == "delta_p" else _interval_text
    rows = [[s] + [fmt(cells[(v, x, s)]) if (v, x, s) in cells else "⚠ incomplete" for v, x in pairs]
            for s in result.spec.settings]
    anchor = result.spec.anchor
    if which == "delta_p":
        return Table(f"Interaction: change of P(VaGraM > X) from the anchor {anchor}",
                     ["Setting", *(f"ΔP({v} > {x})" for v, x in pairs)], rows,
                     "ΔP = P_setting(V > X) − P_anchor(V > X), each P the probability that a run of V ends with a "
                     "higher final return than a run of X on that task (Mann–Whitney U / (n·m), ties count ½); "
                     "[95% stratified bootstrap CI: the seeds of the four agent × task cells resampled "
                     "independently]; then P at the anchor → P in the setting. Negative: V's advantage over X "
                     "shrinks from the anchor to the setting; positive: it grows (the paper's claim, MLE losing "
                     "where VaGraM holds, reads as ΔP > 0 with an interval above 0). When both settings are "
                     "completely separated every resample gives the same ΔP, so the table gives the two "
                     "separations' exact one-sided Mann–Whitney p-values (1 / C(n+m, n) each) instead of an "
                     "interval. Cells need all four cells complete.")
    return Table(f"Interaction: difference of drops from the anchor {anchor} (normalised return)",
                 ["Setting", *(f"drop({x}) − drop({v})" for v, x in pairs)], rows,
                 "drop(X) − drop(V): how much more normalised return X loses than V from the anchor to the setting "
                 f"(each drop the {_metric_label(board)} over seeds at the anchor minus that in the setting); "
                 "[95% stratified bootstrap CI over the four cells' seeds]. Positive: X drops more than V.")


def _metric_label(board: Leaderboard) -> str:
    return "IQM" if board.protocol.metric == "iqm" else "mean"


def _drop_table(board: Leaderboard, result: InteractionResult) -> Table | None:
    agents = [a for a in board.agents if any((a, s) in result.drop for s in result.spec.settings)]
    if not agents:
        return None
    rows = [[s] + [_interval_text(result.drop[(a, s)]) if (a, s) in result.drop else "⚠ incomplete"
                   for a in agents] for s in result.spec.settings]
    label = _metric_label(board)
    return Table(f"Interaction: drop of normalised return from the anchor {result.spec.anchor}",
                 ["Setting", *agents], rows,
                 f"Drop = {label} of the normalised final return at the anchor − {label} in the setting "
                 "(normalised = (return − random) / (reference − random), the aggregate column's scores); "
                 "[95% stratified bootstrap CI: the anchor's and the setting's seeds resampled independently]. "
                 "Positive: the agent loses return in the setting; 0: it holds.")


def _solve_cell(st: SolveTimes, k: int) -> str:
    by = int(np.sum(st.solved & (st.times <= st.budgets[k])))
    return f"{st.fraction[k]:.2f} ({by}/{st.solved.size} by {_steps_text(st.budgets[k])})"


def _time_to_solve_table(board: Leaderboard, result: InteractionResult) -> Table | None:
    if not result.solve:
        return None
    rows = []
    for t in (result.spec.anchor, *result.spec.settings):
        for a in board.agents:
            st = result.solve.get((a, t))
            if st is None:
                rows.append([t, a, "⚠ incomplete", *([""] * len(SOLVE_FRACTIONS))])
                continue
            median = "not reached" if st.median is None else _steps_text(st.median)
            rows.append([t, a, median, *(_solve_cell(st, k) for k in range(len(SOLVE_FRACTIONS)))])
    quarters = {0.25: "¼", 0.5: "½", 0.75: "¾", 1.0: "all"}
    threshold = result.spec.solved_threshold
    return Table(f"Time to solve (first evaluation with a return ≥ {threshold:g})",
                 ["Task", "Agent", "Kaplan–Meier median (env steps)",
                  *(f"solved by {quarters.get(q, q)} of the budget" for q in SOLVE_FRACTIONS)], rows,
                 f"A run is solved at its first evaluation with a return ≥ {threshold:g}; a run that never gets "
                 "there is right-censored at its last evaluation. Median: the Kaplan–Meier median time to solve, "
                 "the first eval step at which the estimated fraction not yet solved falls to ½ or below; \"not "
                 "reached\" when fewer than half the runs solve (no number exists then). Solved by: the "
                 "Kaplan–Meier fraction of runs solved by that eval step (with every run censored at the same "
                 "last evaluation it equals the count shown).")


def interaction_tables(board: Leaderboard) -> list[Table]:
    """Per ``[[interaction]]`` entry: ΔP, the drops, the difference of drops and the time to solve (tables with
    no complete cell are left out)."""
    tables = []
    for result in board.interaction:
        tables += [_interaction_pair_table(board, result, "delta_p"), _drop_table(board, result),
                   _interaction_pair_table(board, result, "difference"), _time_to_solve_table(board, result)]
    return [t for t in tables if t is not None]
