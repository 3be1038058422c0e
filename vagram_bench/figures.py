"""The figures of a leaderboard report: learning curves (:func:`plot_curves`), the performance profile
(:func:`plot_performance_profile`) and, for a protocol with ``[[interaction]]``, rliable's aggregate interval
plot (:func:`plot_aggregate_intervals`) and a probability-of-improvement plot per setting
(:func:`plot_improvement`), written as PNG with matplotlib's Agg backend.

The last two are drawn here rather than with rliable's ``plot_utils.plot_interval_estimates`` /
``plot_probability_of_improvement``: rliable 1.2.0 requires ``arch<8``, and with the pandas it then installs
(3.1) ``import rliable`` fails inside arch 7.2 (``deprecate_kwarg() missing 1 required positional argument``,
checked in a scratch venv of this project's); pinning pandas < 3 would add pandas, arch, statsmodels and seaborn
to the core install for two bar charts. The numbers come from :mod:`vagram_bench.stats`, rliable's definitions
(``rliable/metrics.py`` at v1.2.0)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vagram_bench.board import Leaderboard
from vagram_bench.stats import AGGREGATE_METRICS, MIN_SEEDS_FOR_CI, bootstrap_ci, metric_fn

__all__ = ["FIGURES", "plot_aggregate_intervals", "plot_curves", "plot_improvement", "plot_performance_profile"]

FIGURES = {
    "curves": ("curves.png", "Learning curves"),
    "profile": ("performance_profile.png", "Performance profile (normalised final score)"),
    "aggregates": ("aggregate_intervals.png",
                   "Aggregate metrics of the normalised final score (95% stratified bootstrap CIs)"),
    "improvement": ("probability_of_improvement.png", "Probability of improvement per setting (final return)"),
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


_AGGREGATE_TITLES = {"median": "Median", "iqm": "IQM", "mean": "Mean", "optimality_gap": "Optimality gap"}


def plot_aggregate_intervals(board: Leaderboard, path: Path) -> Path | None:
    """rliable's aggregate interval plot: one panel per metric (median, IQM, mean, optimality gap of the
    normalised final scores over all tasks), per agent a bar spanning its 95% stratified bootstrap CI and a
    tick at the point estimate; ``None`` without estimates (no ``[[interaction]]``, no complete row)."""
    est = board.aggregate_estimates
    if not est:
        return None
    plt = _pyplot()
    agents = [a for a in board.agents if a in est]
    fig, axes = plt.subplots(1, len(AGGREGATE_METRICS), figsize=(3.4 * len(AGGREGATE_METRICS),
                             0.45 * len(agents) + 1.6), dpi=110, sharey=True, constrained_layout=True)
    for ax, name in zip(axes, AGGREGATE_METRICS):
        for y, a in enumerate(agents):
            point, low, high = est[a][name]
            color = f"C{board.agents.index(a) % 10}"
            if math.isfinite(low):
                ax.barh(y, high - low, left=low, height=0.6, color=color, alpha=0.75)
            ax.vlines(point, y - 0.3, y + 0.3, color="black", linewidth=1.6)
        ax.set_title(_AGGREGATE_TITLES[name], fontsize=11)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(range(len(agents)), agents)
    axes[0].invert_yaxis()  # the axes share y: the first agent on top in every panel
    fig.supxlabel("normalised final score (0 = random, 1 = reference); optimality gap: lower is better", fontsize=9)
    few = min((board.final[(a, t)].n for a in agents for t in board.protocol.tasks), default=0) < MIN_SEEDS_FOR_CI
    fig.suptitle(f"Protocol {board.protocol.name} v{board.protocol.version}: all tasks, bars = 95% stratified "
                 "bootstrap CI" + ("† (fewer than 5 seeds: under-covers)" if few else ""), fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return path


def _improvement_panels(board: Leaderboard) -> list[tuple[str, str, list[str]]]:
    """``(V, X, tasks)`` per interaction pair: the anchor, then the settings, where the pair is compared."""
    panels = []
    for result in board.interaction:
        tasks = [result.spec.anchor, *result.spec.settings]
        for v, x in result.pairs:
            shown = [t for t in tasks if (v, x, t) in board.improvement_by_task]
            if shown:
                panels.append((v, x, shown))
    return panels


def plot_improvement(board: Leaderboard, path: Path) -> Path | None:
    """P(VaGraM > X) per setting for every interaction pair: one panel per pair, a row per task (the anchor on
    top), a bar over the 95% stratified bootstrap CI and a dot at P; a complete separation (no interval) is a
    dot labelled with its exact one-sided Mann–Whitney p. The change from the anchor row to a setting row is
    the ΔP of the interaction table. ``None`` without interaction pairs."""
    panels = _improvement_panels(board)
    if not panels:
        return None
    plt = _pyplot()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    height = max(len(tasks) for _, _, tasks in panels) * 0.42 + 1.2
    # long task ids as row labels: a single panel still gets the width its title line needs
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(5.6 * ncols, 9.0), height * nrows + 0.9), dpi=110,
                             squeeze=False, constrained_layout=True)
    for k, (v, x, tasks) in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        color = f"C{board.agents.index(x) % 10}"
        for y, t in enumerate(tasks):
            c = board.improvement_by_task[(v, x, t)]
            if c.interval == "ci" and math.isfinite(c.ci_low):
                ax.barh(y, c.ci_high - c.ci_low, left=c.ci_low, height=0.55, color=color, alpha=0.6)
            ax.plot([c.point], [y], "o", color="black", markersize=4)
            if c.interval == "separation":  # no interval to draw: say why, with the rank test's p
                right = c.point > 0.5
                ax.annotate(f"complete separation, p = {c.separation_p:.2g}", (c.point, y),
                            xytext=(-8 if right else 8, 0), textcoords="offset points", va="center",
                            ha="right" if right else "left", fontsize=7)
        ax.axvline(0.5, color="0.5", linestyle="--", linewidth=0.9)
        ax.set_xlim(-0.02, 1.02)
        ax.set_yticks(range(len(tasks)), [f"{t} (anchor)" if i == 0 else t for i, t in enumerate(tasks)], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"P({v} > {x})", fontsize=10)
        ax.set_xlabel(f"P({v} > {x})", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(f"Protocol {board.protocol.name} v{board.protocol.version}: probability of improvement per task\n"
                 "bars = 95% stratified bootstrap CI; 0.5 = no difference", fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return path
