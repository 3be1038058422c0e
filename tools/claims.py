"""The preregistered claims of `cpu2` (docs/cpu2.md), read off a published leaderboard.csv.

For each claim and agent family: the primary statistic, the difference of drops ``drop(MLE) − drop(VaGraM)``
of the normalised final return from the anchor to the claim's setting, with its 95 % stratified bootstrap
interval (the leaderboard's ``interaction_drop_difference`` row), the number of anchor runs of each agent
that reached the solved threshold (its ``time_to_solve`` row at the full budget), and the verdict of
:func:`vagram_bench.interaction.claim_verdict`, with each agent's own drop and ΔP(VaGraM > MLE) beside it.
One line per claim, the line the README quotes (``tests/test_results.py`` regenerates the lines from the
committed CSV and checks that the README holds them). With ``--table``, also the README's table of the grid:
each agent's final return on every task (IQM over seeds [95 % interval]) and the difference of drops
``drop(MLE) − drop(VaGraM)`` from the anchor to every setting, the primary settings' and the rest
(secondary, uncorrected)::

    python tools/claims.py results/cpu2_svg
    python tools/claims.py --table results/cpu2

With ``--solve``, also docs/results.md's table of the time to solve (runs solved within the budget, Kaplan–Meier
median), the reading a step-shaped return needs.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path

from vagram_bench.board import run_final_return
from vagram_bench.interaction import Estimate, claim_verdict
from vagram_bench.protocol import load_protocol
from vagram_bench.records import load_run

#: (claim, family, VaGraM agent, MLE agent, setting), fixed by docs/cpu2.md before the grid ran.
PRIMARY_CLAIMS = (
    ("C1 distraction", "MBPO", "mbpo_vagram", "mbpo_mle", "InvertedPendulumDistract-20-v0"),
    ("C2 capacity", "MBPO", "mbpo_vagram", "mbpo_mle", "InvertedPendulumCapacity-2x8-v0"),
    ("C1 distraction", "SVG", "svg_vagram", "svg_mle", "InvertedPendulumDistract-20-v0"),
    ("C2 capacity", "SVG", "svg_vagram", "svg_mle", "InvertedPendulumCapacity-2x8-v0"),
)
ANCHOR = "InvertedPendulumDistract-0-v0"
#: Anchor runs of each agent that must reach the solved threshold for a claim to be measurable (of 8).
MIN_SOLVED = 5


def _rows(published: Path) -> list[dict[str, str]]:
    with (published / "leaderboard.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _solved(rows: list[dict[str, str]], agent: str, task: str) -> tuple[int, int] | None:
    """(runs solved by the full budget, runs) of ``agent`` on ``task``; ``None`` without its rows (the
    leaderboard writes the time to solve of complete cells only)."""
    budget_rows = [r for r in rows if r["table"] == "time_to_solve" and r["agent"] == agent and r["task"] == task
                   and r["statistic"].startswith("km_fraction_solved_by_")]
    if not budget_rows:
        return None
    last = max(budget_rows, key=lambda r: int(r["statistic"].rsplit("_", 1)[1]))
    n = int(last["n_seeds"])
    # every run of a complete cell is censored at the same last evaluation, so the Kaplan-Meier fraction
    # solved by the full budget is the count over n
    return round(float(last["point"]) * n), n


def _row(rows: list[dict[str, str]], table: str, agent: str, task: str, statistic: str) -> dict[str, str] | None:
    found = [r for r in rows if (r["table"], r["agent"], r["task"], r["statistic"]) == (table, agent, task, statistic)]
    return found[0] if found else None


def _estimate(row: dict[str, str]) -> Estimate:
    low = float(row["ci_low"]) if row["ci_low"] else math.nan
    high = float(row["ci_high"]) if row["ci_high"] else math.nan
    return Estimate(float(row["point"]), low, high, int(row["n_seeds"]))


def _text(row: dict[str, str] | None) -> str:
    """``+0.79 [+0.76, +0.82]``; a ΔP at complete separation in both settings with its two exact p-values; a
    zero-width interval said as what it is (the leaderboard's wording), never ``[+x, +x]``."""
    if row is None:
        return "n/a"
    if row["interval"] == "separation":
        p_anchor, p_setting = (float(q) for q in row["p_value"].split(";"))
        return (f"{float(row['point']):+.2f} (complete separation at the anchor and in the setting, exact "
                f"one-sided Mann–Whitney p = {p_anchor:.3f} and {p_setting:.3f})")
    e = _estimate(row)
    if not math.isfinite(e.low):
        return f"{e.point:+.2f} (no interval)"
    if e.degenerate:  # e.g. every anchor run at 1,000 and every run of the setting separated
        return f"{e.point:+.2f} (no spread in the bootstrap)"
    return f"{e.point:+.2f} [{e.low:+.2f}, {e.high:+.2f}]"


def claim_lines(published: Path) -> list[str]:
    """The README line of every primary claim whose family ``published`` holds: the primary statistic with
    its interval, each agent's own drop (a "supported" verdict says MLE loses more than VaGraM, not that
    VaGraM loses nothing: its drop says that), ΔP(VaGraM > MLE) (reported with it, issue 24), the anchor's
    solve counts and the verdict."""
    rows = _rows(published)
    lines = []
    for claim, family, vagram, mle, setting in PRIMARY_CLAIMS:
        solved = [_solved(rows, a, ANCHOR) for a in (vagram, mle)]
        if None in solved:
            continue  # another family's publication
        (vs, nv), (ms, nm) = solved
        head = f"{claim}, {family} (anchor → {setting})"
        anchors = f"anchor solved by {vs}/{nv} ({vagram}) and {ms}/{nm} ({mle})"
        diff = _row(rows, "interaction_drop_difference", vagram, setting, f"drop({mle})-drop({vagram})")
        if diff is None:  # the setting was not run (docs/cpu2.md "Run order")
            verdict = "not measurable" if min(vs, ms) < MIN_SOLVED else "not measured at this budget"
            lines.append(f"{head}: setting not run; {anchors}: **{verdict}**")
            continue
        metric = next(r["statistic"] for r in rows if r["table"] == "interaction_drop")
        drops = "; ".join(f"drop({a}) = {_text(_row(rows, 'interaction_drop', a, setting, metric))}"
                          for a in (vagram, mle))
        delta_p = _text(_row(rows, "interaction_delta_p", vagram, setting, f"dP({vagram}>{mle})"))
        verdict = claim_verdict(_estimate(diff), (vs, ms), max(nv, nm), min_solved=MIN_SOLVED)
        lines.append(f"{head}: drop({mle}) − drop({vagram}) = {_text(diff)}; {drops}; "
                     f"ΔP({vagram} > {mle}) = {delta_p}; {anchors}: **{verdict}**")
    return lines


def _setting(task: str) -> str:
    """A column head: ``d=20`` for a distraction id, ``2×8 model`` for a capacity id, else the id."""
    if m := re.fullmatch(r"\w+Distract-(\d+)-v\d+", task):
        return f"d={m[1]}" + (" (anchor)" if task == ANCHOR else "")
    if m := re.fullmatch(r"\w+Capacity-(\d+)x(\d+)-v\d+", task):
        return f"{m[1]}×{m[2]} model"
    return task


def _final_evals(published: Path) -> int:
    """How many last evaluations make a run's final return under the publication's protocol (checked by
    its content hash, so that a protocol file changed since cannot be read for it)."""
    meta = json.loads((published / "publish.json").read_text())["protocol"]
    protocol = load_protocol(meta["name"])
    if protocol.content_hash != meta["hash"]:
        raise ValueError(f"{published}: protocol {meta['name']!r} has changed since it was published")
    return protocol.final_evals


def _all_equal(published: Path, agent: str, task: str) -> bool:
    """Whether every run of the cell ends with the same final return (read from the publication's records
    with the leaderboard's own scoring), which a zero-width interval cannot tell from a bootstrap without
    spread."""
    k = _final_evals(published)
    finals = {run_final_return(load_run(d), k) for d in (published / "runs" / task / agent).glob("seed*")}
    return len(finals) == 1


def _incomplete(row: dict[str, str]) -> str | None:
    """``not run`` for a cell without runs, ``⚠ incomplete (n/N)`` for one with fewer seeds than the
    protocol's; ``None`` for a complete cell."""
    n, expected = int(row["n_seeds"]), int(row["n_expected"])
    if n == 0:
        return "not run"
    return f"⚠ incomplete ({n}/{expected})" if n < expected else None


def table_lines(published: Path) -> list[str]:
    """The README's Markdown table of a published ``cpu2`` half: one row per agent with its final return on
    every task (IQM [95 % interval]; a zero-width interval as what it is, "all n equal" or "no spread in the
    bootstrap", as the leaderboard says it; ``not run`` for a cell without runs, ``⚠ incomplete (n/N)`` for
    one short of seeds), then the difference of drops of its family's primary pair on every setting (the
    anchor's cell is ``—``)."""
    rows = _rows(published)
    final = {(r["agent"], r["task"]): r for r in rows if (r["table"], r["statistic"]) == ("final", "iqm")}
    agents = list(dict.fromkeys(a for a, _ in final))
    tasks = list(dict.fromkeys(t for _, t in final))
    if ANCHOR not in tasks:
        raise ValueError(f"{published}: no final returns on the anchor {ANCHOR}")

    def ret(agent: str, task: str) -> str:
        row = final[agent, task]
        if missing := _incomplete(row):
            return missing
        point, low, high = (float(row[k]) for k in ("point", "ci_low", "ci_high"))
        if not (math.isfinite(low) and math.isfinite(high)):  # a protocol of one seed
            return f"{point:,.0f} (no interval, n={row['n_seeds']})"
        if low == high:  # never "1,000 [1,000, 1,000]", which reads as certainty
            if _all_equal(published, agent, task):
                return f"{point:,.0f}, all {row['n_seeds']} equal"
            return f"{point:,.0f}, no spread in the bootstrap"
        return f"{point:,.0f} [{low:,.0f}, {high:,.0f}]"

    seeds = max(int(r["n_expected"]) for r in final.values())
    lines = [f"| final return, IQM [95% CI], {seeds} seeds | " + " | ".join(_setting(t) for t in tasks) + " |",
             "|---|" + "---:|" * len(tasks)]
    lines += [f"| `{a}` | " + " | ".join(ret(a, t) for t in tasks) + " |" for a in agents]
    for _, _, vagram, mle, _ in PRIMARY_CLAIMS:
        if vagram in agents and mle in agents:
            cells = ["—" if t == ANCHOR else _text(_row(rows, "interaction_drop_difference", vagram, t,
                                                         f"drop({mle})-drop({vagram})")) for t in tasks]
            lines.append(f"| drop(`{mle}`) − drop(`{vagram}`) | " + " | ".join(cells) + " |")
            break
    return lines


def solve_lines(published: Path) -> list[str]:
    """docs/results.md's Markdown table of a published ``cpu2`` half's time to solve: for every agent and task,
    the runs that reached the solved threshold within the budget (their ``time_to_solve`` row at the full
    budget: every run of a complete cell is censored at the same last evaluation, so the Kaplan–Meier fraction
    is the count over n) and, where half of them or more did, the Kaplan–Meier median env step; ``not run``
    for a cell without runs, ``⚠ incomplete (n/N)`` for one short of seeds (the leaderboard has no time to
    solve for it). A step-shaped return reads better this way than as an IQM: "learns later" and "never
    learns" are told apart within the budget."""
    rows = _rows(published)
    final = {(r["agent"], r["task"]): r for r in rows if (r["table"], r["statistic"]) == ("final", "iqm")}
    agents = list(dict.fromkeys(a for a, _ in final))
    tasks = list(dict.fromkeys(t for _, t in final))

    def cell(agent: str, task: str) -> str:
        if missing := _incomplete(final[agent, task]):
            return missing
        solved, n = _solved(rows, agent, task)
        median = float(_row(rows, "time_to_solve", agent, task, "km_median_steps")["point"])
        return f"{solved}/{n}" + (f" ({median:,.0f})" if math.isfinite(median) else "")

    lines = ["| runs solved within the budget (Kaplan–Meier median env steps) | "
             + " | ".join(_setting(t) for t in tasks) + " |", "|---|" + "---:|" * len(tasks)]
    lines += [f"| `{a}` | " + " | ".join(cell(a, t) for t in tasks) + " |" for a in agents]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    table, solve = "--table" in args, "--solve" in args
    args = [a for a in args if a not in ("--table", "--solve")]
    if not args:
        print("usage: python tools/claims.py [--table] [--solve] PUBLISHED_DIR [...]", file=sys.stderr)
        return 2
    for published in args:
        if not (Path(published) / "leaderboard.csv").is_file():
            print(f"error: {published}: no leaderboard.csv (a published directory, e.g. results/cpu2)", file=sys.stderr)
            return 2
        print("\n".join(claim_lines(Path(published))))
        if table:
            print("\n" + "\n".join(table_lines(Path(published))))
        if solve:
            print("\n" + "\n".join(solve_lines(Path(published))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
