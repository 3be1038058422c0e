"""Raw env steps/s of each base env and of its d=15 distraction variant, and the per-step overhead ratio.

Target: the distraction env adds <= 5% per step. Both envs are made with ``gym.make`` (same wrapper stack), stepped
with the same pre-drawn actions, and timed in interleaved rounds in one process; the reported time is the median
over rounds, so machine load affects both sides alike.

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
    "DMCCheetahRun": ("DMCCheetahRun-v0", "DMCCheetahRunDistract-15-v0"),
}


def time_steps(env: gym.Env, actions: np.ndarray) -> float:
    """Seconds to take ``len(actions)`` steps (resets on episode end are included, as in training)."""
    step, reset = env.step, env.reset
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = step(a)
        if terminated or truncated:
            reset()
    return time.perf_counter() - start


def bench_pair(base_id: str, distract_id: str, steps: int, rounds: int, seed: int = 0) -> tuple[float, float]:
    envs = [gym.make(base_id), gym.make(distract_id)]
    rng = np.random.default_rng(seed)
    space = envs[0].action_space
    actions = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(space.dtype)
    for env in envs:
        env.reset(seed=seed)
        time_steps(env, actions[: min(200, steps)])  # warm-up
    times: list[list[float]] = [[], []]
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)  # interleave to cancel drifts in machine load
        for i in order:
            envs[i].reset(seed=seed + r)
            times[i].append(time_steps(envs[i], actions))
    for env in envs:
        env.close()
    return statistics.median(times[0]) / steps, statistics.median(times[1]) / steps


def bench_distractor_step(dims: int = 15, steps: int = 100_000) -> float:
    """Seconds per distractor transition alone (the part of the overhead that is ours)."""
    dyn = DistractorDynamics(dims, distractor_seed=0)
    x = np.random.default_rng(0).normal(0, 0.1, dims)
    step = dyn.step_
    start = time.perf_counter()
    for _ in range(steps):
        step(x)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (median reported)")
    parser.add_argument("--families", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    args = parser.parse_args(argv)

    print(f"distractor transition alone (d=15): {bench_distractor_step() * 1e6:.2f} us")
    header = f"{'family':<18} {'base steps/s':>13} {'d=15 steps/s':>13} {'base us':>9} {'d=15 us':>9} {'ratio':>7} {'overhead':>9}"
    print(header)
    print("-" * len(header))
    ratios = []
    for family in args.families:
        base_id, distract_id = PAIRS[family]
        t_base, t_dis = bench_pair(base_id, distract_id, args.steps, args.rounds)
        ratio = t_dis / t_base
        ratios.append(ratio)
        print(
            f"{family:<18} {1 / t_base:>13,.0f} {1 / t_dis:>13,.0f} {t_base * 1e6:>9.1f} {t_dis * 1e6:>9.1f} "
            f"{ratio:>7.3f} {100 * (ratio - 1):>8.1f}%"
        )
    print(f"median overhead: {100 * (statistics.median(ratios) - 1):.1f}% (target <= 5%)")


if __name__ == "__main__":
    main()
