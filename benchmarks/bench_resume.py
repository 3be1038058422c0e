"""Resuming a population whose members' checkpoints stand at different env steps: exactness and cost.

A population member writes its checkpoint at its first episode end after an evaluation, so after a
kill the members resume from different env steps. The runner lets only the members furthest behind
step until they reach the others (``vagram_bench.runner.loop._stepping``), so that MBPO's later model
trainings are again one call of all members, as in the uninterrupted run. Stepping every running member
each iteration instead (the runner before) keeps them apart to the end, each training its models in a
call of its own. Both must be exact: a member's model training is computed on tensors of its own, so its
numbers do not depend on which members share a call (docs/runner.md, "Determinism contract"; before
that fix of 2026-12-08, the separate calls rounded differently at real model sizes and only the
catch-up was exact). The script exits 1 unless both variants write the uninterrupted run's records.

This script trains a K-seed population with ``--steps`` env steps, kills it at ``--kill`` (its
members' checkpoints then differ), copies the run directory and resumes each copy to the end, once
with the catch-up and once with every member stepping (alternating which goes first over
``--rounds`` rounds), then trains the same population uninterrupted. It reports, per variant, whether
each member's records equal the uninterrupted run's (bitwise: ``eval.csv`` but its wall time, and
``train.csv``), and the resume's CPU seconds (``time.process_time``, one torch thread) side by side.
Usage::

    python benchmarks/bench_resume.py                 # mbpo_mle, InvertedPendulumDistract-0-v0, K=4
    python benchmarks/bench_resume.py --seeds 0,1,2,3,4,5,6,7 --steps 1500 --kill 1300
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


#: the agents with a batched population (the others' members are separate agents: nothing to batch)
BATCHED = ("sac", "mbpo_mse", "mbpo_mle", "mbpo_itervaml", "mbpo_vagram")


def _records(run_dir: Path) -> list:
    from vagram_bench.records import read_csv

    evals = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in read_csv(run_dir / "eval.csv")]
    return [evals, read_csv(run_dir / "train.csv")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", default="mbpo_mle")
    parser.add_argument("--env", default="InvertedPendulumDistract-0-v0")
    parser.add_argument("--seeds", default="0,1,2,3", help="the population's seeds")
    parser.add_argument("--steps", type=int, default=1300, help="env steps of every run")
    parser.add_argument("--kill", type=int, default=1100, help="the env step at which the population is killed")
    parser.add_argument("--rounds", type=int, default=1, help="resumes of each variant, alternating the order")
    args = parser.parse_args(argv)
    if args.agent not in BATCHED:
        parser.error(f"agent {args.agent!r} has no batched population to resume; valid: {', '.join(BATCHED)}")
    if not 0 < args.kill < args.steps:
        parser.error(f"--kill {args.kill} must lie between 0 and --steps {args.steps}")

    from vagram_bench import run
    from vagram_bench.records import load_checkpoint
    from vagram_bench.runner import loop

    torch.set_num_threads(1)
    common = [f"agent={args.agent}", f"env={args.env}", f"seed={args.seeds}", f"steps={args.steps}",
              "eval_every=250", "eval_episodes=1", "quiet=true"]
    root = Path(tempfile.mkdtemp(prefix="bench_resume_"))
    try:
        # ---- a population killed at --kill: its members' checkpoints at their own episode ends
        original_update = None

        def kill_at(self, env_steps, members):
            if env_steps.max() == args.kill:
                raise KeyboardInterrupt
            return original_update(self, env_steps, members)

        killed = root / "killed"
        population = _population_class(args.agent)
        original_update = population.update
        population.update = kill_at
        try:
            assert run.main([*common, f"out={killed}"]) == 130, "the population was not killed"
        finally:
            population.update = original_update
        seeds = [int(s) for s in args.seeds.split(",")]
        steps = [int(load_checkpoint(killed / args.env / args.agent / f"seed{s}" / "checkpoint.pt")["env_step"])
                 for s in seeds]
        print(f"checkpoints at env steps {steps} (kill at {args.kill}, end at {args.steps})")
        if len(set(steps)) == 1:  # both variants would be the same run: nothing to measure
            print("the members' checkpoints stand at one env step: choose other --seeds or --kill", file=sys.stderr)
            return 2

        # ---- resume each copy: the catch-up (the runner's rule) and every running member stepping
        rules = {"catch-up": loop._stepping, "all step": lambda running, env_step: running.copy()}
        cpu = {name: [] for name in rules}
        records = {}
        for r in range(args.rounds):
            for name in (list(rules) if r % 2 == 0 else list(rules)[::-1]):
                out = root / f"{name.replace(' ', '_')}{r}"
                shutil.copytree(killed, out)
                loop._stepping = rules[name]
                try:
                    start = time.process_time()
                    assert run.main([*common, f"out={out}"]) == 0
                    cpu[name].append(time.process_time() - start)
                finally:
                    loop._stepping = rules["catch-up"]
                records[name] = [_records(out / args.env / args.agent / f"seed{s}") for s in seeds]
        # ---- the reference: the same population never killed
        reference = root / "uninterrupted"
        assert run.main([*common, f"out={reference}"]) == 0
        truth = [_records(reference / args.env / args.agent / f"seed{s}") for s in seeds]
        exact = {}
        for name in rules:
            equal = [records[name][i] == truth[i] for i in range(len(seeds))]
            exact[name] = all(equal)
            print(f"{name:>9}: records equal to the uninterrupted run's, per seed {dict(zip(seeds, equal))}")
        for name, times in cpu.items():
            print(f"{name:>9}: resume CPU {np.median(times):8.1f} s (median of {len(times)}: "
                  f"{', '.join(f'{t:.1f}' for t in times)})")
        print(f"resume CPU, catch-up / all step: {np.median(cpu['catch-up']) / np.median(cpu['all step']):.2f}x")
        return 0 if all(exact.values()) else 1  # a resume must be exact, and a member independent of its call
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _population_class(agent: str) -> type:
    """The batched population class whose ``update`` the kill patches."""
    if agent == "sac":
        from vagram_bench.agents.sac.agent import SACPopulation

        return SACPopulation
    from vagram_bench.agents.mbpo.population import MBPOPopulation

    return MBPOPopulation


if __name__ == "__main__":
    sys.exit(main())
