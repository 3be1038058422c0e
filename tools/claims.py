"""The preregistered claims of `cpu2` (docs/cpu2.md), read off a published leaderboard.csv.

For each claim and agent family: the primary statistic, the difference of drops ``drop(MLE) − drop(VaGraM)``
of the normalised final return from the anchor to the claim's setting, with its 95 % stratified bootstrap
interval (the leaderboard's ``interaction_drop_difference`` row), the number of anchor runs of each agent
that reached the solved threshold (its ``time_to_solve`` row at the full budget), and the verdict of
:func:`vagram_bench.interaction.claim_verdict`. One line per claim, the line the README quotes;
``tests/test_results.py`` regenerates the lines from the committed CSV and checks that the README holds
them::

    python tools/claims.py results/cpu2 results/cpu2_svg
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from vagram_bench.interaction import Estimate, claim_verdict

#: (claim, family, VaGraM agent, MLE agent, setting), fixed by docs/cpu2.md before the grid ran.
PRIMARY_CLAIMS = (
    ("C1 distraction", "MBPO", "mbpo_vagram", "mbpo_mle", "InvertedPendulumDistract-20-v0"),
    ("C2 capacity", "MBPO", "mbpo_vagram", "mbpo_mle", "InvertedPendulumCapacity-2x8-v0"),
    ("C1 distraction", "SVG", "svg_vagram", "svg_mle", "InvertedPendulumDistract-20-v0"),
    ("C2 capacity", "SVG", "svg_vagram", "svg_mle", "InvertedPendulumCapacity-2x8-v0"),
)
ANCHOR = "InvertedPendulumDistract-0-v0"


def _rows(published: Path) -> list[dict[str, str]]:
    with (published / "leaderboard.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _anchor_solved(rows: list[dict[str, str]], agent: str) -> tuple[int, int] | None:
    """(runs solved by the full budget, runs) of ``agent`` at the anchor; ``None`` without the row."""
    budget_rows = [r for r in rows if r["table"] == "time_to_solve" and r["agent"] == agent and r["task"] == ANCHOR
                   and r["statistic"].startswith("km_fraction_solved_by_")]
    if not budget_rows:
        return None
    last = max(budget_rows, key=lambda r: int(r["statistic"].rsplit("_", 1)[1]))
    n = int(last["n_seeds"])
    # every run of a complete cell is censored at the same last evaluation, so the Kaplan-Meier fraction
    # solved by the full budget is the count over n
    return round(float(last["point"]) * n), n


def claim_lines(published: Path) -> list[str]:
    """The README line of every primary claim whose family ``published`` holds."""
    rows = _rows(published)
    lines = []
    for claim, family, vagram, mle, setting in PRIMARY_CLAIMS:
        solved = [_anchor_solved(rows, a) for a in (vagram, mle)]
        if None in solved:
            continue  # another family's publication
        diff = [r for r in rows if r["table"] == "interaction_drop_difference" and r["agent"] == vagram
                and r["task"] == setting and r["statistic"] == f"drop({mle})-drop({vagram})"]
        (vs, n), (ms, _) = solved
        head = f"{claim}, {family}: drop({mle}) − drop({vagram}) from d=0 to {setting}"
        anchors = f"anchor solved by {vs}/{n} ({vagram}) and {ms}/{n} ({mle})"
        if not diff:
            lines.append(f"{head}: not measured at this budget (cell not run); {anchors}")
            continue
        d = diff[0]
        low = float(d["ci_low"]) if d["ci_low"] else math.nan
        high = float(d["ci_high"]) if d["ci_high"] else math.nan
        estimate = Estimate(float(d["point"]), low, high, int(d["n_seeds"]))
        interval = f"[{low:+.2f}, {high:+.2f}]" if math.isfinite(low) else "(no interval)"
        verdict = claim_verdict(estimate, (vs, ms), n)
        lines.append(f"{head} = {estimate.point:+.2f} {interval}; {anchors}: **{verdict}**")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python tools/claims.py PUBLISHED_DIR [...]", file=sys.stderr)
        return 2
    for published in args:
        if not (Path(published) / "leaderboard.csv").is_file():
            print(f"error: {published}: no leaderboard.csv (a published directory, e.g. results/cpu2)", file=sys.stderr)
            return 2
        print("\n".join(claim_lines(Path(published))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
