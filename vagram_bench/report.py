"""The documents of a leaderboard: ``leaderboard.md``, ``leaderboard.csv``, ``report.html`` and the figures
(:func:`write_leaderboard`). The tables come from :func:`vagram_bench.tables.report_tables`, the figures
from :mod:`vagram_bench.figures`; the documents carry no timestamps and no paths, so the same records give
the same bytes."""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from vagram_bench.board import CellStats, Leaderboard
from vagram_bench.figures import (FIGURES, plot_aggregate_intervals, plot_curves, plot_improvement,
                                  plot_performance_profile)
from vagram_bench.interaction import Estimate
from vagram_bench.tables import Table, hyperparameter_tables, report_notes, report_tables

__all__ = ["to_html", "to_markdown", "write_csv", "write_leaderboard"]


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _markdown_table(table: Table) -> list[str]:
    """A table under its heading, or folded in ``<details>`` (GitHub renders it) when ``collapsed``."""
    lines = [f"<details><summary>{html.escape(table.title)}</summary>" if table.collapsed
             else f"### {table.title}", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in table.header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in table.rows]
    lines.append("")
    if table.note:
        lines += [table.note, ""]
    if table.collapsed:
        lines += ["</details>", ""]
    return lines


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
        lines += _markdown_table(table)
    for note in report_notes(board):
        lines += [note, ""]
    for table in hyperparameter_tables(board):
        lines += _markdown_table(table)
    for key, path in (figures or {}).items():
        lines += [f"![{FIGURES[key][1]}]({Path(path).name})", ""]
    if board.excluded:
        lines += ["Excluded runs:", ""] + [f"- {_md_escape(e)}" for e in board.excluded] + [""]
    return "\n".join(lines)


_KINDS = {"ci": "ci95", "range": "range", "none": "", "separation": "separation"}


def _estimate_row(c: CellStats, complete: bool) -> list[Any]:
    """``point, ci_low, ci_high, n_seeds, n_expected, complete, interval, p_value`` of one cell."""
    if c.interval == "separation":  # no interval: the separation's p-value instead
        return [repr(c.point), "", "", c.n, c.expected, complete, _KINDS[c.interval], repr(c.separation_p)]
    return [repr(c.point), repr(c.ci_low), repr(c.ci_high), c.n, c.expected, complete, _KINDS[c.interval], ""]


def _score_rows(board: Leaderboard, which: str) -> Iterable[list[Any]]:
    p = board.protocol
    cells = board.final if which == "final" else board.auc
    agg = board.final_aggregate if which == "final" else board.auc_aggregate
    ranks = board.final_rank if which == "final" else board.auc_rank
    for a in board.agents:
        for t in p.tasks:
            c = cells[(a, t)]
            yield [which, a, t, p.metric, *_estimate_row(c, c.complete)]
        g = agg[a]
        if g is not None:
            yield [which, a, "aggregate", f"normalised_{p.metric}", *_estimate_row(g, True)]
        else:
            yield [which, a, "aggregate", f"normalised_{p.metric}", "nan", "nan", "nan", "", "", False, "", ""]
        r = ranks[a]
        yield [which, a, "mean_rank", "rank", repr(r) if r is not None else "nan", "", "", "", "", r is not None,
               "", ""]


def _estimate_cells(e: Estimate) -> list[Any]:
    """``point, ci_low, ci_high, n_seeds, n_expected, complete, interval, p_value`` of an interaction estimate; a
    ΔP at complete separation in both settings has no interval and both exact p-values, ``anchor;setting``."""
    if e.separation is not None:
        return [repr(e.point), "", "", e.n, e.n, True, "separation", ";".join(repr(q) for q in e.separation)]
    kind = "ci95" if math.isfinite(e.low) else ""
    return [repr(e.point), repr(e.low), repr(e.high), e.n, e.n, True, kind, ""]


def _interaction_rows(board: Leaderboard) -> Iterable[list[Any]]:
    """The interaction tables in long form (none for a protocol without ``[[interaction]]``)."""
    for r in board.interaction:
        for (v, x, s), e in r.delta_p.items():
            yield ["interaction_delta_p", v, s, f"dP({v}>{x})", *_estimate_cells(e)]
        for (a, s), e in r.drop.items():
            yield ["interaction_drop", a, s, f"drop_normalised_{board.protocol.metric}", *_estimate_cells(e)]
        for (v, x, s), e in r.drop_difference.items():
            yield ["interaction_drop_difference", v, s, f"drop({x})-drop({v})", *_estimate_cells(e)]
        for (a, t), st in r.solve.items():
            median = "inf" if st.median is None else repr(st.median)  # inf: not reached
            yield ["time_to_solve", a, t, "km_median_steps", median, "", "", st.solved.size, st.solved.size, True,
                   "", ""]
            for b, f in zip(st.budgets, st.fraction):
                yield ["time_to_solve", a, t, f"km_fraction_solved_by_{b}", repr(float(f)), "", "", st.solved.size,
                       st.solved.size, True, "", ""]


def write_csv(board: Leaderboard, path: Path) -> None:
    """Long-form CSV: one row per (table, agent, column). ``interval`` says what ``ci_low, ci_high`` are:
    ``ci95`` (bootstrap), ``range`` (min, max of fewer than MIN_SEEDS_FOR_CI seeds), ``separation`` (a
    probability of improvement at complete separation: no interval, ``p_value`` holds the exact one-sided
    Mann–Whitney p-value) or empty. ``table=improvement`` rows hold P(agent > the agent in ``task``) over all
    tasks; ``table=improvement_task`` rows hold P(agent > Y) on ``task``, with Y in ``statistic``
    (``P(X>Y-name)``). A protocol with ``[[interaction]]`` adds ``interaction_delta_p`` (agent V, task the setting,
    ``dP(V>X)``), ``interaction_drop`` (agent, setting), ``interaction_drop_difference`` (V, setting,
    ``drop(X)-drop(V)``) and ``time_to_solve`` rows (``km_median_steps``, ``inf`` when not reached;
    ``km_fraction_solved_by_<step>``)."""
    p = board.protocol
    head = [p.name, p.version, p.content_hash]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["protocol", "version", "hash", "table", "agent", "task", "statistic", "point", "ci_low",
                    "ci_high", "n_seeds", "n_expected", "complete", "interval", "p_value"])
        for which in ("final", "auc"):
            w.writerows([*head, *row] for row in _score_rows(board, which))
        for (x, y), c in board.improvement.items():
            # ``task`` holds the opponent: the row reads "P(agent > task)"
            w.writerow([*head, "improvement", x, y, "P(X>Y)", *_estimate_row(c, True)])
        for (x, y, t), c in board.improvement_by_task.items():
            # one task: ``statistic`` names the opponent, the row reads "P(agent > Y) on task"
            w.writerow([*head, "improvement_task", x, t, f"P(X>{y})", *_estimate_row(c, True)])
        w.writerows([*head, *row] for row in _interaction_rows(board))
        for a in board.agents:
            for t in p.tasks:
                c = board.final[(a, t)]
                hours = board.wall_hours.get((a, t), math.nan)
                w.writerow([*head, "wall_hours", a, t, "median", repr(hours), "", "", c.n, c.expected,
                            c.complete, "", ""])


_CSS = (
    # No page width cap and cells that wrap (long task ids too): the score tables fit the window, and their
    # headline columns come first, so they are in view even where a table still scrolls.
    "body{font-family:system-ui,sans-serif;margin:2em 1.5em;color:#222;background:#fff;line-height:1.45}"
    "table{border-collapse:collapse;margin:0.6em 0}"
    "th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}th{overflow-wrap:anywhere}"
    "th:first-child,td:first-child{text-align:left;white-space:nowrap}th{background:#eef}"
    "td.warn{background:#fff3cd}p.note{color:#444;font-size:0.92em;max-width:70em}"
    "img{max-width:100%;margin:0.5em 0}.scroll{overflow-x:auto}details{margin:0.6em 0}"
    "summary{cursor:pointer;font-weight:600}"
)


def _html_table(table: Table) -> list[str]:
    """A table under its heading, or folded in ``<details>`` when ``collapsed``."""
    esc = html.escape
    parts = [f"<details><summary>{esc(table.title)}</summary>" if table.collapsed else f"<h2>{esc(table.title)}</h2>",
             "<div class='scroll'><table><tr>"]
    parts += [f"<th>{esc(h)}</th>" for h in table.header]
    parts.append("</tr>")
    for row in table.rows:
        parts.append("<tr>" + "".join(
            f"<td class='warn'>{esc(c)}</td>" if "⚠" in c else f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</table></div>")
    if table.note:
        parts.append(f"<p class='note'>{esc(table.note)}</p>")
    if table.collapsed:
        parts.append("</details>")
    return parts


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
        parts += _html_table(table)
    parts += [f"<p class='note'>{esc(note)}</p>" for note in report_notes(board)]
    for table in hyperparameter_tables(board):
        parts += _html_table(table)
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
    protocol has reference scores and some row is complete), for a protocol with ``[[interaction]]``
    ``aggregate_intervals.png`` and ``probability_of_improvement.png`` (when they have something to show), and
    ``report.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv",
             "html": out / "report.html"}
    figures = {"curves": plot_curves(board, out / FIGURES["curves"][0], per_seed=per_seed_curves)}
    profile = plot_performance_profile(board, out / FIGURES["profile"][0])
    if profile is not None:
        figures["profile"] = profile
    if board.interaction:  # a protocol with an anchor: rliable's aggregate plot and P(improvement) per setting
        for key, plot in (("aggregates", plot_aggregate_intervals), ("improvement", plot_improvement)):
            written = plot(board, out / FIGURES[key][0])
            if written is not None:
                figures[key] = written
    files["markdown"].write_text(to_markdown(board, figures), encoding="utf-8")
    write_csv(board, files["csv"])
    files["html"].write_text(to_html(board, figures), encoding="utf-8")
    files.update({f"png:{key}": path for key, path in figures.items()})
    return files
