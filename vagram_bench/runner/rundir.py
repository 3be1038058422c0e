"""The run directory ``<out>/<env>/<agent>/seed<k>/``: refuse a conflicting one, start afresh, or resume.

Checkpoints are taken at episode boundaries, where the train env's only state is its RNGs (MuJoCo's
reset noise, a distraction env's stream, dm-control's task ``RandomState``). A checkpoint holds the
agent's ``state_dict()``, those RNG states, the global torch/numpy/python RNG states and the runner's
:class:`Progress`, so a resumed run makes exactly the draws the uninterrupted run made and re-appends
exactly the rows it would have written (``docs/runner.md``, "Resume").
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib.metadata
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vagram_bench.records import (
    CheckpointError,
    RunPaths,
    atomic_write_json,
    load_checkpoint,
    read_json,
    save_checkpoint,
    truncate_csv,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "OPERATIONAL_FIELDS",
    "RunError",
    "RunInterrupted",
    "Progress",
    "RunDirLock",
    "prepare_run_dir",
    "read_run_checkpoint",
    "start_afresh",
    "kernel_change",
    "resume",
    "write_run_checkpoint",
    "capture_env_rngs",
    "restore_env_rngs",
]

CHECKPOINT_FORMAT = 1
#: config.json keys that may differ between the original command and a resuming one.
OPERATIONAL_FIELDS = frozenset({"quiet", "overwrite", "checkpoint_every", "out", "threads", "track"})
#: config.json keys describing the machine a run started on, not the run (a resume elsewhere differs).
PROVENANCE_FIELDS = frozenset({"versions", "git_revision", "created", "bf16_hardware", "kernels"})
#: config.json keys (dotted paths) that are prose: a variant's reason may be reworded as a protocol's
#: description may (neither is part of its content hash), and the run resumes.
PROSE_FIELDS = frozenset({"variant.reason"})
#: config.json keys (dotted paths) added after runs were first recorded, with the value an older
#: record means: MBPO's switches of its non-loss mechanics default to the behaviour runs had before them.
LATER_FIELDS = {
    "env_kwargs": {},
    "agent_config.model_epochs": None,
    "agent_config.model_score": "upstream",
    "agent_config.model_snapshot": "upstream",
    "agent_config.rollout_sampling": "upstream",
}


class RunError(RuntimeError):
    """A run that cannot start or continue (exit code 1, or 2 when ``usage`` is set)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a run: ``saved`` says what a resume continues from (exit code 130)."""

    def __init__(self, saved: str) -> None:
        super().__init__(saved)
        self.saved = saved


class StepInterrupts:
    """Ctrl-C (SIGINT) takes effect between env steps: :meth:`install` makes the first Ctrl-C only a
    note, which :meth:`check` turns into :class:`KeyboardInterrupt` at the loop's next step boundary,
    where every record and checkpoint of the finished step is written; a second Ctrl-C stops at once.
    After :meth:`finishing` (the run's closing writes) every Ctrl-C is only noted, so the closing
    completes and the run's own message is the one printed; :meth:`restore` puts the previous
    handler back.

    A ``KeyboardInterrupt`` raised wherever the signal lands could leave a row written without the
    checkpoint of its step, or cut the writes of a step in two; here what a resume continues from
    is consistent by construction. Installed only in the main thread and only over Python's
    default handler (an embedding program's own handler is left alone).
    """

    def __init__(self) -> None:
        self.noted = False
        self._finishing = False
        self._installed = False

    def _note(self, signum: int, frame: Any) -> None:
        if self.noted and not self._finishing:
            raise KeyboardInterrupt
        if not self.noted:
            print("Ctrl-C: stopping after this env step (Ctrl-C again stops at once)", file=sys.stderr,
                  flush=True)
        self.noted = True

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._note)
            self._installed = True

    def check(self) -> None:
        if self.noted:
            raise KeyboardInterrupt

    def finishing(self) -> None:
        self._finishing = True

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False


@dataclasses.dataclass
class Progress:
    """The runner's own state at a checkpoint (besides the agent and the RNGs)."""

    env_step: int = 0
    """env steps taken"""
    wall_seconds: float = 0.0
    """wall time spent by the processes that ran so far"""
    last_eval: float | None = None
    """mean return of the last evaluation (shown by the progress bar)"""
    metric_window: dict = dataclasses.field(default_factory=lambda: {"sums": {}, "counts": {}})
    """state of the partial ``train.csv`` window of agent metrics"""
    episode_window: dict = dataclasses.field(default_factory=lambda: {"sums": {}, "counts": {}})
    """state of the partial ``train.csv`` window of episode returns and lengths"""
    cpu_seconds: float | None = 0.0
    """CPU time spent by the processes that ran so far (``None``: resumed from a checkpoint written
    before CPU time was recorded)"""


# --------------------------------------------------------------------------------------------------
# the directory


class RunDirLock:
    """One process per run directory: an exclusive ``flock`` on ``<run>/run.lock``.

    The OS releases the lock when its holder exits, however it exits (a ``SIGKILL`` included), so a
    killed run never leaves a stale lock; the file it leaves behind is harmless. The holder writes
    its pid and host into the file, so a second process can name it. On exit the holder removes the
    file while still holding the lock; a process that opened the removed file meanwhile notices
    (its file is no longer the one at the path) and locks the new one.

    Raises (on entering):
        RunError: (``usage``) the directory cannot be created or locked (a bad ``out``), or
            another process holds it.
    """

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self._file: Any = None

    def __enter__(self) -> "RunDirLock":
        path = self.paths.lock
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            while self._file is None:
                f = open(path, "a+")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.seek(0)
                    holder = f.read().strip() or "another process (it has not written its pid yet)"
                    f.close()
                    raise RunError(
                        f"run directory {self.paths.root} is in use by {holder}; wait for that run to end "
                        "or stop it (a killed run releases the directory at once)",
                        usage=True,
                    ) from None
                if path.exists() and os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                    self._file = f
                else:
                    f.close()  # removed by a holder that just finished: lock the new file
            self._file.seek(0)
            self._file.truncate()
            self._file.write(f"process {os.getpid()} on host {socket.gethostname()}\n")
            self._file.flush()
        except OSError as exc:
            if self._file is not None:
                self._file.close()
                self._file = None
            where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != self.paths.root else ""
            raise RunError(f"cannot use run directory {self.paths.root}: {exc.strerror or exc}{where}; "
                           "check out=", usage=True) from None
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.paths.lock.unlink(missing_ok=True)
        except OSError:
            pass  # the lock is released below all the same
        self._file.close()
        self._file = None



def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"<field>: <old> (run dir) vs <new> (this command)"`` for every field that differs
    (operational fields, versions and the git revision may differ)."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        if (not prefix and key in OPERATIONAL_FIELDS | PROVENANCE_FIELDS) or f"{prefix}{key}" in PROSE_FIELDS:
            continue
        absent = LATER_FIELDS.get(f"{prefix}{key}", "<absent>")
        a, b = old.get(key, absent), new.get(key, absent)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(config_differences(a, b, prefix=f"{prefix}{key}."))
        elif a != b:
            name = f"{prefix}{key}"
            if name.startswith("agent_config."):
                name = "agent." + name[len("agent_config."):]
            diffs.append(f"{name}: {a!r} (run dir) vs {b!r} (this command)")
    return diffs


def prepare_run_dir(paths: RunPaths, config_record: Mapping[str, Any], *, overwrite: bool) -> bool:
    """Make ``paths.root`` ready for this run; ``False`` when it holds this run, complete already.

    Called under the directory's :class:`RunDirLock`. ``overwrite`` deletes the run's files first.
    Otherwise an existing ``config.json`` must equal ``config_record`` but for
    :data:`OPERATIONAL_FIELDS`.

    Raises:
        RunError: the directory holds a run with another config (``usage``) or an unreadable
            ``config.json``.
    """
    if paths.config.exists() and overwrite:
        for f in paths.record_files():
            if f.exists():
                f.unlink()
        shutil.rmtree(paths.tensorboard, ignore_errors=True)
    elif paths.config.exists():
        try:
            old = read_json(paths.config)
        except ValueError as exc:
            raise RunError(f"{paths.config} is not valid JSON ({exc}); pass overwrite=true to start afresh")
        diffs = config_differences(old, config_record)
        if diffs:
            raise RunError(
                f"run directory {paths.root} holds a run with a different config:\n  "
                + "\n  ".join(diffs)
                + "\nUse another out= directory, or overwrite=true to discard the existing run.",
                usage=True,
            )
        if paths.summary.exists():
            print(
                f"run {paths.root} is already complete (summary.json exists); pass overwrite=true to re-run it",
                file=sys.stderr,
            )
            return False
    return True


def read_run_checkpoint(paths: RunPaths) -> dict[str, Any] | None:
    """The run's checkpoint, or ``None`` when it has none (a fresh run).

    Raises:
        CheckpointError: the checkpoint cannot be read or has another format.
    """
    if not paths.checkpoint.exists():
        return None
    checkpoint = load_checkpoint(paths.checkpoint)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {paths.checkpoint} has format {checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT}"
        )
    return checkpoint


def start_afresh(paths: RunPaths, config_record: Mapping[str, Any], kernels: Mapping[str, Any] | None = None) -> Progress:
    """Empty the logs (and the TensorBoard events of an earlier attempt) and write ``config.json``
    (with package versions, the git revision, whether the device has bf16 matmuls and, when given,
    the CPU kernels the run computes with: :func:`vagram_bench.kernels.kernel_info`)."""
    from vagram_bench.runner.hardware import bf16_matmul_hardware

    truncate_csv(paths.eval_csv, 0)
    truncate_csv(paths.train_csv, 0)
    shutil.rmtree(paths.tensorboard, ignore_errors=True)
    record = {**config_record, "versions": package_versions(), "git_revision": git_revision(),
              "bf16_hardware": bf16_matmul_hardware(str(config_record.get("device", "cpu")))}
    if kernels is not None:
        record["kernels"] = dict(kernels)
    atomic_write_json(paths.config, record)
    return Progress()


def kernel_change(paths: RunPaths, kernels: Mapping[str, Any]) -> str | None:
    """A one-line note when the run directory's ``config.json`` recorded other CPU kernels than this
    process computes with (a resume then continues with other rounding, not bit for bit); ``None``
    when they are the same or the record has none."""
    try:
        recorded = read_json(paths.config).get("kernels")
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    keys = ("pinned", "torch_cpu_capability", "numpy_simd", "blas")
    changed = [k for k in keys if recorded.get(k) != kernels.get(k)]
    if not changed:
        return None
    what = ", ".join(f"{k} {recorded.get(k)!r} -> {kernels.get(k)!r}" for k in changed)
    return (f"note: {paths.root} was started with other CPU kernels ({what}); the resumed run continues "
            "with this process's kernels, so its numbers are not those of an uninterrupted run")


def resume(paths: RunPaths, checkpoint: Mapping[str, Any], agent: Any, train_env: Any) -> Progress:
    """Restore the agent, the train env's RNGs and the global RNGs from ``checkpoint``, and drop the
    log rows written after it (they are written again by the continued run).

    Raises:
        CheckpointError: the checkpoint does not fit this agent or env (the files stay untouched).
    """
    import torch

    try:
        agent.load_state_dict(checkpoint["agent"])
        restore_env_rngs(train_env, checkpoint["train_env_rng"])
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {paths.checkpoint} does not fit this agent/env ({type(exc).__name__}: {exc}); "
            "the run's files were left untouched"
        ) from exc
    torch.set_rng_state(checkpoint["torch_rng"])
    np.random.set_state(checkpoint["numpy_rng"])
    random.setstate(checkpoint["python_rng"])
    progress = Progress(
        env_step=int(checkpoint["env_step"]),
        wall_seconds=float(checkpoint["wall_seconds"]),
        last_eval=checkpoint["last_eval"],
        metric_window=checkpoint["metric_window"],
        episode_window=checkpoint["episode_window"],
        cpu_seconds=checkpoint.get("cpu_seconds"),
    )
    truncate_csv(paths.eval_csv, progress.env_step)
    truncate_csv(paths.train_csv, progress.env_step)
    return progress


def write_run_checkpoint(paths: RunPaths, progress: Progress, agent: Any, train_env: Any) -> None:
    """Checkpoint the run at an episode end (before the train env's reset)."""
    import torch

    save_checkpoint(
        paths.checkpoint,
        {
            "format": CHECKPOINT_FORMAT,
            "env_step": progress.env_step,
            "agent": agent.state_dict(),
            "train_env_rng": capture_env_rngs(train_env),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "wall_seconds": progress.wall_seconds,
            "cpu_seconds": progress.cpu_seconds,
            "last_eval": progress.last_eval,
            "metric_window": progress.metric_window,
            "episode_window": progress.episode_window,
        },
    )


# --------------------------------------------------------------------------------------------------
# provenance


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("vagram-bench", "torch", "torchrl", "tensordict", "gymnasium", "mujoco", "dm-control", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> str | None:
    """``HEAD`` of the checkout this code runs from (``-dirty`` with uncommitted changes), if any."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


# --------------------------------------------------------------------------------------------------
# env RNG state (exact resume)


def _rng_objects(env: Any, max_depth: int = 6) -> dict[tuple[str, ...], Any]:
    """Every numpy ``Generator`` / ``RandomState`` reachable from ``env`` through instance
    attributes of gymnasium envs/wrappers and their children (distraction envs own a ``base`` env,
    dm-control tasks own a ``RandomState``). Keyed by attribute path, which is stable across
    processes for the same env id."""
    found: dict[tuple[str, ...], Any] = {}
    seen: set[int] = set()

    def visit(obj: Any, path: tuple[str, ...], depth: int) -> None:
        if id(obj) in seen or depth > max_depth:
            return
        seen.add(id(obj))
        if isinstance(obj, (np.random.Generator, np.random.RandomState)):
            found[path] = obj
            return
        module = type(obj).__module__ or ""
        if isinstance(obj, (np.ndarray, str, bytes, int, float, type, types.ModuleType)):
            return
        if module.startswith(("mujoco", "numpy", "torch", "builtins")):
            if isinstance(obj, (list, tuple)):
                for i, item in enumerate(obj):
                    visit(item, path + (f"[{i}]",), depth + 1)
            elif isinstance(obj, dict):
                for k, item in obj.items():
                    if isinstance(k, str):
                        visit(item, path + (f"{{{k}}}",), depth + 1)
            return
        attrs = getattr(obj, "__dict__", None)
        if not isinstance(attrs, dict):
            return
        for name in sorted(attrs):
            visit(attrs[name], path + (name,), depth + 1)

    visit(env, (), 0)
    return found


def capture_env_rngs(env: Any) -> dict[tuple[str, ...], Any]:
    """The state of every numpy RNG reachable from ``env``, keyed by attribute path."""
    states = {}
    for path, rng in _rng_objects(env).items():
        if isinstance(rng, np.random.Generator):
            states[path] = ("generator", rng.bit_generator.state)
        else:
            states[path] = ("random_state", rng.get_state())
    return states


def _resolve_parent(env: Any, path: tuple[str, ...]) -> Any:
    obj = env
    for part in path[:-1]:
        if part.startswith("[") and part.endswith("]"):
            obj = obj[int(part[1:-1])]
        elif part.startswith("{") and part.endswith("}"):
            obj = obj[part[1:-1]]
        else:
            obj = getattr(obj, part)
    return obj


def restore_env_rngs(env: Any, states: Mapping[tuple[str, ...], Any]) -> None:
    """Set every saved RNG state. An RNG that is created lazily (e.g. a gymnasium space's
    ``_np_random`` after the first ``sample()``) and does not exist yet in the fresh env is created
    with the saved bit generator, so agents that sample ``action_space`` resume exactly too."""
    live = _rng_objects(env)
    for path, (kind, state) in states.items():
        rng = live.get(path)
        if rng is None:
            leaf = path[-1]
            try:
                parent = _resolve_parent(env, path)
            except (AttributeError, IndexError, KeyError, TypeError):
                parent = None
            if parent is None or leaf.startswith(("[", "{")) or getattr(parent, leaf, None) is not None:
                raise CheckpointError(
                    f"the env's RNG layout changed since the checkpoint (no RNG at {'.'.join(path)}); "
                    "was it written by another version of the env?"
                )
            if kind == "generator":
                rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
            else:
                rng = np.random.RandomState()
            setattr(parent, leaf, rng)
        if isinstance(rng, np.random.Generator):
            rng.bit_generator.state = state
        else:
            rng.set_state(state)
