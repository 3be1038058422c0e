"""The CPU time a grid has used so far, per (agent, task) cell and in total, from its run records.

A complete run's ``summary.json`` holds its ``cpu_seconds``; an unfinished one's ``checkpoint.pt`` holds
the CPU time up to that checkpoint. Counted as publish counts it (:func:`vagram_bench.publish.cpu_cost`:
a population once, not once per seed or per process that resumed it), so the figure can be checked against
a budget while the grid runs, e.g. docs/cpu2.md's rule (b)::

    python tools/grid_cost.py runs/cpu2 runs/cpu2-svg

Runs without a CPU-time record (made before it existed) are listed and left out of the sum.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from vagram_bench.publish import cpu_cost
from vagram_bench.records import RunPaths, load_checkpoint, scan_runs


def measured(roots: list[str]) -> tuple[dict[tuple[str, str], float], list[str]]:
    """(CPU-s per cell, runs with no CPU record) of every run under ``roots``."""
    runs, unknown = [], []
    for root in roots:
        for run in scan_runs(root):
            summary = run.summary
            if summary is None:
                checkpoint = RunPaths(run.path).checkpoint
                if not checkpoint.exists():
                    continue  # started, nothing saved yet
                state = load_checkpoint(checkpoint)
                # an unfinished population's members share their process history: one group per cell
                summary = {"cpu_seconds": state.get("cpu_seconds"), "cpu_process": "unfinished"}
            if summary.get("cpu_seconds") is None:
                unknown.append(str(run.path))
                continue
            runs.append(dataclasses.replace(run, summary=summary))
    return cpu_cost(runs) or {}, unknown


def main(argv: list[str] | None = None) -> int:
    roots = sys.argv[1:] if argv is None else argv
    if not roots or any(not Path(r).is_dir() for r in roots):
        bad = next((r for r in roots if not Path(r).is_dir()), None)
        print(f"error: not a runs directory: {bad!r}" if bad else "usage: python tools/grid_cost.py RUNS_DIR [...]",
              file=sys.stderr)
        return 2
    cells, unknown = measured(roots)
    for (agent, task), seconds in sorted(cells.items()):
        print(f"{agent:16s} {task:36s} {seconds:10.0f} CPU-s")
    total = sum(cells.values())
    print(f"total: {total:.0f} CPU-s = {total / 3600:.2f} CPU-hours over {len(cells)} cells")
    for path in unknown:
        print(f"no CPU-time record (left out): {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
