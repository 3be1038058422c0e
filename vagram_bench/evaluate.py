"""Re-score a finished run's kept policy: ``python -m vagram_bench.evaluate <run dir> [episodes=N] ...``.

.. code-block:: bash

    python -m vagram_bench.evaluate runs/HopperDistract-15-v0/sac/seed0          # the run's own evaluation
    python -m vagram_bench.evaluate runs/HopperDistract-15-v0/sac episodes=50    # every seed under a folder
    python -m vagram_bench.evaluate runs/.../seed0 episodes=3 video=videos/     # MP4s of the episodes

Each run's ``policy.pt`` (:mod:`vagram_bench.runner.policy`) is loaded into the agent rebuilt as the
runner built it, and scored by the runner's own evaluation (:func:`vagram_bench.runner.loop.evaluate`
on an env made by :func:`~vagram_bench.runner.loop.make_envs`): episode ``i`` reset with
``eval_seed + i``, deterministic actions. With the run's ``eval_episodes`` and ``eval_seed`` (the
defaults) the numbers are those of the last row of its ``eval.csv``, with the same ``threads`` and the
run's kernels: the command re-applies the run's kernel choice from its ``config.json`` (a run pinned to
AVX2, the runner's default, is re-scored under the same pin, so exactly on any x86-64 CPU; a native run
on this CPU's own kernels, so exactly on the machine it ran on).

It prints one row per run and writes nothing into the run directories; ``out=FILE`` writes the table
as CSV (with every episode's return in ``returns``), ``video=DIR`` records every episode with
gymnasium's ``RecordVideo`` into ``DIR/<env>/<agent>/seed<k>/`` (needs ``moviepy``; rendering uses
``MUJOCO_GL=egl`` unless ``MUJOCO_GL`` is set).

Exit codes: 0 done; 1 a policy file that cannot be read or does not fit its agent; 2 bad input (no
such directory, a run without a kept policy, a bad value), one line ``error: ...`` on stderr.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vagram_bench.cli import UsageError, error_status, normalize_argv
from vagram_bench.records import CheckpointError, RunPaths, atomic_write_bytes, find_run_dirs

__all__ = ["EvaluateOptions", "parse_args", "evaluate_run", "main"]

USAGE = ("usage: python -m vagram_bench.evaluate RUN_DIR [RUN_DIR ...] [episodes=N] [eval_seed=S] "
         "[video=DIR] [out=FILE] [threads=N] [device=D] [kernels=avx2|native]")
#: the columns of the printed table and of ``out=``
COLUMNS = ("run", "env_step", "episodes", "eval_seed", "return_mean", "return_std", "return_min", "return_max",
           "episode_length_mean")


@dataclasses.dataclass
class EvaluateOptions:
    """The command line of ``python -m vagram_bench.evaluate``."""

    runs: tuple[str, ...] = ()
    """run directories, or folders holding run directories (every seed of a population, a sweep)"""
    episodes: int | None = None
    """episodes per run (default: the run's eval_episodes)"""
    eval_seed: int | None = None
    """episode i is reset with eval_seed + i (default: the run's eval_seed)"""
    video: str | None = None
    """record every episode as MP4 under this directory"""
    out: str | None = None
    """also write the table as CSV to this file"""
    threads: int | None = None
    """torch threads (default: the run's threads; the same value reproduces eval.csv)"""
    device: str | None = None
    """torch device (default: the run's device)"""
    kernels: str | None = None
    """avx2 or native CPU kernels (default: the run's: avx2 where its config.json says its kernels were
    pinned, so a pinned run re-scores exactly on any x86-64 CPU; docs/runner.md, determinism contract)"""


_INTS = {"episodes": 1, "eval_seed": 0, "threads": 0}  # the smallest value each accepts
KERNEL_CHOICES = ("avx2", "native")


def parse_args(argv: Sequence[str]) -> EvaluateOptions:
    """``RUN_DIR ... key=value ...`` (or ``--key value``) -> :class:`EvaluateOptions`.

    Raises:
        UsageError: an unknown option, a value that is not a valid integer, no run directory.
    """
    tokens = normalize_argv(argv)
    fields = [f.name for f in dataclasses.fields(EvaluateOptions) if f.name != "runs"]
    values: dict[str, Any] = {}
    runs: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            if tok != "--":
                runs.append(tok)
            i += 1
            continue
        name, has_value, value = tok[2:].partition("=")
        name = name.replace("-", "_")
        if name not in fields:
            raise UsageError(f"unknown option {name!r}; options: {', '.join(fields)}")
        if not has_value:
            if i + 1 >= len(tokens):
                raise UsageError(f"{name} needs a value ({name}=VALUE)")
            i, value = i + 1, tokens[i + 1]
        if name in _INTS:
            try:
                number = int(value)
            except ValueError:
                raise UsageError(f"{name} must be an integer >= {_INTS[name]}, got {value!r}") from None
            if number < _INTS[name]:
                raise UsageError(f"{name} must be an integer >= {_INTS[name]}, got {number}")
            values[name] = number
        elif not value:
            raise UsageError(f"{name} needs a value ({name}=VALUE)")
        elif name == "kernels" and value not in KERNEL_CHOICES:
            raise UsageError(f"kernels={value!r} is not a kernel choice; choose one of {', '.join(KERNEL_CHOICES)}")
        else:
            values[name] = value
        i += 1
    if not runs:
        raise UsageError(f"no run directory given; {USAGE}")
    return EvaluateOptions(runs=tuple(runs), **values)


def run_dirs(paths: Sequence[str]) -> list[Path]:
    """Each path itself if it is a run directory (holds ``config.json``), else the run directories
    under it.

    Raises:
        UsageError: a path that does not exist or holds no run directory.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise UsageError(f"no run directory {p}")
        if RunPaths(p).config.exists():
            found.append(p)
            continue
        under = find_run_dirs(p) if p.is_dir() else []
        if not under:
            raise UsageError(f"{p} is not a run directory and holds none (no config.json)")
        found.extend(under)
    return found


def _video_wrapper(folder: Path, prefix: str, episodes: int) -> Any:
    from gymnasium.wrappers import RecordVideo

    # the evaluated episodes only: the evaluation resets an env once more after its last episode
    return lambda env: RecordVideo(env, str(folder), episode_trigger=lambda episode: episode < episodes,
                                   name_prefix=prefix, disable_logger=True)


def _check_video() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; read when mujoco first renders
    try:
        import moviepy  # noqa: F401  (RecordVideo writes the MP4s with it)
    except ImportError:
        raise UsageError("video= needs moviepy: pip install moviepy") from None


def evaluate_run(run_dir: str | Path, episodes: int | None = None, eval_seed: int | None = None,
                 video: str | Path | None = None, threads: int | None = None,
                 device: str | None = None) -> dict[str, Any]:
    """Score the kept policy of ``run_dir`` with the runner's evaluation; returns the row of
    :data:`COLUMNS` and ``returns``/``lengths`` (every episode's).

    Raises:
        PolicyError: no kept policy, or an agent/config that cannot be rebuilt;
        CheckpointError: ``policy.pt`` cannot be read or does not fit.
    """
    import torch

    from vagram_bench.runner.loop import evaluate, eval_row, make_envs
    from vagram_bench.runner.policy import read_policy, run_config_from_record, load_policy_agent

    policy = read_policy(run_dir)
    record = policy["config"]
    cfg = run_config_from_record(record)
    episodes = cfg.eval_episodes if episodes is None else episodes
    eval_seed = cfg.eval_seed if eval_seed is None else eval_seed
    threads = cfg.threads if threads is None else threads
    if threads:
        torch.set_num_threads(threads)
    env_kwargs, wrap = dict(cfg.env_kwargs), None
    if video is not None:
        folder = Path(video) / cfg.env / cfg.agent / f"seed{cfg.seed}"
        env_kwargs["render_mode"] = "rgb_array"
        wrap = _video_wrapper(folder, f"step{policy['env_step']}-evalseed{eval_seed}", episodes)
    envs = make_envs(cfg.env, 1, env_kwargs, wrap)
    try:
        agent, _ = load_policy_agent(policy, envs, device)
        returns, lengths = evaluate(agent, envs, np.ones(1, dtype=bool), episodes, eval_seed)
    finally:
        envs.close()  # RecordVideo writes the last episode's file on close
    return {"run": str(run_dir), "env_step": int(policy["env_step"]), "episodes": episodes, "eval_seed": eval_seed,
            **eval_row(returns[0], lengths[0]), "returns": returns[0].tolist(), "lengths": lengths[0].tolist()}


def _table(rows: list[dict[str, Any]]) -> str:
    header = list(COLUMNS)
    cells = [[str(r["run"]), str(r["env_step"]), str(r["episodes"]), str(r["eval_seed"]),
              *(f"{r[c]:.2f}" for c in COLUMNS[4:])] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in cells]
    return "\n".join(lines)


def _csv(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, "returns"])
    for r in rows:  # repr: the shortest exact form, as eval.csv writes floats
        writer.writerow([r["run"], r["env_step"], r["episodes"], r["eval_seed"], *(repr(r[c]) for c in COLUMNS[4:]),
                         " ".join(map(repr, r["returns"]))])
    return buffer.getvalue().encode()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vagram_bench.evaluate``; returns the exit code."""
    from vagram_bench.runner.policy import PolicyError
    from vagram_bench.runner.rundir import RunError

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(f"{USAGE}\n\n{__doc__.split('.. code-block')[0].strip()}")
        return 0
    try:
        opts = parse_args(argv)
        dirs = run_dirs(opts.runs)
        if opts.video is not None:
            _check_video()
        rows = []
        for d in dirs:
            rows.append(evaluate_run(d, opts.episodes, opts.eval_seed, opts.video, opts.threads, opts.device))
        print(_table(rows))
        if opts.out is not None:
            atomic_write_bytes(opts.out, _csv(rows))
        return 0
    except (UsageError, PolicyError, RunError, CheckpointError) as exc:
        return error_status(exc)
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def recorded_kernels(dirs: Sequence[Path]) -> str:
    """``avx2`` if every run's ``config.json`` says its kernels were pinned, else ``native``; a set that
    mixes both is re-scored natively, with a note on stderr naming the pinned runs (evaluate them in a
    separate call to re-score them under the pin)."""
    import json

    def was_pinned(d: Path) -> bool:
        try:
            return bool(json.loads(RunPaths(d).config.read_text()).get("kernels", {}).get("pinned"))
        except (OSError, ValueError, AttributeError):
            return False

    pinned = [d for d in dirs if was_pinned(d)]
    if pinned and len(pinned) < len(dirs):
        print(f"note: {len(pinned)} of {len(dirs)} runs were trained under the AVX2 kernel pin and the others "
              f"were not; all are re-scored on native kernels, so the pinned ones ({', '.join(map(str, pinned))}) "
              "may differ from their eval.csv in the last digits: evaluate them in a call of their own",
              file=sys.stderr)
    return "avx2" if dirs and len(pinned) == len(dirs) else "native"


def cli(argv: list[str] | None = None) -> int:
    """``python -m vagram_bench.evaluate``: evaluate with the kernels the runs were trained with. A
    pinned run (the runner's default, ``kernels=avx2``) is re-scored in a process restarted once under
    the same pin (:func:`vagram_bench.kernels.reexec_pinned`, before torch loads); otherwise on this
    CPU's own kernels, as the run was."""
    from vagram_bench.kernels import pin_unavailable, pinned, reexec_pinned

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_args(argv)
        choice = opts.kernels or recorded_kernels(run_dirs(opts.runs))
    except UsageError:
        return main(argv)  # main prints the one-line error
    if choice == "avx2":
        reexec_pinned([*argv, "kernels=avx2"] if opts.kernels is None else argv, module="vagram_bench.evaluate")
        if not pinned() and pin_unavailable() is not None:
            print(f"note: the runs were pinned to AVX2 kernels but this machine cannot pin ({pin_unavailable()}): "
                  "the scores may differ from eval.csv in the last digits", file=sys.stderr)
    return main(argv)


if __name__ == "__main__":
    sys.exit(cli())
