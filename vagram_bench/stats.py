"""The statistics of the leaderboard, following Agarwal et al. (2021), "Deep reinforcement learning at the
edge of the statistical precipice" (NeurIPS; the ``rliable`` library); docs/protocols.md explains them:

* the point estimate across seeds is the **IQM** (``scipy.stats.trim_mean(x, 0.25)``, rliable's
  definition) or the mean (:func:`aggregate`);
* its 95% percentile bootstrap CI over seeds comes from ``scipy.stats.bootstrap`` (:func:`bootstrap_ci`);
  given one sample per task it is the *stratified* bootstrap (``paired=False``: seeds resampled
  independently within each task), as rliable does. Below :data:`MIN_SEEDS_FOR_CI` seeds a cell shows
  the range instead (:func:`range_coverage`);
* the **probability of improvement** ``P(X > Y)`` is, per task, the Mann–Whitney U statistic over ``n·m``
  (ties count ½), averaged over tasks, with a stratified bootstrap CI (:func:`probability_of_improvement`);
  at complete separation (P = 1 or 0) every resample gives the same value, so the exact one-sided
  Mann–Whitney p-value of the separation is reported instead of an interval (:func:`separation_p_value`);
* the **performance profile** is, per normalised-score threshold τ, the fraction of runs above τ (per
  task, averaged over tasks), with a stratified bootstrap band (:func:`performance_profile`).

Statistics come from scipy rather than rliable: rliable 1.2.0 requires ``arch<8``, and arch 7.2 fails to
import under pandas 3, which would put a fragile, heavy dependency into the core install for computations
scipy provides (``trim_mean``, ``bootstrap``, ``mannwhitneyu``).

Nothing here knows about run records or tables: every function takes arrays of scores.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import scipy.stats

__all__ = [
    "AGGREGATE_METRICS",
    "MIN_SEEDS_FOR_CI",
    "aggregate_interval_estimates",
    "aggregate_metric",
    "aggregate",
    "bootstrap_ci",
    "metric_fn",
    "range_coverage",
    "probability_of_improvement",
    "separation_p_value",
    "stratified_bootstrap",
    "performance_profile",
    "performance_profile_ci",
]


def metric_fn(metric: str) -> Callable[..., Any]:
    """The metric as ``f(x, axis=-1)``: IQM (``trim_mean(x, 0.25)``) or mean."""
    if metric == "iqm":
        return lambda x, axis=-1: scipy.stats.trim_mean(x, 0.25, axis=axis)
    if metric == "mean":
        return lambda x, axis=-1: np.mean(x, axis=axis)
    raise ValueError(f"unknown metric {metric!r}; valid: ['iqm', 'mean']")


def aggregate(values: Sequence[float] | np.ndarray, metric: str) -> float:
    """The point estimate across seeds: IQM (``trim_mean(x, 0.25)``) or mean."""
    return float(metric_fn(metric)(np.asarray(values, dtype=np.float64), axis=-1))


def bootstrap_ci(
    samples: Sequence[np.ndarray],
    metric: str,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence_level: float = 0.95,
    axis: int = -1,
) -> tuple[Any, Any]:
    """95% percentile bootstrap CI of the metric over the pooled samples.

    With one sample this is the ordinary bootstrap over seeds. With one sample per task it is the
    stratified bootstrap: scipy resamples every sample independently (``paired=False``) and the
    statistic pools the resamples, so each task keeps its number of seeds.

    Returns ``(low, high)`` (arrays when the samples have more than one dimension), NaN when any
    sample has fewer than two values (no spread to resample).
    """
    fn = metric_fn(metric)
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(s.shape[axis] < 2 for s in samples):
        shape = np.delete(np.asarray(samples[0].shape), axis % samples[0].ndim)
        nan = np.full(tuple(shape), np.nan) if shape.size else math.nan
        return nan, nan

    def statistic(*xs: np.ndarray, axis: int = -1) -> np.ndarray:
        return fn(np.concatenate(xs, axis=axis), axis=axis)

    with warnings.catch_warnings():
        # Identical values (e.g. every seed failed at the same return) make the bootstrap
        # distribution degenerate; the percentile interval is then [x, x], which is correct.
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        res = scipy.stats.bootstrap(
            tuple(samples),
            statistic,
            n_resamples=n_resamples,
            vectorized=True,
            paired=False,
            axis=axis,
            confidence_level=confidence_level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = res.confidence_interval
    if np.ndim(low) == 0:
        return float(low), float(high)
    return np.asarray(low), np.asarray(high)


MIN_SEEDS_FOR_CI = 5
"""Fewest scores per sample for which a cell shows a bootstrap confidence interval.

Below it the cell shows the **range** of its seeds and says so. At n <= 4 the 95% percentile bootstrap
interval of the IQM is the range itself (at n = 3 a resample repeats the smallest seed three times with
probability 1/27 > 2.5%; at n = 4 the IQM of a resample is the smallest seed whenever three of its four draws
are, 13/256 > 2.5%), so calling it a "95% CI" would be wrong: the range of n seeds contains the population median with probability 1 - 2^(1-n)
(50%, 75%, 87.5% at n = 2, 3, 4; :func:`range_coverage`). From n = 5 on the bootstrap interval is no longer
the range, and its coverage of the population IQM is 0.88-0.93 at n = 5-10 (simulated with normal and
log-normal scores, 1000 repetitions each; docs/protocols.md), close to the nominal 0.95 that Agarwal et al.
(2021) report for percentile bootstrap intervals at a handful of runs."""


def range_coverage(n: int) -> float:
    """Probability that the range ``[min, max]`` of ``n`` i.i.d. draws of a continuous distribution contains
    its median: ``1 - 2 * 0.5**n``."""
    return 1.0 - 2.0 * 0.5**n


def _mwu_probability(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``P(X > Y) + P(X = Y) / 2`` estimated from two samples: the Mann-Whitney U statistic of ``x`` (pairs
    with ``x > y``, ties counted 1/2) divided by ``n * m``; broadcasts over the other axes.

    Counted over all ``n * m`` pairs rather than with ``scipy.stats.mannwhitneyu``: with a handful of seeds
    the pairs are few, and on 10,000 bootstrap resamples this is 3x faster than scipy's rank-based U
    (72 agent pairs x 5 tasks x 5 seeds: 17 s -> 5 s); tests compare it with ``mannwhitneyu``."""
    x = np.moveaxis(x, axis, -1)[..., :, None]
    y = np.moveaxis(y, axis, -1)[..., None, :]
    return np.mean((x > y) + 0.5 * (x == y), axis=(-2, -1))


def stratified_bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``statistic(*samples)`` and its percentile bootstrap interval with every sample
    (an agent × setting cell's seeds) resampled independently. ``statistic(*xs, axis=-1)`` must be vectorised
    over leading axes. The interval is NaN when some sample has fewer than two values."""
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    point = float(statistic(*samples, axis=-1))
    if any(s.size < 2 for s in samples):
        return point, math.nan, math.nan
    with warnings.catch_warnings():
        # identical resamples (complete separation, or constant cells) make the distribution degenerate:
        # the interval is then a point, which the report prints as what it is
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        res = scipy.stats.bootstrap(tuple(samples), statistic, n_resamples=n_resamples, vectorized=True,
                                    paired=False, confidence_level=confidence_level, method="percentile",
                                    rng=np.random.default_rng(seed))
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def probability_of_improvement(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> tuple[float, float, float]:
    """rliable's probability of improvement of X over Y (Agarwal et al. 2021, Sec. 4.3).

    Per task ``t``, ``P(X_t > Y_t)`` is the Mann-Whitney U statistic of ``xs[t]`` against ``ys[t]`` over
    ``n_t * m_t`` (ties count 1/2); the result averages it over tasks. The CI is a stratified percentile
    bootstrap: the runs of X and of Y are resampled independently within each task, as rliable's
    ``get_interval_estimates`` does for a pair of score matrices.

    Returns ``(point, low, high)``; the interval is NaN when some sample has fewer than two runs.
    """
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    ys = [np.asarray(y, dtype=np.float64) for y in ys]
    if len(xs) != len(ys) or not xs:
        raise ValueError(f"need one X and one Y sample per task, got {len(xs)} and {len(ys)}")

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        per_task = [_mwu_probability(x, y, axis=axis) for x, y in zip(samples[::2], samples[1::2])]
        return np.mean(per_task, axis=0)

    paired = [s for x, y in zip(xs, ys) for s in (x, y)]
    return stratified_bootstrap(paired, statistic, n_resamples=n_resamples, seed=seed,
                                confidence_level=confidence_level)


def separation_p_value(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float | None:
    """The exact one-sided p-value of a complete separation of X's and Y's runs, ``None`` without one.

    Complete separation: on every task every run of X beats every run of Y (``P(X > Y) = 1``), or every run
    of Y beats every run of X (``P = 0``). Every bootstrap resample then gives the same P, so its percentile
    interval is ``[1, 1]`` (or ``[0, 0]``) however few the runs: it says nothing. What the runs do say is how
    unlikely so complete a separation is if the agents did not differ: per task the exact one-sided
    Mann–Whitney p-value (``scipy.stats.mannwhitneyu(..., method="exact")``), ``1 / C(n+m, n)``: 0.004 with
    5 vs 5 runs, 0.167 with 2 vs 2. Tasks are independent, so over several tasks it is the product.
    """
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    ys = [np.asarray(y, dtype=np.float64) for y in ys]
    if not xs or any(s.size == 0 for s in (*xs, *ys)):
        return None
    if all(x.min() > y.max() for x, y in zip(xs, ys)):
        alternative = "greater"
    elif all(x.max() < y.min() for x, y in zip(xs, ys)):
        alternative = "less"
    else:
        return None
    return float(np.prod([scipy.stats.mannwhitneyu(x, y, alternative=alternative, method="exact").pvalue
                          for x, y in zip(xs, ys)]))


def performance_profile(samples: Sequence[np.ndarray], taus: np.ndarray, axis: int = -1) -> np.ndarray:
    """rliable's score distribution (Agarwal et al. 2021, Sec. 4.2): for each threshold ``tau``, the fraction
    of runs with a normalised score above ``tau``, taken per task and averaged over tasks (so every task
    weighs the same even if seed counts differ). Returns shape ``(len(taus), ...)``."""
    taus = np.asarray(taus, dtype=np.float64)
    per_task = [np.mean(np.moveaxis(np.asarray(s), axis, -1)[..., None, :] > taus[:, None], axis=-1)
                for s in samples]  # each (..., len(taus))
    return np.moveaxis(np.mean(per_task, axis=0), -1, 0)


def performance_profile_ci(
    samples: Sequence[np.ndarray],
    taus: np.ndarray,
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified percentile bootstrap band of :func:`performance_profile` (runs resampled within each
    task); NaN when some task has fewer than two runs."""
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(s.size < 2 for s in samples):
        nan = np.full(len(taus), np.nan)
        return nan, nan.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)  # fractions of 0 or 1 everywhere
        res = scipy.stats.bootstrap(
            tuple(samples), lambda *s, axis=-1: performance_profile(s, taus, axis=axis),
            n_resamples=n_resamples, vectorized=True, paired=False, confidence_level=confidence_level,
            method="percentile", rng=np.random.default_rng(seed))
    return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


AGGREGATE_METRICS = ("median", "iqm", "mean", "optimality_gap")
"""rliable's four aggregate metrics (Agarwal et al. 2021, Sec. 4.3; google-research/rliable ``rliable/metrics.py``
at v1.2.0): the **median** over tasks of the per-task mean score, the **IQM** of all runs pooled, the **mean**
over tasks of the per-task mean score, and the **optimality gap**, ``γ − mean(min(x, γ))`` over all runs pooled
with γ = 1 (the reference score): how far the runs fall short of the reference, lower is better."""


def aggregate_metric(name: str, samples: Sequence[np.ndarray], axis: int = -1) -> np.ndarray:
    """One of :data:`AGGREGATE_METRICS` over per-task samples of normalised scores (vectorised over the other
    axes, as the bootstrap needs)."""
    samples = [np.moveaxis(np.asarray(s, dtype=np.float64), axis, -1) for s in samples]
    if name in ("median", "mean"):
        task_means = np.stack([s.mean(axis=-1) for s in samples], axis=-1)
        return np.median(task_means, axis=-1) if name == "median" else task_means.mean(axis=-1)
    pooled = np.concatenate(samples, axis=-1)
    if name == "iqm":
        return scipy.stats.trim_mean(pooled, 0.25, axis=-1)
    if name == "optimality_gap":
        return 1.0 - np.mean(np.minimum(pooled, 1.0), axis=-1)
    raise ValueError(f"unknown aggregate metric {name!r}; valid: {list(AGGREGATE_METRICS)}")


def aggregate_interval_estimates(
    samples: Sequence[np.ndarray], *, n_resamples: int = 10_000, seed: int = 0, confidence_level: float = 0.95,
) -> dict[str, tuple[float, float, float]]:
    """rliable's ``get_interval_estimates`` for one agent: each of :data:`AGGREGATE_METRICS` as ``(point, low,
    high)`` with a stratified percentile bootstrap interval (runs resampled within each task, one generator
    seeded with ``seed`` per metric so each interval is reproducible alone); NaN intervals when some task has
    fewer than two runs."""
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    out = {}
    for name in AGGREGATE_METRICS:
        point = float(aggregate_metric(name, samples))
        if any(s.size < 2 for s in samples):
            out[name] = (point, math.nan, math.nan)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)  # e.g. every run at the reference
            res = scipy.stats.bootstrap(
                tuple(samples), lambda *s, axis=-1, name=name: aggregate_metric(name, s, axis=axis),
                n_resamples=n_resamples, vectorized=True, paired=False, confidence_level=confidence_level,
                method="percentile", rng=np.random.default_rng(seed))
        out[name] = (point, float(res.confidence_interval.low), float(res.confidence_interval.high))
    return out
