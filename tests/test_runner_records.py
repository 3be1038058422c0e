"""Run-record primitives: atomic writes, row-by-row CSVs, truncation after a kill, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from vagram_bench import records
from vagram_bench.records import CheckpointError, CSVLog, read_csv, truncate_csv


def test_atomic_json_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.json"
    records.atomic_write_json(path, {"x": 1, "nan": float("nan"), "t": (1, 2)})
    assert records.read_json(path) == {"x": 1, "nan": None, "t": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    records.atomic_write_json(path, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(records.os, "replace", broken_replace)
    with pytest.raises(OSError):
        records.atomic_write_json(path, {"v": 2})
    assert records.read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_csv_log_appends_rows_and_extends_the_header(tmp_path):
    path = tmp_path / "train.csv"
    log = CSVLog(path)
    log.append({"env_step": 1, "loss": 0.1})
    log.append({"env_step": 2, "loss": 0.2, "model_loss": 3.0})
    log = CSVLog(path)  # a resumed process continues the same file
    log.append({"env_step": 3, "model_loss": 4.0})
    assert path.read_text().splitlines() == [
        "env_step,loss,model_loss", "1,0.1,", "2,0.2,3.0", "3,,4.0",
    ]


def test_fixed_header_csv_rejects_unknown_columns(tmp_path):
    log = CSVLog(tmp_path / "eval.csv", columns=records.EVAL_COLUMNS)
    with pytest.raises(KeyError, match="bogus"):
        log.append({"env_step": 1, "bogus": 2})


def test_floats_round_trip_exactly(tmp_path):
    import numpy as np

    value = 0.1 + 0.2
    log = CSVLog(tmp_path / "t.csv")
    log.append({"env_step": 1, "a": value, "b": np.float32(0.1), "c": np.float64(value)})
    row = read_csv(tmp_path / "t.csv")[0]
    assert float(row["a"]) == value and float(row["c"]) == value
    assert np.float32(row["b"]) == np.float32(0.1)


def test_truncate_drops_later_rows_and_a_cut_last_line(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("env_step,v\n100,1\n200,2\n300,3\n40")  # killed while writing the 4th row
    assert len(read_csv(path)) == 3
    assert truncate_csv(path, 200) == 2
    assert path.read_text() == "env_step,v\n100,1\n200,2\n"
    assert truncate_csv(path, 0) == 0
    assert path.read_text() == "env_step,v\n"
    assert truncate_csv(tmp_path / "missing.csv", 5) == 0


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = {"format": 1, "w": torch.arange(3.0), "rng": torch.Generator().manual_seed(3).get_state()}
    records.save_checkpoint(path, state)
    loaded = records.load_checkpoint(path)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["rng"], state["rng"])

    data = path.read_bytes()
    path.write_bytes(data[:20])
    with pytest.raises(CheckpointError, match="cannot be read"):
        records.load_checkpoint(path)
    assert path.read_bytes() == data[:20]  # never deleted

    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="not a vagram-bench checkpoint"):
        records.load_checkpoint(path)
    assert os.path.exists(path)


def test_final_partial_log_window_reaches_train_csv(tmp_path):
    """A run whose length is not a multiple of ``log_every`` still writes its last window's metrics."""
    import csv

    from vagram_bench.run import main

    rc = main([
        "agent=sac", "env=HopperDistract-0-v0", "steps=350", "log_every=200", "eval_every=350",
        "eval_episodes=1", "agent.learning_starts=100", "agent.batch_size=32",
        f"out={tmp_path}", "quiet=true",
    ])
    assert rc == 0
    with open(tmp_path / "HopperDistract-0-v0" / "sac" / "seed0" / "train.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_step"]) for r in rows] == [200, 350]
    # the SAC losses of steps 201..350 are in the last row
    loss_columns = [c for c in rows[-1] if "loss" in c]
    assert loss_columns and all(rows[-1][c] not in ("", None) for c in loss_columns)


def test_read_evals_is_the_one_eval_csv_reader(tmp_path):
    """Rows written by the runner's CSVLog come back typed and exact; a cut last line is left out;
    a foreign header or a broken complete row is an error naming the file; the sweep's progress
    and the leaderboard's run scan read through it."""
    from vagram_bench.leaderboard import load_run
    from vagram_bench.sweep import Cell

    d = tmp_path / "run"
    d.mkdir()
    log = CSVLog(d / "eval.csv", columns=records.EVAL_COLUMNS)
    rows = [(100, 0.1 + 0.2, 1 / 3, -1.5, 2.0, 17.0, 0.25), (200, 1e-300, 0.0, 0.0, 0.0, 1000.0, 1.5)]
    for r in rows:
        log.append(dict(zip(records.EVAL_COLUMNS, r)))
    assert [tuple(dataclasses.astuple(e)) for e in records.read_evals(d / "eval.csv")] == rows
    with open(d / "eval.csv", "a") as f:
        f.write("300,5.0,0.1")  # a row being appended (or cut by a kill)
    assert [e.env_step for e in records.read_evals(d / "eval.csv")] == [100, 200]
    assert records.read_evals(d / "missing.csv") == []

    (d / "config.json").write_text(json.dumps({"agent": "sac", "env": "E", "seed": 0, "protocol": None}))
    run = load_run(d)
    assert run.eval_steps.tolist() == [100, 200] and run.eval_returns.tolist() == [0.1 + 0.2, 1e-300]
    assert Cell("sac", "E", 0, d, (), 300).env_steps_done() == 200

    (d / "eval.csv").write_text("step,return\n1,2\n")
    with pytest.raises(ValueError, match="eval.csv: header"):
        records.read_evals(d / "eval.csv")
    (d / "eval.csv").write_text(",".join(records.EVAL_COLUMNS) + "\n100,abc,0,0,0,1,0\n")
    with pytest.raises(ValueError, match=r"eval.csv: row 2"):
        records.read_evals(d / "eval.csv")
    assert Cell("sac", "E", 0, d, (), 300).env_steps_done() == 0
