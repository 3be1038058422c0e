"""``track=tensorboard|wandb``: the rows of ``train.csv`` and ``eval.csv`` mirrored, value for value, as
``train/<column>`` and ``eval/<column>`` at step ``env_step``; off by default; the records themselves
unchanged; a missing package is a one-line usage error."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from vagram_bench import run
from vagram_bench.records import read_csv

ENV = "HopperDistract-5-v0"
ARGS = ["agent=sac", f"env={ENV}", "steps=300", "eval_every=100", "eval_episodes=2", "checkpoint_every=50",
        "log_every=50", "agent.hidden_size=32", "agent.batch_size=16", "agent.learning_starts=60", "quiet=true"]


def _dir(out: Path, seed: int = 0) -> Path:
    return out / ENV / "sac" / f"seed{seed}"


def _csv_metrics(d: Path) -> dict[str, dict[int, float]]:
    """``{"<table>/<column>": {env_step: value}}`` of a run's CSV files (empty cells left out)."""
    metrics: dict[str, dict[int, float]] = {}
    for table in ("train", "eval"):
        for row in read_csv(d / f"{table}.csv"):
            for column, value in row.items():
                if column != "env_step" and value != "":
                    metrics.setdefault(f"{table}/{column}", {})[int(row["env_step"])] = float(value)
    return metrics


def _tensorboard_metrics(d: Path) -> dict[str, list[tuple[int, float]]]:
    # the accumulator the TensorBoard server reads runs with (it purges the steps a restart replaces;
    # the legacy event_accumulator.EventAccumulator does not purge tensor summaries)
    from tensorboard.backend.event_processing.plugin_event_accumulator import TENSORS, EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(d / "tensorboard"), size_guidance={TENSORS: 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]}


@pytest.fixture(scope="module")
def untracked(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("untracked")
    assert run.main([*ARGS, "seed=0,1", f"out={out}"]) == 0
    return out


def _same_records(a: Path, b: Path) -> None:
    drop = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert (a / "train.csv").read_bytes() == (b / "train.csv").read_bytes()
    assert drop(read_csv(a / "eval.csv")) == drop(read_csv(b / "eval.csv"))
    config = lambda d: {k: v for k, v in json.loads((d / "config.json").read_text()).items()  # noqa: E731
                        if k not in ("out", "track")}
    assert config(a) == config(b)


def test_tracking_is_off_by_default(untracked):
    d = _dir(untracked)
    assert json.loads((d / "config.json").read_text())["track"] == "none"
    assert not (d / "tensorboard").exists() and not (d / "wandb").exists()


def test_tensorboard_receives_every_csv_value_of_every_member(untracked, tmp_path):
    pytest.importorskip("tensorboard")
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}", "track=tensorboard"]) == 0
    for seed in (0, 1):
        d = _dir(tmp_path, seed)
        _same_records(d, _dir(untracked, seed))
        expected = _csv_metrics(d)
        assert {"eval/return_mean", "eval/wall_seconds", "train/loss_qvalue", "train/episode_return"} <= set(expected)
        logged = _tensorboard_metrics(d)
        assert set(logged) == set(expected)
        for tag, values in expected.items():  # every value exactly, once, at its env step
            assert logged[tag] == sorted(values.items()), tag


def test_a_resumed_run_leaves_each_step_once_in_tensorboard(tmp_path, monkeypatch):
    """Checkpoints only after evaluations: the kill at 290 comes after the train row of step 250, which
    the resumed run writes again at the same step (TensorBoard's own out-of-order purge would not hide
    the first one; the writer's purge_step does)."""
    pytest.importorskip("tensorboard")
    from vagram_bench.agents.sac.agent import SACPopulation

    args = [*ARGS, "seed=0", f"out={tmp_path}", "track=tensorboard", "checkpoint_every=1000"]
    original = SACPopulation.update

    def crash(self, env_steps, members):
        if env_steps.max() == 290:
            raise KeyboardInterrupt  # a kill
        return original(self, env_steps, members)

    monkeypatch.setattr(SACPopulation, "update", crash)
    assert run.main(args) == 130  # interrupted: the resume line, no traceback
    monkeypatch.undo()
    d = _dir(tmp_path)
    from vagram_bench.records import load_checkpoint

    assert 200 < load_checkpoint(d / "checkpoint.pt")["env_step"] < 250
    assert [step for step, _ in _tensorboard_metrics(d)["train/loss_qvalue"]][-1] == 250  # sent before the kill
    assert run.main(args) == 0
    assert [int(r["env_step"]) for r in read_csv(d / "eval.csv")] == [100, 200, 300]
    logged = _tensorboard_metrics(d)
    for tag, values in _csv_metrics(d).items():  # the rows after the checkpoint once, as rewritten
        assert logged[tag] == sorted(values.items()), tag


def test_overwrite_drops_earlier_events(tmp_path):
    pytest.importorskip("tensorboard")
    assert run.main([*ARGS, "steps=100", f"out={tmp_path}", "track=tensorboard"]) == 0
    d = _dir(tmp_path)
    stale = d / "tensorboard" / "events.out.tfevents.0.stale"
    stale.write_bytes(b"")
    assert run.main([*ARGS, "steps=100", f"out={tmp_path}", "overwrite=true"]) == 0
    assert not (d / "tensorboard").exists()


def test_a_missing_tracker_package_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert run.main([*ARGS, f"out={tmp_path}", "track=tensorboard"]) == 2
    err = capsys.readouterr().err
    assert err == "error: track=tensorboard needs the tensorboard package: pip install 'vagram-bench[track]'\n"
    assert run.main([*ARGS, f"out={tmp_path}", "track=wandb"]) == 2
    assert capsys.readouterr().err == "error: track=wandb needs the wandb package: pip install wandb\n"
    assert not any(tmp_path.iterdir())  # refused before anything was written
    assert run.main([*ARGS, f"out={tmp_path}", "track=mlflow"]) == 2


class _FakeWandb(types.ModuleType):
    """Records what the runner asks of wandb (the real package is not a test dependency)."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.runs: list[types.SimpleNamespace] = []

    def init(self, **kwargs):
        import os

        run = types.SimpleNamespace(kwargs=kwargs, mode=os.environ.get("WANDB_MODE"), logged=[], finished=False)
        run.log = lambda values, step: run.logged.append((step, dict(values)))
        run.finish = lambda: setattr(run, "finished", True)
        self.runs.append(run)
        return run


def test_wandb_gets_one_offline_run_per_member_with_the_csv_values(untracked, tmp_path, monkeypatch):
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "placeholder")
    monkeypatch.delenv("WANDB_MODE")  # unset, and restored after the test
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}", "track=wandb"]) == 0
    assert [r.kwargs["name"] for r in fake.runs] == [f"{ENV}/sac/seed0", f"{ENV}/sac/seed1"]
    for seed, wb in zip((0, 1), fake.runs):
        d = _dir(tmp_path, seed)
        _same_records(d, _dir(untracked, seed))
        assert wb.mode == "offline" and wb.finished and wb.kwargs["dir"] == str(d)
        assert wb.kwargs["config"]["seed"] == seed and wb.kwargs["config"]["track"] == "wandb"
        logged: dict[str, dict[int, float]] = {}
        steps = [step for step, _ in wb.logged]
        assert steps == sorted(steps)  # wandb drops a step below the last one
        for step, values in wb.logged:
            for tag, value in values.items():
                logged.setdefault(tag, {})[step] = value
        assert logged == _csv_metrics(d)
    assert all(np.isfinite(v) for wb in fake.runs for _, values in wb.logged for v in values.values())
