"""Speed side by side with the peer library mbrl-lib 0.2: its MBPO against our ``mbpo_mse``.

mbrl-lib 0.2 (facebookresearch/mbrl-lib, tag v0.2.0) runs its own MBPO training loop
(``mbrl.algorithms.mbpo.train``, as its ``examples/main.py`` calls it) with its ``mbpo_hopper``
config (``conf/main.yaml`` + ``algorithm=mbpo`` + ``overrides=mbpo_hopper``, read from the
``examples/conf`` of its v0.2.0 source, ``--peer-conf``), on CPU. Ours is ``mbpo_mse`` (or ``--agent mbpo_mle``)
with every field that config sets made equal (:data:`MATCH_MBPO_HOPPER`), driven through the
single-seed agent API (``act`` / ``observe`` / ``update`` per env step; the phase timings are its
population's).
Both sides:

* run as separate subprocesses with one thread (``OMP_NUM_THREADS=1`` and the BLAS equivalents,
  ``torch.set_num_threads(1)``), alternately (peer, ours, peer, ours, ... for ``--rounds``), so a
  background load hits both alike;
* collect ``--explore`` real steps first (the exploration, shortened from upstream's 5,000: both
  sides use the same value; nothing is learned during it), then ``--steps`` learning steps. The
  first model training (and the rollout that fills the SAC buffer) happens at learning step
  ``freq_train_model`` = 250 on both sides, and SAC updates (40 per step) start there, so
  ``--steps`` must exceed 250;
* report per learning step the wall time and the time inside each phase: ``env`` (policy action,
  env step, replay insert), ``sac`` (the step's 40 SAC updates, batch sampling included),
  ``model_train`` and ``rollout`` (once per 250 steps). mbrl-lib's phases are timed by wrapping its
  functions in its own process (``mbrl.util.common.step_env_and_add_to_buffer``,
  ``train_model_and_save_model_and_data`` -- which also writes the model and buffer to a
  temporary directory, a few ms --, ``mbrl.algorithms.mbpo.rollout_model_and_populate_sac_buffer``,
  ``SAC.update_parameters``); ours are the agent's own ``timings``.

Printed per round and as the median over rounds, ours / peer:

* ``sac``: median over the steps with SAC updates (the dominant cost: 40 updates of 2x512 nets);
* ``env``: median over the learning steps;
* ``model_train`` per call and per epoch (the number of epochs is decided by early stopping on
  each side's own data, so compare per epoch), ``rollout`` per call;
* ``per step``: the steady-state cost of one learning step, ``env + sac + (model_train +
  rollout) / 250``; this is the ratio to quote;
* peak resident memory of each process (``ru_maxrss``).

Round ``r`` runs seed ``--seed + r - 1`` on both sides (a rerun of one seed repeats its draws, so it
is no second observation). The epochs of a model training call are one draw per seed, not a property
of a library: with the Gaussian NLL (``--agent mbpo_mle``) the validation MSE typically rises again
after ~10 epochs while the NLL shrinks the variances, and a call either stops in that bump (~11-16
epochs, patience 5) or goes on through a second descent (~200-300 epochs), on either side. Fed the
same initial weights, split, bootstraps and batch orders, the two trainers stop at the same epoch
(checked: 15 and 16 epochs on both for two such draws), so compare epoch counts over several seeds
and model time per epoch.

Differences that remain (stated, not hidden): mbrl-lib 0.2 runs ``Hopper-v4`` (gymnasium 0.26,
mujoco 2.3.3), ours ``Hopper-v5``; mbrl-lib's ``mbpo_hopper`` trains a Gaussian ensemble (mean and
log-variance heads, NLL loss) where ``mbpo_mse`` trains a mean-only one (``--agent mbpo_mle`` is
the loss-matched comparison); the learning curves of the two differ from the first update, so
the data the models train on differ (hence per-epoch model times). The peer's venv is set up as
described in DEVELOPERS.md.

    python benchmarks/bench_peer.py --peer-venv /work/peer/venv --peer-conf /work/peer/mbrl-v0.2.0/mbrl/examples/conf
    VAGRAM_PEER_VENV=... VAGRAM_PEER_CONF=... python benchmarks/bench_peer.py --rounds 3 --steps 260
    python benchmarks/bench_peer.py --explore 300 --steps 252 --rounds 1  # smoke run

The module imports only the standard library at the top: the peer side runs this same file with
the peer venv's Python (``--side peer``), where vagram_bench is not installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

#: Environment variable naming the peer venv (the default of ``--peer-venv``).
PEER_VENV_ENV = "VAGRAM_PEER_VENV"
#: A side's result: one stdout line, this tag, then JSON.
RESULT_TAG = "BENCH_PEER_RESULT "
#: One thread for torch and the BLAS libraries in both subprocesses.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "NUMEXPR_NUM_THREADS": "1"}
#: Env steps between model trainings on both sides (mbrl-lib's ``overrides.freq_train_model``).
FREQ_TRAIN_MODEL = 250
#: Environment variable naming mbrl-lib's ``examples/conf`` directory (the default of ``--peer-conf``).
PEER_CONF_ENV = "VAGRAM_PEER_CONF"
#: mbrl-lib's Hydra overrides: its MBPO with its Hopper config on CPU. v0.2.0's
#: ``conf/algorithm/mbpo.yaml`` still names ``gym.env.Box`` as the class of the SAC's action space
#: (the library moved to gymnasium; ``gym`` is not among its dependencies), so its example stops at
#: ``hydra.utils.instantiate``; two overrides build that space with :func:`action_box`
#: (gymnasium's ``Box`` from the same ``low``, ``high``, ``shape``). And ``GaussianMLP`` takes its
#: ``activation_fn_cfg`` as a config and instantiates it itself, which Hydra >= 1.1 (the venv has
#: 1.3, what pip resolves for mbrl 0.2 today) pre-empts by instantiating nested configs first:
#: ``_recursive_=false`` on the model restores what the code expects.
PEER_OVERRIDES = ("algorithm=mbpo", "overrides=mbpo_hopper", "device=cpu",
                  "algorithm.agent.action_space._target_=__main__.action_box",
                  "+algorithm.agent.action_space._convert_=all", "+dynamics_model._recursive_=false")
#: Our agent's config fields set to what mbrl-lib 0.2's ``conf/overrides/mbpo_hopper.yaml``,
#: ``conf/algorithm/mbpo.yaml`` and ``conf/dynamics_model/gaussian_mlp_ensemble.yaml`` set (values
#: copied from those files at tag v0.2.0; ``initial_exploration_steps`` and ``dataset_size`` are set
#: per run, identically on both sides).
MATCH_MBPO_HOPPER: dict[str, Any] = dict(
    # overrides/mbpo_hopper.yaml
    epoch_length=1000, num_elites=5, patience=5, model_lr=1e-3, model_wd=1e-5, model_batch_size=256,
    validation_ratio=0.2, freq_train_model=FREQ_TRAIN_MODEL, effective_model_rollouts_per_step=400,
    rollout_schedule=(20, 150, 1, 15), num_sac_updates_per_step=40, sac_updates_every_steps=1,
    num_epochs_to_retain_sac_buffer=1, sac_gamma=0.99, sac_tau=0.005, sac_init_alpha=0.2,
    sac_learnable_alpha=False, sac_target_update_interval=4, sac_hidden_size=512, sac_critic_lr=3e-4,
    sac_actor_lr=3e-4, sac_batch_size=256,
    # algorithm/mbpo.yaml: real_data_ratio 0 (every SAC batch from the model buffer); the policy mean
    # on real steps (step_env_and_add_to_buffer's agent.act default), the stochastic policy while
    # exploring (random_initial_explore false); SAC updates once the SAC buffer holds one batch
    model_data_likelihood=(0.0, 1.0, 1.0, 1.0), deterministic_real_actions=True,
    random_initial_explore=False, min_model_buffer_size=256,
    # model trainer defaults of mbrl-lib (no epoch cap, improvement threshold 0.01)
    num_epochs_train_model=None, improvement_threshold=0.01,
    # dynamics_model/gaussian_mlp_ensemble.yaml; the pranz24 SAC has 2 hidden layers, one update
    # interval for actor and critic
    ensemble_size=7, num_layers=4, hid_size=200, sac_num_layers=2, sac_actor_update_interval=1,
)
PHASES = ("env", "sac", "model_train", "rollout")


# --------------------------------------------------------------------------------------------------
# command line and the side commands (cheap: tested in the default suite)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-venv", default=os.environ.get(PEER_VENV_ENV),
                        help=f"mbrl-lib 0.2's virtual environment (default: ${PEER_VENV_ENV})")
    parser.add_argument("--peer-conf", default=os.environ.get(PEER_CONF_ENV),
                        help="mbrl-lib v0.2.0's mbrl/examples/conf (default: $%s, else the one installed in "
                             "the peer venv when it is complete)" % PEER_CONF_ENV)
    parser.add_argument("--agent", default="mbpo_mse", choices=("mbpo_mse", "mbpo_mle"),
                        help="our side (mbpo_mle: the Gaussian NLL loss mbrl-lib's config trains)")
    parser.add_argument("--explore", type=int, default=1000,
                        help="exploration steps before learning, both sides (upstream: 5000)")
    parser.add_argument("--steps", type=int, default=300,
                        help=f"learning steps after the exploration (> {FREQ_TRAIN_MODEL}: the first "
                             f"model training and SAC update happen at step {FREQ_TRAIN_MODEL})")
    parser.add_argument("--rounds", type=int, default=2, help="peer/ours pairs, run alternately")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of round 1 on both sides; round r runs seed + r - 1 (the epochs per model "
                             "training call are a per-seed draw: see the module docstring)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per side and round")
    parser.add_argument("--side", choices=("peer", "ours"), help=argparse.SUPPRESS)  # a subprocess
    args = parser.parse_args(argv)
    if args.steps <= FREQ_TRAIN_MODEL:
        parser.error(f"--steps {args.steps}: must exceed {FREQ_TRAIN_MODEL} (the first model training "
                     "and SAC update happen at learning step 250 on both sides)")
    if args.explore < 1 or args.rounds < 1:
        parser.error("--explore and --rounds must be >= 1")
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: must be >= 0")
    return args


def peer_python(venv: str | None) -> Path:
    """The peer venv's Python.

    Raises:
        SystemExit: (2) no venv given, or it has no ``bin/python``; the message says how to set it.
    """
    if not venv:
        raise SystemExit(_usage_error(f"no peer venv: pass --peer-venv <dir> or set {PEER_VENV_ENV} "
                                      "(mbrl-lib 0.2's virtual environment; see DEVELOPERS.md)"))
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        raise SystemExit(_usage_error(f"peer venv {venv} has no bin/python: pass --peer-venv <dir> or set "
                                      f"{PEER_VENV_ENV} to mbrl-lib 0.2's virtual environment (see DEVELOPERS.md)"))
    return python


def peer_conf(conf: str | None, venv: str | Path) -> Path:
    """mbrl-lib's ``examples/conf``: ``conf``, else the installed package's when it holds every
    group ``main.yaml`` names (the v0.2.0 wheel lacks ``action_optimizer/``, which Hydra needs even
    though MBPO never reads it).

    Raises:
        SystemExit: (2) ``conf`` has no ``main.yaml``, or none given and the installed one is incomplete.
    """
    if conf:
        if not (Path(conf) / "main.yaml").exists():
            raise SystemExit(_usage_error(f"--peer-conf {conf} has no main.yaml: pass mbrl-lib v0.2.0's "
                                          f"mbrl/examples/conf (or set {PEER_CONF_ENV}); see DEVELOPERS.md"))
        return Path(conf)
    installed = sorted(Path(venv).glob("lib/python*/site-packages/mbrl/examples/conf"))
    if installed and (installed[0] / "action_optimizer").is_dir():
        return installed[0]
    raise SystemExit(_usage_error(
        f"the peer venv's mbrl/examples/conf is {'incomplete (no action_optimizer/, which main.yaml names)' if installed else 'missing'}: "
        f"pass --peer-conf <mbrl-lib v0.2.0 source>/mbrl/examples/conf or set {PEER_CONF_ENV} (see DEVELOPERS.md)"))


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def side_command(side: str, python: str | Path, args: argparse.Namespace, seed: int) -> list[str]:
    """The subprocess of one side: this file, run by that side's Python, with the run's settings
    and ``seed`` (the peer's with its ``examples/conf``, ``args.peer_conf``, resolved)."""
    cmd = [str(python), str(Path(__file__).resolve()), "--side", side, "--agent", args.agent,
           "--explore", str(args.explore), "--steps", str(args.steps), "--seed", str(seed)]
    return cmd + (["--peer-conf", str(args.peer_conf)] if side == "peer" else [])


def ours_config_fields(explore: int, steps: int) -> dict[str, Any]:
    """Our agent's config overrides for a run of ``explore`` + ``steps`` env steps."""
    return dict(MATCH_MBPO_HOPPER, initial_exploration_steps=explore, dataset_size=explore + steps)


def peer_overrides(explore: int, steps: int, seed: int = 0) -> list[str]:
    """mbrl-lib's Hydra overrides for the same run (its ``num_steps`` counts learning steps only;
    its real buffer holds ``dataset_size`` transitions, default ``num_steps``, so set it to all)."""
    return [*PEER_OVERRIDES, f"seed={seed}", f"algorithm.initial_exploration_steps={explore}",
            f"overrides.num_steps={steps}", f"+algorithm.dataset_size={explore + steps}"]


# --------------------------------------------------------------------------------------------------
# one side (runs in a subprocess)


class StepClock:
    """Per learning step: its wall time and the seconds spent in each phase."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.model_epochs: list[int] = []
        self._start: float | None = None

    def begin_step(self) -> None:
        now = time.perf_counter()
        self._close(now)
        self._start = now
        self.steps.append({"wall": 0.0, "sac_updates": 0, **dict.fromkeys(PHASES, 0.0)})

    def add(self, phase: str, seconds: float) -> None:
        if self.steps:
            self.steps[-1][phase] += seconds

    def finish(self) -> None:
        self._close(time.perf_counter())
        self._start = None

    def _close(self, now: float) -> None:
        if self._start is not None:
            self.steps[-1]["wall"] = now - self._start

    def result(self, side: str, **extra: Any) -> str:
        return RESULT_TAG + json.dumps({
            "side": side, "steps": self.steps, "model_epochs": self.model_epochs,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra})


def _timed(clock: StepClock, phase: str, fn: Callable) -> Callable:
    def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            clock.add(phase, time.perf_counter() - t0)
    return wrapper


class _StepsDone(Exception):
    """Raised at the start of learning step ``--steps + 1`` to end mbrl-lib's loop there."""


def action_box(low: list[float], high: list[float], shape: list[int]) -> Any:
    """The SAC action space of the peer's config as gymnasium 0.26 builds it (see :data:`PEER_OVERRIDES`)."""
    import gymnasium
    import numpy as np

    return gymnasium.spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), tuple(shape), np.float32)


# --------------------------------------------------------------------------------------------------
# the peer process's hooks into mbrl-lib (under the peer venv; peer_parity.py's peer seeds use them too)


def peer_config(peer_conf: str | Path, overrides: list[str]) -> Any:
    """mbrl-lib's ``examples/conf/main.yaml`` composed with ``overrides``."""
    import hydra

    # mbrl-lib 0.2 configs are Hydra 1.0/1.1 style (@package _group_)
    with hydra.initialize_config_dir(config_dir=str(Path(peer_conf).resolve()), version_base="1.1"):
        return hydra.compose(config_name="main", overrides=overrides)


def flag_exploration(common: Any) -> list[bool]:
    """Wrap mbrl-lib's ``rollout_agent_trajectories`` (MBPO's initial exploration, which steps the env
    through ``step_env_and_add_to_buffer`` too): ``flag[0]`` is true while it runs."""
    flag, rollout = [False], common.rollout_agent_trajectories

    def explore(*a: Any, **kw: Any) -> Any:
        flag[0] = True
        try:
            return rollout(*a, **kw)
        finally:
            flag[0] = False

    common.rollout_agent_trajectories = explore
    return flag


def count_model_epochs(models: Any, epochs: list[int]) -> None:
    """Wrap ``mbrl.models.ModelTrainer.train``: each call appends its number of epochs to ``epochs``."""
    train = models.ModelTrainer.train

    def model_trainer_train(self: Any, *a: Any, **kw: Any) -> Any:
        train_losses, val_scores = train(self, *a, **kw)
        epochs.append(len(train_losses))
        return train_losses, val_scores

    models.ModelTrainer.train = model_trainer_train


def train_peer_mbpo(cfg: Any, wrap_test_env: Callable[[Any], Any] = lambda env: env,
                    stop: type[BaseException] | tuple = ()) -> None:
    """mbrl-lib's MBPO as its ``examples/main.py`` runs it (envs, global seeds, ``mbpo.train`` in a
    scratch work dir), its test env wrapped with ``wrap_test_env``; ``stop`` ends the loop quietly."""
    import mbrl.algorithms.mbpo as mbpo
    import mbrl.util.env
    import numpy as np
    import torch

    env, term_fn, _ = mbrl.util.env.EnvHandler.make_env(cfg)
    test_env, *_ = mbrl.util.env.EnvHandler.make_env(cfg)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    with tempfile.TemporaryDirectory() as work_dir:
        try:
            mbpo.train(env, wrap_test_env(test_env), term_fn, cfg, silent=True, work_dir=work_dir)
        except stop:
            pass


def run_peer(args: argparse.Namespace) -> None:
    """mbrl-lib's own MBPO loop with its phases timed (this runs under the peer venv)."""
    import mbrl
    import mbrl.algorithms.mbpo as mbpo
    import mbrl.models
    import mbrl.util.common as common
    import torch
    from mbrl.third_party.pytorch_sac_pranz24.sac import SAC

    torch.set_num_threads(1)
    cfg = peer_config(args.peer_conf, peer_overrides(args.explore, args.steps, args.seed))
    clock = StepClock()

    def env_step(*a: Any, **kw: Any) -> Any:
        if exploring[0]:
            return step_env_and_add_to_buffer(*a, **kw)
        if len(clock.steps) == args.steps:  # mbpo.train checks num_steps at epoch ends only
            raise _StepsDone
        clock.begin_step()
        return timed_env_step(*a, **kw)

    def sac_update(self: Any, *a: Any, **kw: Any) -> Any:
        clock.add("sac_updates", 1)
        return timed_sac_update(self, *a, **kw)

    step_env_and_add_to_buffer = common.step_env_and_add_to_buffer
    timed_env_step = _timed(clock, "env", step_env_and_add_to_buffer)
    timed_sac_update = _timed(clock, "sac", SAC.update_parameters)
    exploring = flag_exploration(common)
    common.step_env_and_add_to_buffer = env_step
    common.train_model_and_save_model_and_data = _timed(clock, "model_train", common.train_model_and_save_model_and_data)
    mbpo.rollout_model_and_populate_sac_buffer = _timed(clock, "rollout", mbpo.rollout_model_and_populate_sac_buffer)
    count_model_epochs(mbrl.models, clock.model_epochs)
    SAC.update_parameters = sac_update

    train_peer_mbpo(cfg, stop=_StepsDone)
    clock.finish()
    print(clock.result("peer", env_id=cfg.overrides.env, torch=torch.__version__, threads=torch.get_num_threads(),
                       library=f"mbrl {mbrl.__version__}"), flush=True)


def run_ours(args: argparse.Namespace) -> None:
    """Our agent through its API, one env step at a time as the runner calls a member."""
    import gymnasium as gym
    import torch

    from vagram_bench import registry  # importing the package registers the envs

    torch.set_num_threads(1)
    env_id = "Hopper-v5"
    cls = registry.load_agent(args.agent)
    cfg = dataclasses.replace(cls.default_config(env_id), **ours_config_fields(args.explore, args.steps))
    env = gym.make(env_id)
    agent = cls(cfg, env.observation_space, env.action_space, env_id=env_id, seed=args.seed)
    counters = agent.population  # MBPOAgent is the view of one seed over an MBPOPopulation of one
    clock = StepClock()
    obs, _ = env.reset(seed=args.seed)
    for k in range(1, args.explore + args.steps + 1):
        learning = k > args.explore
        if learning:
            clock.begin_step()
        t0 = time.perf_counter()
        action = agent.act(obs, deterministic=False)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(obs, action, reward, next_obs, terminated, truncated)
        if learning:
            clock.add("env", time.perf_counter() - t0)
        before, updates = dict(counters.timings), int(counters.num_sac_updates.sum())
        metrics = agent.update(k)
        if learning:
            after = counters.timings
            clock.add("sac", after["sac"] - before["sac"])
            clock.add("model_train", after["model_train"] + after["value_grads"]
                      - before["model_train"] - before["value_grads"])
            clock.add("rollout", after["rollout"] - before["rollout"])
            clock.add("sac_updates", int(counters.num_sac_updates.sum()) - updates)
            if "model_train_epochs" in metrics:
                clock.model_epochs.append(int(metrics["model_train_epochs"]))
        obs = env.reset()[0] if (terminated or truncated) else next_obs
    clock.finish()
    print(clock.result("ours", env_id=env_id, torch=torch.__version__, threads=torch.get_num_threads(),
                       library=f"vagram_bench {args.agent}"), flush=True)


# --------------------------------------------------------------------------------------------------
# the comparison


def summarise(result: dict[str, Any]) -> dict[str, float]:
    """Per-step figures of one side's run (seconds; see the module docstring)."""
    steps = result["steps"]
    updating = [s for s in steps if s["sac_updates"] > 0]
    trainings = [s for s in steps if s["model_train"] > 0]
    if not updating or not trainings:
        raise RuntimeError(f"{result['side']}: no SAC update or model training in {len(steps)} learning steps")
    out = {
        "env": statistics.median(s["env"] for s in steps),
        "sac": statistics.median(s["sac"] for s in updating),
        "sac_updates": statistics.median(s["sac_updates"] for s in updating),
        "model_train": statistics.mean(s["model_train"] for s in trainings),
        "model_epochs": statistics.mean(result["model_epochs"]) if result["model_epochs"] else float("nan"),
        "rollout": statistics.mean(s["rollout"] for s in trainings),
        "wall": statistics.median(s["wall"] for s in updating if s["model_train"] == 0) if len(updating) > 1
        else float("nan"),
        "max_rss_mb": result["max_rss_mb"],
    }
    out["model_epoch"] = out["model_train"] / out["model_epochs"] if out["model_epochs"] else float("nan")
    out["per_step"] = out["env"] + out["sac"] + (out["model_train"] + out["rollout"]) / FREQ_TRAIN_MODEL
    return out


ROWS = (  # (key, label, scale to the printed unit, unit)
    ("per_step", "per learning step (steady state)", 1e3, "ms"),
    ("sac", "sac (per step)", 1e3, "ms"),
    ("env", "env (per step)", 1e3, "ms"),
    ("model_train", "model_train (per call)", 1.0, "s"),
    ("model_epoch", "model_train (per epoch)", 1e3, "ms"),
    ("rollout", "rollout (per call)", 1.0, "s"),
    ("wall", "wall per updating step (measured)", 1e3, "ms"),
    ("max_rss_mb", "peak memory (RSS)", 1.0, "MB"),
)


def print_table(title: str, peer: dict[str, float], ours: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"  {'':36s} {'mbrl-lib':>10s} {'ours':>10s} {'ours/peer':>9s}")
    for key, label, scale, unit in ROWS:
        ratio = ours[key] / peer[key] if peer[key] else float("nan")
        print(f"  {label + ' [' + unit + ']':36s} {peer[key] * scale:10.2f} {ours[key] * scale:10.2f} {ratio:9.2f}")
    print(f"  {'model epochs per call':36s} {peer['model_epochs']:10.1f} {ours['model_epochs']:10.1f}")
    print(f"  {'SAC updates per updating step':36s} {peer['sac_updates']:10.0f} {ours['sac_updates']:10.0f}")


def run_side(side: str, python: str | Path, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    cmd = side_command(side, python, args, seed)
    proc = subprocess.run(cmd, env={**os.environ, **SINGLE_THREAD_ENV}, capture_output=True, text=True,
                          timeout=args.timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-15:])
        raise SystemExit(f"error: the {side} side failed (exit status {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return json.loads(lines[-1][len(RESULT_TAG):])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.side == "peer":
        run_peer(args)
        return 0
    if args.side == "ours":
        run_ours(args)
        return 0
    pythons = {"peer": peer_python(args.peer_venv), "ours": Path(sys.executable)}
    args.peer_conf = peer_conf(args.peer_conf, args.peer_venv)
    print(f"mbrl-lib 0.2 MBPO (mbpo_hopper) vs {args.agent} (same hyperparameters), one thread each, "
          f"{args.explore} exploration + {args.steps} learning steps, {args.rounds} round(s) alternating; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs at the start")
    summaries: dict[str, list[dict[str, float]]] = {"peer": [], "ours": []}
    for r in range(args.rounds):
        for side in ("peer", "ours"):
            t0 = time.perf_counter()
            result = run_side(side, pythons[side], args, args.seed + r)
            summaries[side].append(summarise(result))
            print(f"  round {r + 1} {side}: {result['library']} on {result['env_id']}, torch {result['torch']}, "
                  f"{result['threads']} thread(s), seed {args.seed + r}, model epochs per call "
                  f"{result['model_epochs']}, {time.perf_counter() - t0:.0f} s", flush=True)
        print_table(f"round {r + 1}", summaries["peer"][-1], summaries["ours"][-1])
    if args.rounds > 1:
        median = {side: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for side, runs in summaries.items()}
        print_table(f"median over {args.rounds} rounds", median["peer"], median["ours"])
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end (ratios are only comparable from a quiet machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
