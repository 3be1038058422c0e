"""Means of the agent's metrics over one ``train.csv`` window.

The agents keep windowed means of their own (MBPO and SVG); an agent toolkit class for this job is
planned (issue 10). :class:`MetricWindow` is imported by :mod:`vagram_bench.runner.loop` and
:mod:`vagram_bench.runner.rundir` only, so switching the runner to that class is one import line, as
long as the class keeps ``add``, ``pop_means``, ``state`` and ``load`` and the state's
``{"sums", "counts"}`` layout (checkpoints of format 1 hold it).
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["MetricWindow"]


class MetricWindow:
    """Means of metrics over a window of env steps (checkpointed with the run)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop_means(self) -> dict[str, float]:
        """The means since the last call (keys in first-seen order), and a fresh window."""
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return means

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])
