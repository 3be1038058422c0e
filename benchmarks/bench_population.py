"""Per-seed throughput of a population of SAC learners against separate single learners.

One process, timed interleaved (the machine is shared; only ratios are meaningful). For each net
width and population size K it times, round after round:

* ``pop bmm``: one :class:`SACPopulationLearner` update of K members, hand-batched layers;
* ``pop vmap``: the same with ``impl="vmap"`` (the single learner's modules under ``torch.vmap``
  with stacked ``TensorDictParams``: tensordict's functional machinery);
* ``separate``: one update of each of K separate :class:`SACLearner` (what K single-seed runs do).

and prints the median time per round, the per-seed speed-up of the population over separate
learners (``separate / pop``; 1.0 = no gain) and the cost of vmap over hand-batched layers
(``vmap / bmm``; the issue's bar for preferring vmap is <= 1.10). It also prints the share of an
update spent drawing per-member noise (one ``randn`` per member and draw).

Times are process CPU times (robust to other load on a shared machine; with one thread they equal
the compute time)::

    OMP_NUM_THREADS=1 python benchmarks/bench_population.py                  # 2x256 and 2x1024, K 1,5,10
    OMP_NUM_THREADS=1 python benchmarks/bench_population.py --hidden 256 --members 1 2 5 10

The env-step part of the issue's benchmark (whole agents, separate processes) builds on this.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tensordict import TensorDict

from vagram_bench.agents.sac import SACConfig, SACLearner
from vagram_bench.agents.sac.population import SACPopulationLearner


def _batch(members: int, batch: int, obs_dim: int, act_dim: int, g: torch.Generator) -> TensorDict:
    shape = (members, batch)
    return TensorDict(
        {
            "observation": torch.randn(*shape, obs_dim, generator=g),
            "action": torch.rand(*shape, act_dim, generator=g) * 2 - 1,
            "next": {
                "observation": torch.randn(*shape, obs_dim, generator=g),
                "reward": torch.randn(*shape, 1, generator=g),
                "terminated": torch.rand(*shape, 1, generator=g) < 0.05,
            },
        },
        batch_size=list(shape),
    )


def _cpu_time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def bench(hidden: int, members: int, args: argparse.Namespace) -> dict[str, float]:
    cfg = SACConfig(hidden_size=hidden, batch_size=args.batch)
    gens = lambda: [torch.Generator().manual_seed(s) for s in range(members)]  # noqa: E731
    pop_bmm = SACPopulationLearner(args.obs_dim, args.act_dim, cfg, generators=gens(), impl="bmm")
    pop_vmap = SACPopulationLearner(args.obs_dim, args.act_dim, cfg, generators=gens(), impl="vmap")
    singles = [SACLearner(args.obs_dim, args.act_dim, cfg, generator=g) for g in gens()]
    data = _batch(members, args.batch, args.obs_dim, args.act_dim, torch.Generator().manual_seed(1))
    member_batches = [data[k] for k in range(members)]

    contenders = {
        "pop bmm": lambda: pop_bmm.update(data),
        "pop vmap": lambda: pop_vmap.update(data),
        "separate": lambda: [s.update(b) for s, b in zip(singles, member_batches)],
        "noise": lambda: (pop_bmm._noise(data["action"]), pop_bmm._noise(data["action"])),
    }
    for fn in contenders.values():  # warm-up (allocator, MKL packing buffers)
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    deadline = time.monotonic() + args.seconds
    rounds = 0
    while rounds < args.min_rounds or (time.monotonic() < deadline and rounds < args.max_rounds):
        for name, fn in contenders.items():
            times[name].append(_cpu_time(fn))
        rounds += 1
    out = {name: statistics.median(ts) for name, ts in times.items()}
    out["rounds"] = rounds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 1024], help="hidden widths (2 layers)")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 5, 10], help="population sizes K")
    parser.add_argument("--batch", type=int, default=256, help="transitions per member and update")
    parser.add_argument("--obs-dim", type=int, default=11, help="observation dims (Hopper: 11)")
    parser.add_argument("--act-dim", type=int, default=3, help="action dims (Hopper: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per configuration")
    parser.add_argument("--min-rounds", type=int, default=5)
    parser.add_argument("--max-rounds", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
          f"obs {args.obs_dim}, act {args.act_dim}; median process CPU ms per round (K member updates)")
    header = (f"{'net':>8} {'K':>3} {'rounds':>6} {'pop bmm':>9} {'pop vmap':>9} {'separate':>9} "
              f"{'sep/bmm':>8} {'vmap/bmm':>8} {'noise%':>7}")
    print(header)
    for hidden in args.hidden:
        for members in args.members:
            r = bench(hidden, members, args)
            ms = {k: 1e3 * v for k, v in r.items() if k != "rounds"}
            print(
                f"{'2x' + str(hidden):>8} {members:>3} {r['rounds']:>6} {ms['pop bmm']:>9.2f} "
                f"{ms['pop vmap']:>9.2f} {ms['separate']:>9.2f} {r['separate'] / r['pop bmm']:>8.2f} "
                f"{r['pop vmap'] / r['pop bmm']:>8.2f} {100 * r['noise'] / r['pop bmm']:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
