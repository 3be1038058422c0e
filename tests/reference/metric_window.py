"""Reference implementation for the tests: a single run's metric window on Python floats (what the
runner and the SVG agent kept before :class:`vagram_bench.population.PopulationMetricWindow` served
every member at once). Its ``state()`` is the checkpoint field ``metric_window``/``episode_window``
of runs written before, so a member's ``PopulationMetricWindow.state(k)`` must equal it."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["MetricWindow"]


class MetricWindow:
    """Per-key means of scalar metrics over a window (e.g. one ``train.csv`` row).

    Each key is averaged over the calls that reported it (actor metrics exist only on actor-update
    steps). The state is plain dicts, for checkpoints.

    Examples:
        >>> w = MetricWindow()
        >>> w.add({"loss": 1.0, "actor": 4.0}); w.add({"loss": 3.0})
        >>> w.pop_means(), w.pop_means()
        ({'loss': 2.0, 'actor': 4.0}, {})
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: Mapping[str, float]) -> None:
        """Accumulate one call's metrics (values convertible with ``float``)."""
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop_means(self) -> dict[str, float]:
        """The means since the last pop (``{}`` if nothing was added), and start a new window."""
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return means

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])
