"""Keep a long grid's complete cells in the repository while it runs, and put them back on a new machine.

A grid that runs over several sessions, on machines that are not always kept from one session to the
next, commits each cell's records once the cell is complete, so that a lost machine costs only the cells
then running (docs/cpu2.md, Amendments, 2026-12-07 23:10 UTC: the MBPO half's first 208 records were lost
with the machine they lived on)::

    python tools/grid_records.py save /work/runs/cpu2 records/cpu2     # then commit records/cpu2
    python tools/grid_records.py restore records/cpu2 /work/runs/cpu2  # on a new machine, before the sweep

Only whole cells (every seed directory of an (agent, task) cell has its ``summary.json``) are saved: a
population resumed with some members restored and the others started afresh would be a different
population. Only publish's record files are copied (no checkpoints). Git does not keep file times, and
publish's sweep span reads the ``summary.json`` modification times, so ``save`` writes them to
``mtimes.json`` and ``restore`` sets them back. A run already at the destination is left alone when its
files are equal and is an error (exit 2) when they differ: records are never overwritten.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import sys
from pathlib import Path

from vagram_bench.publish import RECORD_FILES

MTIMES = "mtimes.json"


class RecordsError(Exception):
    """A run at the destination differs from the one to copy."""


def complete_cells(root: Path) -> list[Path]:
    """``<task>/<agent>`` directories under ``root`` whose every ``seed*`` run has a ``summary.json``."""
    cells = []
    for cell in sorted(p for p in root.glob("*/*") if p.is_dir()):
        seeds = sorted(cell.glob("seed*"))
        if seeds and all((s / "summary.json").is_file() for s in seeds):
            cells.append(cell)
    return cells


def _copy_run(src: Path, dst: Path) -> bool:
    """Copy one run's record files; False when ``dst`` already holds the same files."""
    present = [f for f in RECORD_FILES if (dst / f).exists()]
    if present:
        differ = [f for f in RECORD_FILES if not (dst / f).exists() or not filecmp.cmp(src / f, dst / f, shallow=False)]
        if differ:
            raise RecordsError(f"{dst} already holds a different run ({', '.join(differ)}); records are never overwritten")
        return False
    dst.mkdir(parents=True, exist_ok=True)
    for f in RECORD_FILES:
        shutil.copyfile(src / f, dst / f)
    return True


def _read_mtimes(root: Path) -> dict[str, float]:
    path = root / MTIMES
    return json.loads(path.read_text()) if path.exists() else {}


def save(runs: Path, records: Path) -> int:
    mtimes, copied = _read_mtimes(records), 0
    for cell in complete_cells(runs):
        for run in sorted(cell.glob("seed*")):
            key = run.relative_to(runs).as_posix()
            copied += _copy_run(run, records / key)
            mtimes.setdefault(key, (run / "summary.json").stat().st_mtime)
    tmp = records / (MTIMES + ".tmp")
    records.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(mtimes, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, records / MTIMES)
    return copied


def restore(records: Path, runs: Path) -> int:
    mtimes, copied = _read_mtimes(records), 0
    for cell in complete_cells(records):
        for run in sorted(cell.glob("seed*")):
            key = run.relative_to(records).as_posix()
            if _copy_run(run, runs / key):
                copied += 1
                if key in mtimes:
                    os.utime(runs / key / "summary.json", (mtimes[key], mtimes[key]))
    return copied


def main(argv: list[str]) -> int:
    verbs = {"save": save, "restore": restore}
    if len(argv) != 3 or argv[0] not in verbs:
        print(f"usage: grid_records.py {{save RUNS RECORDS | restore RECORDS RUNS}} (got {' '.join(argv) or 'nothing'})",
              file=sys.stderr)
        return 2
    src, dst = Path(argv[1]), Path(argv[2])
    if not src.is_dir():
        print(f"error: {src} is not a directory", file=sys.stderr)
        return 2
    try:
        n = verbs[argv[0]](src, dst)
    except RecordsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{argv[0]}: {n} runs copied from {src} to {dst} ({len(complete_cells(dst))} complete cells there)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
