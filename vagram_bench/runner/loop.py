"""The environment loop of a run, top to bottom: act, observe, update, log, evaluate, checkpoint.

The runner owns the loop and the evaluation, so every agent is scored the same way; the agent (a
plugin, see :mod:`vagram_bench.registry`) only acts, observes transitions and learns on its own
schedule. Every run is a population (:mod:`vagram_bench.population`): the seeds of ``seed=0,1,2``
train in one process, each member with its own train and eval env (gymnasium's ``SyncVectorEnv``,
autoreset disabled: a member's episode end is handled as the single-seed loop handles it --
checkpoint when due, then a reset without a seed) and its own run directory, whose records are those
of its single-seed run. A single seed is the population of one. Members may be at different env
steps (each resumes from its own checkpoint, taken at its own episode end); the calls carry a mask
of the members they are for, and only the members furthest behind step until they reach the others,
so that a resumed population's later batched calls are the uninterrupted run's (docs/runner.md,
"Populations"). Evaluation is a thin raw-gymnasium loop: TorchRL's ``GymEnv`` adds about 0.5-1 ms
per step (measured with TorchRL 0.14.1 on Hopper-v5), which ten 1000-step episodes per evaluation
would feel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from vagram_bench.kernels import kernel_info
from vagram_bench.population import PopulationAgent, PopulationMetricWindow
from vagram_bench.records import EVAL_COLUMNS, CheckpointError, CSVLog, RunPaths, atomic_write_json, read_evals
from vagram_bench.runner.config import RunConfig
from vagram_bench.runner.hardware import bf16_warning
from vagram_bench.runner.policy import write_policy
from vagram_bench.runner.progress import BAR_FORMAT, RunProgress, redraw_interval
from vagram_bench.runner.rundir import (
    Progress,
    RunDirLock,
    RunError,
    RunInterrupted,
    StepInterrupts,
    prepare_run_dir,
    read_run_checkpoint,
    resume,
    kernel_change,
    start_afresh,
    write_run_checkpoint,
)
from vagram_bench.runner.summary import finish_run
from vagram_bench.runner.tracking import Tracker, TrackingUnavailable, check_tracking, open_tracker

__all__ = ["run", "train", "evaluate", "make_envs", "make_population"]


def evaluate(agent: PopulationAgent, envs: Any, members: np.ndarray, episodes: int,
             eval_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``episodes`` deterministic episodes for each of ``members`` (a boolean mask over the
    population) on its own eval env; a member's episode ``i`` is reset with ``eval_seed + i``, and
    each member moves to its next episode as soon as its current one ends.

    Returns the ``(K, episodes)`` episode returns and lengths (rows of other members are zeros).
    """
    K = envs.num_envs
    returns = np.zeros((K, episodes))
    lengths = np.zeros((K, episodes), dtype=np.int64)
    episode = np.zeros(K, dtype=np.int64)
    active = members.copy()
    idle = _idle_action(envs)
    obs = _reset(envs, active, [eval_seed if m else None for m in active])
    while active.any():
        actions = agent.act(obs, deterministic=True, members=active)
        actions[~active] = idle
        obs, reward, terminated, truncated, _ = envs.step(actions)
        rows = np.flatnonzero(active)
        returns[rows, episode[rows]] += reward[rows]
        lengths[rows, episode[rows]] += 1
        # A member that is not evaluating (left out, or through its episodes) steps with the idle
        # action and may end an episode too; its env must be reset before the next step all the same.
        stopped = terminated | truncated
        ended = active & stopped
        if stopped.any():
            episode[ended] += 1
            active &= episode < episodes
            again = ended & active
            obs = _reset(envs, stopped, [int(eval_seed + episode[k]) if again[k] else None for k in range(K)])
    return returns, lengths


def eval_row(returns: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    """The statistics of one evaluation's episodes, as ``eval.csv`` records them (between its
    ``env_step`` and ``wall_seconds`` columns)."""
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "episode_length_mean": float(lengths.mean()),
    }


def _reset(envs: Any, mask: np.ndarray, seeds: list[int | None] | None = None) -> np.ndarray:
    """Reset the sub-envs in ``mask`` (at least one; with ``seeds[k]``, or none); the observations
    of all, of which only the reset rows are current after :func:`_step` (it steps the sub-envs, not
    the vector env). A sub-env that ended must be reset before its next step (autoreset is disabled)."""
    obs, _ = envs.reset(seed=seeds, options={"reset_mask": mask.copy()})
    return obs


def _stepping(running: np.ndarray, env_step: np.ndarray) -> np.ndarray:
    """The members that step next: the running ones furthest behind (all of them while in step)."""
    return running & (env_step == env_step[running].min())


def _step(envs: Any, actions: np.ndarray, members: np.ndarray,
          obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step the sub-envs of ``members`` with their ``actions``; the others do not move (their row keeps
    ``obs``, reward 0, no episode end). One by one, as ``SyncVectorEnv.step`` steps them: a vector env
    steps every sub-env, and a member that waits must stay exactly where it is."""
    next_obs, reward = obs.copy(), np.zeros(len(obs))
    terminated, truncated = np.zeros(len(obs), dtype=bool), np.zeros(len(obs), dtype=bool)
    for k in np.flatnonzero(members):
        next_obs[k], reward[k], terminated[k], truncated[k], _ = envs.envs[k].step(actions[k])
    return next_obs, reward, terminated, truncated


def _idle_action(envs: Any) -> np.ndarray:
    """The action of a member an evaluation does not step (left out, or through its episodes): the
    centre of the action box. Its eval env steps anyway (a vector env steps every sub-env); nothing is
    recorded."""
    space = envs.single_action_space
    return ((space.low.astype(np.float64) + space.high) / 2).astype(space.dtype)


def make_envs(env_id: str, num: int, env_kwargs: Mapping[str, Any],
              wrap: Callable[[Any], Any] | None = None) -> Any:
    """``num`` envs of ``env_id`` in a ``SyncVectorEnv`` without autoreset, the runner's train and
    eval envs (``python -m vagram_bench.evaluate`` makes its env here too; ``wrap``, e.g. gymnasium's
    ``RecordVideo``, wraps each)."""
    import gymnasium as gym

    import vagram_bench  # noqa: F401  (registers the envs)

    def make() -> Any:
        env = gym.make(env_id, **env_kwargs)
        return env if wrap is None else wrap(env)

    return gym.vector.SyncVectorEnv([make for _ in range(num)], autoreset_mode=gym.vector.AutoresetMode.DISABLED)


_make_envs = make_envs  # the name benchmarks/ use


def make_population(cfg: RunConfig, agent_cls: type, envs: Any, seeds: list[int]) -> PopulationAgent:
    from vagram_bench.interfaces import AgentConfigError

    if agent_cls.unbatched_overrides and len(seeds) > 1:  # the override is honoured, at a cost in speed
        base = agent_cls.__mro__[1].__name__
        print(f"note: {agent_cls.__name__} overrides {', '.join(agent_cls.unbatched_overrides)} of {base}, so its "
              f"{len(seeds)} seeds run as separate {agent_cls.__name__} agents, not as {base}'s batched population",
              file=sys.stderr)
    try:
        return agent_cls.make_population(
            cfg.agent_config, envs.single_observation_space, envs.single_action_space,
            env_id=cfg.env, seeds=seeds, device=cfg.device,
        )
    except AgentConfigError as exc:
        raise RunError(f"agent {cfg.agent!r}: {exc}", usage=True) from None


def _progress(cfg: RunConfig, initial: int) -> RunProgress:
    from tqdm import tqdm

    seeds = ",".join(map(str, cfg.seeds))
    bar = tqdm(
        total=cfg.steps, initial=initial, disable=cfg.quiet, unit="step", bar_format=BAR_FORMAT,
        desc=f"{cfg.agent} {cfg.env} s{seeds}", dynamic_ncols=True, file=sys.stderr,
    )
    return RunProgress(bar, cfg.steps, initial, interval=redraw_interval(sys.stderr))


def run(cfg: RunConfig) -> list[Path]:
    """Train ``cfg.agent`` on ``cfg.env`` for each seed of ``cfg.seeds`` (one process, one population),
    with evaluations and records; returns the run directories.

    Every member's directory is locked, and checked against its config, before anything trains; a
    member whose run is complete already is left out.

    Raises:
        RunError: (``usage``) an ``out`` that cannot hold a run directory, a run directory that
            another process is running or that holds another config; after the others finished: a
            member that stopped (a non-finite loss, a checkpoint that cannot be read: that member's
            records stay intact) or a file-system error.
        CheckpointError: the checkpoint of a single-seed run cannot be read or does not fit.
    """
    import torch

    from vagram_bench import registry

    agent_cls = registry.load_agent(cfg.base_agent)  # a protocol's variant builds its registered agent
    try:
        check_tracking(cfg.track)
    except TrackingUnavailable as exc:
        raise RunError(str(exc), usage=True) from None
    logging.getLogger("torchrl").setLevel(logging.WARNING)  # buffer set-up INFO lines break the bar
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    members = [(m, RunPaths(Path(cfg.out) / cfg.env / cfg.agent / f"seed{m.seed}")) for m in cfg.members()]
    with contextlib.ExitStack() as locks:
        for _, paths in members:  # one process per run directory; a second one exits 2 naming this one
            locks.enter_context(RunDirLock(paths))
        try:
            todo = [(m, paths) for m, paths in members if prepare_run_dir(paths, m.to_dict(), overwrite=cfg.overwrite)]
            if todo:
                warning = bf16_warning(cfg.agent_config, cfg.device)
                if warning:
                    print(warning, file=sys.stderr)
                train(cfg, agent_cls, todo)
        except OSError as exc:  # set-up, or summary: the loop names the env step itself
            where = exc.filename or ", ".join(str(p.root) for _, p in members)
            raise RunError(f"run stopped: {where}: {exc.strerror or exc}. The records in "
                           f"{', '.join(str(p.root) for _, p in members)} are intact.") from None
    return [paths.root for _, paths in members]


class _MemberAgent:
    """Member ``k`` of a population behind ``state_dict``/``load_state_dict``, the agent API the
    run directory's checkpoints use (so a member's checkpoint is that of its single run)."""

    def __init__(self, population: PopulationAgent, member: int) -> None:
        self.population, self.member = population, member

    def state_dict(self) -> dict[str, Any]:
        return self.population.member_state_dict(self.member)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.population.load_member_state_dict(self.member, state)


@dataclasses.dataclass(frozen=True)
class Clock:
    """When this process started training: ``wall`` a ``time.perf_counter()``, ``cpu`` a
    ``time.process_time()`` (CPU time of every thread of the process, so a population's members each
    record the whole process's, as they do its wall time), and ``process`` a name of this process
    (host, pid, start time), recorded with the CPU time so that a grid's cost counts each process once."""

    wall: float
    cpu: float
    process: str

    @classmethod
    def now(cls) -> "Clock":
        import os
        import socket

        return cls(time.perf_counter(), time.process_time(),
                   f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}")


@dataclasses.dataclass
class _Member:
    """One seed's run inside the population loop: its records and the runner's counters."""

    cfg: RunConfig
    paths: RunPaths
    start: Progress
    eval_log: CSVLog
    train_log: CSVLog
    last_eval: float | None
    last_checkpoint_step: int
    tracker: Tracker = dataclasses.field(default_factory=Tracker)
    evaluated_since_checkpoint: bool = False
    error: str | None = None

    def wall_seconds(self, started: Clock) -> float:
        """This process's wall time since ``started`` plus that of the processes before it."""
        return self.start.wall_seconds + time.perf_counter() - started.wall

    def cpu_seconds(self, started: Clock) -> float | None:
        """This process's CPU time (all its threads) since ``started`` plus that of the processes before
        it; ``None`` when a checkpoint from before CPU time was recorded resumed the run."""
        if self.start.cpu_seconds is None:
            return None
        return self.start.cpu_seconds + time.process_time() - started.cpu

    def stopped_message(self, env_step: int, reason: str) -> str:
        return (f"run stopped at env step {env_step}: {reason}. Records up to the last checkpoint "
                f"(env step {self.last_checkpoint_step}) are intact in {self.paths.root}.")


def train(cfg: RunConfig, agent_cls: type, todo: list[tuple[RunConfig, RunPaths]]) -> None:
    """The runs of ``todo`` (prepared, locked run directories) as one population: each from scratch
    or from its own checkpoint."""
    # ---- members whose checkpoint cannot be read fail their start; the others train
    failed: dict[int, str] = {}
    ready = []
    for m, paths in todo:
        try:
            ready.append((m, paths, read_run_checkpoint(paths)))
        except CheckpointError as exc:
            if len(todo) == 1:
                raise
            failed[m.seed] = str(exc)
            print(f"error: seed {m.seed}: {exc}", file=sys.stderr)
    if not ready:
        _raise_failures(failed, len(todo))
    K = len(ready)
    envs = make_envs(cfg.env, K, cfg.env_kwargs)
    eval_envs = make_envs(cfg.env, K, cfg.env_kwargs)
    try:
        _train_population(cfg, agent_cls, ready, envs, eval_envs, failed, len(todo))
    finally:
        envs.close()
        eval_envs.close()


def _saved_state(members: list[_Member], env_step: np.ndarray, running: np.ndarray, steps: int) -> str:
    """What an interrupted population leaves for its resume, e.g. ``at env step 1234 of 5000; saved:
    the checkpoint at env step 1000 in runs/.../seed0/checkpoint.pt (...)``."""
    parts = []
    for k, mb in enumerate(members):
        who = f"seed {mb.cfg.seed}: " if len(members) > 1 else ""
        if not running[k]:
            parts.append(f"{who}{'complete' if mb.error is None else 'stopped on an error'}")
        elif mb.last_checkpoint_step > 0:
            parts.append(f"{who}at env step {int(env_step[k])} of {steps}, checkpoint at env step "
                         f"{mb.last_checkpoint_step} in {mb.paths.checkpoint}")
        else:
            parts.append(f"{who}at env step {int(env_step[k])} of {steps}, no checkpoint yet (it restarts "
                         f"from env step 0 in {mb.paths.root})")
    return ("; ".join(parts) + ". A resume continues from the checkpoint (rows written after it are "
            "dropped and re-written)")


def _raise_failures(failed: Mapping[int, str], total: int) -> None:
    if total == 1:
        raise RunError(next(iter(failed.values())))
    lines = "\n  ".join(f"seed {seed}: {msg}" for seed, msg in sorted(failed.items()))
    raise RunError(f"{len(failed)} of {total} seeds stopped:\n  {lines}")


def _close(bar: RunProgress, members: list[_Member], env_step: int, interrupts: StepInterrupts) -> None:
    """The run's closing writes (the bar's last line, the trackers), which a Ctrl-C does not cut short."""
    interrupts.finishing()
    try:
        bar.step(env_step, bar.phase)
        bar.close()
        for mb in members:
            mb.tracker.close()
    finally:
        interrupts.restore()


def _due(cfg: RunConfig, env_step: np.ndarray, stepping: np.ndarray,
         done: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per member after a step: at its last step, a ``train.csv`` row due, an evaluation due, an
    episode end's checkpoint due."""
    last = env_step == cfg.steps
    log_due = stepping & ((env_step % cfg.log_every == 0) | last)
    # runs without a protocol also evaluate at the last step (a protocol's schedule is the
    # multiples of eval_every only)
    final_eval = last & (cfg.protocol_info is None) & (cfg.steps % cfg.eval_every != 0)
    eval_due = stepping & ((env_step % cfg.eval_every == 0) | final_eval)
    return last, log_due, eval_due, stepping & done & ~last


def _train_population(cfg: RunConfig, agent_cls: type, ready: list, envs: Any, eval_envs: Any,
                      failed: dict[int, str], total: int) -> None:
    K = len(ready)
    seeds = [m.seed for m, _, _ in ready]
    agent = make_population(cfg, agent_cls, envs, seeds)
    eval_envs.reset(seed=[cfg.eval_seed] * K)  # every eval env is reset before its first step
    obs, _ = envs.reset(seed=seeds)
    metric_window = PopulationMetricWindow(K, device=cfg.device)  # the agent's metrics, on its device
    episode_window = PopulationMetricWindow(K)  # episode returns and lengths, on the host as the env's
    running, resumed = np.ones(K, dtype=bool), np.zeros(K, dtype=bool)
    members = _open_members(cfg, agent, ready, envs, (metric_window, episode_window), running, resumed, failed, total)
    if resumed.any():  # checkpoints are taken at episode ends, before the reset
        obs = _reset(envs, resumed)
    env_step = np.array([mb.start.env_step for mb in members], dtype=np.int64)
    started = Clock.now()

    # ---- the loop
    bar = _open_bar(cfg, members, env_step, running)
    episode_return, episode_length = np.zeros(K), np.zeros(K, dtype=np.int64)
    interrupts = StepInterrupts()
    try:
        interrupts.install()
        while running.any():
            interrupts.check()  # Ctrl-C lands here, after the last step's records and checkpoint
            # ---- who steps: the running members furthest behind. In step, that is all of them; after a
            # resume from checkpoints at different env steps the others wait (untouched, as a member left
            # out of a call must be) until these reach them. Members that stood apart would make every later
            # batched call (MBPO's model training) one by one: exact too (each member computes on tensors of
            # its own), but K calls where the uninterrupted run makes one (docs/runner.md, "Populations").
            stepping = _stepping(running, env_step)
            # ---- act, step their envs, observe, update
            actions = agent.act(obs, deterministic=False, members=stepping)
            next_obs, reward, terminated, truncated = _step(envs, actions, stepping, obs)
            env_step[stepping] += 1
            agent.observe(obs, actions, reward, next_obs, terminated, truncated, stepping)
            slowest = int(env_step[stepping].min())  # the bar follows the slowest member
            bar.step(slowest - 1, agent_cls.phase(cfg.agent_config, slowest))  # the update may take long
            metric_window.add(agent.update(env_step, stepping))
            episode_return[stepping] += reward[stepping]
            episode_length[stepping] += 1
            done = terminated | truncated
            ended = stepping & done
            if ended.any():
                episode_window.add({"episode_return": (torch.from_numpy(episode_return), ended),
                                    "episode_length": (torch.from_numpy(episode_length), ended)})
                episode_return[ended], episode_length[ended] = 0.0, 0

            # ---- what is due: a train.csv row, an evaluation, an episode end's checkpoint
            last, log_due, eval_due, episode_end = _due(cfg, env_step, stepping, done)
            if (log_due | eval_due | episode_end).any():
                _stop_failed(agent, members, running, env_step, failed, total)  # records end before a failure
                log_due &= running
                eval_due &= running
                episode_end &= running
            if log_due.any():
                _log_train(members, metric_window, episode_window, log_due, env_step)
            if eval_due.any():
                _log_evals(cfg, agent, eval_envs, members, eval_due, env_step, started)
                if K == 1:
                    bar.evaluated(int(env_step[0]), members[0].last_eval)
            _checkpoint(cfg, agent, envs, members, (metric_window, episode_window), episode_end, env_step,
                        started)

            # ---- members at their last step finish; ended episodes reset
            _finish(agent, members, stepping & last & running, running, env_step, started, bar)
            if done.any():
                next_obs[done] = _reset(envs, done)[done]
            obs = next_obs
    except KeyboardInterrupt:  # Ctrl-C: the checkpoints and the rows before them are what a resume uses
        raise RunInterrupted(_saved_state(members, env_step, running, cfg.steps)) from None
    except OSError as exc:  # e.g. a full disk: the failed write left the file it replaces as it was
        raise RunError(
            f"run stopped at env step {int(env_step.max())}: {exc.filename}: {exc.strerror or exc}. Records "
            f"up to the last checkpoint are intact in {', '.join(str(mb.paths.root) for mb in members)}."
        ) from None
    finally:
        _close(bar, members, int(env_step.min()), interrupts)
    if failed:
        _raise_failures(failed, total)


def _open_bar(cfg: RunConfig, members: list[_Member], env_step: np.ndarray, running: np.ndarray) -> RunProgress:
    """The progress bar from the slowest running member's env step; a resumed single run shows its
    last evaluation from the start."""
    bar = _progress(cfg, int(env_step[running].min(initial=cfg.steps)) if running.any() else cfg.steps)
    evals = read_evals(members[0].paths.eval_csv) if len(members) == 1 else []
    if evals:
        bar.evaluated(evals[-1].env_step, evals[-1].return_mean)
    bar.start_ticker()
    return bar


def _finish(agent: PopulationAgent, members: list[_Member], finishing: np.ndarray, running: np.ndarray,
            env_step: np.ndarray, started: Clock, bar: RunProgress) -> None:
    """The members ``finishing`` (at their last step) stop: each keeps the policy its last evaluation
    scored, before summary.json marks its run complete."""
    for k in np.flatnonzero(finishing):
        running[k] = False
        write_policy(members[k].paths, members[k].cfg.to_dict(), agent, int(k), int(env_step[k]))
        bar.write(finish_run(members[k].paths, members[k].cfg, int(env_step[k]), members[k].wall_seconds(started),
                             members[k].cpu_seconds(started), started.process))


def _open_members(cfg: RunConfig, agent: PopulationAgent, ready: list, envs: Any,
                  windows: tuple[PopulationMetricWindow, PopulationMetricWindow], running: np.ndarray,
                  resumed: np.ndarray, failed: dict[int, str], total: int) -> list[_Member]:
    """Each member's start: afresh, or from its checkpoint (``resumed[k]``; a checkpoint that does not
    fit stops that member, ``running[k]`` false, unless it is the only run: that raises), with its
    records and tracker opened and its rows of ``windows`` (agent metrics, episodes) loaded."""
    members: list[_Member] = []
    kernels = kernel_info(cfg.kernels)
    for k, (m, paths, checkpoint) in enumerate(ready):
        if checkpoint is None:
            start = start_afresh(paths, m.to_dict(), kernels)
        else:
            note = kernel_change(paths, kernels)
            if note:
                print(note, file=sys.stderr)
            try:
                start = resume(paths, checkpoint, _MemberAgent(agent, k), envs.envs[k])
            except CheckpointError as exc:
                if total == 1:
                    raise
                failed[m.seed] = str(exc)
                print(f"error: seed {m.seed}: {exc}", file=sys.stderr)
                running[k], start = False, Progress()
            else:
                resumed[k] = True
                print(f"resuming {paths.root} from env step {start.env_step} of {cfg.steps} "
                      f"(checkpoint {paths.checkpoint})", file=sys.stderr)
        if paths.error.exists() and running[k]:
            paths.error.unlink()  # this run starts again
        windows[0].load(k, start.metric_window)
        windows[1].load(k, start.episode_window)
        members.append(_Member(m, paths, start, CSVLog(paths.eval_csv, columns=EVAL_COLUMNS),
                               CSVLog(paths.train_csv), start.last_eval, start.env_step))
        if running[k]:
            members[-1].tracker = open_tracker(cfg.track, paths, m.to_dict(), start.env_step)
    return members


def _stop_failed(agent: PopulationAgent, members: list[_Member], running: np.ndarray, env_step: np.ndarray,
                 failed: dict[int, str], total: int) -> None:
    """Stop the members whose update failed (a non-finite loss): an ``error.json`` each, their records
    end at the last row before the failure."""
    for k, message in agent.failures().items():
        if running[k]:
            mb = members[k]
            running[k] = False
            mb.error = mb.stopped_message(int(env_step[k]), message)
            failed[mb.cfg.seed] = mb.error
            atomic_write_json(mb.paths.error, {"env_step": int(env_step[k]), "error": message,
                                               "last_checkpoint_step": mb.last_checkpoint_step})
            if total > 1:  # a single run's error is the runner's final message
                print(f"error: seed {mb.cfg.seed}: {mb.error}", file=sys.stderr)


def _log_train(members: list[_Member], metric_window: PopulationMetricWindow,
               episode_window: PopulationMetricWindow, log_due: np.ndarray, env_step: np.ndarray) -> None:
    """train.csv rows of the members ``log_due``: the last, possibly partial, window is written too
    (short runs keep their metrics)."""
    due = np.flatnonzero(log_due)
    episodes = episode_window.pop_means(due)
    for k, agent_means in metric_window.pop_means(due).items():
        row = {"env_step": int(env_step[k]), **episodes[k], **agent_means}
        if len(row) > 1:
            members[k].train_log.append(row)
            members[k].tracker.log("train", row)


def _log_evals(cfg: RunConfig, agent: PopulationAgent, eval_envs: Any, members: list[_Member],
               eval_due: np.ndarray, env_step: np.ndarray, started: Clock) -> None:
    """Evaluate the members ``eval_due`` together, an eval.csv row each."""
    returns, lengths = evaluate(agent, eval_envs, eval_due, cfg.eval_episodes, cfg.eval_seed)
    for k in np.flatnonzero(eval_due):
        mb = members[k]
        mb.last_eval = float(returns[k].mean())
        row = {"env_step": int(env_step[k]), **eval_row(returns[k], lengths[k]),
               "wall_seconds": round(mb.wall_seconds(started), 3)}
        mb.eval_log.append(row)
        mb.tracker.log("eval", row)
        mb.evaluated_since_checkpoint = True


def _checkpoint(cfg: RunConfig, agent: PopulationAgent, envs: Any, members: list[_Member],
                windows: tuple[PopulationMetricWindow, PopulationMetricWindow], episode_end: np.ndarray,
                env_step: np.ndarray, started: Clock) -> None:
    """At an episode end, the member's checkpoint when due (after an evaluation, or every
    ``checkpoint_every`` steps): the env's only state is now its RNGs."""
    for k in np.flatnonzero(episode_end):
        mb = members[k]
        if mb.evaluated_since_checkpoint or env_step[k] - mb.last_checkpoint_step >= cfg.checkpoint_every:
            progress = Progress(int(env_step[k]), mb.wall_seconds(started), mb.last_eval,
                                windows[0].state(k), windows[1].state(k), mb.cpu_seconds(started))
            write_run_checkpoint(mb.paths, progress, _MemberAgent(agent, k), envs.envs[k])
            mb.last_checkpoint_step, mb.evaluated_since_checkpoint = int(env_step[k]), False
