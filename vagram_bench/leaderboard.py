"""Leaderboard tables, learning curves and an HTML report from the run records of one protocol.

.. code-block:: bash

    python -m vagram_bench.leaderboard runs protocol=cpu out=board
    python -m vagram_bench.leaderboard runs --protocol cpu --out board --agents sac mbpo_vagram
    python -m vagram_bench.leaderboard publish protocol=cpu runs=runs out=results/cpu  # = python -m vagram_bench.publish

It reads every run record under ``runs`` (``<env>/<agent>/seed<k>/`` with ``config.json``,
``eval.csv`` and, for a finished run, ``summary.json``) and writes to ``out``:

* ``leaderboard.md`` — paste-ready Markdown: the final-return and area-under-the-curve tables (rows agents,
  columns tasks, then an aggregate column of normalised scores and the mean rank), the probability of
  improvement between every pair of agents, the probability of improvement per task for the focus pairs
  (:func:`improvement_focus`), the run-time table, the legend and the excluded runs;
* ``report.html`` — the same tables (both documents are rendered from one list of :class:`Table`) with
  the figures embedded as base64 PNG, one self-contained page;
* ``leaderboard.csv`` — the same numbers in long form;
* ``curves.png`` — learning curves, one panel per task: the metric across seeds, its band and thin per-seed
  lines; ``performance_profile.png`` — the normalised-score profiles with bootstrap bands.
* for a protocol with ``[[interaction]]``: the interaction tables first (:mod:`vagram_bench.interaction`) and
  ``aggregate_intervals.png`` (rliable's aggregate metrics) and ``probability_of_improvement.png``.

The work is split by job, each module importing only the ones before it (docs/protocols.md explains the
statistics):

1. :mod:`vagram_bench.records` — reading run records (:func:`scan_runs`, :class:`RunRecord`);
2. :mod:`vagram_bench.stats` — IQM, bootstrap intervals, probability of improvement, performance
   profiles, on arrays of scores (Agarwal et al. 2021, computed with scipy);
   :mod:`vagram_bench.interaction` — the setting × loss interaction (ΔP, drops, time to solve) on arrays;
3. :mod:`vagram_bench.board` — the numbers of one protocol's leaderboard (:func:`build_leaderboard`):
   which runs count, the cells, aggregates, ranks, comparisons;
4. :mod:`vagram_bench.tables` and :mod:`vagram_bench.figures` — the tables as text cells with their
   legend, and the PNG figures;
5. :mod:`vagram_bench.report` — the Markdown, CSV and HTML documents (:func:`write_leaderboard`);
6. :mod:`vagram_bench.publish` — reference results under ``results/<protocol>/``; and this module, the
   command line (:func:`main`), which also re-exports the names above for existing callers.

Honesty rules: a cell with fewer completed seeds than the protocol asks for is marked
``⚠ incomplete`` and left out of the aggregate and the ranks (its partial value is shown only in
parentheses); a row with an incomplete cell has no aggregate. Runs recorded under another version or
content hash of the protocol are excluded with a warning, never mixed in.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from typing import Any

import numpy as np
import tyro

from vagram_bench import publish
from vagram_bench.board import (DEFAULT_FOCUS_AGENT, CellStats, ImprovementPairsError, Leaderboard, Profile,
                                build_leaderboard, improvement_focus, one_config_per_cell, run_auc, run_final_return,
                                select_runs)
from vagram_bench.cli import UsageError, parse_config
from vagram_bench.figures import FIGURES, plot_curves, plot_performance_profile
from vagram_bench.protocol import ProtocolError, load_protocol
from vagram_bench.records import RunRecord, load_run, scan_runs
from vagram_bench.report import to_html, to_markdown, write_csv, write_leaderboard
from vagram_bench.stats import (MIN_SEEDS_FOR_CI, aggregate, bootstrap_ci, performance_profile,
                                performance_profile_ci, probability_of_improvement, range_coverage,
                                separation_p_value)
from vagram_bench.tables import Table, hyperparameter_tables, report_notes, report_tables

__all__ = [
    "RunRecord",
    "CellStats",
    "Leaderboard",
    "LeaderboardConfig",
    "scan_runs",
    "load_run",
    "select_runs",
    "build_leaderboard",
    "aggregate",
    "bootstrap_ci",
    "run_final_return",
    "run_auc",
    "write_leaderboard",
    "write_csv",
    "to_markdown",
    "to_html",
    "plot_curves",
    "plot_performance_profile",
    "FIGURES",
    "MIN_SEEDS_FOR_CI",
    "DEFAULT_FOCUS_AGENT",
    "ImprovementPairsError",
    "range_coverage",
    "probability_of_improvement",
    "improvement_focus",
    "performance_profile",
    "performance_profile_ci",
    "Profile",
    "Table",
    "report_tables",
    "report_notes",
    "hyperparameter_tables",
    "one_config_per_cell",
    "separation_p_value",
    "random_policy_return",
    "main",
]


# --------------------------------------------------------------------------------------------------
# reference points


def random_policy_return(env_id: str, *, episodes: int = 10, eval_seed: int = 1_000_000,
                         action_seed: int = 0) -> float:
    """Mean return of the uniform-random policy: episode ``i`` reset with ``eval_seed + i``, actions
    from ``env.action_space`` seeded with ``action_seed``. This is how the ``random`` reference
    points of the shipped protocols were measured."""
    import gymnasium as gym

    import vagram_bench  # noqa: F401  (registers the ids)

    env = gym.make(env_id)
    env.action_space.seed(action_seed)
    returns = []
    for i in range(episodes):
        env.reset(seed=eval_seed + i)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


# --------------------------------------------------------------------------------------------------
# CLI


@dataclasses.dataclass
class LeaderboardConfig:
    """Build a protocol's leaderboard (Markdown, CSV, PNG curves, HTML report) from run records,
    e.g. `python -m vagram_bench.leaderboard runs protocol=cpu out=board`."""

    protocol: str
    """Protocol name (see `python -m vagram_bench.run list`) or path to a protocol .toml file."""
    runs: tyro.conf.Positional[str] = "runs"
    """Directory holding the run records (searched recursively for config.json)."""
    out: str = "board"
    """Output directory for leaderboard.md, leaderboard.csv, curves.png, performance_profile.png and report.html."""
    agents: tuple[str, ...] | None = None
    """Rows, in order (default: the protocol's agents, then any other agent with runs)."""
    n_resamples: int = 10_000
    """Bootstrap resamples per confidence interval."""
    seed: int = 0
    """Seed of the bootstrap generator."""
    per_seed_curves: bool = True
    """Draw every seed's learning curve as a thin line under the aggregate line."""
    improvement_pairs: tuple[str, ...] | None = None
    """Columns of the per-task probability-of-improvement table, as X:Y pairs, e.g.
    `improvement_pairs=[mbpo_vagram:mbpo_mse,mbpo_vagram:sac]` (default: mbpo_vagram against every other
    mbpo_* agent when mbpo_vagram is a row, else every pair X:Y with X before Y among the rows)."""


class _NoRuns(ValueError):
    """No run record of the protocol under ``runs``: a table of nothing but missing cells is not written."""


def _check_some_runs(runs: list[RunRecord], protocol: Any, root: str) -> None:
    """Raise :class:`_NoRuns` when ``runs`` holds no run of ``protocol``'s grid, saying what it holds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reasons go into the message
        kept, excluded = select_runs(runs, protocol)
    if kept:
        return
    if not runs:
        raise _NoRuns(f"no run records under {root!r} (run directories hold a config.json); check the path, "
                      f"or fill the grid first: python -m vagram_bench.sweep protocol={protocol.name} out={root}")
    raise _NoRuns(f"none of the {len(runs)} run record(s) under {root!r} is a run of protocol {protocol.name!r} "
                  f"v{protocol.version} (hash {protocol.short_hash}) on its grid"
                  + ("".join(f"\n  {line}" for line in excluded) if excluded else
                     f"; they were made under other protocols (tasks of this one: {', '.join(protocol.tasks)})"))


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status: 0 with a table (also for an incomplete grid, which the
    tables mark), 2 for bad input or no run of the protocol under ``runs`` (nothing written)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["publish"]:  # reference results under results/<protocol>/ (vagram_bench.publish)
        return publish.main(argv[1:], prog="python -m vagram_bench.leaderboard publish")
    try:
        cfg = parse_config(LeaderboardConfig, argv, prog="python -m vagram_bench.leaderboard")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        protocol = load_protocol(cfg.protocol, check_ids=False)
        runs = scan_runs(cfg.runs)
        _check_some_runs(runs, protocol, cfg.runs)
    except (ProtocolError, FileNotFoundError, _NoRuns) as exc:  # nothing has been written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            board = build_leaderboard(runs, protocol, agents=cfg.agents, n_resamples=cfg.n_resamples,
                                      seed=cfg.seed, improvement_pairs=cfg.improvement_pairs)
        except ImprovementPairsError as exc:  # nothing has been written
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    try:
        files = write_leaderboard(board, cfg.out, per_seed_curves=cfg.per_seed_curves)
    except OSError as exc:  # a read-only or mistyped out=: the run records are only read
        print(f"error: cannot write the leaderboard to {cfg.out}: {exc.strerror or exc} ({exc.filename or cfg.out})",
              file=sys.stderr)
        return 2
    print(files["markdown"].read_text(encoding="utf-8"))
    missing = board.incomplete_cells()
    if missing:
        print(f"warning: {len(missing)} incomplete cell(s): "
              + ", ".join(f"{a}/{t} {n}/{e}" for a, t, n, e in missing[:8])
              + (" ..." if len(missing) > 8 else ""), file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in files.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
