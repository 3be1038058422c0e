"""The run's progress bar (tqdm): redrawn by wall time, with the agent's phase and a phase-aware ETA.

What it shows, e.g.::

    mbpo_vagram HopperDistract-15-v0 s0:  60%|██████    | 1200/2000 [04:10, learning 2.9 step/s, ETA 04:36, eval 40.2 @1000]

* **Redraws by wall time, not by env steps.** The loop reports every env step (:meth:`RunProgress.step`,
  a clock read and a comparison); the bar is redrawn when ``interval`` seconds have passed since the last
  redraw. A step can take longer than that (an MBPO model training, a slow SVG update), so a ticker
  thread (:meth:`RunProgress.start_ticker`) redraws every ``interval`` too: the bar never stands still
  for more than about a second while the elapsed time, the phase and the ETA move on.
* **The phase** is :meth:`vagram_bench.interfaces.Agent.phase` of the step being learned
  (``exploring``, ``training the model``, ``learning``; empty for agents that report none).
* **The ETA comes from the current phase's rate**: env steps per second since the current phase was first
  seen, so the fast random-action exploration never predicts the learning steps. A recurring phase (MBPO
  trains its model every ``freq_train_model`` steps) belongs to the stretch it recurs in, and a phase seen
  first for a single step joins the one that follows it, so the stretch's rate includes the recurring
  phase's cost.
* **The last evaluation** with the env step it was measured at (``eval 40.2 @1000``).

The policy takes an injected ``clock`` (``tests/test_runner_progress.py`` drives it with a fake one).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any, Callable

__all__ = ["RunProgress", "format_seconds", "redraw_interval", "LOG_INTERVAL", "TTY_INTERVAL"]

#: Seconds between redraws when stderr is not a terminal (a log file, a Slurm output): every redraw
#: is appended there, so at the terminal's 0.5 s a run wrote ~210 B/s of bar text; every evaluation
#: and the end of the run are drawn as well.
LOG_INTERVAL = 60.0
#: Seconds between redraws on a terminal.
TTY_INTERVAL = 0.5

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def format_seconds(seconds: float) -> str:
    """``mm:ss`` or ``h:mm:ss`` (tqdm's format)."""
    from tqdm import tqdm

    return tqdm.format_interval(seconds)


def redraw_interval(stream: Any) -> float:
    """:data:`TTY_INTERVAL` on a terminal, :data:`LOG_INTERVAL` when ``stream`` is a file or a pipe."""
    isatty = getattr(stream, "isatty", None)
    try:
        return TTY_INTERVAL if isatty is not None and isatty() else LOG_INTERVAL
    except ValueError:  # a closed stream
        return LOG_INTERVAL


class RunProgress:
    """The progress bar of one run (see the module docstring).

    Args:
        bar: a ``tqdm`` bar (``disable=True`` when the run is quiet: then nothing is computed).
        total: the run's env-step budget.
        initial: env steps already done (a resumed run).
        interval: seconds between redraws.
        clock: monotonic seconds (``time.monotonic``; tests inject their own).
    """

    def __init__(self, bar: Any, total: int, initial: int, *, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bar = bar
        self.enabled = not getattr(bar, "disable", False)
        self.total = total
        self.interval = interval
        self.clock = clock
        self.done = initial
        self.phase = ""
        self.eval_text = ""
        self._seen_phases: set[str] = set()
        now = clock()
        self._window = (initial, now)  # (steps done, time) at the start of the current phase's stretch
        self._last_draw = -math.inf
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------------ what the loop reports
    def step(self, done: int, phase: str) -> None:
        """``done`` env steps are complete and the agent now learns in ``phase``; redraw when due."""
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            if phase != self.phase and phase not in self._seen_phases:
                self._seen_phases.add(phase)
                if done - self._window[0] != 1:  # a one-step phase joins the phase after it
                    self._window = (done, now)
            self.phase, self.done = phase, done
            if now - self._last_draw >= self.interval:
                self._draw(now)

    def evaluated(self, env_step: int, mean_return: float) -> None:
        """An evaluation at ``env_step`` returned ``mean_return``: shown from now on (redrawn at once)."""
        if not self.enabled:
            return
        with self._lock:
            self.eval_text = f"eval {mean_return:.1f} @{env_step}"
            self.done = max(self.done, env_step)  # the evaluated step is complete
            self._draw(self.clock())

    def refresh_if_due(self) -> bool:
        """Redraw if ``interval`` has passed since the last redraw (the ticker calls this); whether it did."""
        if not self.enabled:
            return False
        with self._lock:
            now = self.clock()
            if now - self._last_draw < self.interval:
                return False
            self._draw(now)
            return True

    def write(self, line: str) -> None:
        """Print ``line`` to stderr above the bar (tqdm clears the bar, prints, and redraws it)."""
        with self._lock:
            self.bar.write(line, file=sys.stderr)

    # ------------------------------------------------------------------ the estimate and the line
    def rate(self, now: float) -> float | None:
        """Env steps per second of the current phase's stretch (``None`` before a step of it is done)."""
        steps, start = self.done - self._window[0], now - self._window[1]
        return steps / start if steps > 0 and start > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds left at the current phase's rate (``None`` while unknown)."""
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate else None

    def postfix(self, now: float) -> str:
        """``<phase> <rate> step/s, ETA <t>, eval <x> @<step>`` (parts that are unknown left out)."""
        rate, eta = self.rate(now), self.eta(now)
        speed = "? step/s" if rate is None else (f"{rate:.3g} step/s" if rate >= 1 else f"{1 / rate:.3g} s/step")
        parts = [f"{self.phase} {speed}".strip(), f"ETA {'?' if eta is None else format_seconds(eta)}"]
        if self.eval_text:
            parts.append(self.eval_text)
        return ", ".join(parts)

    def _draw(self, now: float) -> None:
        self.bar.n = self.done
        self.bar.set_postfix_str(self.postfix(now), refresh=False)
        self.bar.refresh()
        self._last_draw = now

    # ------------------------------------------------------------------ the ticker
    def start_ticker(self) -> None:
        """Redraw every ``interval`` from a daemon thread, also while a long agent update runs."""
        if not self.enabled or self._ticker is not None:
            return

        def tick() -> None:
            while not self._stop.wait(self.interval):
                self.refresh_if_due()

        self._ticker = threading.Thread(target=tick, name="vagram-progress", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        """Stop the ticker, draw the final state and close the bar."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.enabled:
            with self._lock:
                self._draw(self.clock())
        self.bar.close()
