"""The pilot protocols (protocols/pilots/*.toml) describe exactly the exploratory runs committed under
results/pilots/: the sweep's job commands for a pilot resolve, seed by seed, to the config each of those
runs recorded in its config.json, so ``python -m vagram_bench.sweep protocol=protocols/pilots/<p>.toml``
re-runs them with the same settings (and so the same numbers; only the ``protocol`` field differs, since
those runs were made before the files existed, and ``out``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vagram_bench.protocol import load_protocol, protocol_names
from vagram_bench.records import find_run_dirs
from vagram_bench.runner.config import check_protocol_agent_overrides, parse_args
from vagram_bench.sweep import SweepConfig, plan_cells, plan_jobs

REPO = Path(__file__).resolve().parents[1]
PILOT_PROTOCOLS = REPO / "protocols" / "pilots"
PILOT_RESULTS = REPO / "results" / "pilots"

#: Where each pilot's runs are: ``<root>/<task>/<agent>/seed<k>/``.
RECORDS = {
    "pilot-hopper-sac": PILOT_RESULTS / "learning",
    "pilot-hopper-mbpo": PILOT_RESULTS / "learning",
    "pilot-hopper-svg": PILOT_RESULTS / "learning",
    "pilot-hopper-mbpo-janner": PILOT_RESULTS / "learning" / "janner-setting",
    "pilot-pendulum-fp32": PILOT_RESULTS / "learning",
    "pilot-pendulum-bf16": PILOT_RESULTS / "learning" / "bf16",
    "pilot-idp-separation": PILOT_RESULTS / "idp_separation",
    "pilot-idp-model-2x16": PILOT_RESULTS / "idp_separation" / "model-2x16",
    "pilot-ip-anchor": PILOT_RESULTS / "ip_anchor",
    "pilot-ip-cost": PILOT_RESULTS / "ip_cost",
}

#: Recorded values that a protocol does not fix, with the run they belong to. That run was started in an
#: earlier session with ``checkpoint_every=1000``; checkpoints only save state (a resumed run equals an
#: uninterrupted one, tests/test_runner_records.py), so the value does not change the numbers.
KNOWN_DIFFERENCES = {
    ("pilot-idp-separation", "sac", "InvertedDoublePendulumDistract-20-v0", 0): {"checkpoint_every": (5000, 1000)},
}

#: What a run records besides its config: where it wrote, package versions, the commit and the machine's
#: kernels and bf16 hardware.
NOT_CONFIG = ("out", "versions", "git_revision", "protocol", "kernels", "bf16_hardware")


def _config_diff(resolved: dict, recorded: dict) -> dict:
    """The fields whose resolved value differs from the recorded one. A field the record lacks was added
    to the config after the run was made; its default is, by the rule for new fields (docs/runner.md),
    the behaviour runs had before it existed, so it is not a difference."""
    diff = {}
    for key in resolved.keys() | recorded.keys():
        if key in NOT_CONFIG or key not in recorded:
            continue
        mine, theirs = resolved.get(key), recorded[key]
        if isinstance(mine, dict) and isinstance(theirs, dict):
            inner = _config_diff(mine, theirs)
            if inner:
                diff[key] = inner
        elif mine != theirs:
            diff[key] = (mine, theirs)
    return diff


def _pilots() -> list[Path]:
    return sorted(PILOT_PROTOCOLS.glob("*.toml"))


def test_every_pilot_protocol_has_its_records_and_is_not_a_shipped_protocol():
    assert sorted(p.stem for p in _pilots()) == sorted(RECORDS)
    # Pilots are loaded by path: they are not part of `python -m vagram_bench.run list` and
    # tests/test_results.py does not treat them as published reference results.
    assert not set(RECORDS) & set(protocol_names())


@pytest.mark.parametrize("path", _pilots(), ids=lambda p: p.stem)
def test_the_sweeps_commands_of_a_pilot_resolve_to_the_recorded_configs(path, tmp_path):
    protocol = load_protocol(path)
    assert protocol.name == path.stem
    assert check_protocol_agent_overrides(protocol) == []
    cfg = SweepConfig(protocol=str(path), out=str(tmp_path))
    jobs = plan_jobs(cfg, protocol, plan_cells(cfg, protocol))
    assert sorted((c.agent, c.task, c.seed) for job in jobs for c in job.cells) == sorted(protocol.cells())
    for job in jobs:
        for run in parse_args(list(job.argv)).members():
            assert run.protocol_info == protocol.record()
            recorded = json.loads((RECORDS[protocol.name] / run.env / run.agent / f"seed{run.seed}"
                                   / "config.json").read_text())
            # made before the pilot protocols existed, or (pilot-ip-anchor) by a sweep of this one
            assert recorded["protocol"] in (None, protocol.record())
            diff = _config_diff(run.to_dict(), recorded)
            assert diff == KNOWN_DIFFERENCES.get((protocol.name, run.agent, run.env, run.seed), {}), run.agent


def test_every_pilot_run_belongs_to_exactly_one_pilot_protocol():
    claimed: dict[Path, str] = {}
    for path in _pilots():
        protocol = load_protocol(path, check_ids=False)
        for agent, task, seed in protocol.cells():
            run_dir = RECORDS[protocol.name] / task / agent / f"seed{seed}"
            assert run_dir not in claimed, (run_dir, claimed.get(run_dir), protocol.name)
            claimed[run_dir] = protocol.name
    assert sorted(find_run_dirs(PILOT_RESULTS)) == sorted(claimed)


def test_a_pilot_runs_through_the_sweeps_dry_run(tmp_path, capsys):
    from vagram_bench.sweep import main

    path = PILOT_PROTOCOLS / "pilot-hopper-mbpo-janner.toml"
    assert main([f"protocol={path}", f"out={tmp_path}", "dry_run=true"]) == 0
    commands = [line.strip() for line in capsys.readouterr().err.splitlines() if line.strip().startswith("python -m")]
    assert commands == [f"python -m vagram_bench.run agent=mbpo_mse env=Hopper-v5 seed=0 protocol={path} "
                        f"out={tmp_path} quiet=true"]


def test_seed_0_of_the_cpu_grid_repeats_the_idp_pilots_as_results_pilots_readme_says():
    """results/pilots/README.md: the cpu grid's seed 0 on InvertedDoublePendulum is not an unseen run."""
    from vagram_bench.records import read_evals

    cpu = REPO / "results" / "cpu" / "runs"
    pairs = [(cpu / f"InvertedDoublePendulumDistract-{d}-v0" / a, RECORDS["pilot-idp-separation"]
              / f"InvertedDoublePendulumDistract-{d}-v0" / a) for d in (0, 20)
             for a in ("sac", "mbpo_mse", "mbpo_mle", "mbpo_vagram")]
    pairs += [(cpu / "InvertedDoublePendulumCapacity-2x16-v0" / a,
               RECORDS["pilot-idp-model-2x16"] / "InvertedDoublePendulumDistract-0-v0" / a)
              for a in ("mbpo_mse", "mbpo_mle", "mbpo_vagram")]
    for grid, pilot in pairs:
        grid_evals = [(e.env_step, e.return_mean) for e in read_evals(grid / "seed0" / "eval.csv")]
        pilot_evals = [(e.env_step, e.return_mean) for e in read_evals(pilot / "seed0" / "eval.csv")]
        assert len(grid_evals) == 8 and pilot_evals[:8] == grid_evals, grid
