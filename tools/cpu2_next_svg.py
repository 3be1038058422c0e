"""Rules (a) and (b) of docs/cpu2.md "Run order", step 4: may the next SVG setting of `cpu2-svg` run?

(a) the SVG anchor is measurable: at least 5 of the 8 anchor runs of `svg_mle` and of `svg_vagram` reached
    the solved threshold (950) at some evaluation (both anchor cells complete);
(b) the CPU time used so far (tools/grid_cost.py over both halves' run directories) plus the measured cost
    of the two SVG anchor cells (the estimate of the next setting's two cells) is at most 30 CPU-hours.

Prints the facts, the decision and, when both hold, the sweep command of the next setting (d=20 first,
then 2x8); the exit status is 0 when it may run, 1 when not, 2 on bad input::

    python tools/cpu2_next_svg.py runs/cpu2 runs/cpu2-svg
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from vagram_bench.protocol import load_protocol
from vagram_bench.records import scan_runs

ANCHOR = "InvertedPendulumDistract-0-v0"
SETTINGS = ("InvertedPendulumDistract-20-v0", "InvertedPendulumCapacity-2x8-v0")
AGENTS = ("svg_mle", "svg_vagram")
THRESHOLD, MIN_SOLVED, LIMIT_S = 950.0, 5, 30 * 3600.0


def _grid_cost():
    spec = importlib.util.spec_from_file_location("grid_cost", Path(__file__).with_name("grid_cost.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decide(mbpo_runs: str, svg_runs: str) -> tuple[bool, list[str]]:
    """(may the next SVG setting run, the lines that say why)."""
    protocol = load_protocol("cpu2-svg")
    runs = [r for r in scan_runs(svg_runs) if protocol.matches_record(r.protocol)]
    lines, ok, waiting = [], True, False
    for agent in AGENTS:
        anchor = [r for r in runs if r.agent == agent and r.env == ANCHOR and r.complete]
        solved = sum(bool((r.eval_returns >= THRESHOLD).any()) for r in anchor)
        measurable = len(anchor) == len(protocol.seeds) and solved >= MIN_SOLVED
        ok &= measurable
        waiting |= len(anchor) < len(protocol.seeds)
        lines.append(f"(a) {agent} on the anchor: {len(anchor)}/{len(protocol.seeds)} runs complete, {solved} "
                     f"reached {THRESHOLD:g}: {'measurable' if measurable else 'NOT measurable'}")
    cells, unknown = _grid_cost().measured([mbpo_runs, svg_runs])
    used = sum(cells.values())
    next_cost = sum(cells.get((a, ANCHOR), 0.0) for a in AGENTS)
    fits = not unknown and used + next_cost <= LIMIT_S
    ok &= fits
    lines.append(f"(b) CPU time so far {used / 3600:.2f} h + next setting (the SVG anchor cells' cost) "
                 f"{next_cost / 3600:.2f} h = {(used + next_cost) / 3600:.2f} h of {LIMIT_S / 3600:.0f} h: "
                 + ("fits" if fits else "does NOT fit" + (f" ({len(unknown)} runs without a CPU record)" if unknown else "")))
    done = {r.env for r in runs if r.complete}
    pending = [s for s in SETTINGS if s not in done]
    if waiting:
        lines.append("wait: the SVG anchor cells are not complete yet")
        ok = False
    elif ok and pending:
        lines.append(f"run: python -m vagram_bench.sweep protocol=cpu2-svg tasks={pending[0]} out={svg_runs} "
                     "local.workers=1")
    elif not pending:
        lines.append("every SVG setting has complete runs")
        ok = False
    else:
        lines.append("do not run further SVG settings; publish them as not run (docs/cpu2.md)")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not all(Path(a).is_dir() for a in args):
        print("usage: python tools/cpu2_next_svg.py MBPO_RUNS_DIR SVG_RUNS_DIR (two existing directories)",
              file=sys.stderr)
        return 2
    ok, lines = decide(*args)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
