"""Learning check (slow): ``sac`` solves InvertedPendulum-v5 within 15k env steps for 2 of 2 seeds.

Run with ``pytest -m slow tests/test_sac_learning.py``. Uses the runner end to end (in-process), with
the agent's default config for the family (``learning_starts=1000``), 5 evaluation episodes every 1k
steps; passes when some evaluation within the budget reaches a mean return >= 900 (max 1000).
"""

from __future__ import annotations

import pytest

from vagram_bench import run
from vagram_bench.records import read_csv


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sac_solves_inverted_pendulum(tmp_path, seed):
    code = run.main(
        [
            "agent=sac", "env=InvertedPendulum-v5", f"seed={seed}", "steps=15000",
            "eval_every=1000", "eval_episodes=5", f"out={tmp_path}", "quiet=true",
        ]
    )
    assert code == 0
    rows = read_csv(tmp_path / "InvertedPendulum-v5" / "sac" / f"seed{seed}" / "eval.csv")
    returns = [float(r["return_mean"]) for r in rows]
    print(f"seed {seed}: eval returns {returns}")
    assert len(rows) == 15
    assert max(returns) >= 900, returns
