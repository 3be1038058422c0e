"""Run records: atomic JSON/checkpoint writes and crash-safe, row-by-row CSV logs.

A run directory ``<out>/<env>/<agent>/seed<k>/`` holds (see ``docs/runner.md``):

* ``config.json``  — the fully resolved config, package versions, git revision (atomic write);
* ``eval.csv``     — one row per evaluation, header :data:`EVAL_COLUMNS` (appended, flushed, fsynced);
* ``train.csv``    — agent metrics averaged over ``log_every`` env steps, first column ``env_step``;
* ``checkpoint.pt``— everything needed to continue bit-identically (atomic write);
* ``policy.pt``    — the final policy of a complete run (what ``act`` needs and the config to rebuild
  it), re-scored by ``python -m vagram_bench.evaluate`` (atomic write, before ``summary.json``);
* ``summary.json`` — written last; its presence means the run is complete;
* ``error.json``   — why the run stopped (a non-finite loss), if it did; removed when it starts again.

This module is the only code that reads or writes these files: the runner, the sweep (cell status
and progress) and the leaderboard (:func:`scan_runs`, :class:`RunRecord`) all go through it.

Atomic means: write ``<name>.tmp-<pid>``, flush, ``fsync``, ``os.replace`` onto the final name, so a
reader (or a crash) sees either the old or the new file, never a half-written one. CSV rows are
appended one at a time; a kill can leave at most one partial last line, which :func:`truncate_csv`
removes when a run resumes.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import dataclasses
import os
import shlex
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
    "EVAL_COLUMNS",
    "CheckpointError",
    "CSVLog",
    "EvalRow",
    "RunPaths",
    "RunRecord",
    "load_run",
    "scan_runs",
    "redo_command",
    "lock_holder",
    "atomic_write_bytes",
    "atomic_write_json",
    "find_run_dirs",
    "read_csv",
    "read_evals",
    "read_json",
    "truncate_csv",
    "save_checkpoint",
    "load_checkpoint",
]

#: Header of ``eval.csv`` (the sweep and the leaderboard read it through :func:`read_evals`; do not reorder).
EVAL_COLUMNS = (
    "env_step",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
    "episode_length_mean",
    "wall_seconds",
)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the run's files are left untouched."""


class RunPaths:
    """File names inside one run directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.eval_csv = self.root / "eval.csv"
        self.train_csv = self.root / "train.csv"
        self.checkpoint = self.root / "checkpoint.pt"
        self.policy = self.root / "policy.pt"
        self.summary = self.root / "summary.json"
        self.error = self.root / "error.json"
        self.lock = self.root / "run.lock"
        """held (``flock``) by the process running the run; not a record"""
        self.tensorboard = self.root / "tensorboard"
        """TensorBoard event files of a run with ``track=tensorboard`` (a directory; not a record)"""

    def record_files(self) -> list[Path]:
        return [self.config, self.eval_csv, self.train_csv, self.checkpoint, self.policy, self.summary, self.error]


def find_run_dirs(root: str | os.PathLike) -> list[Path]:
    """Every run directory under ``root`` (a directory holding a ``config.json``), sorted."""
    return sorted(p.parent for p in Path(root).rglob(RunPaths(".").config.name))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``filename`` set (``write`` and ``fsync`` errors, e.g. a full disk, carry none)."""
    if exc.filename is None and exc.errno is not None:
        return type(exc)(exc.errno, exc.strerror, str(path))
    return exc


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    Raises:
        OSError: the write failed (its ``filename`` names the file); ``path`` keeps its old content.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _named(exc, path) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite_or_none(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as ``null``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(_finite_or_none(obj), indent=2, sort_keys=False, default=_json_default)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float):
        return repr(value)  # shortest round-trip representation: exact on reload
    return str(value)


class CSVLog:
    """An append-only CSV file written row by row (flush + ``fsync`` after every row).

    The header is fixed by the first row (or ``columns``). A row with a new key (e.g. a model
    metric that first appears after model training starts) rewrites the file atomically with the
    extended header, earlier rows getting empty cells; this is rare and keeps every row parseable.

    Args:
        path: the CSV file; an existing file is continued (its header is read back).
        columns: the header to use for a new file; rows must then only use these keys.

    Examples:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> log = CSVLog(os.path.join(d, "t.csv"))
        >>> log.append({"env_step": 1, "loss": 0.5}); log.append({"env_step": 2, "loss": 0.25, "alpha": 0.1})
        >>> open(os.path.join(d, "t.csv")).read().splitlines()
        ['env_step,loss,alpha', '1,0.5,', '2,0.25,0.1']
    """

    def __init__(self, path: str | os.PathLike, columns: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        self.fixed = columns is not None
        self.columns: list[str] = list(columns) if columns is not None else []
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            if self.fixed and header != self.columns:
                raise ValueError(f"{self.path}: header {header} differs from expected {self.columns}")
            self.columns = header

    def append(self, row: Mapping[str, Any]) -> None:
        new_keys = [k for k in row if k not in self.columns]
        if new_keys and self.fixed:
            raise KeyError(f"{self.path}: unknown columns {new_keys}; header is {self.columns}")
        exists = self.path.exists() and self.path.stat().st_size > 0
        if new_keys and exists:
            self._rewrite_with(self.columns + new_keys)
        elif new_keys:
            self.columns = self.columns + new_keys
        line = io.StringIO()
        writer = csv.writer(line, lineterminator="\n")
        if not (self.path.exists() and self.path.stat().st_size > 0):
            writer.writerow(self.columns)
        writer.writerow([_format(row.get(c)) for c in self.columns])
        try:
            with open(self.path, "a", newline="") as f:
                f.write(line.getvalue())
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise _named(exc, self.path) from exc

    def _rewrite_with(self, columns: list[str]) -> None:
        rows = read_csv(self.path)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([r.get(c, "") for c in columns])
        atomic_write_bytes(self.path, out.getvalue().encode())
        self.columns = columns


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """All complete rows of a CSV file as dicts of strings (a partial last line is dropped)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a row cut by a kill
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    return [dict(zip(header, r)) for r in body if len(r) == len(header)]


@dataclasses.dataclass(frozen=True)
class EvalRow:
    """One row of ``eval.csv`` (one evaluation), typed; fields are :data:`EVAL_COLUMNS`."""

    env_step: int
    return_mean: float
    return_std: float
    return_min: float
    return_max: float
    episode_length_mean: float
    wall_seconds: float


def read_evals(path: str | os.PathLike) -> list[EvalRow]:
    """The evaluations recorded in an ``eval.csv`` (``[]`` if the file is missing or empty).

    A last line cut by a kill, or being appended while this reads it, is left out; any other row
    that does not parse is an error.

    Raises:
        ValueError: the header is not :data:`EVAL_COLUMNS`, or a complete row does not parse
            (the message names the file and the row).
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a row cut by a kill or being appended
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return []
    header, body = lines[0], lines[1:]
    if tuple(header) != EVAL_COLUMNS:
        raise ValueError(f"{path}: header {header} is not the eval.csv header {list(EVAL_COLUMNS)}")
    rows = []
    for number, line in enumerate(body, start=2):
        try:
            step, *values = line
            rows.append(EvalRow(int(float(step)), *(float(v) for v in values)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: row {number} {line} is not an evaluation ({exc})") from None
    return rows


def truncate_csv(path: str | os.PathLike, max_env_step: int, step_column: str = "env_step") -> int:
    """Keep only complete rows with ``step_column <= max_env_step`` (atomic rewrite).

    Used on resume: rows written after the checkpoint (and a row cut by a kill) are dropped, so the
    resumed run re-appends them exactly once. Returns the number of rows kept.
    """
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, newline="") as f:
        header = next(csv.reader(f), None)
    if header is None:
        path.unlink()
        return 0
    kept = [r for r in read_csv(path) if int(float(r[step_column])) <= max_env_step]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in kept:
        writer.writerow([r[c] for c in header])
    atomic_write_bytes(path, out.getvalue().encode())
    return len(kept)


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: the file is truncated, corrupt or not a checkpoint. The message names the
            file and the reason; nothing is deleted.
    """
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}). The run's files were "
            "left untouched. Move or delete the checkpoint to restart this run from scratch, or "
            "pass overwrite=true to discard the whole run directory."
        ) from exc
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(
            f"checkpoint {path} is not a vagram-bench checkpoint (got {type(state).__name__}); "
            "the run's files were left untouched"
        )
    return state


# --------------------------------------------------------------------------------------------------
# reading whole runs (the leaderboard)


@dataclasses.dataclass
class RunRecord:
    """One run directory as the runner wrote it."""

    path: Path
    agent: str
    env: str
    seed: int
    protocol: Mapping[str, Any] | None
    """``config.json["protocol"]``: ``{"name", "version", "hash"}`` or ``None``."""
    eval_steps: np.ndarray
    """``eval.csv`` column ``env_step`` (int)."""
    eval_returns: np.ndarray
    """``eval.csv`` column ``return_mean``."""
    summary: Mapping[str, Any] | None
    """``summary.json`` (present only for a completed run)."""
    agent_config: Mapping[str, Any] | None = None
    """``config.json["agent_config"]``: the agent's resolved hyperparameters."""

    @property
    def complete(self) -> bool:
        return self.summary is not None


def load_run(run_dir: Path) -> RunRecord:
    """Read one run directory (``config.json`` required).

    Raises:
        ValueError: ``config.json`` or ``eval.csv`` cannot be parsed (the message names the file).
        KeyError: ``config.json`` lacks ``agent``, ``env`` or ``seed``.
    """
    paths = RunPaths(run_dir)
    config = read_json(paths.config)
    evals = read_evals(paths.eval_csv)
    steps = np.asarray([e.env_step for e in evals], dtype=np.int64)
    returns = np.asarray([e.return_mean for e in evals], dtype=np.float64)
    summary = read_json(paths.summary) if paths.summary.exists() else None
    return RunRecord(
        path=run_dir,
        agent=str(config["agent"]),
        env=str(config["env"]),
        seed=int(config["seed"]),
        protocol=config.get("protocol"),
        eval_steps=steps,
        eval_returns=returns,
        summary=summary,
        agent_config=config.get("agent_config"),
    )


def scan_runs(root: str | os.PathLike) -> list[RunRecord]:
    """Every run record under ``root`` (any directory holding a ``config.json``), sorted by path.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory {str(root)!r} does not exist")
    runs = []
    for run_dir in find_run_dirs(root):
        try:
            runs.append(load_run(run_dir))
        except (KeyError, ValueError) as exc:
            warnings.warn(f"skipping unreadable run record {run_dir}: {exc}", stacklevel=2)
    return runs


def redo_command(run_dir: str | os.PathLike, protocol_ref: str) -> str:
    """The runner command that runs ``<out>/<env>/<agent>/seed<k>/`` again from scratch under
    ``protocol_ref`` (``overwrite=true`` discards the directory's records first)."""
    run_dir = Path(run_dir)
    seed = run_dir.name[len("seed"):] if run_dir.name.startswith("seed") else run_dir.name
    return shlex.join(["python", "-m", "vagram_bench.run", f"agent={run_dir.parent.name}",
                       f"env={run_dir.parent.parent.name}", f"seed={seed}", f"protocol={protocol_ref}",
                       f"out={run_dir.parents[2]}", "overwrite=true"])


def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds ``<run_dir>/run.lock`` (the runner's ``flock``, released by the OS when its process dies):
    its ``"process N on host H"`` line, or ``None`` when no live process holds it. Only probes: a shared lock
    taken and released at once, never blocking."""
    path = RunPaths(run_dir).lock
    try:
        f = open(path)
    except OSError:  # no lock file: no runner has it (a finished runner removes it)
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "a process that has not written its pid yet"
        fcntl.flock(f, fcntl.LOCK_UN)
        return None
