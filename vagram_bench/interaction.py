"""The setting × loss interaction, the primary statistic of a protocol with an anchor (``[[interaction]]``).

VaGraM's claims are interactions (Voelcker et al. 2022, Sec. 5): a likelihood-based model loss loses return
when distracting observation dimensions are added or the model shrinks, while the value-gradient-weighted one
holds. So the statistic is a *change* from the anchor (the undistracted, full-model task) to a setting ``s``:

* for each pair (VaGraM, X), ``ΔP = P_s(VaGraM > X) − P_anchor(VaGraM > X)``, the change of the probability
  of improvement (Mann–Whitney U / (n·m), ties ½; :func:`delta_improvement`);
* for each agent (loss), the **drop** of its normalised return, ``metric(anchor) − metric(s)`` over seeds
  (:func:`drop`), and for each pair the **difference of drops**, ``drop_X − drop_VaGraM`` (positive: X loses
  more than VaGraM; :func:`drop_difference`);
* for step-shaped returns (a pendulum balanced or not), the **time to solve**: a run's first evaluation at or
  above a solved threshold, runs that never solve right-censored at their last evaluation, summarised by the
  Kaplan–Meier median and the fraction solved by each budget (:func:`time_to_solve`, :func:`kaplan_meier`).

Every interval is a 95% percentile **stratified** bootstrap (:func:`stratified_bootstrap`): the seeds of each
agent × setting cell are resampled independently, as rliable's ``StratifiedBootstrap`` resamples runs within
tasks (Agarwal et al. 2021), with ``scipy.stats.bootstrap`` (``paired=False``) driven by a seeded numpy
``Generator``, the discipline of :func:`vagram_bench.stats.bootstrap_ci`. At complete separation in both
settings every resample gives the same ΔP, so the interval would be a point (``[−1, −1]``, ``[0, 0]``); the
report then prints the separations with their exact one-sided Mann–Whitney p-values
(:func:`vagram_bench.stats.separation_p_value`) instead.

Like :mod:`vagram_bench.stats`, nothing here reads run records: every function takes arrays of scores;
:func:`build_interaction` takes the board's per-cell arrays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.stats

from vagram_bench.protocol import InteractionSpec, Protocol
from vagram_bench.stats import MIN_SEEDS_FOR_CI, _mwu_probability, metric_fn, separation_p_value, stratified_bootstrap

__all__ = [
    "Estimate",
    "InteractionResult",
    "SOLVE_FRACTIONS",
    "SolveTimes",
    "build_interaction",
    "claim_verdict",
    "default_pairs",
    "delta_improvement",
    "drop",
    "drop_difference",
    "kaplan_meier",
    "km_fraction_solved",
    "km_median",
    "solve_budgets",
    "time_to_solve",
]


@dataclasses.dataclass
class Estimate:
    """A point estimate with its 95% stratified bootstrap interval (NaN when some cell has < 2 seeds)."""

    point: float
    low: float
    high: float
    n: int
    """Fewest seeds of the cells it is computed from."""
    parts: tuple[float, float] | None = None
    """ΔP only: ``(P_anchor, P_s)``, the two probabilities whose difference it is."""
    separation: tuple[float | None, float | None] | None = None
    """ΔP only: the exact one-sided Mann–Whitney p-values of a complete separation at the anchor and at ``s``
    (``None`` where that setting is not separated); set only when both are, i.e. when the interval is a
    point."""

    @property
    def few_seeds(self) -> bool:
        """Some cell has fewer than MIN_SEEDS_FOR_CI seeds: the interval is known to under-cover."""
        return self.n < MIN_SEEDS_FOR_CI

    @property
    def degenerate(self) -> bool:
        return math.isfinite(self.low) and self.low == self.high


def delta_improvement(v_anchor: np.ndarray, x_anchor: np.ndarray, v_s: np.ndarray, x_s: np.ndarray, *,
                      n_resamples: int = 10_000, seed: int = 0) -> Estimate:
    """``P_s(V > X) − P_anchor(V > X)`` (each the Mann–Whitney U over ``n·m``, ties ½), four cells resampled
    independently. Negative: VaGraM's advantage over X shrinks (or reverses) from the anchor to ``s``."""
    def statistic(va, xa, vs, xs, axis=-1):
        return _mwu_probability(vs, xs, axis=axis) - _mwu_probability(va, xa, axis=axis)

    cells = [np.asarray(c, dtype=np.float64) for c in (v_anchor, x_anchor, v_s, x_s)]
    point, low, high = stratified_bootstrap(cells, statistic, n_resamples=n_resamples, seed=seed)
    parts = (float(_mwu_probability(cells[0], cells[1])), float(_mwu_probability(cells[2], cells[3])))
    est = Estimate(point, low, high, min(c.size for c in cells), parts=parts)
    if est.degenerate:
        seps = (separation_p_value([cells[0]], [cells[1]]), separation_p_value([cells[2]], [cells[3]]))
        if all(p is not None for p in seps):
            est.separation = seps
    return est


def drop(anchor: np.ndarray, setting: np.ndarray, metric: str, *, n_resamples: int = 10_000,
         seed: int = 0) -> Estimate:
    """``metric(anchor) − metric(setting)`` over seeds (normalised returns): how much the agent loses from the
    anchor to the setting (negative: it gains)."""
    fn = metric_fn(metric)

    def statistic(a, s, axis=-1):
        return fn(a, axis=axis) - fn(s, axis=axis)

    point, low, high = stratified_bootstrap([anchor, setting], statistic, n_resamples=n_resamples, seed=seed)
    return Estimate(point, low, high, min(np.size(anchor), np.size(setting)))


def drop_difference(v_anchor: np.ndarray, v_s: np.ndarray, x_anchor: np.ndarray, x_s: np.ndarray, metric: str,
                    *, n_resamples: int = 10_000, seed: int = 0) -> Estimate:
    """``drop_X − drop_V`` = ``(metric(x_anchor) − metric(x_s)) − (metric(v_anchor) − metric(v_s))``, four cells
    resampled independently. Positive: X loses more return than VaGraM from the anchor to ``s``."""
    fn = metric_fn(metric)

    def statistic(va, vs, xa, xs, axis=-1):
        return (fn(xa, axis=axis) - fn(xs, axis=axis)) - (fn(va, axis=axis) - fn(vs, axis=axis))

    cells = [v_anchor, v_s, x_anchor, x_s]
    point, low, high = stratified_bootstrap(cells, statistic, n_resamples=n_resamples, seed=seed)
    return Estimate(point, low, high, min(np.size(c) for c in cells))


# --------------------------------------------------------------------------------------------------
# time to solve


def time_to_solve(steps: np.ndarray, returns: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per run (rows of ``returns``, shape ``(n, T)`` at the eval ``steps``): the first eval step with a return
    at or above ``threshold``, or, for a run that never gets there, its last eval step (right-censored).
    Returns ``(times, solved)``."""
    steps = np.asarray(steps)
    hit = np.atleast_2d(np.asarray(returns, dtype=np.float64)) >= threshold
    solved = hit.any(axis=1)
    times = np.where(solved, steps[np.argmax(hit, axis=1)], steps[-1])
    return times.astype(np.float64), solved


def kaplan_meier(times: np.ndarray, solved: np.ndarray) -> Any:
    """The Kaplan–Meier estimate of the time-to-solve distribution, ``scipy.stats.ecdf`` on right-censored
    data (scipy >= 1.11; at tied times events come before censoring, the usual convention: a run censored at
    step t is still at risk at t). ``.sf`` is the fraction not yet solved."""
    times, solved = np.asarray(times, dtype=np.float64), np.asarray(solved, dtype=bool)
    return scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=times[solved], right=times[~solved]))


def km_median(times: np.ndarray, solved: np.ndarray) -> float | None:
    """The Kaplan–Meier median time to solve: the first time at which the estimated fraction not yet solved
    falls to 0.5 or below; ``None`` ("not reached") when it never does (fewer than half the runs solve, or
    censoring leaves the estimate above 0.5)."""
    if not np.any(solved):
        return None
    sf = kaplan_meier(times, solved).sf
    # 1e-12: S = 0.5 exactly (e.g. 4 of 8 solved) comes out of the product-limit as 0.5 ± rounding
    below = np.flatnonzero(sf.probabilities <= 0.5 + 1e-12)
    return float(sf.quantiles[below[0]]) if below.size else None


def km_fraction_solved(times: np.ndarray, solved: np.ndarray, budgets: Sequence[float]) -> np.ndarray:
    """The Kaplan–Meier estimate of the fraction of runs solved by each budget, ``1 − S(budget)``."""
    if not np.any(solved):
        return np.zeros(len(budgets))
    return 1.0 - kaplan_meier(times, solved).sf.evaluate(np.asarray(budgets, dtype=np.float64))


SOLVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
"""The fractions of a run's budget at which the fraction of runs solved is reported."""


def solve_budgets(eval_steps: Sequence[int]) -> tuple[int, ...]:
    """The budgets a fraction solved is reported at: for each of :data:`SOLVE_FRACTIONS` of the run, the eval
    step nearest it (the earlier one on a tie; with few evaluations two may coincide)."""
    steps = np.asarray(eval_steps)
    return tuple(int(steps[np.argmin(np.abs(steps - q * steps[-1]))]) for q in SOLVE_FRACTIONS)


@dataclasses.dataclass
class SolveTimes:
    """Time to solve of one agent × task cell."""

    times: np.ndarray
    solved: np.ndarray
    median: float | None
    """Kaplan–Meier median (``None``: not reached)."""
    budgets: tuple[int, ...]
    fraction: np.ndarray
    """Kaplan–Meier fraction solved by each of ``budgets``."""

    @property
    def n_solved(self) -> int:
        return int(np.sum(self.solved))


# --------------------------------------------------------------------------------------------------
# the board's interaction


def default_pairs(agents: Sequence[str]) -> list[tuple[str, str]]:
    """``(<family>_vagram, <family>_X)`` for every other agent of the family of each VaGraM agent (``mbpo_vagram``
    against ``mbpo_mse``, ``mbpo_mle``, ...; ``svg_vagram`` against ``svg_*``)."""
    pairs = []
    for v in agents:
        if v.endswith("_vagram"):
            family = v[: -len("vagram")]
            pairs += [(v, x) for x in agents if x != v and x.startswith(family)]
    return pairs


@dataclasses.dataclass
class InteractionResult:
    """The interaction statistics of one ``[[interaction]]`` entry (see the module docstring)."""

    spec: InteractionSpec
    pairs: list[tuple[str, str]]
    """The (VaGraM, X) pairs compared: the entry's ``pairs`` or :func:`default_pairs`, among the board's agents."""
    delta_p: dict[tuple[str, str, str], Estimate]
    """(V, X, setting) -> ΔP."""
    drop: dict[tuple[str, str], Estimate]
    """(agent, setting) -> drop of normalised return."""
    drop_difference: dict[tuple[str, str, str], Estimate]
    """(V, X, setting) -> drop_X − drop_V."""
    solve: dict[tuple[str, str], SolveTimes]
    """(agent, task) -> time to solve, anchor and settings (empty without a solved_threshold)."""


def build_interaction(
    spec: InteractionSpec, protocol: Protocol, agents: Sequence[str], final: Mapping[tuple[str, str], np.ndarray],
    curves: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]], *, n_resamples: int, seed: int,
) -> InteractionResult:
    """The interaction of one entry from the board's complete cells: ``final[(agent, task)]`` the seeds' final
    returns (only complete cells), ``curves[(agent, task)]`` their eval steps and returns. A statistic needs
    every cell it uses complete; one that is not is left out (the tables say so)."""
    norm = {(a, t): protocol.reference_scores[t].normalise(final[(a, t)])
            for a in agents for t in (spec.anchor, *spec.settings) if (a, t) in final}
    pairs = [p for p in (spec.pairs or default_pairs(agents)) if all(a in agents for a in p)]
    kw = dict(n_resamples=n_resamples, seed=seed)
    a0 = spec.anchor
    drops = {(a, s): drop(norm[(a, a0)], norm[(a, s)], protocol.metric, **kw)
             for s in spec.settings for a in agents if (a, a0) in norm and (a, s) in norm}
    delta_p, diff = {}, {}
    for s in spec.settings:
        for v, x in pairs:
            if all(k in norm for k in ((v, a0), (x, a0), (v, s), (x, s))):
                delta_p[(v, x, s)] = delta_improvement(final[(v, a0)], final[(x, a0)], final[(v, s)],
                                                       final[(x, s)], **kw)
                diff[(v, x, s)] = drop_difference(norm[(v, a0)], norm[(v, s)], norm[(x, a0)], norm[(x, s)],
                                                  protocol.metric, **kw)
    solve = {}
    if spec.solved_threshold is not None:
        for t in (a0, *spec.settings):
            budgets = solve_budgets(protocol.eval_steps_for(t))
            for a in agents:
                if (a, t) in final and (a, t) in curves:
                    times, solved = time_to_solve(*curves[(a, t)], spec.solved_threshold)
                    solve[(a, t)] = SolveTimes(times, solved, km_median(times, solved), budgets,
                                               km_fraction_solved(times, solved, budgets))
    return InteractionResult(spec, pairs, delta_p, drops, diff, solve)


def claim_verdict(difference: Estimate, anchor_solved: Sequence[int], n_anchor: int, *,
                  min_solved: int = 5) -> str:
    """The verdict on a claim "X drops more than VaGraM from the anchor to s" from its preregistered
    statistic, the difference of drops ``drop(X) − drop(VaGraM)`` with its interval (docs/cpu2.md):

    * ``"not measurable"``: fewer than ``min_solved`` of the ``n_anchor`` anchor runs of either agent
      (``anchor_solved``: VaGraM's and X's counts) reached the solved threshold, so a drop from there says
      nothing about the setting (checked first);
    * ``"supported"``: the interval lies above 0; ``"contradicted"``: below 0;
    * ``"not resolved"``: it contains 0, or there is no interval (fewer than 2 seeds in a cell).

    Examples:
        >>> claim_verdict(Estimate(0.6, 0.2, 0.9, 8), (8, 7), 8)
        'supported'
        >>> claim_verdict(Estimate(0.1, -0.2, 0.4, 8), (8, 7), 8)
        'not resolved'
        >>> claim_verdict(Estimate(0.6, 0.2, 0.9, 8), (8, 4), 8)
        'not measurable'
    """
    if len(anchor_solved) != 2 or any(not 0 <= c <= n_anchor for c in anchor_solved):
        raise ValueError(f"anchor_solved={tuple(anchor_solved)} must be two counts in [0, {n_anchor}]")
    if min(anchor_solved) < min_solved:
        return "not measurable"
    if not (math.isfinite(difference.low) and math.isfinite(difference.high)):
        return "not resolved"
    if difference.low > 0:
        return "supported"
    if difference.high < 0:
        return "contradicted"
    return "not resolved"
