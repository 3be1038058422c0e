"""Per-seed throughput of a population (``seed=0,1,...`` in one process) against separate processes.

**End to end** (``--part e2e``, the default). For each configuration and population size K it times,
in one script run and interleaved (round after round, the order alternating):

* ``pop``: one process training K seeds through the runner's population path -- the agent's
  ``make_population`` (``sac``: the batched ``SACPopulation``; the MBPO agents: the batched
  ``MBPOPopulation``; the script does not care which) stepped with ``act / observe / update`` on a
  ``SyncVectorEnv`` as ``vagram_bench.runner.loop`` steps members in step (:class:`PopulationRun`),
  with ``min(K, cores)`` torch threads (``--pop-threads``; on a machine that other processes keep
  busy a multi-threaded population stalls on its thread synchronisation -- measured 0.06-0.34x of
  the separate processes at 2 threads with a load average of 5-6 on 2 cores, 0.14x at K=2 with two
  niced runs in the background. The stall is OpenMP's spin-waiting (torch's libgomp, whose
  settings are read when torch is imported): with ``OMP_WAIT_POLICY=PASSIVE`` in the environment,
  which the processes inherit, the same quick runs measured 1.19x at K=2 and 1.65x at K=5. On an
  idle machine spinning may be the faster policy: compare both there);
* ``sep``: K single-seed processes (the population of one, one thread each) started together and
  sharing the same cores;
* ``split``: the K seeds split over C one-thread population processes (``--split-processes``,
  default C = cores; K=5 on 2 cores: populations of seeds 0-2 and 3-4) started together: what the
  runner and the sweep get by giving each core a share of a cell's seeds. Its per-seed rate is the
  mean over all K seeds (``split/sep``: > 1, the split is faster than one process per seed). For
  K <= C it is the ``sep`` layout measured again;
* ``bf16``: the ``pop`` process with ``agent.sac_bf16=true agent.rollout_bf16=true`` (MBPO only:
  ``SACConfig`` has no bf16 switch, so the ``sac`` rows say n/a).

Every process first runs its seeds to just before the first learning event without timing
(``sac``: ``learning_starts`` steps of random actions plus 20 learning steps of warm-up; MBPO: the
``--explore`` exploration steps and the model-free steps up to the first model training), then
all the processes of a measurement start their timed window of ``--window`` env steps together (a
file barrier). For MBPO the window's first step trains the model and fills the model buffer; the
steady-state cost of a step is ``mean(other steps) + (first step - mean(other steps)) /
freq_train_model`` (model training and rollouts happen once per ``freq_train_model`` steps), so the
window need not span 250 steps. Reported per configuration and K: env steps per second per seed
(``pop``, mean over the ``sep`` processes, mean over the seeds of the ``split`` processes), ``pop / sep``
(> 1: the population is faster), ``split / sep``,
``bf16 / fp32`` of the population, the measured time per seed-step and the FLOP floor.

Configurations (``--configs``): ``a`` = ``sac`` with 2x256 nets (the default) on Hopper-v5;
``b`` = ``mbpo_mse`` with ``sac_hidden_size=256 num_sac_updates_per_step=10`` (the learning script's
MBPO runs); ``c`` = ``mbpo_mse`` with its paper config (VaGraM's Hopper: 2x1024 SAC, 20 updates per
step, a 7x(4x200) ensemble, 100,000 rollouts per training). The MBPO exploration is shortened to
``--explore`` steps (the paper's 10,000 only change the model's data size).

**FLOP floor** (:func:`env_step_flops`). Matmul FLOPs of one env step of one seed in the steady
state, 2 FLOPs per multiply-add of every ``nn.Linear``-like layer (biases, activations, losses,
Adam and the env are not counted):

* a network's forward on B rows: ``f = sum over layers of 2 * B * fan_in * fan_out``; its backward
  ``2 f - first`` (weight gradients of every layer, input gradients of every layer but the first,
  whose input is data), where ``first`` is the first layer's forward;
* one SAC update (actor ``obs -> H^L -> 2 act``, two critics ``obs + act -> H^L -> 1``, batch B):
  critic loss = actor forward at s' + two target critics forward + two critics forward and backward;
  actor loss = actor forward and backward + two critics forward and input gradient only (``f``, the
  critics' weight gradients are not needed);
* acting: the actor's forward on one row;
* MBPO: the SAC updates above ``num_sac_updates_per_step`` times; model training per call =
  ``epochs * E * (n_train * (forward + backward) + n_val * forward)`` of one member (``d + a ->
  W^L -> d + 1``, ``2 (d + 1)`` for a Gaussian head) with ``n_val = int(validation_ratio * n)``,
  the epochs and ``n`` as the run measured them; rollouts per call = ``rollout_batch_size * L *``
  (actor forward + one elite's forward); both divided by ``freq_train_model``.

The floor is those FLOPs at the peak this machine reaches on a large matmul (measured at the start,
one thread, fp32 and bf16) times the population process's threads (``min(K, cores)`` unless
``--pop-threads`` says otherwise): the time a step could take if every
matmul ran at peak and nothing else cost anything. ``measured / floor`` shows the distance.

**Learner only** (``--part learner``): the SAC learner's update of K members, hand-batched
(``pop bmm``), through ``torch.vmap`` (``pop vmap``) and as K separate ``SACLearner`` (``separate``),
in process CPU time in one process, with the share of per-member noise draws.

Only ratios measured in one run on a quiet machine mean anything; the script prints the load
average at the start and the end::

    python benchmarks/bench_population.py                                  # a, b, c at K 1, 2, 5, 10
    python benchmarks/bench_population.py --quick --k 1,2,5 --configs a,b  # minutes, smoke figures
    OMP_NUM_THREADS=1 python benchmarks/bench_population.py --part learner --hidden 256 --members 1 5 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from tensordict import TensorDict

# the single-seed learners it compares the population with are test references (tests/reference/)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

RESULT_TAG = "BENCH_POPULATION_RESULT "
ENV_ID = "Hopper-v5"
BF16_FIELDS = ("agent.sac_bf16=true", "agent.rollout_bf16=true")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """One configuration of the end-to-end benchmark."""

    name: str
    """What it is (printed)."""
    argv: tuple[str, ...]
    """The runner's arguments that make its agent config (``python -m vagram_bench.run`` form)."""
    model_based: bool
    """MBPO (model training and rollouts every ``freq_train_model`` steps) or SAC."""


CONFIGS = {
    "a": BenchConfig("sac 2x256", ("agent=sac", f"env={ENV_ID}", "agent.hidden_size=256"), False),
    "b": BenchConfig("mbpo_mse, SAC 2x256, 10 updates/step",
                     ("agent=mbpo_mse", f"env={ENV_ID}", "agent.sac_hidden_size=256",
                      "agent.num_sac_updates_per_step=10"), True),
    "c": BenchConfig("mbpo_mse paper config (SAC 2x1024, 20 updates/step, 7x(4x200) ensemble)",
                     ("agent=mbpo_mse", f"env={ENV_ID}"), True),
}
#: Timed window (env steps) per configuration, full and ``--quick``.
WINDOW = {"a": (500, 100), "b": (40, 8), "c": (20, 3)}


# --------------------------------------------------------------------------------------------------
# FLOP counting


def mlp_flops(sizes: Sequence[int], batch: int) -> int:
    """Forward matmul FLOPs of an MLP with layer widths ``sizes = [in, h_1, ..., out]`` on ``batch``
    rows: ``sum 2 * batch * fan_in * fan_out``."""
    return sum(2 * batch * i * o for i, o in zip(sizes[:-1], sizes[1:]))


def _forward_backward(sizes: Sequence[int], batch: int) -> int:
    """Forward + backward of an MLP whose input is data: ``3 f - first`` (see the module docstring)."""
    return 3 * mlp_flops(sizes, batch) - mlp_flops(sizes[:2], batch)


def sac_update_flops(obs_dim: int, act_dim: int, hidden: int, layers: int, batch: int) -> int:
    """Matmul FLOPs of one SAC update (critic loss and actor loss, two critics, target critics)."""
    actor = [obs_dim] + [hidden] * layers + [2 * act_dim]
    critic = [obs_dim + act_dim] + [hidden] * layers + [1]
    critic_loss = mlp_flops(actor, batch) + 2 * mlp_flops(critic, batch) + 2 * _forward_backward(critic, batch)
    actor_loss = _forward_backward(actor, batch) + 2 * 2 * mlp_flops(critic, batch)
    return critic_loss + actor_loss


def env_step_flops(agent_config: Any, obs_dim: int, act_dim: int, model: dict[str, float] | None = None) -> float:
    """Matmul FLOPs of one steady-state env step of one seed (module docstring).

    Args:
        agent_config: a ``SACConfig`` or an ``MBPOConfig``.
        model: MBPO only: ``epochs`` (model epochs per training call), ``n`` (real transitions it
            trained on) and ``rollout_length``, as the run measured them.
    """
    c = agent_config
    if not hasattr(c, "num_sac_updates_per_step"):  # SAC
        act = mlp_flops([obs_dim] + [c.hidden_size] * c.num_layers + [2 * act_dim], 1)
        return act + c.updates_per_step * sac_update_flops(obs_dim, act_dim, c.hidden_size, c.num_layers, c.batch_size)
    actor = [obs_dim] + [c.sac_hidden_size] * c.sac_num_layers + [2 * act_dim]
    member = [obs_dim + act_dim] + [c.hid_size] * c.num_layers + [(obs_dim + 1) * (2 if c.model_loss == "mle" else 1)]
    sac = c.num_sac_updates_per_step * sac_update_flops(obs_dim, act_dim, c.sac_hidden_size, c.sac_num_layers,
                                                        c.sac_batch_size)
    model = model or {"epochs": 0, "n": 0, "rollout_length": 0}
    n_val = int(c.validation_ratio * model["n"])
    training = model["epochs"] * c.ensemble_size * (
        (model["n"] - n_val) * _forward_backward(member, 1) + n_val * mlp_flops(member, 1))
    rollouts = c.rollout_batch_size * model["rollout_length"] * (mlp_flops(actor, 1) + mlp_flops(member, 1))
    return mlp_flops(actor, 1) + sac + (training + rollouts) / c.freq_train_model


def matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of an ``n x n`` matmul on this process's threads (the best of repeated runs)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best, deadline = math.inf, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


# --------------------------------------------------------------------------------------------------
# one population stepped as the runner steps it (the timed workers; benchmarks/profile_population.py)


class PopulationRun:
    """The seeds ``seeds`` of configuration ``config`` as one population, stepped as
    ``vagram_bench.runner.loop`` steps members in step: ``act``, every sub-env's step (one vector step
    here, one by one in the runner, which can leave members out), ``observe``, ``update`` into a
    :class:`~vagram_bench.population.PopulationMetricWindow`, resets at episode ends.

    Args:
        config: a key of :data:`CONFIGS`.
        seeds: one member per seed.
        explore: steps before learning (``sac``: ``learning_starts``; MBPO: its exploration).
        bf16: the population with :data:`BF16_FIELDS`.
        device: the torch device of the networks, buffers and model (``cuda`` for ``--device cuda``).

    Attributes:
        untimed: steps to just before the first learning event (``sac``: ``learning_starts`` + 20
            learning steps of warm-up; MBPO: exploration and the model-free steps up to the first
            model training).
        model: MBPO: ``epochs`` (summed over trainings), ``n``, ``rollout_length``, ``trainings``, as
            member 0 reported them.
    """

    def __init__(self, config: str, seeds: Sequence[int], explore: int, bf16: bool = False, device: str = "cpu") -> None:
        import numpy as np

        import vagram_bench  # noqa: F401
        from vagram_bench import registry
        from vagram_bench.population import PopulationMetricWindow
        from vagram_bench.runner.config import parse_args as parse_run_args
        from vagram_bench.runner.loop import _idle_action, _make_envs

        self.bench = CONFIGS[config]
        self.seeds = [int(s) for s in seeds]
        K = len(self.seeds)
        field = "initial_exploration_steps" if self.bench.model_based else "learning_starts"
        self.cfg = parse_run_args([*self.bench.argv, f"agent.{field}={explore}", *(BF16_FIELDS if bf16 else ())])
        agent_cls = registry.load_agent(self.cfg.base_agent)
        self.envs = _make_envs(self.cfg.env, K, self.cfg.env_kwargs)
        self.agent = agent_cls.make_population(self.cfg.agent_config, self.envs.single_observation_space,
                                               self.envs.single_action_space, env_id=self.cfg.env,
                                               seeds=self.seeds, device=device)
        self.metric_window = PopulationMetricWindow(K)
        self.everyone = np.ones(K, dtype=bool)
        self.idle = _idle_action(self.envs)
        self.obs, _ = self.envs.reset(seed=self.seeds)
        self.env_step = np.zeros(K, dtype=np.int64)
        self.model: dict[str, float] = {"epochs": 0.0, "n": 0.0, "rollout_length": 0.0, "trainings": 0.0}
        self.member_epochs: list[float] = []  # every member's epochs of the last model training
        c = self.cfg.agent_config
        self.untimed = (c.initial_exploration_steps + c.freq_train_model - 1) if self.bench.model_based \
            else c.learning_starts + 20
        self.obs_dim = int(np.prod(self.envs.single_observation_space.shape))
        self.act_dim = int(np.prod(self.envs.single_action_space.shape))

    def step(self) -> bool:
        """One env step of every member; whether it trained the model (MBPO)."""
        from vagram_bench.runner.loop import _reset

        everyone = self.everyone
        actions = self.agent.act(self.obs, deterministic=False, members=everyone)
        actions[~everyone] = self.idle
        next_obs, reward, terminated, truncated, _ = self.envs.step(actions)
        self.env_step[:] += 1
        self.agent.observe(self.obs, actions, reward, next_obs, terminated, truncated, everyone)
        metrics = self.agent.update(self.env_step, everyone)
        self.metric_window.add(metrics)
        trained = "model_train_epochs" in metrics
        if trained:  # member 0's figures (every member trains then)
            self.model["trainings"] += 1
            self.model["epochs"] += float(metrics["model_train_epochs"][0][0])
            self.model["n"] = float(metrics["real_buffer_size"][0][0])
            self.model["rollout_length"] = float(metrics["rollout_length"][0][0])
            self.member_epochs = [float(e) for e in metrics["model_train_epochs"][0]]
        done = terminated | truncated
        self.obs = _reset(self.envs, done) if done.any() else next_obs
        return trained


# --------------------------------------------------------------------------------------------------
# one timed process (``--worker``)


def run_worker(args: argparse.Namespace) -> None:
    """Train ``args.seeds`` as one population up to the first learning event, wait at the barrier,
    then time ``args.window`` env steps; print the result line."""
    torch.set_num_threads(args.threads)
    run = PopulationRun(args.config, [int(s) for s in args.seeds.split(",")], args.explore, args.bf16, args.device)
    for _ in range(run.untimed):
        run.step()
    # barrier: every process of this measurement starts its window together
    Path(args.barrier, f"ready-{os.getpid()}").touch()
    while not Path(args.barrier, "go").exists():
        time.sleep(0.005)
    times = []
    for _ in range(args.window):
        t0 = time.perf_counter()
        run.step()
        times.append(time.perf_counter() - t0)
    c, model = run.cfg.agent_config, run.model
    if run.bench.model_based:
        rest = statistics.mean(times[1:])
        per_step = rest + (times[0] - rest) / c.freq_train_model
        model["epochs"] /= max(model["trainings"], 1.0)
    else:
        per_step = statistics.mean(times)
    flops = env_step_flops(c, run.obs_dim, run.act_dim, model if run.bench.model_based else None)
    print(RESULT_TAG + json.dumps({"seeds": run.seeds, "per_step": per_step, "steps_per_second": 1.0 / per_step,
                                   "flops": flops, "model": model, "population": type(run.agent).__name__,
                                   "threads": torch.get_num_threads()}), flush=True)


# --------------------------------------------------------------------------------------------------
# the comparison


def worker_command(config: str, seeds: Sequence[int], threads: int, args: argparse.Namespace,
                   bf16: bool = False) -> list[str]:
    """The command of one timed process (this file with ``--worker``; :func:`measure` adds its barrier)."""
    return [sys.executable, str(Path(__file__).resolve()), "--worker", "--config", config,
            "--seeds", ",".join(map(str, seeds)), "--threads", str(threads), "--explore", str(args.explore),
            "--window", str(window(config, args)), "--device", args.device, *(["--bf16"] if bf16 else [])]


def window(config: str, args: argparse.Namespace) -> int:
    return args.window or WINDOW[config][1 if args.quick else 0]


def measure(commands: list[list[str]], threads: int, timeout: float) -> list[dict[str, Any]]:
    """Start ``commands`` together, release their timed windows at once, return their results."""
    with tempfile.TemporaryDirectory() as barrier:
        commands = [[*cmd, "--barrier", barrier] for cmd in commands]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for cmd in commands]
        deadline = time.monotonic() + timeout
        while len(list(Path(barrier).glob("ready-*"))) < len(procs):
            if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                errors = [p.communicate()[1] for p in procs]
                raise SystemExit("error: a benchmark process failed before its window:\n"
                                 + "\n".join(e.strip().splitlines()[-1] for e in errors if e.strip()))
            time.sleep(0.01)
        Path(barrier, "go").touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            lines = [line for line in out.splitlines() if line.startswith(RESULT_TAG)]
            if p.returncode != 0 or not lines:
                raise SystemExit(f"error: a benchmark process failed (exit {p.returncode}):\n{err[-2000:]}")
            results.append(json.loads(lines[-1][len(RESULT_TAG):]))
    return results


def split_seeds(K: int, processes: int) -> list[list[int]]:
    """Seeds ``0..K-1`` over ``min(processes, K)`` populations, as evenly as possible, the larger
    ones first (K=5 over 2: ``[[0, 1, 2], [3, 4]]``)."""
    count = min(processes, K)
    sizes = [K // count + (i < K % count) for i in range(count)]
    starts = [sum(sizes[:i]) for i in range(count)]
    return [list(range(a, a + n)) for a, n in zip(starts, sizes)]


def per_seed_rate(results: list[dict[str, Any]]) -> float:
    """Mean env steps per second per seed over the seeds of ``results`` (one per process)."""
    return sum(res["steps_per_second"] * len(res["seeds"]) for res in results) / sum(len(res["seeds"]) for res in results)


def measures_bf16(config: str, args: argparse.Namespace) -> bool:
    """Whether ``config`` gets a bf16 row: its agent has the bf16 switch and ``--skip-bf16`` is not given."""
    from vagram_bench.runner.config import parse_args as parse_run_args

    return hasattr(parse_run_args(list(CONFIGS[config].argv)).agent_config, "sac_bf16") and not args.skip_bf16


def run_pop_only(args: argparse.Namespace) -> None:
    """``--pop-only`` (the default with ``--device cuda``): the population process alone at each K (and
    its bf16 variant), as seconds per population env step and per-seed throughput against K=1. On a
    GPU there are no cores to share, so the question is how close K seeds come to the cost of one."""
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{len(os.sched_getaffinity(0))} CPU cores"
    print(f"population alone on {args.device} ({name}); {args.rounds} round(s); window per config, "
          f"after {args.explore} exploration steps" + ("; --quick: smoke figures" if args.quick else ""))
    for config in args.configs:
        bench = CONFIGS[config]
        has_bf16 = measures_bf16(config, args)
        print(f"\n({config}) {bench.name}; window {window(config, args)} steps")
        print(f"  {'K':>3} {'s/step':>9} {'seed-steps/s':>12} {'vs K=1':>7} {'bf16 s/step':>11} {'bf16/fp32':>9}"
              "   (s/step: one env step of the whole population; vs K=1: per-seed throughput ratio)")
        base = None
        for K in args.k:
            rates: dict[str, list[float]] = {"pop": [], "bf16": []}
            for _ in range(args.rounds):
                for what in ("pop", "bf16") if has_bf16 else ("pop",):
                    (res,) = measure([worker_command(config, range(K), args.pop_threads or 1, args, bf16=what == "bf16")],
                                     args.pop_threads or 1, args.timeout)
                    rates[what].append(res["steps_per_second"])
            pop = statistics.median(rates["pop"])
            base = base if base is not None else (pop if K == 1 else None)
            versus = f"{K * pop / base:7.2f}" if base else f"{'n/a':>7}"
            bf16 = f"{1 / statistics.median(rates['bf16']):11.4f} {statistics.median(rates['bf16']) / pop:9.2f}" \
                if rates["bf16"] else f"{'n/a':>11} {'n/a':>9}"
            print(f"  {K:>3} {1 / pop:9.4f} {K * pop:12.2f} {versus} {bf16}", flush=True)


def run_e2e(args: argparse.Namespace) -> None:
    cores = len(os.sched_getaffinity(0))
    split_processes = args.split_processes or cores
    torch.set_num_threads(1)
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"end to end on {ENV_ID}: {cores} cores, load average {os.getloadavg()[0]:.2f} at the start; "
          f"{args.rounds} round(s); matmul peak (1 thread, 1024^2) {peak['fp32'] / 1e9:.1f} GFLOP/s fp32, "
          f"{peak['bf16'] / 1e9:.1f} GFLOP/s bf16" + ("; --quick: short windows, smoke figures" if args.quick else ""))
    for name in args.configs:
        bench = CONFIGS[name]
        has_bf16 = measures_bf16(name, args)
        print(f"\n({name}) {bench.name}; window {window(name, args)} steps after {args.explore} exploration steps")
        print(f"  {'K':>3} {'thr':>3} {'pop/s':>8} {'sep/s':>8} {'pop/sep':>7} {'split':>7} {'split/s':>8} "
              f"{'split/sep':>9} {'bf16/s':>8} {'bf16/fp32':>9} "
              f"{'pop ms':>8} {'floor ms':>8} {'pop/floor':>9} {'bf16 floor':>10}   (env steps per second per seed)")
        for K in args.k:
            threads = args.pop_threads or min(K, cores)
            groups = split_seeds(K, split_processes)
            runs: dict[str, list[float]] = {"pop": [], "sep": [], "split": [], "bf16": []}
            flops: list[float] = []
            kind = ""
            for r in range(args.rounds):
                order = ["pop", "sep", "split"] if r % 2 == 0 else ["split", "sep", "pop"]
                if has_bf16:
                    order.append("bf16")
                for what in order:
                    if what in ("sep", "split"):
                        seed_groups = [[s] for s in range(K)] if what == "sep" else groups
                        results = measure([worker_command(name, g, 1, args) for g in seed_groups], 1, args.timeout)
                        runs[what].append(per_seed_rate(results))
                        continue
                    (res,) = measure([worker_command(name, range(K), threads, args, bf16=what == "bf16")],
                                     threads, args.timeout)
                    runs[what].append(res["steps_per_second"])
                    if what == "pop":
                        flops.append(res["flops"])
                        kind = res["population"]
            pop, sep, split = (statistics.median(runs[what]) for what in ("pop", "sep", "split"))
            bf16 = statistics.median(runs["bf16"]) if runs["bf16"] else math.nan
            floor_ms = 1e3 * statistics.mean(flops) / (peak["fp32"] * threads)
            bf16_floor_ms = 1e3 * statistics.mean(flops) / (peak["bf16"] * threads)
            bf16_cells = f"{bf16:8.2f} {bf16 / pop:9.2f}" if has_bf16 else f"{'n/a':>8} {'n/a':>9}"
            bf16_floor_cell = f"{bf16_floor_ms:10.3f}" if has_bf16 else f"{'n/a':>10}"
            layout = "+".join(str(len(g)) for g in groups)
            print(f"  {K:>3} {threads:>3} {pop:8.2f} {sep:8.2f} {pop / sep:7.2f} {layout:>7} {split:8.2f} "
                  f"{split / sep:9.2f} {bf16_cells} {1e3 / pop:8.2f} "
                  f"{floor_ms:8.3f} {1e3 / pop / floor_ms:9.1f} {bf16_floor_cell}"
                  f"   [{kind}]", flush=True)
        if not bench.model_based:
            print("  bf16: n/a (SACConfig has no bf16 switch)")
        elif args.skip_bf16:
            print("  bf16: not measured (--skip-bf16)")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


# --------------------------------------------------------------------------------------------------
# learner only (``--part learner``)


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


def bench_learner(hidden: int, members: int, args: argparse.Namespace) -> dict[str, float]:
    from reference.sac_learner import SACLearner  # the single-seed test reference (tests/reference/)
    from vagram_bench.agents.sac import SACConfig
    from vagram_bench.agents.sac.population import SACPopulationLearner

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


def keep_freed_memory() -> bool:
    """glibc only (``False`` elsewhere): serve blocks up to 32 MiB from the heap and trim it only past
    1 GiB free (``mallopt``), so that freed tensors are reused instead of page-faulted in afresh.

    With glibc's defaults this script's learner loop, which holds nothing else, gets its
    ``(2K, 256, 256)`` activations as fresh pages on most updates: 1,650-2,100 page faults and 4-7 ms
    of system time per update at K=5, 2x256 (of 60-80 ms), 160-220 at K=1 -- a cost the runner's
    process does not pay (17-24 page faults per env step at K=5 through :class:`PopulationRun`: its
    heap is already large), so it would bias the comparison against the population."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 2**30))


def run_learner(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
          f"obs {args.obs_dim}, act {args.act_dim}; median process CPU ms per round (K member updates)")
    header = (f"{'net':>8} {'K':>3} {'rounds':>6} {'pop bmm':>9} {'pop vmap':>9} {'separate':>9} "
              f"{'sep/bmm':>8} {'vmap/bmm':>8} {'noise%':>7}")
    print(header)
    for hidden in args.hidden:
        for members in args.members:
            r = bench_learner(hidden, members, args)
            ms = {k: 1e3 * v for k, v in r.items() if k != "rounds"}
            print(
                f"{'2x' + str(hidden):>8} {members:>3} {r['rounds']:>6} {ms['pop bmm']:>9.2f} "
                f"{ms['pop vmap']:>9.2f} {ms['separate']:>9.2f} {r['separate'] / r['pop bmm']:>8.2f} "
                f"{r['pop vmap'] / r['pop bmm']:>8.2f} {100 * r['noise'] / r['pop bmm']:>7.2f}",
                flush=True,
            )


# --------------------------------------------------------------------------------------------------
# command line


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _config_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown configuration(s) {bad or text!r}; valid: {', '.join(CONFIGS)}")
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("e2e", "learner"), default="e2e",
                        help="e2e: env steps per second through the population path; learner: the SAC update only")
    e2e = parser.add_argument_group("end to end")
    e2e.add_argument("--configs", type=_config_list, default=list(CONFIGS),
                     help="comma-separated: " + "; ".join(f"{k} = {c.name}" for k, c in CONFIGS.items()))
    e2e.add_argument("--k", type=_int_list, default=[1, 2, 5, 10], help="population sizes, comma-separated")
    e2e.add_argument("--quick", action="store_true", help="short windows and exploration (smoke figures)")
    e2e.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick 1)")
    e2e.add_argument("--explore", type=int, default=None,
                     help="steps before learning (sac: learning_starts; MBPO: exploration; default 1000, --quick 300)")
    e2e.add_argument("--window", type=int, default=None, help="timed env steps per process (default per config)")
    e2e.add_argument("--pop-threads", type=int, default=0,
                     help="torch threads of the population process (0: min(K, cores), the cores the K "
                          "separate processes share; 1 compares one core against K processes)")
    e2e.add_argument("--split-processes", type=int, default=0,
                     help="processes of the split layout (0: the cores); each a one-thread population of "
                          "its share of the K seeds")
    e2e.add_argument("--skip-bf16", action="store_true",
                     help="no bf16 runs (CPUs without bf16 matmuls run them far slower: see the peak printed)")
    e2e.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    e2e.add_argument("--device", default="cpu", help="torch device of the population (cuda: --pop-only)")
    e2e.add_argument("--pop-only", action="store_true",
                     help="time the population process alone at each K (no separate processes): seconds per "
                          "population env step and per-seed throughput against K=1; the default off the CPU")
    learner = parser.add_argument_group("learner only")
    learner.add_argument("--hidden", type=int, nargs="+", default=[256, 1024], help="hidden widths (2 layers)")
    learner.add_argument("--members", type=int, nargs="+", default=[1, 5, 10], help="population sizes K")
    learner.add_argument("--batch", type=int, default=256, help="transitions per member and update")
    learner.add_argument("--obs-dim", type=int, default=11, help="observation dims (Hopper: 11)")
    learner.add_argument("--act-dim", type=int, default=3, help="action dims (Hopper: 3)")
    learner.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    learner.add_argument("--seconds", type=float, default=20.0, help="timing budget per configuration")
    learner.add_argument("--min-rounds", type=int, default=5)
    learner.add_argument("--max-rounds", type=int, default=50)
    worker = parser.add_argument_group("one timed process (internal)")
    worker.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--config", choices=list(CONFIGS), help=argparse.SUPPRESS)
    worker.add_argument("--seeds", help=argparse.SUPPRESS)
    worker.add_argument("--barrier", help=argparse.SUPPRESS)
    worker.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.explore is None:
        args.explore = 300 if args.quick else 1000
    if (args.rounds < 1 or args.explore < 1 or (args.window is not None and args.window < 2) or args.pop_threads < 0
            or args.split_processes < 0):
        parser.error("--rounds and --explore must be >= 1, --window >= 2, --pop-threads and --split-processes >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
    elif args.part == "learner":
        run_learner(args)
    elif args.pop_only or args.device != "cpu":
        run_pop_only(args)
    else:
        run_e2e(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
