"""Fingerprints of every agent's records, to check that a refactor changed no number.

Runs each of the nine agents as a short seed=0,1 population on ``HopperDistract-5-v0`` through the public
runner (a few minutes in all on one thread) and writes, per agent and seed, the sha256 of its eval rows
(without the ``wall_seconds`` column, the only one that is not a function of the seed) and of its
``train.csv``, and the number of train rows, as JSON.

The hashes depend on the CPU's kernels (and on the torch build), so they are not a test: compare two
runs on the same machine, one before and one after the change::

    git stash   # or check out the base commit
    OMP_NUM_THREADS=1 python tools/record_hashes.py /tmp/before.json
    git stash pop
    OMP_NUM_THREADS=1 python tools/record_hashes.py /tmp/after.json
    diff /tmp/before.json /tmp/after.json && echo identical

``python tools/record_hashes.py OUT.json sac mbpo_mse`` runs only the agents named.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

from vagram_bench import run

ENV = "HopperDistract-5-v0"
COMMON = ["seed=0,1", f"env={ENV}", "eval_every=100", "eval_episodes=1", "log_every=50",
          "checkpoint_every=50", "quiet=true"]
MBPO = ["steps=200", "agent.initial_exploration_steps=100", "agent.freq_train_model=50", "agent.epoch_length=100",
        "agent.effective_model_rollouts_per_step=4", "agent.num_sac_updates_per_step=2",
        "agent.sac_hidden_size=32", "agent.hid_size=32", "agent.num_layers=2", "agent.ensemble_size=3",
        "agent.num_elites=2", "agent.num_epochs_train_model=2", "agent.dataset_size=1000",
        "agent.model_batch_size=32", "agent.sac_batch_size=16"]
SVG = ["steps=150", *[f"agent.{k}={v}" for k, v in dict(
    num_seed_steps=60, warmup_steps=85, seq_batch_size=16, step_batch_size=32, model_free_hidden_dim=32,
    model_free_hidden_depth=2, xu_enc_hidden_dim=32, rec_latent_dim=32, rew_hidden_dim=32,
    done_hidden_dim=32).items()]]
SAC = ["steps=300", "agent.hidden_size=32", "agent.batch_size=16", "agent.learning_starts=60"]
#: agent -> its short-run overrides (every agent of the package: sac, and MBPO and SVG with each model loss)
AGENTS = {"sac": SAC, **{f"mbpo_{loss}": MBPO for loss in ("mse", "mle", "itervaml", "vagram")},
          **{f"svg_{loss}": SVG for loss in ("mse", "mle", "itervaml", "vagram")}}


def record_hashes(agent: str, out: Path) -> dict[str, str | int]:
    """Run ``agent``'s short population under ``out`` and fingerprint each seed's records."""
    if run.main([f"agent={agent}", *COMMON, *AGENTS[agent], f"out={out}"]) != 0:
        raise SystemExit(f"error: the {agent} run failed (its message is above)")
    hashes: dict[str, str | int] = {}
    for seed in (0, 1):
        rundir = out / ENV / agent / f"seed{seed}"
        rows = list(csv.DictReader(io.StringIO((rundir / "eval.csv").read_text())))
        evals = json.dumps([{k: v for k, v in row.items() if k != "wall_seconds"} for row in rows])
        train = (rundir / "train.csv").read_bytes()
        hashes[f"{agent}/seed{seed}/eval"] = hashlib.sha256(evals.encode()).hexdigest()
        hashes[f"{agent}/seed{seed}/train"] = hashlib.sha256(train).hexdigest()
        hashes[f"{agent}/seed{seed}/train_rows"] = len(train.decode().splitlines())
    return hashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the JSON file to write")
    parser.add_argument("agents", nargs="*", help=f"agents to run (default: all: {', '.join(AGENTS)})")
    args = parser.parse_args(argv)
    unknown = [a for a in args.agents if a not in AGENTS]
    if unknown:
        print(f"error: unknown agent {unknown[0]!r}; valid choices: {', '.join(AGENTS)}", file=sys.stderr)
        return 2
    hashes: dict[str, str | int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for agent in args.agents or list(AGENTS):
            hashes.update(record_hashes(agent, Path(tmp)))
            print(agent, "done", flush=True)
    args.out.write_text(json.dumps(hashes, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
