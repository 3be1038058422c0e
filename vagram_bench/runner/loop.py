"""The environment loop of one run, top to bottom: act, observe, update, log, evaluate, checkpoint.

The runner owns the loop and the evaluation, so every agent is scored the same way; the agent (a
plugin, see :mod:`vagram_bench.registry`) only acts, observes transitions and learns on its own
schedule. Evaluation is a thin raw-gymnasium loop: TorchRL's ``GymEnv`` adds about 0.5-1 ms per step
(measured with TorchRL 0.14.1 on Hopper-v5), which ten 1000-step episodes per evaluation would feel.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vagram_bench.agents.common import MetricWindow
from vagram_bench.records import EVAL_COLUMNS, CSVLog, RunPaths, read_evals
from vagram_bench.runner.config import RunConfig
from vagram_bench.runner.progress import BAR_FORMAT, RunProgress
from vagram_bench.runner.rundir import (
    Progress,
    RunDirLock,
    RunError,
    prepare_run_dir,
    read_run_checkpoint,
    resume,
    start_afresh,
    write_run_checkpoint,
)
from vagram_bench.runner.summary import finish_run

__all__ = ["run", "train", "evaluate"]


def evaluate(agent: Any, env: Any, episodes: int, eval_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``episodes`` deterministic episodes; episode ``i`` is reset with ``eval_seed + i``.

    Returns the episode returns and lengths.
    """
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    for i in range(episodes):
        obs, _ = env.reset(seed=eval_seed + i)
        total, length = 0.0, 0
        while True:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
            total += float(reward)
            length += 1
            if terminated or truncated:
                break
        returns[i], lengths[i] = total, length
    return returns, lengths


def _make_agent(cfg: RunConfig, agent_cls: type, env: Any) -> Any:
    from vagram_bench.interfaces import AgentConfigError

    try:
        return agent_cls(
            cfg.agent_config, env.observation_space, env.action_space,
            env_id=cfg.env, seed=cfg.seed, device=cfg.device,
        )
    except AgentConfigError as exc:
        raise RunError(f"agent {cfg.agent!r}: {exc}", usage=True) from None


def _progress(cfg: RunConfig, initial: int) -> RunProgress:
    from tqdm import tqdm

    bar = tqdm(
        total=cfg.steps, initial=initial, disable=cfg.quiet, unit="step", bar_format=BAR_FORMAT,
        desc=f"{cfg.agent} {cfg.env} s{cfg.seed}", dynamic_ncols=True, file=sys.stderr,
    )
    return RunProgress(bar, cfg.steps, initial)


def run(cfg: RunConfig) -> Path:
    """Train ``cfg.agent`` on ``cfg.env`` with evaluations and records; returns the run directory.

    Raises:
        RunError: (``usage``) an ``out`` that cannot hold the run directory, a run directory that
            another process is running or that holds another config; a non-finite loss or a
            file-system error during the run (the run stops with the env step named; records stay
            intact).
        CheckpointError: a checkpoint that cannot be read or does not fit.
    """
    import torch

    from vagram_bench import registry

    agent_cls = registry.load_agent(cfg.agent)
    logging.getLogger("torchrl").setLevel(logging.WARNING)  # buffer set-up INFO lines break the bar
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    paths = RunPaths(Path(cfg.out) / cfg.env / cfg.agent / f"seed{cfg.seed}")
    config_record = cfg.to_dict()
    with RunDirLock(paths):  # one process per run directory; a second one exits 2 naming this one
        try:
            if prepare_run_dir(paths, config_record, overwrite=cfg.overwrite):
                train(cfg, agent_cls, paths, config_record)
        except OSError as exc:  # set-up, or summary: the loop names the env step itself
            raise RunError(f"run stopped: {exc.filename or paths.root}: {exc.strerror or exc}. "
                           f"The records in {paths.root} are intact.") from None
    return paths.root


def train(cfg: RunConfig, agent_cls: type, paths: RunPaths, config_record: dict[str, Any]) -> None:
    """The run in a prepared, locked run directory: from scratch, or from its checkpoint."""
    import gymnasium as gym

    import vagram_bench  # noqa: F401  (registers the envs)

    checkpoint = read_run_checkpoint(paths)
    train_env = gym.make(cfg.env, **cfg.env_kwargs)
    eval_env = gym.make(cfg.env, **cfg.env_kwargs)
    agent = _make_agent(cfg, agent_cls, train_env)
    obs, _ = train_env.reset(seed=cfg.seed)
    if checkpoint is None:
        start = start_afresh(paths, config_record)
    else:
        start = resume(paths, checkpoint, agent, train_env)
        obs, _ = train_env.reset()  # checkpoints are taken at episode ends, before the reset
        print(f"resuming {paths.root} from env step {start.env_step} of {cfg.steps} "
              f"(checkpoint {paths.checkpoint})", file=sys.stderr)
    env_step, last_eval = start.env_step, start.last_eval
    metric_window, episode_window = MetricWindow(), MetricWindow()
    metric_window.load(start.metric_window)
    episode_window.load(start.episode_window)
    last_checkpoint_step, evaluated_since_checkpoint = env_step, False

    eval_log = CSVLog(paths.eval_csv, columns=EVAL_COLUMNS)
    train_log = CSVLog(paths.train_csv)
    started = time.perf_counter()

    def wall_seconds() -> float:  # this process's time plus that of the processes before it
        return start.wall_seconds + time.perf_counter() - started

    # ---- the loop
    bar = _progress(cfg, env_step)
    evals = read_evals(paths.eval_csv)  # a resumed run shows its last evaluation from the start
    if evals:
        bar.evaluated(evals[-1].env_step, evals[-1].return_mean)
    bar.start_ticker()
    episode_return, episode_length = 0.0, 0
    try:
        while env_step < cfg.steps:
            action = agent.act(obs, deterministic=False)
            next_obs, reward, terminated, truncated, _ = train_env.step(action)
            env_step += 1
            agent.observe(obs, action, float(reward), next_obs, bool(terminated), bool(truncated))
            bar.step(env_step - 1, agent.phase(env_step))  # the update below may take long
            try:
                metrics = agent.update(env_step)
            except FloatingPointError as exc:
                raise RunError(
                    f"run stopped at env step {env_step}: {exc}. Records up to the last checkpoint "
                    f"(env step {last_checkpoint_step}) are intact in {paths.root}."
                ) from None
            if metrics:
                metric_window.add(metrics)
            episode_return += float(reward)
            episode_length += 1
            if terminated or truncated:
                episode_window.add({"episode_return": episode_return, "episode_length": episode_length})
                episode_return, episode_length = 0.0, 0

            # train.csv: the last, possibly partial, window is written too (short runs keep their metrics)
            if env_step % cfg.log_every == 0 or env_step == cfg.steps:
                row = {"env_step": env_step, **episode_window.pop_means(), **metric_window.pop_means()}
                if len(row) > 1:
                    train_log.append(row)

            # eval.csv: every eval_every steps; runs without a protocol also at the last step (a
            # protocol's schedule is the multiples of eval_every only)
            final_eval = env_step == cfg.steps and cfg.protocol_info is None and cfg.steps % cfg.eval_every != 0
            if env_step % cfg.eval_every == 0 or final_eval:
                returns, lengths = evaluate(agent, eval_env, cfg.eval_episodes, cfg.eval_seed)
                last_eval = float(returns.mean())
                eval_log.append({
                    "env_step": env_step,
                    "return_mean": float(returns.mean()),
                    "return_std": float(returns.std()),
                    "return_min": float(returns.min()),
                    "return_max": float(returns.max()),
                    "episode_length_mean": float(lengths.mean()),
                    "wall_seconds": round(wall_seconds(), 3),
                })
                evaluated_since_checkpoint = True
                bar.evaluated(env_step, last_eval)

            # episode end: checkpoint when due (the env's only state is now its RNGs), then reset
            if terminated or truncated:
                due = evaluated_since_checkpoint or env_step - last_checkpoint_step >= cfg.checkpoint_every
                if env_step < cfg.steps and due:
                    progress = Progress(env_step, wall_seconds(), last_eval,
                                        metric_window.state(), episode_window.state())
                    write_run_checkpoint(paths, progress, agent, train_env)
                    last_checkpoint_step, evaluated_since_checkpoint = env_step, False
                obs, _ = train_env.reset()
            else:
                obs = next_obs
    except OSError as exc:  # e.g. a full disk: the failed write left the file it replaces as it was
        raise RunError(
            f"run stopped at env step {env_step}: {exc.filename}: {exc.strerror or exc}. Records up to "
            f"the last checkpoint (env step {last_checkpoint_step}) are intact in {paths.root}."
        ) from None
    finally:
        bar.step(env_step, bar.phase)
        bar.close()
        train_env.close()
        eval_env.close()

    print(finish_run(paths, cfg, env_step, wall_seconds()), file=sys.stderr)
