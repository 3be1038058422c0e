"""The figures of a leaderboard report: learning curves (:func:`plot_curves`) and the performance profile
(:func:`plot_performance_profile`), written as PNG with matplotlib's Agg backend."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vagram_bench.board import Leaderboard
from vagram_bench.stats import MIN_SEEDS_FOR_CI, bootstrap_ci, metric_fn

__all__ = ["FIGURES", "plot_curves", "plot_performance_profile"]

FIGURES = {
    "curves": ("curves.png", "Learning curves"),
    "profile": ("performance_profile.png", "Performance profile (normalised final score)"),
}
"""Figure key -> (file name in ``out``, heading)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(values: np.ndarray, metric: str, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per eval step: the 95% bootstrap CI across seeds (n >= MIN_SEEDS_FOR_CI) or their range (n >= 2),
    the same rule as the table cells."""
    n = values.shape[0]
    if n >= MIN_SEEDS_FOR_CI:
        return bootstrap_ci([values], metric, n_resamples=n_resamples, seed=seed, axis=0)
    if n >= 2:
        return values.min(axis=0), values.max(axis=0)
    return None


def plot_curves(board: Leaderboard, path: Path, *, per_seed: bool = True) -> Path:
    """One figure, one panel per task: per agent the metric across completed seeds at every evaluation
    (thick line), its band (95% bootstrap CI, or the range below MIN_SEEDS_FOR_CI seeds) and, with
    ``per_seed``, every seed's curve as a thin line. Agents share colours across panels and one legend."""
    from matplotlib.ticker import EngFormatter

    plt = _pyplot()
    p = board.protocol
    label = "IQM" if p.metric == "iqm" else "mean"
    ncols = min(3, len(p.tasks))
    nrows = math.ceil(len(p.tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.9 * nrows + 0.9), dpi=110,
                             squeeze=False, constrained_layout=True)
    handles = {}
    for k, task in enumerate(p.tasks):
        ax = axes[k // ncols][k % ncols]
        for i, a in enumerate(board.agents):
            if (a, task) not in board.curves:
                continue
            steps, values = board.curves[(a, task)]
            color = f"C{i % 10}"
            complete = board.final[(a, task)].complete
            if per_seed:
                ax.plot(steps, values.T, color=color, linewidth=0.7, alpha=0.35)
            band = _band(values, p.metric, min(board.n_resamples, 2000), board.seed)
            if band is not None:
                ax.fill_between(steps, band[0], band[1], color=color, alpha=0.18, linewidth=0)
            (line,) = ax.plot(steps, metric_fn(p.metric)(values, axis=0), color=color, linewidth=2.4,
                              linestyle="-" if complete else "--")
            handles.setdefault(a, line)
        seeds = sorted({board.curves[(a, task)][1].shape[0] for a in board.agents if (a, task) in board.curves})
        n_text = "" if not seeds else f"  (n = {seeds[0]}" + (f"–{seeds[-1]}" if len(seeds) > 1 else "") + " seeds)"
        ax.set_title(task + n_text, fontsize=12)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlabel("env steps")
        if k % ncols == 0:
            ax.set_ylabel(f"eval return ({label})")
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no completed runs", ha="center", va="center", transform=ax.transAxes)
    for k in range(len(p.tasks), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    band_desc = f"band: 95% bootstrap CI (n ≥ {MIN_SEEDS_FOR_CI}) or range of seeds (n < {MIN_SEEDS_FOR_CI})"
    fig.suptitle(f"Protocol {p.name} v{p.version}: {label} across seeds; {band_desc}"
                 + ("; thin lines: single seeds" if per_seed else "") + "; dashed: incomplete", fontsize=10)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
                   ncol=min(len(handles), 5), fontsize=10, frameon=False)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_performance_profile(board: Leaderboard, path: Path) -> Path | None:
    """rliable's performance profile of the normalised final scores, one line per complete row with its
    stratified bootstrap band; ``None`` when there is no profile (no complete row or no references)."""
    prof = board.profile
    if prof is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.8), dpi=110, constrained_layout=True)
    for i, a in enumerate(board.agents):
        if a not in prof.fraction:
            continue
        color = f"C{i % 10}"
        ax.fill_between(prof.taus, prof.ci_low[a], prof.ci_high[a], color=color, alpha=0.18, linewidth=0,
                        step=None)
        ax.plot(prof.taus, prof.fraction[a], color=color, linewidth=2.2, label=a)
    for x, name in ((0.0, "random"), (1.0, "reference")):
        ax.axvline(x, color="0.6", linewidth=0.8, linestyle=":")
        ax.text(x, 0.5, f" {name}", ha="left", va="center", rotation=90, fontsize=8, color="0.4",
                transform=ax.get_xaxis_transform())
    ax.set_xlabel("normalised final score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper right")
    ax.set_title(f"Protocol {board.protocol.name} v{board.protocol.version}: fraction of runs above τ, "
                 "95% stratified bootstrap band" + ("†" if prof.few_seeds else ""), fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return path
