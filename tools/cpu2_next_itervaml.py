"""Rule (c) of docs/cpu2.md "Amendments" (2026-12-07, on cost): may `mbpo_itervaml` run on the 2x8 model?

It runs only if the CPU time used so far (tools/grid_cost.py over both halves' run directories), plus the
projected rest of every unfinished cell (its CPU time so far x (budget / env steps evaluated - 1)), plus the
measured cost of the complete `mbpo_itervaml` anchor cell (the estimate of the 2x8 cell), is at most 30
CPU-hours. The rule reads costs only, never returns. Prints the facts and the decision and, when it may run,
the sweep command; the exit status is 0 when it may run, 1 when not (or not yet), 2 on bad input::

    python tools/cpu2_next_itervaml.py runs/cpu2 runs/cpu2-svg
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from vagram_bench.protocol import load_protocol
from vagram_bench.records import scan_runs

AGENT, ANCHOR, SETTING = "mbpo_itervaml", "InvertedPendulumDistract-0-v0", "InvertedPendulumCapacity-2x8-v0"
LIMIT_S = 30 * 3600.0


def _grid_cost():
    spec = importlib.util.spec_from_file_location("grid_cost", Path(__file__).with_name("grid_cost.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decide(mbpo_runs: str, svg_runs: str) -> tuple[bool, list[str]]:
    """(may mbpo_itervaml run on 2x8 now, the lines that say why)."""
    protocol = load_protocol("cpu2")
    runs = [r for r in scan_runs(mbpo_runs) if protocol.matches_record(r.protocol)]
    if any(r.agent == AGENT and r.env == SETTING for r in runs):
        return False, [f"{AGENT} on {SETTING} has already started: resume it with its sweep"]
    anchor = [r for r in runs if r.agent == AGENT and r.env == ANCHOR and r.complete]
    if len(anchor) < len(protocol.seeds):
        return False, [f"wait: {AGENT} on the anchor has {len(anchor)}/{len(protocol.seeds)} runs complete"]
    cells, unknown = _grid_cost().measured([mbpo_runs, svg_runs])
    used = sum(cells.values())
    rest, lines = 0.0, []
    for (agent, task), seconds in sorted(cells.items()):
        cell = [r for r in runs if (r.agent, r.env) == (agent, task)]
        if cell and not all(r.complete for r in cell):
            done = max(int(r.eval_steps[-1]) for r in cell if len(r.eval_steps))
            budget = protocol.steps_for(task)
            rest += seconds * (budget / done - 1)
            lines.append(f"running: {agent} on {task} at {done:,} of {budget:,} env steps, {seconds:,.0f} CPU-s "
                         f"so far, {seconds * (budget / done - 1):,.0f} projected to go")
    estimate = cells[(AGENT, ANCHOR)]
    total = used + rest + estimate
    fits = not unknown and total <= LIMIT_S
    lines.append(f"(c) CPU time so far {used / 3600:.2f} h + the unfinished cells' projected rest {rest / 3600:.2f} h "
                 f"+ {AGENT} on 2x8 (its anchor cell's cost) {estimate / 3600:.2f} h = {total / 3600:.2f} h of "
                 f"{LIMIT_S / 3600:.0f} h: " + ("fits" if fits else "does NOT fit" + (
                     f" ({len(unknown)} runs without a CPU record)" if unknown else "")))
    lines.append(f"run: python -m vagram_bench.sweep protocol=cpu2 agents={AGENT} tasks={SETTING} out={mbpo_runs} "
                 "local.workers=1" if fits else f"do not run {AGENT} on {SETTING}; publish it as not run (docs/cpu2.md)")
    return fits, lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not all(Path(a).is_dir() for a in args):
        print("usage: python tools/cpu2_next_itervaml.py MBPO_RUNS_DIR SVG_RUNS_DIR (two existing directories)",
              file=sys.stderr)
        return 2
    ok, lines = decide(*args)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
