"""Raw env steps/s of each base env and of its d=15 distraction variant, and the per-step overhead ratio.

Target: the distraction env adds <= 5% per step. Both envs are made with ``gym.make`` (same wrapper stack), stepped
with the same pre-drawn actions, and timed in interleaved rounds in one process; the reported time is the median
over rounds, so machine load affects both sides alike. Times are CPU time of this process (``time.process_time``),
not wall time, so that waiting for a core on a shared machine is not counted. "same-instance" compares the distraction env's raw ``step``
with the ``step`` of the very base env instance it wraps, which removes instance-to-instance differences.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_envs.py            # all families
    OMP_NUM_THREADS=1 python benchmarks/bench_envs.py --steps 5000 --rounds 9 --families Hopper Walker2d
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import gymnasium as gym

import vagram_bench  # noqa: F401  (registers the ids)
from vagram_bench.envs.distraction import DistractorDynamics

PAIRS = {
    "Hopper": ("Hopper-v5", "HopperDistract-15-v0"),
    "Walker2d": ("Walker2d-v5", "Walker2dDistract-15-v0"),
    "HalfCheetah": ("HalfCheetah-v5", "HalfCheetahDistract-15-v0"),
    "AntTruncated": ("AntTruncatedObs-v0", "AntTruncatedDistract-15-v0"),
    "HumanoidTruncated": ("HumanoidTruncatedObs-v0", "HumanoidTruncatedDistract-15-v0"),
    "InvertedPendulum": ("InvertedPendulum-v5", "InvertedPendulumDistract-15-v0"),
    "InvertedDoublePendulum": ("InvertedDoublePendulum-v5", "InvertedDoublePendulumDistract-15-v0"),
    "DMCCheetahRun": ("DMCCheetahRun-v0", "DMCCheetahRunDistract-15-v0"),
}


def time_steps(step, reset, actions: np.ndarray) -> float:
    """Seconds to take ``len(actions)`` steps (resets on episode end are included, as in training)."""
    start = time.process_time()
    for a in actions:
        _, _, terminated, truncated, _ = step(a)
        if terminated or truncated:
            reset()
    return time.process_time() - start


def bench_pair(base_id: str, distract_id: str, steps: int, rounds: int, seed: int = 0) -> dict[str, float]:
    """Median seconds per step of: the base env and the d=15 env (both from ``gym.make``), and -- on the *same*
    MuJoCo instance -- the d=15 env's raw ``step`` and its inner base env's ``step`` (isolates our overhead from
    instance-to-instance differences)."""
    base, distract = gym.make(base_id), gym.make(distract_id)
    inner = distract.unwrapped.base  # the raw base env the distraction env steps
    rng = np.random.default_rng(seed)
    space = base.action_space
    actions = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(space.dtype)
    runs = {
        "base": (base.step, base.reset),
        "distract": (distract.step, distract.reset),
        "distract_raw": (distract.unwrapped.step, distract.unwrapped.reset),
        "inner_raw": (inner.step, inner.reset),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for step, reset in runs.values():  # warm-up
        reset(seed=seed)
        time_steps(step, reset, actions[: min(200, steps)])
    for r in range(rounds):
        keys = list(runs) if r % 2 == 0 else list(reversed(runs))  # interleave to cancel drifts in load
        for k in keys:
            step, reset = runs[k]
            reset(seed=seed + r)
            times[k].append(time_steps(step, reset, actions))
    base.close()
    distract.close()
    return {k: statistics.median(v) / steps for k, v in times.items()}


def bench_distractor_step(dims: int = 15, steps: int = 100_000) -> float:
    """Seconds per distractor transition alone (the part of the overhead that is ours)."""
    dyn = DistractorDynamics(dims, distractor_seed=0)
    x = np.random.default_rng(0).normal(0, 0.1, dims)
    step = dyn.step_
    start = time.process_time()
    for _ in range(steps):
        step(x)
    return (time.process_time() - start) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (median reported)")
    parser.add_argument("--families", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    args = parser.parse_args(argv)

    print(f"distractor transition alone (d=15): {bench_distractor_step() * 1e6:.2f} us")
    header = (
        f"{'family':<22} {'base steps/s':>13} {'d=15 steps/s':>13} {'base us':>8} {'d=15 us':>8} {'ratio':>6} "
        f"{'overhead':>9} {'same-instance':>14}"
    )
    print(header)
    print("-" * len(header))
    ratios, raw_ratios = [], []
    for family in args.families:
        t = bench_pair(*PAIRS[family], args.steps, args.rounds)
        ratio = t["distract"] / t["base"]
        raw_ratio = t["distract_raw"] / t["inner_raw"]
        ratios.append(ratio)
        raw_ratios.append(raw_ratio)
        print(
            f"{family:<22} {1 / t['base']:>13,.0f} {1 / t['distract']:>13,.0f} {t['base'] * 1e6:>8.1f} "
            f"{t['distract'] * 1e6:>8.1f} {ratio:>6.3f} {100 * (ratio - 1):>8.1f}% {100 * (raw_ratio - 1):>13.1f}%"
        )
    print(
        f"median overhead: {100 * (statistics.median(ratios) - 1):.1f}% via gym.make, "
        f"{100 * (statistics.median(raw_ratios) - 1):.1f}% on the same instance (target <= 5%)"
    )


if __name__ == "__main__":
    main()
