"""Rule (c) of docs/cpu2.md "Amendments" (2026-12-07, on cost): may `mbpo_itervaml` run on the 2x8 model?

It runs only if the CPU time used so far, plus the projected rest of every unfinished cell, plus the measured
cost of the complete `mbpo_itervaml` anchor cell (the estimate of the 2x8 cell), is at most 30 CPU-hours.

* A cell's CPU time is tools/grid_cost.py's, as publish counts it (``summary.json``, or ``checkpoint.pt``
  while unfinished): every `cpu2` cell runs as one population, whose members resumed after a kill carry the
  process history they share, so it is the largest time any of its runs records.
* An unfinished cell's rest is the larger of its linear projection from its slowest unfinished member (CPU
  so far x (budget - s) / s, s that member's last evaluated env step; a population runs until its slowest
  member is done) and, off the anchor, its agent's complete anchor cell's cost minus its CPU so far.

The rule reads costs and progress only, never returns. Prints the facts and the decision and, when it may
run, the sweep command; the exit status is 0 when it may run, 1 when not (or not yet), 2 on bad input::

    python tools/cpu2_next_itervaml.py runs/cpu2 runs/cpu2-svg
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from vagram_bench.protocol import load_protocol
from vagram_bench.records import CheckpointError, scan_runs

AGENT, ANCHOR, SETTING = "mbpo_itervaml", "InvertedPendulumDistract-0-v0", "InvertedPendulumCapacity-2x8-v0"
LIMIT_S = 30 * 3600.0


def _grid_cost():
    spec = importlib.util.spec_from_file_location("grid_cost", Path(__file__).with_name("grid_cost.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(root: str, protocol_name: str) -> dict[tuple[str, str], list]:
    """``{(agent, task): [(run, complete, budget)]}`` of the protocol's runs under ``root``."""
    protocol = load_protocol(protocol_name)
    cells: dict[tuple[str, str], list] = {}
    for run in scan_runs(root):
        if protocol.matches_record(run.protocol):
            cells.setdefault((run.agent, run.env), []).append((run, run.complete, protocol.steps_for(run.env)))
    return cells


def decide(mbpo_runs: str, svg_runs: str) -> tuple[bool, list[str]]:
    """(may mbpo_itervaml run on 2x8 now, the lines that say why)."""
    cells = {**_cells(mbpo_runs, "cpu2"), **_cells(svg_runs, "cpu2-svg")}
    if (AGENT, SETTING) in cells:
        return False, [f"{AGENT} on {SETTING} has already started: resume it with its sweep"]
    anchor = [c for c in cells.get((AGENT, ANCHOR), []) if c[1]]
    seeds = len(load_protocol("cpu2").seeds)
    if len(anchor) < seeds:
        return False, [f"wait: {AGENT} on the anchor has {len(anchor)}/{seeds} runs complete"]
    measured, unknown = _grid_cost().measured([mbpo_runs, svg_runs])  # as publish counts it
    cost = {cell: measured.get(cell, 0.0) for cell in cells}
    used, rest, lines = sum(cost.values()), 0.0, []
    for (agent, task), runs in sorted(cells.items()):
        unfinished = [(run, steps) for run, complete, steps in runs if not complete]
        if not unfinished:
            continue
        run, budget = min(unfinished, key=lambda u: int(u[0].eval_steps[-1]) if len(u[0].eval_steps) else 0)
        slowest = int(run.eval_steps[-1]) if len(run.eval_steps) else 0
        seconds = cost[(agent, task)]
        complete_anchor = (agent, ANCHOR) in cells and all(c[1] for c in cells[(agent, ANCHOR)])
        floor = cost[(agent, ANCHOR)] - seconds if task != ANCHOR and complete_anchor else 0.0
        if not slowest and not floor:
            return False, [f"wait: {agent} on {task} has no evaluation yet to project its cost from"]
        linear = seconds * (budget - slowest) / slowest if slowest else 0.0
        to_go = max(linear, floor)
        rest += to_go
        lines.append(f"running: {agent} on {task}, slowest member at {slowest:,} of {budget:,} env steps, "
                     f"{seconds:,.0f} CPU-s so far, {to_go:,.0f} to go (linear {linear:,.0f}, anchor-cell floor "
                     f"{floor:,.0f})")
    estimate = cost[(AGENT, ANCHOR)]
    total = used + rest + estimate
    fits = not unknown and total <= LIMIT_S
    lines.append(f"(c) CPU time so far {used / 3600:.2f} h + the unfinished cells' rest {rest / 3600:.2f} h "
                 f"+ {AGENT} on 2x8 (its anchor cell's cost) {estimate / 3600:.2f} h = {total / 3600:.2f} h of "
                 f"{LIMIT_S / 3600:.0f} h: " + ("fits" if fits else "does NOT fit" + (
                     f" ({len(unknown)} runs without a CPU record)" if unknown else "")))
    lines.append(f"run: python -m vagram_bench.sweep protocol=cpu2 agents={AGENT} tasks={SETTING} out={mbpo_runs} "
                 "local.workers=1" if fits else f"do not run {AGENT} on {SETTING}; publish it as not run (docs/cpu2.md)")
    return fits, lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("error: usage: python tools/cpu2_next_itervaml.py MBPO_RUNS_DIR SVG_RUNS_DIR", file=sys.stderr)
        return 2
    bad = next((a for a in args if not Path(a).is_dir()), None)
    if bad is not None:
        print(f"error: not a runs directory: {bad!r} (give cpu2's and cpu2-svg's run directories)", file=sys.stderr)
        return 2
    try:
        ok, lines = decide(*args)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
