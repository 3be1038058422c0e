"""Where the time of a population step goes: process CPU time per env step per seed, by part, for a
population of K seeds against the population of one, in one process with one torch thread.

Both populations (``--k``, default 1 and 5) of a configuration (``--configs``: ``a`` = ``sac`` 2x256,
``b`` = ``mbpo_mse`` with a 2x256 SAC and 10 updates per step, on Hopper-v5; the builders of
``benchmarks/bench_population.py``, stepped as the runner's loop steps them) live in this one
process. Each is run untimed to just before its first learning event, then the populations take
turns (``--rounds`` rounds of ``--steps`` env steps each), so a drift in the machine's load hits
both alike. Time is ``time.process_time`` (this process's CPU time: robust to other processes on
the machine) charged to the innermost part running, by wrapping the parts' methods:

* ``env``: ``SyncVectorEnv.step`` and ``reset`` (MuJoCo and the wrappers);
* ``act``: ``agent.act`` (the policy on the K observations, random exploration);
* ``observe``: ``agent.observe`` (the transition into the replay buffer);
* ``replay sample``: drawing indices and gathering SAC batches (``PopulationReplayBuffer.draw /
  gather / sample`` and the mixing of real and model batches in MBPO's ``_sac_updates``);
* ``sac forward`` / ``sac backward`` / ``sac adam`` / ``sac other``: ``SACPopulationLearner.update``:
  the losses, their backward pass, the member-wise Adam steps, the rest (non-finite bookkeeping,
  target update, metrics);
* ``model training`` (MBPO; per call, with its own forward/backward/adam split) and ``rollouts``
  (per call): amortised over ``freq_train_model`` env steps, as they run once per that many;
* ``metrics``: the metric windows (``PopulationMetricWindow.add``, MBPO's train.csv rows);
* ``other``: everything else of a step (the loop, numpy bookkeeping, the schedules).

MBPO's model training and rollouts happen on the first timed step of each population only (one call
per population and configuration: ``--steps`` is far below ``freq_train_model``); the table shows
them per call and amortised. ``--compare-model-training N`` then replays the largest population's
model-training call from the state before it, alternating ``N`` times computing every member in every
epoch until the last one stops (the old way) with ``N - 1`` times computing only the members still
training (``PopulationModelTrainer``'s default, which the profiled call itself ran: the first
sample), in process CPU time per call, and checks that both give the same numbers. A call takes
minutes at K=5 (mbpo_mse, ``--explore 300``): ``--k 5 --rounds 1 --compare-model-training 1`` is
the shortest comparison. The wrappers cost about a microsecond per call (a few dozen calls per
step; included in the parts they wrap).

Run::

    OMP_NUM_THREADS=1 python benchmarks/profile_population.py                  # a and b, K = 1 and 5
    OMP_NUM_THREADS=1 python benchmarks/profile_population.py --configs a --k 1,5 --rounds 5 --steps 40
    OMP_NUM_THREADS=1 python benchmarks/profile_population.py --configs a --ops 25   # + top torch ops at the largest K
    OMP_NUM_THREADS=1 python benchmarks/profile_population.py --configs b --k 5 --explore 300 --rounds 1 --compare-model-training 1
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_population import CONFIGS, PopulationRun, _config_list, _int_list  # noqa: E402

#: the table's rows, in order (amortised parts last)
PARTS = ("env", "act", "observe", "replay sample", "sac forward", "sac backward", "sac adam", "sac other",
         "metrics", "other", "model training", "rollouts")
#: the parts of MBPO's model training (per call)
MODEL_PARTS = ("model forward", "model backward", "model adam", "model scoring", "model other")


class PartTimer:
    """Process CPU time charged to the innermost running part (a stack of wrapped calls)."""

    def __init__(self) -> None:
        self.totals: collections.Counter[str] = collections.Counter()
        self.stack = ["other"]
        self.mark = time.process_time()
        self.active = False

    def _charge(self) -> None:
        now = time.process_time()
        self.totals[self.stack[-1]] += now - self.mark
        self.mark = now

    def wrap(self, owner: Any, name: str, part: str | Callable[[str], str]) -> None:
        """Charge calls of ``owner.name`` (an instance's or a class's method) to ``part`` (or to
        ``part(enclosing part)``)."""
        fn = getattr(owner, name)
        timer = self

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if not timer.active:
                return fn(*args, **kwargs)
            timer._charge()
            timer.stack.append(part if isinstance(part, str) else part(timer.stack[-1]))
            try:
                return fn(*args, **kwargs)
            finally:
                timer._charge()
                timer.stack.pop()

        setattr(owner, name, timed)

    def start(self) -> None:
        self.totals.clear()
        self.stack = ["other"]
        self.active = True
        self.mark = time.process_time()

    def stop(self) -> dict[str, float]:
        self._charge()
        self.active = False
        return dict(self.totals)


def _backward_part(enclosing: str) -> str:
    return {"sac": "sac backward", "model": "model backward"}.get(enclosing.split(" ")[0], enclosing)


def instrument(timer: PartTimer) -> None:
    """Wrap the classes' methods whose time a part is (the instances' are wrapped by :func:`attach`)."""
    from vagram_bench.agents.common import PopulationReplayBuffer
    from vagram_bench.agents.sac.population import SACPopulationLearner
    from vagram_bench.models.population import PopulationModelTrainer
    from vagram_bench.optim import MemberAdam
    from vagram_bench.population import PopulationMetricWindow

    timer.wrap(torch.Tensor, "backward", _backward_part)
    timer.wrap(torch.autograd, "backward", _backward_part)
    timer.wrap(SACPopulationLearner, "update", "sac other")
    timer.wrap(SACPopulationLearner, "compute_losses", "sac forward")
    # one optimiser class for both: its step is the model's inside model training, else SAC's
    timer.wrap(MemberAdam, "step", lambda enclosing: "model adam" if enclosing.startswith("model") else "sac adam")
    for name in ("draw", "gather", "sample"):
        timer.wrap(PopulationReplayBuffer, name, "replay sample")
    timer.wrap(PopulationMetricWindow, "add", "metrics")
    timer.wrap(PopulationModelTrainer, "train_members", "model other")
    timer.wrap(PopulationModelTrainer, "per_sample_loss",
               lambda enclosing: "model scoring" if enclosing == "model scoring" else "model forward")
    timer.wrap(PopulationModelTrainer, "score_members", "model scoring")


def attach(timer: PartTimer, run: PopulationRun) -> None:
    """Wrap the methods of ``run``'s env and agent whose time a part is."""
    timer.wrap(run.envs, "step", "env")
    timer.wrap(run.envs, "reset", "env")
    agent = run.agent
    timer.wrap(agent, "act", "act")
    timer.wrap(agent, "observe", "observe")
    if hasattr(agent, "_sac_updates"):  # MBPO: the mixing of real and model batches is sampling
        timer.wrap(agent, "_sac_updates", "replay sample")
        timer.wrap(agent, "_training_rows", "metrics")
        timer.wrap(agent, "_fill_model_buffers", "rollouts")
        timer.wrap(agent, "_train_models", "model other")


class ModelTrainingReplay:
    """The first ``train_members`` call of a population's model trainer (timed: the first sample of the
    default way, computing only the members still training), with the trainer's state before it (model,
    Adam moments and steps, generators) and after it, to replay it from that state with every member
    computed in every epoch (``PopulationModelTrainer._compute_stopped_members``: the old way) and again
    the default way."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.call, self.state = trainer, None, None
        self.times: dict[bool, list[float]] = {True: [], False: []}  # by "every member computed"
        self.outcome: dict[bool, Any] = {}
        train_members = trainer.train_members

        def capturing(*args, **kwargs):
            if self.call is not None:
                return train_members(*args, **kwargs)
            data = tuple(t.clone() for t in args[0])  # the buffer's storage may change afterwards
            self.call, self.state = ((data, *args[1:]), kwargs), self._state()
            return self._timed(train_members, False)

        self.train_members = train_members
        trainer.train_members = capturing

    def _timed(self, train_members: Callable, every_member: bool) -> Any:
        type(self.trainer)._compute_stopped_members = every_member
        try:
            t0 = time.process_time()
            results, errors = train_members(*self.call[0], **self.call[1])
            self.times[every_member].append(time.process_time() - t0)
        finally:
            type(self.trainer)._compute_stopped_members = False
        self.outcome[every_member] = (results, errors, [t.clone() for t in self._tensors()])
        return results, errors

    def _tensors(self) -> list[torch.Tensor]:
        opt = self.trainer.optimizer
        return [*self.trainer.model.state_dict().values(), *opt.exp_avg, *opt.exp_avg_sq,
                *(s for steps in opt.steps for s in steps)]

    def _state(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [t.clone() for t in self._tensors()], [g.get_state() for g in self.trainer.generators]

    @torch.no_grad()
    def _restore(self) -> None:
        tensors, generators = self.state
        for mine, saved in zip(self._tensors(), tensors):
            mine.copy_(saved)
        for g, saved in zip(self.trainer.generators, generators):
            g.set_state(saved)

    def compare(self, calls: int) -> None:
        """Replay the call ``calls`` times the old way and ``calls - 1`` times the default way,
        alternating after the profiled call; print process CPU ms per call."""
        for i in range(2 * calls - 1):
            self._restore()
            self._timed(self.train_members, every_member=i % 2 == 0)
        old, new = (statistics.median(self.times[m]) for m in (True, False))
        same = self.outcome[True][:2] == self.outcome[False][:2] and all(
            torch.equal(a, b) for a, b in zip(self.outcome[True][2], self.outcome[False][2]))
        epochs = ", ".join(str(r.epochs) for _, r in sorted(self.outcome[False][0].items()))
        print(f"  model training per call, K={len(self.trainer.generators)}, median of {calls} calls each, "
              f"process CPU: every member computed until the last stops {1e3 * old:.0f} ms, only the members "
              f"still training {1e3 * new:.0f} ms (new/old {new / old:.3f}); member epochs {epochs}; "
              f"results and state {'bitwise equal' if same else 'DIFFER'}")


def profile_config(name: str, ks: Sequence[int], args: argparse.Namespace) -> None:
    timer = PartTimer()
    instrument(timer)
    runs = {}
    replay = None
    for K in ks:
        run = PopulationRun(name, range(K), args.explore)
        for _ in range(run.untimed):
            run.step()
        attach(timer, run)
        runs[K] = run
        if args.compare_model_training and K == max(ks) and run.bench.model_based:
            replay = ModelTrainingReplay(run.agent.model_trainer)
    freq = runs[ks[0]].cfg.agent_config.freq_train_model if runs[ks[0]].bench.model_based else None
    per_step: dict[int, list[dict[str, float]]] = {K: [] for K in ks}  # per round: part -> s per env step
    model_call: dict[int, dict[str, float]] = {}
    for r in range(args.rounds):
        for K in (ks if r % 2 == 0 else ks[::-1]):
            run = runs[K]
            steps = args.steps
            if freq is not None and K not in model_call:  # the model-training step, on its own
                timer.start()
                trained = run.step()
                model_call[K] = timer.stop()
                if not trained:
                    raise SystemExit(f"error: config {name} K={K}: the first timed step did not train the model")
            timer.start()
            for _ in range(steps):
                run.step()
            totals = timer.stop()
            per_step[K].append({part: t / steps for part, t in totals.items()})
    if args.ops:
        K = max(ks)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                runs[K].step()
        print(f"\n({name}) K={K}: top torch ops by self CPU time over {args.steps} steps")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
    report(name, ks, per_step, model_call, freq, runs)
    if replay is not None:
        replay.compare(args.compare_model_training)


def report(name: str, ks: Sequence[int], per_step: dict[int, list[dict[str, float]]],
           model_call: dict[int, dict[str, float]], freq: int | None, runs: dict[int, PopulationRun]) -> None:
    """The table: median over rounds of each part's ms per env step per seed; K=max vs K=min."""
    def median(K: int, part: str) -> float:
        return statistics.median(r.get(part, 0.0) for r in per_step[K])

    rows: dict[str, dict[int, float]] = {}
    for part in PARTS[:-2]:
        rows[part] = {K: 1e3 * median(K, part) / K for K in ks}
    if freq is not None:
        for part in ("model training", "rollouts"):
            keys = MODEL_PARTS if part == "model training" else ("rollouts",)
            rows[part] = {K: 1e3 * sum(model_call[K].get(p, 0.0) for p in keys) / freq / K for K in ks}
    total = {K: sum(rows[p][K] for p in rows) for K in ks}
    small, big = min(ks), max(ks)
    print(f"\n({name}) {CONFIGS[name].name}: process CPU ms per env step per seed, 1 torch thread, "
          f"median of {len(per_step[small])} rounds" + (f"; model training and rollouts amortised over "
                                                         f"freq_train_model={freq} steps" if freq else ""))
    header = f"  {'part':<16}" + "".join(f" {'K=' + str(K):>9} {'%':>5}" for K in ks) + f" {f'K{big}/K{small}':>8}"
    print(header)
    for part, values in list(rows.items()) + [("total", total)]:
        cells = "".join(f" {values[K]:9.3f} {100 * values[K] / total[K]:5.1f}" for K in ks)
        ratio = values[big] / values[small] if values[small] > 0 else float("nan")
        print(f"  {part:<16}{cells} {ratio:8.2f}")
    print(f"  per-seed speed-up of K={big} over K={small} in one thread: {total[small] / total[big]:.2f}x")
    if freq is not None:
        print("  model training per call (ms, whole population): " + "; ".join(
            f"K={K}: " + ", ".join(f"{p.split(' ', 1)[1]} {1e3 * model_call[K].get(p, 0.0):.0f}" for p in MODEL_PARTS)
            + f", rollouts {1e3 * model_call[K].get('rollouts', 0.0):.0f}" for K in ks))
        print("  model epochs of each member (the population trains until its last member stops): " + "; ".join(
            f"K={K}: {', '.join(f'{e:.0f}' for e in runs[K].member_epochs)}" for K in ks))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", type=_config_list, default=["a", "b"],
                        help="comma-separated: " + "; ".join(f"{k} = {c.name}" for k, c in CONFIGS.items()))
    parser.add_argument("--k", type=_int_list, default=[1, 5], help="population sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each population")
    parser.add_argument("--steps", type=int, default=None, help="env steps per turn (default: a 40, b/c 6)")
    parser.add_argument("--explore", type=int, default=1000,
                        help="steps before learning (sac: learning_starts; MBPO: exploration)")
    parser.add_argument("--ops", type=int, default=0, help="also list this many top torch ops at the largest K")
    parser.add_argument("--compare-model-training", type=int, default=0, metavar="N",
                        help="MBPO: replay the largest population's model training N times with every member "
                             "computed until the last stops and with only the members still training")
    args = parser.parse_args(argv)
    if args.compare_model_training < 0:
        parser.error("--compare-model-training must be >= 0")
    if args.rounds < 1 or args.explore < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--rounds, --explore and --steps must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.2f}; "
          f"{args.rounds} round(s), populations K = {', '.join(map(str, args.k))}")
    for name in args.configs:
        steps = args.steps
        args.steps = steps or (40 if not CONFIGS[name].model_based else 6)
        profile_config(name, args.k, args)
        args.steps = steps
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
