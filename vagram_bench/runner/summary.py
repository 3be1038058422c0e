"""``summary.json``: written last, its presence marks a run complete."""

from __future__ import annotations

from typing import Any

from vagram_bench.records import RunPaths, atomic_write_json, read_evals

__all__ = ["finish_run"]


def finish_run(paths: RunPaths, cfg: Any, env_steps: int, wall_seconds: float,
               cpu_seconds: float | None = None, cpu_process: str | None = None) -> str:
    """Write ``summary.json`` from ``eval.csv`` and remove the checkpoint (a complete run needs none).

    Args:
        paths: the run's files.
        cfg: the run's :class:`~vagram_bench.runner.config.RunConfig`.
        env_steps: env steps taken.
        wall_seconds: wall time of all the processes that ran the run.
        cpu_seconds: CPU time (every thread) of those processes, ``None`` when not known for all of
            them; in a population each member records the whole process's, as for the wall time.
        cpu_process: the name of the process that finished the run (host, pid, start time): the runs of
            one population share it, so a grid's cost counts each process's CPU time once.

    Returns:
        The one-line report of the run (the runner prints it, also with ``quiet=true``).
    """
    evals = read_evals(paths.eval_csv)
    final = evals[-1] if evals else None
    atomic_write_json(
        paths.summary,
        {
            "agent": cfg.agent,
            "env": cfg.env,
            "seed": cfg.seed,
            "env_steps": env_steps,
            "final_return_mean": final.return_mean if final else None,
            "final_return_std": final.return_std if final else None,
            "best_return_mean": max(r.return_mean for r in evals) if evals else None,
            "num_evals": len(evals),
            "wall_seconds": round(wall_seconds, 3),
            "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 3),
            "cpu_process": cpu_process,
            "protocol": cfg.protocol_info,
        },
    )
    if paths.checkpoint.exists():
        paths.checkpoint.unlink()
    result = f"final eval return {final.return_mean:.1f} at env step {final.env_step}" if final else "no evaluation"
    return (f"done: {cfg.agent} on {cfg.env} seed {cfg.seed}, {result}, wall time {_duration(wall_seconds)}; "
            f"records in {paths.root}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"
