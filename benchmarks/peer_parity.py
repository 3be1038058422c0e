"""Peer parity: mbrl-lib 0.2's MBPO against our ``mbpo_mle`` with every hyperparameter made equal.

The learning side by side (``benchmarks/bench_peer.py`` is the speed one). Two commands:

    python benchmarks/peer_parity.py run --peer-venv /work/peer/venv \\
        --peer-conf /work/peer/mbrl-v0.2.0/mbrl/examples/conf --runs runs/peer_parity
    python benchmarks/peer_parity.py report --runs runs/peer_parity --out results/peer_parity

``run`` trains both sides (``--side peer|ours|both``, default both, as two concurrent one-thread
processes); ``report`` writes ``<out>/README.md``, ``<out>/parity.csv``, ``<out>/curves.png`` and a copy
of the records (``<out>/runs/``) from the records alone, so the published directory regenerates
byte for byte from its own ``runs/`` (``tests/test_results.py``).

**The peer** is mbrl-lib 0.2 (facebookresearch/mbrl-lib, tag v0.2.0) in its own venv (DEVELOPERS.md):
its training loop ``mbrl.algorithms.mbpo.train`` with its Gaussian ensemble (``GaussianMLP``, NLL) and
its pranz24 SAC, config ``conf/main.yaml`` + ``algorithm=mbpo`` + ``overrides=mbpo_inv_pendulum`` (task
``idp``) or ``overrides=mbpo_hopper`` (task ``hopper``), ``device=cpu``, composed by Hydra from its
``examples/conf`` (``--peer-conf``) with the overrides of :data:`PEER_FIXES` and, per run,
``overrides.env``, ``overrides.term_fn``, ``seed``, ``algorithm.initial_exploration_steps``,
``overrides.num_steps``, ``algorithm.num_eval_episodes`` and ``+algorithm.dataset_size`` (all data
kept). On IDP its env is ``gym___InvertedDoublePendulum-v4`` (gymnasium 0.26 has no v5) with the
termination function ``inverted_double_pendulum``, which mbrl-lib 0.2 lacks: this script registers it
in the peer process as ``mbrl.env.termination_fns.inverted_double_pendulum`` (:func:`peer_idp_termination`,
the formula of ``envs/termination.py`` on ``next_obs[:, 1:5]``; mbrl-lib's signature ``(act, next_obs)
-> (N, 1) bool``). One peer process per seed (``--side peer`` runs the seeds one after another); the
records are written by this script's parent process, which runs under our venv, through
``vagram_bench.records`` (the peer process prints one JSON line per evaluation): ``<runs>/<peer
env>/mbrl_lib_mbpo/seed<k>/`` with ``config.json`` (library versions, the composed Hydra config, the
command), ``eval.csv`` (our layout), ``episodes.csv`` (every evaluation episode: v4 return, v5-equivalent
return, length, terminated) and ``summary.json`` when the seed is complete (with its model-training
epochs per call). A seed without ``summary.json`` is started again from scratch (mbrl-lib's loop has no
resume); complete seeds are skipped.

**Ours** is ``mbpo_mle`` through the public runner, one population process of the seeds:
``python -m vagram_bench.run agent=mbpo_mle env=<ours env> seed=0,1,2,3,4 steps=... eval_every=...
eval_episodes=... agent.<field>=...`` with every field of :data:`MATCH_MBPO_INV_PENDULUM` (IDP) or
``bench_peer.MATCH_MBPO_HOPPER`` (Hopper), our standard records under ``<runs>/<ours env>/mbpo_mle/``
(resumable by the runner).

**Budget and cadence** (both sides the same): ``--explore`` exploration steps (default 500 on IDP;
upstream's 5,000 exceeds a 4k budget) with the untrained stochastic policy, then learning to
``--steps`` total env steps (default 4,000; mbrl-lib does not count the exploration, so its
``num_steps`` is ``steps - explore``). mbrl-lib evaluates at every epoch end (``epoch_length`` learning
steps: 250 on IDP), i.e. at total env steps ``explore + 250 j``; ours evaluates every
``gcd(explore, epoch_length)`` steps, which includes those steps (its extra evaluations during the
exploration are not compared). ``--eval-episodes`` (default 5) deterministic episodes per evaluation on
both sides, episode ``i`` of every evaluation reset with seed ``1000000 + i`` on both (mbrl-lib resets
its test env without a seed; this script's wrapper of its test env supplies the seed, and calls
mbrl-lib's own ``evaluate`` once per episode; our runner does the same by design). v4 and v5 draw the
initial state the same way from the seeded generator, so both sides start their evaluation episodes
from the same states.

**v4 against v5** (gymnasium's changelog, ``InvertedDoublePendulum`` and ``Hopper`` "Version History"):
(1) v4 pays the healthy reward (10 on IDP, 1 on Hopper) also on the terminating step, v5 only on
non-terminal steps: ``eval.csv`` of the peer holds the v5-equivalent return (the v4 return minus the
healthy reward when the episode terminated; exact for the same trajectory), ``episodes.csv`` both;
the peer's model and critic still learn v4's reward. (2) IDP v5's observation drops 2 of v4's 3
``qfrc_constraint`` entries (the hinges', always 0; 11 -> 9 dims); the cart's, kept by v5, is the 9th
dim of ours and the 9th of v4. (3) mujoco 2.3.3 (peer venv) against 3.x (ours). Hopper's observation
is the same 11 dims.

**What is not matched** (no config field can): mbrl-lib resets the env at every epoch start
(``mbpo.py``: ``if steps_epoch == 0 or terminated or truncated: env.reset()``), so its real episodes
last at most ``epoch_length`` steps (250 on IDP) and are cut without a truncation flag, while ours run to
termination or the 1,000-step limit; the pranz24 SAC's xavier-uniform initialisation and its
log-std clamp against ours; mbrl-lib normalises the model inputs in float64
(``normalize_double_precision``); the random streams (every draw differs, so seed ``k`` of one side
is no pair of seed ``k`` of the other: the comparison is of two samples of seeds). The temperature:
pranz24's SAC with automatic entropy tuning starts ``log_alpha`` at 0 but uses ``alpha = 0.2``
(``overrides.sac_alpha``) in its first update only, ``exp(log_alpha)`` ~ 1.0 from the second on; ours
starts at ``sac_init_alpha = 1.0``, the value of the learned parameter (one update of a few thousand
differs).

**The statistic** (``report``): per seed the final return, the mean of the last 2 evaluations (the
cpu protocol's), per side the IQM with a 95 % percentile bootstrap CI over seeds
(``vagram_bench.leaderboard.bootstrap_ci``), P(ours > peer) (Mann-Whitney U / nm, ties 1/2) with its 95 %
bootstrap interval (``leaderboard.probability_of_improvement``) and the exact two-sided Mann-Whitney p
(``scipy.stats.mannwhitneyu(method='exact')``). Complete separation (P = 0 or 1) is printed as such,
not as a degenerate interval.

**Hopper** (``--task hopper``: ``mbpo_hopper`` on ``Hopper-v4`` against ``Hopper-v5``, by default 5,000
exploration + 10,000 learning steps, one evaluation per 1,000) is supported, not run: see
:data:`HOPPER_COST`.

The module imports only the standard library at the top: the peer side runs this same file with the
peer venv's Python (``peer-seed``), where vagram_bench is not installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peer import (  # noqa: E402  (the speed side by side: one copy of these)
    MATCH_MBPO_HOPPER,
    PEER_CONF_ENV,
    PEER_OVERRIDES,
    PEER_VENV_ENV,
    SINGLE_THREAD_ENV,
    action_box,  # noqa: F401  (Hydra instantiates ``__main__.action_box`` in the peer process)
    count_model_epochs,
    flag_exploration,
    peer_conf,
    peer_config,
    peer_python,
    train_peer_mbpo,
)

#: The peer process prints one line per event: this tag, then JSON.
EVENT_TAG = "PEER_PARITY "
#: Our agent (the Gaussian NLL loss mbrl-lib's ``gaussian_mlp_ensemble`` trains).
OURS_AGENT = "mbpo_mle"
#: The peer's agent directory name in the records.
PEER_AGENT = "mbrl_lib_mbpo"
#: Evaluation episode ``i`` is reset with ``EVAL_SEED + i`` on both sides (the runner's default).
EVAL_SEED = 1_000_000
#: Evaluations averaged into a seed's final return (as the cpu protocol's ``final_evals``).
FINAL_EVALS = 2
#: Bootstrap resamples and generator seed of the report's intervals.
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

#: Our MBPOConfig fields set to what mbrl-lib 0.2 runs with ``overrides=mbpo_inv_pendulum`` (values from
#: its files at tag v0.2.0; ``initial_exploration_steps`` and ``dataset_size`` are set per run, identically
#: on both sides).
MATCH_MBPO_INV_PENDULUM: dict[str, Any] = dict(
    # conf/overrides/mbpo_inv_pendulum.yaml
    epoch_length=250, num_elites=5, patience=5, model_lr=1e-3, model_wd=1e-5, model_batch_size=256,
    validation_ratio=0.2, freq_train_model=250, effective_model_rollouts_per_step=400,
    rollout_schedule=(1, 15, 1, 1), num_sac_updates_per_step=10, sac_updates_every_steps=1,
    num_epochs_to_retain_sac_buffer=1, sac_gamma=0.99, sac_tau=0.005, sac_target_update_interval=1,
    sac_hidden_size=256, sac_batch_size=256,
    # sac_lr 3e-4: pranz24's SAC uses it for critic, actor and temperature
    sac_critic_lr=3e-4, sac_actor_lr=3e-4, sac_alpha_lr=3e-4,
    # sac_automatic_entropy_tuning true, sac_target_entropy -1; third_party/pytorch_sac_pranz24/sac.py
    # starts log_alpha at 0 (alpha 1.0 from its second update; sac_alpha 0.2 is used by the first only)
    sac_learnable_alpha=True, sac_target_entropy=-1.0, sac_init_alpha=1.0,
    # conf/algorithm/mbpo.yaml: real_data_ratio 0 (every SAC batch from the model buffer); the policy mean on
    # real steps (algorithms/mbpo.py calls step_env_and_add_to_buffer with {} agent kwargs: sample=False), the
    # stochastic policy while exploring (random_initial_explore false, {"sample": True}); SAC updates once
    # the SAC buffer holds one batch (mbpo.py: len(which_buffer) < sac_batch_size -> break)
    model_data_likelihood=(0.0, 1.0, 1.0, 1.0), deterministic_real_actions=True,
    random_initial_explore=False, min_model_buffer_size=256,
    # models/model_trainer.py defaults (no epoch cap, improvement threshold 0.01)
    num_epochs_train_model=None, improvement_threshold=0.01,
    # conf/dynamics_model/gaussian_mlp_ensemble.yaml; pranz24's SAC: 2 hidden layers, actor and critic
    # updated every step
    ensemble_size=7, num_layers=4, hid_size=200, sac_num_layers=2, sac_actor_update_interval=1,
)


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of the side by side."""

    name: str
    peer_overrides: str  # mbrl-lib's conf/overrides/<name>.yaml
    peer_env: str  # gymnasium 0.26 id (mbrl-lib's overrides.env is "gym___" + it)
    peer_term_fn: str  # mbrl.env.termination_fns.<name>
    ours_env: str
    match: dict[str, Any]
    healthy_reward: float  # v4 pays it on the terminating step too; v5 does not
    explore: int  # default exploration steps
    steps: int  # default total env steps


TASKS = {
    "idp": Task("idp", "mbpo_inv_pendulum", "InvertedDoublePendulum-v4", "inverted_double_pendulum",
                "InvertedDoublePendulum-v5", MATCH_MBPO_INV_PENDULUM, 10.0, 500, 4000),
    "hopper": Task("hopper", "mbpo_hopper", "Hopper-v4", "hopper", "Hopper-v5", MATCH_MBPO_HOPPER, 1.0,
                   5000, 15000),
}


#: What a Hopper parity check would cost (the README of the IDP comparison states it). Per-update CPU
#: times measured on 2026-12-06 on the shared 2-core development machine (load average ~6.5, one thread):
#: ours with ``benchmarks/bench_sac.py --hidden 512 --obs-dim 11 --act-dim 3`` (fused, the single-seed
#: learner) and ``--hidden 256 --obs-dim 9 --act-dim 1``; the peer timing 200 calls of mbrl-lib 0.2's
#: ``SAC.update_parameters`` (pranz24) on a 10k-transition buffer, batch 256, in its venv.
HOPPER_COST = (
    "**Hopper** (`--task hopper`: `mbpo_hopper` on Hopper-v4 against Hopper-v5, by default 5,000 exploration "
    "+ 10,000 learning steps, an evaluation every 1,000) is supported by the same script and was not run. Its "
    "cost is SAC updates: 40 per learning step of 2x512 networks, against 10 of 2x256 here. Measured CPU time "
    "per update on this machine (one thread, loaded): mbrl-lib's SAC 44 ms at 512 wide (17 ms at 256), ours 38 "
    "ms (15 ms). So 10,000 learning steps take about 4.9 h (peer) and 4.2 h (ours) of CPU per seed for the SAC "
    "updates alone, plus ~40 model trainings on up to 15k transitions: with 5 seeds a side, about 50 CPU-hours, "
    "a day on the 2 cores even when they are idle, for a budget that is early learning on Hopper "
    "(results/cpu: no MBPO run is near its final return after 5k model-based steps). It does not fit here."
)


def env_dir_name(env_id: str) -> str:
    return env_id


# --------------------------------------------------------------------------------------------------
# command line


def _usage_error(message: str) -> SystemExit:
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(2)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds (e.g. 0,1,2,3,4)")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: need distinct seeds >= 0 (e.g. 0,1,2,3,4)")
    return seeds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the peer and/or ours (resumable; complete seeds are skipped)")
    run.add_argument("--task", choices=sorted(TASKS), default="idp",
                     help="idp: mbpo_inv_pendulum on InvertedDoublePendulum v4/v5; hopper: mbpo_hopper on Hopper v4/v5")
    run.add_argument("--side", choices=("both", "peer", "ours"), default="both",
                     help="both: the peer's seeds one after another and ours as one population, concurrently")
    run.add_argument("--seeds", type=_seeds, default=[0, 1, 2, 3, 4], help="comma-separated (default 0,1,2,3,4)")
    run.add_argument("--explore", type=int, help="exploration steps, both sides (default: idp 500, hopper 5000)")
    run.add_argument("--steps", type=int, help="total env steps including the exploration (default: idp 4000, "
                                               "hopper 15000)")
    run.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation, both sides")
    run.add_argument("--runs", default="runs/peer_parity", help="root of the records of both sides")
    run.add_argument("--peer-venv", default=os.environ.get(PEER_VENV_ENV),
                     help=f"mbrl-lib 0.2's virtual environment (default: ${PEER_VENV_ENV})")
    run.add_argument("--peer-conf", default=os.environ.get(PEER_CONF_ENV),
                     help=f"mbrl-lib v0.2.0's mbrl/examples/conf (default: ${PEER_CONF_ENV})")
    run.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    report = sub.add_parser("report", help="the table, figure and README from the records")
    report.add_argument("--task", choices=sorted(TASKS), default="idp")
    report.add_argument("--runs", required=True, help="root of the records (a run's --runs, or <out>/runs)")
    report.add_argument("--out", required=True, help="the published directory (e.g. results/peer_parity)")
    seed = sub.add_parser("peer-seed", help=argparse.SUPPRESS)  # one peer seed, under the peer venv
    seed.add_argument("--task", choices=sorted(TASKS), required=True)
    seed.add_argument("--seed", type=int, required=True)
    seed.add_argument("--explore", type=int, required=True)
    seed.add_argument("--steps", type=int, required=True)
    seed.add_argument("--eval-episodes", type=int, required=True)
    seed.add_argument("--peer-conf", required=True)
    args = parser.parse_args(argv)
    if args.command in ("run", "peer-seed"):
        task = TASKS[args.task]
        if args.command == "run":
            args.explore = task.explore if args.explore is None else args.explore
            args.steps = task.steps if args.steps is None else args.steps
        epoch = task.match["epoch_length"]
        if args.explore < 1:
            raise _usage_error(f"--explore {args.explore}: must be >= 1")
        learning = args.steps - args.explore
        if learning < epoch or learning % epoch:
            raise _usage_error(f"--steps {args.steps}: steps - explore = {learning} must be a positive multiple of "
                               f"the epoch length {epoch} (mbrl-lib evaluates, and checks its budget, at epoch ends)")
        if args.eval_episodes < 1:
            raise _usage_error(f"--eval-episodes {args.eval_episodes}: must be >= 1")
    return args


def eval_every(task: Task, explore: int) -> int:
    """Our runner's evaluation period: every total env step ``explore + j * epoch_length`` is a multiple."""
    return math.gcd(explore, task.match["epoch_length"])


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def ours_fields(task: Task, explore: int, steps: int) -> dict[str, Any]:
    """Our agent's config fields of a run (``None`` values are our defaults too, checked by ``report``)."""
    return dict(task.match, initial_exploration_steps=explore, dataset_size=steps)


def ours_command(args: argparse.Namespace, python: str | Path = sys.executable) -> list[str]:
    """Our side: the public runner, one population process of the seeds."""
    task = TASKS[args.task]
    fields = [f"agent.{k}={_cli_value(v)}" for k, v in ours_fields(task, args.explore, args.steps).items()
              if v is not None]
    return [str(python), "-m", "vagram_bench.run", f"agent={OURS_AGENT}", f"env={task.ours_env}",
            f"seed={','.join(map(str, args.seeds))}", f"steps={args.steps}",
            f"eval_every={eval_every(task, args.explore)}", f"eval_episodes={args.eval_episodes}",
            f"eval_seed={EVAL_SEED}", f"out={args.runs}", "threads=1", "quiet=true", "checkpoint_every=1000",
            *fields]


def peer_overrides(task: Task, seed: int, explore: int, steps: int, eval_episodes: int) -> list[str]:
    """mbrl-lib's Hydra overrides of one seed: its config with the budget and evaluation of the run
    (``num_steps`` counts learning steps only; the real buffer keeps every transition)."""
    fixes = [o for o in PEER_OVERRIDES if not o.startswith("overrides=")]
    return [*fixes, f"overrides={task.peer_overrides}", f"overrides.env=gym___{task.peer_env}",
            f"overrides.term_fn={task.peer_term_fn}", f"seed={seed}",
            f"algorithm.initial_exploration_steps={explore}", f"overrides.num_steps={steps - explore}",
            f"algorithm.num_eval_episodes={eval_episodes}", f"+algorithm.dataset_size={steps}"]


def peer_seed_command(args: argparse.Namespace, python: str | Path, seed: int) -> list[str]:
    return [str(python), str(Path(__file__).resolve()), "peer-seed", "--task", args.task, "--seed", str(seed),
            "--explore", str(args.explore), "--steps", str(args.steps), "--eval-episodes",
            str(args.eval_episodes), "--peer-conf", str(args.peer_conf)]


def peer_run_dir(runs: str | Path, task: Task, seed: int) -> Path:
    return Path(runs) / env_dir_name(task.peer_env) / PEER_AGENT / f"seed{seed}"


def ours_run_dir(runs: str | Path, task: Task, seed: int) -> Path:
    return Path(runs) / env_dir_name(task.ours_env) / OURS_AGENT / f"seed{seed}"


# --------------------------------------------------------------------------------------------------
# the peer process (runs under the peer venv: numpy, torch, gymnasium 0.26, mbrl 0.2; no vagram_bench)


def peer_idp_termination(act: Any, next_obs: Any) -> Any:
    """InvertedDoublePendulum termination in mbrl-lib's signature: done where the tip height
    ``0.6 cos t1 + 0.6 cos(t1 + t2) <= 1``, from ``[x, sin t1, sin t2, cos t1, cos t2, ...]`` (v4: 11 dims,
    v5: 9; the same first five). The formula of our ``envs/termination.py``."""
    assert len(next_obs.shape) == 2
    s1, s2, c1, c2 = next_obs[:, 1], next_obs[:, 2], next_obs[:, 3], next_obs[:, 4]
    y = 0.6 * c1 + 0.6 * (c1 * c2 - s1 * s2)
    return (y <= 1.0)[:, None]


def _emit(kind: str, **payload: Any) -> None:
    print(EVENT_TAG + json.dumps({"event": kind, **payload}), flush=True)


def run_peer_seed(args: argparse.Namespace) -> None:
    """mbrl-lib's own MBPO loop for one seed, as its ``examples/main.py`` runs it; its ``evaluate`` is
    called once per episode on a wrapper of its test env that seeds each reset and records each episode."""
    import gymnasium
    import hydra
    import mbrl
    import mbrl.algorithms.mbpo as mbpo
    import mbrl.env.termination_fns as termination_fns
    import mbrl.models
    import mbrl.util.common as common
    import numpy as np
    import omegaconf
    import torch

    torch.set_num_threads(1)
    task = TASKS[args.task]
    if not hasattr(termination_fns, "inverted_double_pendulum"):
        termination_fns.inverted_double_pendulum = peer_idp_termination
    overrides = peer_overrides(task, args.seed, args.explore, args.steps, args.eval_episodes)
    cfg = peer_config(args.peer_conf, overrides)
    started = time.perf_counter()
    _emit("config", hydra_overrides=overrides,
          # the groups MBPO reads, resolved (main.yaml's action_optimizer interpolates keys only PETS has)
          hydra_config={**{k: cfg[k] for k in ("seed", "device")},
                        **{k: omegaconf.OmegaConf.to_container(cfg[k], resolve=True)
                           for k in ("algorithm", "dynamics_model", "overrides")}},
          versions={"mbrl": mbrl.__version__, "torch": torch.__version__, "gymnasium": gymnasium.__version__,
                    "numpy": np.__version__, "hydra": hydra.__version__,
                    "mujoco": __import__("mujoco").__version__, "python": sys.version.split()[0]},
          threads=torch.get_num_threads())

    class SeededEpisodes(gymnasium.Wrapper):
        """mbrl-lib's test env with each evaluation episode reset with the seed set before it, and its
        return (as v4 pays it and v5-equivalent), length and termination recorded."""

        def __init__(self, env: Any) -> None:
            super().__init__(env)
            self.next_seed: int | None = None
            self.episode: dict[str, Any] = {}

        def reset(self, **kwargs: Any) -> Any:
            if self.next_seed is not None:
                kwargs["seed"], self.next_seed = self.next_seed, None
            self.episode = {"return_v4": 0.0, "length": 0, "terminated": False}
            return self.env.reset(**kwargs)

        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.episode["return_v4"] += float(reward)
            self.episode["length"] += 1
            self.episode["terminated"] = bool(terminated)
            return obs, reward, terminated, truncated, info

    learning_steps, model_epochs = [0], []
    step_env_and_add_to_buffer = common.step_env_and_add_to_buffer
    evaluate = mbpo.evaluate

    def env_step(*a: Any, **kw: Any) -> Any:
        if not exploring[0]:
            learning_steps[0] += 1
        return step_env_and_add_to_buffer(*a, **kw)

    def evaluate_episodes(env: SeededEpisodes, agent: Any, num_episodes: int, video_recorder: Any) -> float:
        episodes = []
        for i in range(num_episodes):
            env.next_seed = EVAL_SEED + i
            evaluate(env, agent, 1, video_recorder)
            ep = dict(env.episode)
            ep["return_v5"] = ep["return_v4"] - (task.healthy_reward if ep["terminated"] else 0.0)
            episodes.append(ep)
        _emit("eval", env_step=args.explore + learning_steps[0], episodes=episodes,
              wall_seconds=round(time.perf_counter() - started, 3))
        return float(np.mean([ep["return_v4"] for ep in episodes]))  # what mbrl-lib's evaluate returns

    exploring = flag_exploration(common)
    common.step_env_and_add_to_buffer = env_step
    count_model_epochs(mbrl.models, model_epochs)
    mbpo.evaluate = evaluate_episodes

    train_peer_mbpo(cfg, wrap_test_env=SeededEpisodes)
    _emit("done", env_steps=args.explore + learning_steps[0], wall_seconds=round(time.perf_counter() - started, 3),
          model_epochs=model_epochs, max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


# --------------------------------------------------------------------------------------------------
# running (under our venv)


def run_peer_seeds(args: argparse.Namespace, python: Path, log: Any = None) -> int:
    """The peer's seeds one after another; each writes its records as its events arrive."""
    from vagram_bench.records import RunPaths

    task = TASKS[args.task]
    failed = []
    for seed in args.seeds:
        run_dir = peer_run_dir(args.runs, task, seed)
        paths = RunPaths(run_dir)
        if paths.summary.exists():
            print(f"peer seed {seed}: complete, skipped ({run_dir})", file=log, flush=True)
            continue
        lock = _lock_seed(run_dir)
        if lock is None:
            print(f"peer seed {seed}: being run by another process, skipped ({run_dir}.lock)", file=log, flush=True)
            continue
        try:
            if not _run_peer_seed_locked(args, python, task, seed, run_dir, log):
                failed.append(seed)
        finally:
            lock.unlink(missing_ok=True)
    return 1 if failed else 0


def _lock_seed(run_dir: Path) -> Path | None:
    """``<run_dir>.lock`` holding this process's id, or ``None`` when a live process holds it (two
    ``run --side peer`` on one ``--runs`` share the seeds: each skips the seeds the other runs)."""
    lock = run_dir.parent / f"{run_dir.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or "0"), 0)
                return None  # held by a live process
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except PermissionError:
                return None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    return None


def _run_peer_seed_locked(args: argparse.Namespace, python: Path, task: Task, seed: int, run_dir: Path,
                          log: Any) -> bool:
    from vagram_bench.records import EVAL_COLUMNS, CSVLog, RunPaths, atomic_write_json

    paths = RunPaths(run_dir)
    if paths.summary.exists():  # completed by another process since the check above
        return True
    if run_dir.exists():  # a seed cut short: mbrl-lib's loop cannot resume, start it again
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    cmd = peer_seed_command(args, python, seed)
    eval_log, episode_log = CSVLog(paths.eval_csv, EVAL_COLUMNS), CSVLog(run_dir / "episodes.csv")
    evals = 0
    proc = subprocess.Popen(cmd, env={**os.environ, **SINGLE_THREAD_ENV}, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if not line.startswith(EVENT_TAG):
            continue
        event = json.loads(line[len(EVENT_TAG):])
        if event["event"] == "config":
            atomic_write_json(paths.config, {
                "what": "mbrl-lib 0.2 MBPO (its mbrl.algorithms.mbpo.train, GaussianMLP ensemble, pranz24 SAC), "
                        "run by benchmarks/peer_parity.py; eval.csv holds v5-equivalent returns "
                        "(episodes.csv: v4 and v5-equivalent)",
                "agent": PEER_AGENT, "env": task.peer_env, "seed": seed, "steps": args.steps,
                "initial_exploration_steps": args.explore, "eval_episodes": args.eval_episodes,
                "eval_seed": EVAL_SEED, "command": cmd[1:], **{k: v for k, v in event.items() if k != "event"}})
        elif event["event"] == "eval":
            rets = [ep["return_v5"] for ep in event["episodes"]]
            mean = sum(rets) / len(rets)
            eval_log.append({
                "env_step": event["env_step"], "return_mean": mean,
                "return_std": math.sqrt(sum((r - mean) ** 2 for r in rets) / len(rets)),
                "return_min": min(rets), "return_max": max(rets),
                "episode_length_mean": sum(ep["length"] for ep in event["episodes"]) / len(rets),
                "wall_seconds": event["wall_seconds"]})
            for i, ep in enumerate(event["episodes"]):
                episode_log.append({"env_step": event["env_step"], "episode": i, "reset_seed": EVAL_SEED + i,
                                    "return_v5": ep["return_v5"], "return_v4": ep["return_v4"],
                                    "length": ep["length"], "terminated": int(ep["terminated"])})
            evals += 1
            print(f"peer seed {seed}: env step {event['env_step']} return {mean:.1f} "
                  f"({event['wall_seconds']:.0f} s)", file=log, flush=True)
        elif event["event"] == "done":
            atomic_write_json(paths.summary, {
                "agent": PEER_AGENT, "env": task.peer_env, "seed": seed, "env_steps": event["env_steps"],
                "final_return_mean": mean if evals else None, "num_evals": evals,
                "wall_seconds": event["wall_seconds"], "model_epochs_per_call": event["model_epochs"],
                "max_rss_mb": event["max_rss_mb"]})
    if proc.wait() != 0 or not paths.summary.exists():
        print(f"error: peer seed {seed} failed (exit status {proc.returncode}): {' '.join(cmd)}",
              file=log or sys.stderr, flush=True)
        return False
    return True


def run(args: argparse.Namespace) -> int:
    sides = ("peer", "ours") if args.side == "both" else (args.side,)
    python = None
    if "peer" in sides:
        python = peer_python(args.peer_venv)
        args.peer_conf = peer_conf(args.peer_conf, args.peer_venv)
    runs = Path(args.runs)
    commands = {"ours": ours_command(args)} if "ours" in sides else {}
    if "peer" in sides:
        commands["peer"] = [sys.executable, str(Path(__file__).resolve()), "run", "--side", "peer", "--task",
                            args.task, "--seeds", ",".join(map(str, args.seeds)), "--explore", str(args.explore),
                            "--steps", str(args.steps), "--eval-episodes", str(args.eval_episodes), "--runs",
                            str(runs), "--peer-venv", str(args.peer_venv), "--peer-conf", str(args.peer_conf)]
    if args.dry_run:
        for side, cmd in commands.items():
            print(f"{side}: {' '.join(cmd)}")
        return 0
    runs.mkdir(parents=True, exist_ok=True)
    if sides == ("peer",):
        return run_peer_seeds(args, python)
    if sides == ("ours",):
        return subprocess.run(commands["ours"], env={**os.environ, **SINGLE_THREAD_ENV}).returncode
    # both: two one-thread processes side by side, their output in <runs>/<side>.log
    procs = {}
    for side, cmd in commands.items():
        with open(runs / f"{args.task}-{side}.log", "a") as log:
            procs[side] = subprocess.Popen(cmd, env={**os.environ, **SINGLE_THREAD_ENV}, stdout=log,
                                           stderr=subprocess.STDOUT)
        print(f"{side}: {' '.join(cmd)}\n  log {runs / f'{args.task}-{side}.log'}", flush=True)
    codes = {side: p.wait() for side, p in procs.items()}
    print(f"exit status: {codes}")
    return 0 if not any(codes.values()) else 1


# --------------------------------------------------------------------------------------------------
# the report (under our venv)

#: The record files published per run (no checkpoint).
RECORD_FILES = ("config.json", "eval.csv", "summary.json", "train.csv", "episodes.csv")
#: The commands the README names (the published directory regenerates from its own runs/).
RUN_COMMAND = ("python benchmarks/peer_parity.py run --task {task} --runs runs/peer_parity "
               "--peer-venv $VAGRAM_PEER_VENV --peer-conf $VAGRAM_PEER_CONF")
REPORT_COMMAND = "python benchmarks/peer_parity.py report --task {task} --runs runs/peer_parity --out {out}"
REGENERATE_COMMAND = "python benchmarks/peer_parity.py report --task {task} --runs {out}/runs --out {out}"


@dataclasses.dataclass
class Side:
    """One side's complete seeds: eval steps, returns (seeds x evals), wall seconds, configs."""

    name: str
    env: str
    seeds: list[int]
    steps: list[int]
    returns: Any  # np.ndarray (seeds, evals) at ``steps``
    configs: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    run_dirs: list[Path]


def _load_side(runs: Path, name: str, env: str, agent: str) -> Side:
    import numpy as np

    from vagram_bench.records import RunPaths, read_evals, read_json

    root = runs / env_dir_name(env) / agent
    dirs = sorted((d for d in root.glob("seed*") if d.is_dir() and RunPaths(d).summary.exists()),
                  key=lambda d: int(d.name[len("seed"):]))
    if not dirs:
        raise _usage_error(f"--runs {runs}: no complete {name} run under {root} (is --task right, and did "
                           f"`peer_parity.py run` finish?)")
    evals = [read_evals(RunPaths(d).eval_csv) for d in dirs]
    _same_steps(evals, dirs)
    return Side(name, env, [int(d.name[len("seed"):]) for d in dirs], [r.env_step for r in evals[0]],
                np.array([[r.return_mean for r in e] for e in evals]), [read_json(RunPaths(d).config) for d in dirs],
                [read_json(RunPaths(d).summary) for d in dirs], dirs)


def _same_steps(evals: list[list[Any]], dirs: list[Path]) -> None:
    steps = [[r.env_step for r in e] for e in evals]
    for d, s in zip(dirs, steps):
        if s != steps[0]:
            raise _usage_error(f"{d}: evaluation steps {s} differ from {dirs[0]}'s {steps[0]}")


def check_parity(task: Task, peer: Side, ours: Side) -> list[str]:
    """What both sides ran with: the differences from :func:`ours_fields` and between the budgets (empty
    when every matched field and the budget agree)."""
    problems = []
    for cfg, d in zip(ours.configs, ours.run_dirs):
        agent = cfg["agent_config"]
        explore, steps = agent["initial_exploration_steps"], cfg["steps"]
        for k, v in ours_fields(task, explore, steps).items():
            want = list(v) if isinstance(v, tuple) else v
            if agent.get(k) != want:
                problems.append(f"{d}: agent.{k} = {agent.get(k)!r}, the peer's value is {want!r}")
    for cfg, d in zip(peer.configs, peer.run_dirs):
        for key in ("steps", "initial_exploration_steps", "eval_episodes", "eval_seed"):
            theirs = ours.configs[0]["agent_config"][key] if key == "initial_exploration_steps" else ours.configs[0][key]
            if cfg[key] != theirs:
                problems.append(f"{d}: {key} = {cfg[key]}, ours {theirs}")
    missing = sorted(set(peer.steps) - set(ours.steps))
    if missing:
        problems.append(f"ours has no evaluation at the peer's env steps {missing}")
    return problems


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def _interval_text(point: float, low: float, high: float) -> str:
    if point in (0.0, 1.0):
        return (f"{point:.2f}: complete separation (every ours/peer pair of seeds ordered the same way; the "
                "bootstrap interval is degenerate and not shown)")
    if math.isnan(low):
        return f"{point:.2f} (too few seeds for an interval)"
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def _verdict(point: float, low: float, high: float) -> str:
    if point == 0.0 or (not math.isnan(high) and high < 0.5):
        return "the interval lies wholly below 0.5: ours is worse than the peer on this task and budget"
    if point == 1.0 or (not math.isnan(low) and low > 0.5):
        return "the interval lies wholly above 0.5: ours is better than the peer on this task and budget"
    return ("the interval straddles 0.5: with these seeds the two implementations cannot be told apart on "
            "this task and budget (which is not a demonstration that they are equal)")


def compare(task: Task, runs: Path) -> dict[str, Any]:
    """The statistics of the report (a dict, printed and written by :func:`report`)."""
    import scipy.stats

    from vagram_bench import leaderboard as lb

    peer = _load_side(runs, "peer", task.peer_env, PEER_AGENT)
    ours = _load_side(runs, "ours", task.ours_env, OURS_AGENT)
    problems = check_parity(task, peer, ours)
    if problems:
        raise _usage_error("the two sides did not run the same settings:\n  " + "\n  ".join(problems))
    columns = [ours.steps.index(s) for s in peer.steps]
    ours.returns, ours.steps = ours.returns[:, columns], list(peer.steps)
    final = {side.name: side.returns[:, -FINAL_EVALS:].mean(axis=1) for side in (peer, ours)}
    stats: dict[str, Any] = {"peer": peer, "ours": ours, "final": final}
    for name, x in final.items():
        low, high = lb.bootstrap_ci([x], "iqm", n_resamples=N_RESAMPLES, seed=BOOTSTRAP_SEED)
        stats[f"{name}_iqm"] = (lb.aggregate(x, "iqm"), low, high)
    stats["p_improvement"] = lb.probability_of_improvement([final["ours"]], [final["peer"]],
                                                           n_resamples=N_RESAMPLES, seed=BOOTSTRAP_SEED)
    stats["mwu_p"] = float(scipy.stats.mannwhitneyu(final["ours"], final["peer"], alternative="two-sided",
                                                    method="exact").pvalue)
    stats["wall"] = {"peer": [s["wall_seconds"] for s in peer.summaries],
                     "ours": [s["wall_seconds"] for s in ours.summaries]}
    return stats


def _plot(stats: dict[str, Any], task: Task, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scipy.stats

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for side, colour, label in (("peer", "tab:orange", f"mbrl-lib 0.2 MBPO ({task.peer_env})"),
                                ("ours", "tab:blue", f"ours {OURS_AGENT} ({task.ours_env})")):
        s = stats[side]
        for row in s.returns:
            ax.plot(s.steps, row, color=colour, lw=0.7, alpha=0.35)
        ax.plot(s.steps, scipy.stats.trim_mean(s.returns, 0.25, axis=0), color=colour, lw=2.2,
                label=f"{label}: IQM of {len(s.seeds)} seeds")
    ax.set_xlabel("env steps (exploration included)")
    ax.set_ylabel("evaluation return (v5 reward)")
    ax.set_title(f"peer parity, {task.peer_overrides} settings: thin lines are seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _readme(stats: dict[str, Any], task: Task, out: str) -> str:
    import numpy as np

    peer, ours, final = stats["peer"], stats["ours"], stats["final"]
    point, low, high = stats["p_improvement"]
    budget = peer.configs[0]
    explore, steps, episodes = budget["initial_exploration_steps"], budget["steps"], budget["eval_episodes"]
    wall_peer, wall_ours = stats["wall"]["peer"], stats["wall"]["ours"]
    per_seed_ours = max(wall_ours) / len(ours.seeds)  # one population process: its wall covers every seed
    lines = [
        f"# Peer parity: mbrl-lib 0.2 MBPO against `{OURS_AGENT}` ({task.peer_overrides} settings)",
        "",
        f"Generated by `{REPORT_COMMAND.format(task=task.name, out=out)}` from the run records in `runs/`; "
        f"regenerate this directory from them with `{REGENERATE_COMMAND.format(task=task.name, out=out)}` "
        "(`tests/test_results.py` checks that it comes out byte for byte). The runs: "
        f"`{RUN_COMMAND.format(task=task.name)}` (mbrl-lib's venv and `examples/conf`: DEVELOPERS.md). "
        "What each side runs, what is matched and what is not: the docstring of `benchmarks/peer_parity.py`.",
        "",
        f"Both sides: {explore} exploration steps (the untrained stochastic policy), learning to {steps:,} env "
        f"steps in all, evaluation every {task.match['epoch_length']} learning steps (mbrl-lib's epoch end) with "
        f"{episodes} deterministic episodes, episode *i* reset with seed {EVAL_SEED:,} + *i* on both; every MBPO, "
        f"model and SAC hyperparameter set to mbrl-lib's `{task.peer_overrides}` + `algorithm/mbpo` + "
        "`dynamics_model/gaussian_mlp_ensemble` at v0.2.0 (`MATCH_MBPO_INV_PENDULUM` in the script, every value "
        "checked against each run's `config.json` by the report). Returns are on v5's reward: the peer's v4 "
        f"return minus the healthy reward ({task.healthy_reward:g}) of a terminating step (`episodes.csv` of a "
        "peer run holds both).",
        "",
        f"Final return = mean of the last {FINAL_EVALS} evaluations (env steps "
        f"{', '.join(f'{s:,}' for s in peer.steps[-FINAL_EVALS:])}); IQM with a 95 % percentile bootstrap CI over "
        f"seeds ({N_RESAMPLES:,} resamples).",
        "",
        "| side | env | seeds | final return per seed | IQM [95 % CI] | wall per seed |",
        "|---|---|---|---|---|---|",
    ]
    for side, label, wall in (("peer", "mbrl-lib 0.2 MBPO", f"{np.mean(wall_peer) / 60:.1f} min "
                               f"({min(wall_peer) / 60:.1f}-{max(wall_peer) / 60:.1f}), one process per seed"),
                              ("ours", f"ours `{OURS_AGENT}`", f"{per_seed_ours / 60:.1f} min (one population "
                               f"process of {len(ours.seeds)} seeds: {max(wall_ours) / 60:.1f} min)")):
        s = stats[side]
        iqm, lo, hi = stats[f"{side}_iqm"]
        per_seed = ", ".join(f"{_fmt(v)}" for v in final[side])
        lines.append(f"| {label} | {s.env} | {','.join(map(str, s.seeds))} | {per_seed} | "
                     f"{_fmt(iqm)} [{_fmt(lo)}, {_fmt(hi)}] | {wall} |")
    lines += [
        "",
        f"**P(ours > peer)** = {_interval_text(point, low, high)} (Mann-Whitney U / nm over the "
        f"{len(ours.seeds)} x {len(peer.seeds)} pairs of seeds, ties 1/2; 95 % percentile bootstrap of the seeds "
        f"of each side, {N_RESAMPLES:,} resamples); exact two-sided Mann-Whitney p = {stats['mwu_p']:.3f}. "
        f"So {_verdict(point, low, high)}.",
        "",
        "![learning curves](curves.png)",
        "",
        "Per-seed numbers: `parity.csv`. The peer's model-training epochs per call (early stopping, patience "
        "5), per seed: " + "; ".join(f"seed {s['seed']}: {s['model_epochs_per_call']}" for s in peer.summaries)
        + ".",
        "",
        "**CPU cost.** The wall times above are of one thread each, the peer's seeds one after another and "
        "our population beside them, on the shared 2-core development machine (AMD EPYC with AVX-512; ours "
        "under the runner's AVX2 kernel pin, the peer on its own torch's kernels) with other jobs running "
        "(our population resumed once from its checkpoint, a peer seed cut short was rerun from its start): "
        "they bound the cost from above, and they are no speed comparison of the two libraries "
        "(`benchmarks/bench_peer.py` is that).",
        "",
        "**What this shows and what it cannot.** It compares two samples of seeds of the same algorithm with "
        "the same hyperparameters at one small budget on one task: a defect that makes ours learn "
        "systematically worse than the peer at this budget would push P(ours > peer) below 0.5. It cannot show "
        "that the two are equal (five seeds against five detect only large differences), nor anything about "
        "longer budgets or other tasks. What still differs between the sides (see the script's docstring): "
        f"the env version ({task.peer_env}, gymnasium 0.26 and mujoco 2.3.3, against {task.ours_env}, "
        "gymnasium 1.x and mujoco 3.x; v4 pays the healthy reward on the terminating step too, which the "
        "peer's model and critic learn" + ("; IDP v4 observes 2 more constraint forces, always 0"
                                           if task.name == "idp" else "") + "), mbrl-lib's "
        "reset of the env at every epoch start (its real episodes last at most one epoch, "
        f"{task.match['epoch_length']} steps; ours run to termination or the time limit), network "
        "initialisation and the log-std clamp of pranz24's SAC, the float64 input normaliser, the "
        "temperature's first update (pranz24 uses 0.2 there, ours starts at the learned parameter's "
        "1.0), and every random stream.",
        "",
    ]
    if task.name == "idp":
        lines += [HOPPER_COST, ""]
    return "\n".join(lines)


def _write_csv(stats: dict[str, Any], path: Path) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["side", "env", "seed", "final_return", *[f"return_at_{s}" for s in stats["peer"].steps],
                "wall_seconds"])
    for name in ("peer", "ours"):
        s = stats[name]
        for i, seed in enumerate(s.seeds):
            w.writerow([name, s.env, seed, repr(float(stats["final"][name][i])),
                        *[repr(float(v)) for v in s.returns[i]], s.summaries[i]["wall_seconds"]])
    path.write_text(buf.getvalue())


def report(args: argparse.Namespace) -> int:
    task = TASKS[args.task]
    runs, out = Path(args.runs), Path(args.out)
    if not runs.is_dir():
        raise _usage_error(f"--runs {runs}: no such directory (the --runs of `peer_parity.py run`, or <out>/runs)")
    stats = compare(task, runs)
    out.mkdir(parents=True, exist_ok=True)
    published = out / "runs"
    if published.resolve() != runs.resolve():  # publish the records (no checkpoints) beside the tables
        for side in (stats["peer"], stats["ours"]):
            for d in side.run_dirs:
                dst = published / d.relative_to(runs)
                if dst.exists():
                    shutil.rmtree(dst)
                dst.mkdir(parents=True)
                for name in RECORD_FILES:
                    if (d / name).exists():
                        shutil.copyfile(d / name, dst / name)
    out_name = out.as_posix() if not out.is_absolute() else "results/peer_parity"
    (out / "README.md").write_text(_readme(stats, task, out_name))
    _write_csv(stats, out / "parity.csv")
    _plot(stats, task, out / "curves.png")
    point, low, high = stats["p_improvement"]
    print(f"P(ours > peer) = {_interval_text(point, low, high)}, exact Mann-Whitney p = {stats['mwu_p']:.3f}")
    for name in ("peer", "ours"):
        iqm, lo, hi = stats[f"{name}_iqm"]
        print(f"{name}: final returns {[round(float(v), 1) for v in stats['final'][name]]}, IQM {iqm:.1f} "
              f"[{lo:.1f}, {hi:.1f}]")
    print(f"wrote {out / 'README.md'}, {out / 'parity.csv'}, {out / 'curves.png'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "peer-seed":
        run_peer_seed(args)
        return 0
    if args.command == "run":
        return run(args)
    return report(args)


if __name__ == "__main__":
    raise SystemExit(main())
