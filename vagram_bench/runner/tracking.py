"""Experiment tracking (``track=tensorboard|wandb``, off by default): the rows of ``train.csv`` and
``eval.csv`` sent to TensorBoard or Weights & Biases as they are written.

Each run directory gets its own tracker (a population's members are separate runs there too). A
metric keeps its CSV column's name under the file's name, ``train/<column>`` and ``eval/<column>``
(``eval/return_mean``, ``train/loss_qvalue``), with the row's ``env_step`` as the step; empty cells
are left out. The CSV files stay the records: tracking only mirrors them, and writes nothing into
them.

* TensorBoard (``pip install 'vagram-bench[track]'``): event files in ``<run dir>/tensorboard/``
  (``tensorboard --logdir <out>`` shows every run), the values as float64 tensors (the CSV's values
  exactly). A resumed run purges the steps after its checkpoint (``SummaryWriter(purge_step=...)``),
  which it writes again, as it does in the CSV files; a run started afresh removes the directory.
* wandb (where installed): one wandb run per run directory, files under ``<run dir>/wandb/``, offline
  unless ``WANDB_MODE`` says otherwise (``wandb sync`` uploads later); the config record as the run's
  config. A resumed run starts a new wandb run (named ``... from env step N``).
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

from vagram_bench.records import RunPaths

__all__ = ["TRACKERS", "check_tracking", "open_tracker", "Tracker"]

#: The values of ``track=``.
TRACKERS = ("none", "tensorboard", "wandb")


class TrackingUnavailable(RuntimeError):
    """The tracker's package is not installed (a usage error: exit code 2)."""


def check_tracking(kind: str) -> None:
    """Refuse a tracker whose package is missing, before anything is written.

    Raises:
        TrackingUnavailable: ``kind`` needs a package that cannot be imported (the message says how
            to install it); ValueError: ``kind`` is not one of :data:`TRACKERS`.
    """
    if kind not in TRACKERS:
        raise ValueError(f"track must be one of {', '.join(TRACKERS)}, got {kind!r}")
    if kind == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise TrackingUnavailable(
                "track=tensorboard needs the tensorboard package: pip install 'vagram-bench[track]'"
            ) from None
    elif kind == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise TrackingUnavailable("track=wandb needs the wandb package: pip install wandb") from None


class Tracker:
    """One run directory's tracker; this base class tracks nothing (``track=none``)."""

    def log(self, table: str, row: Mapping[str, Any]) -> None:
        """Send one row of ``table`` (``"train"`` or ``"eval"``), a dict with ``env_step``."""

    def close(self) -> None:
        """Flush and close (the runner calls it however the run ends)."""


def _scalars(table: str, row: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    values = {}
    for name, value in row.items():
        if name == "env_step" or value is None or isinstance(value, (str, bool)):
            continue
        value = float(value)
        if math.isfinite(value):
            values[f"{table}/{name}"] = value
    return int(row["env_step"]), values


class _TensorBoard(Tracker):
    def __init__(self, paths: RunPaths, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # steps after the checkpoint are written again: TensorBoard hides the earlier ones
        self.writer = SummaryWriter(log_dir=str(paths.tensorboard), purge_step=start_step + 1)

    def log(self, table: str, row: Mapping[str, Any]) -> None:
        step, values = _scalars(table, row)
        for tag, value in values.items():
            # a float64 tensor: the CSV's value exactly (the classic scalar field is float32)
            self.writer.add_scalar(tag, value, step, new_style=True, double_precision=True)

    def close(self) -> None:
        self.writer.close()


class _WandB(Tracker):
    def __init__(self, paths: RunPaths, config_record: Mapping[str, Any], start_step: int) -> None:
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")
        name = f"{config_record['env']}/{config_record['agent']}/seed{config_record['seed']}"
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "vagram-bench"),
            dir=str(paths.root),
            name=name + (f" from env step {start_step}" if start_step else ""),
            group=f"{config_record['env']}/{config_record['agent']}",
            config=dict(config_record),
            reinit="create_new",  # a population holds one wandb run per member at once
        )

    def log(self, table: str, row: Mapping[str, Any]) -> None:
        step, values = _scalars(table, row)
        if values:
            self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def open_tracker(kind: str, paths: RunPaths, config_record: Mapping[str, Any], start_step: int) -> Tracker:
    """The tracker of one run directory, for a run that (re)starts at env step ``start_step``."""
    if kind == "tensorboard":
        return _TensorBoard(paths, start_step)
    if kind == "wandb":
        return _WandB(paths, config_record, start_step)
    return Tracker()
