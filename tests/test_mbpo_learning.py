"""MBPO learning checks (``pytest -m slow``): InvertedPendulum-v5 is solved (eval return >= 900 of
1000) within 5k env steps, with the family's default hyperparameters, through the common runner."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["mbpo_mse", "mbpo_vagram"])
def test_mbpo_solves_inverted_pendulum_within_5k_steps(agent, tmp_path):
    cmd = [
        sys.executable, "-m", "vagram_bench.run", f"agent={agent}", "env=InvertedPendulum-v5", "seed=0",
        "steps=5000", "eval_every=500", "eval_episodes=5", f"out={tmp_path}", "quiet=true",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "InvertedPendulum-v5" / agent / "seed0" / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    returns = [(int(r["env_step"]), float(r["return_mean"])) for r in rows]
    print(agent, returns)
    assert max(ret for step, ret in returns if step <= 5000) >= 900, returns
