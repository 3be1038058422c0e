"""Protocol files: schema, error messages, registered ids, content hash."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from vagram_bench import protocol as P
from vagram_bench.protocol import ProtocolError, list_protocols, load_protocol

SHIPPED = ["ablation-idp", "capacity", "cpu", "cpu2", "cpu2-svg", "distraction", "mbpo-suite", "smoke"]

VALID = '''name = "mine"
version = 2
description = "a test protocol"
tasks = ["Hopper-v5", "Walker2d-v5"]
seeds = [0, 1, 2]
steps = 1000
eval_every = 250
eval_episodes = 3
eval_seed = 100
metric = "mean"
agents = ["sac"]
reference_source = "made up"

[task_steps]
"Walker2d-v5" = 2000

[reference_scores]
"Hopper-v5" = { random = 1.0, reference = 11.0 }
'''


def write(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_protocols_are_listed_and_valid():
    # check_ids=True (the default): every task is a registered env, every agent a registered agent
    protocols = list_protocols()
    assert [p.name for p in protocols] == SHIPPED == P.protocol_names()
    envs, agents = P.registered_env_ids(), P.registered_agent_names()
    for p in protocols:
        assert set(p.tasks) <= envs and set(p.agents or ()) <= agents
        assert len(p.content_hash) == 64 and p.version >= 1 and p.description
        for t in p.tasks:
            assert p.steps_for(t) % p.eval_every == 0
            assert p.eval_steps_for(t)[-1] == p.steps_for(t)
        assert not set(range(p.eval_seed, p.eval_seed + p.eval_episodes)) & set(p.seeds)
        assert set(p.reference_scores) == set(p.tasks)  # every shipped task can be normalised


@pytest.mark.parametrize("name,tasks,n_seeds,steps", [
    ("distraction", [f"HopperDistract-{d}-v0" for d in (0, 5, 10, 15)], 10, 500_000),
    ("capacity", ["Hopper-v5"] + [f"HopperCapacity-{l}x64-v0" for l in (2, 3, 4)], 10, 250_000),
])
def test_paper_grids(name, tasks, n_seeds, steps):
    p = load_protocol(name)
    assert list(p.tasks) == tasks and len(p.seeds) == n_seeds
    assert all(p.steps_for(t) == steps for t in tasks)


def test_mbpo_suite_uses_svg_budgets():
    p = load_protocol("mbpo-suite")
    budgets = {"Hopper-v5": 1_000_000, "Walker2d-v5": 2_000_000, "HalfCheetah-v5": 2_000_000,
               "AntTruncatedObs-v0": 2_000_000, "HumanoidTruncatedObs-v0": 5_000_000}
    assert {t: p.steps_for(t) for t in p.tasks} == budgets
    assert p.eval_every == 25_000 and p.eval_episodes == 10 and len(p.seeds) == 10


def test_load_by_path_and_fields(tmp_path):
    p = load_protocol(write(tmp_path, VALID))
    assert (p.name, p.version, p.metric, p.seeds, p.agents) == ("mine", 2, "mean", (0, 1, 2), ("sac",))
    assert p.steps_for("Hopper-v5") == 1000 and p.steps_for("Walker2d-v5") == 2000
    assert p.eval_steps_for("Hopper-v5") == (250, 500, 750, 1000)
    assert p.reference_scores["Hopper-v5"].normalise(6.0) == pytest.approx(0.5)
    assert p.record() == {"name": "mine", "version": 2, "hash": p.content_hash}
    assert p.matches_record(p.record()) and not p.matches_record(dict(p.record(), version=1))
    assert len(p.cells()) == 1 * 2 * 3 and p.cells(["a", "b"])[0] == ("a", "Hopper-v5", 0)
    with pytest.raises(KeyError, match="not in protocol"):
        p.steps_for("Ant-v5")


def test_hash_is_over_canonical_content(tmp_path):
    base = load_protocol(write(tmp_path, VALID)).content_hash
    # comments, key order, whitespace and the description do not change what a run depends on
    lines = VALID.splitlines()
    reordered = "\n".join(["# a comment"] + lines[1:12][::-1] + [lines[0]] + lines[12:]) + "\n"
    reordered = reordered.replace('"a test protocol"', '"reworded"').replace("seeds = [0, 1, 2]", "seeds = [ 0,1,  2 ]")
    assert tomllib.loads(reordered)["seeds"] == [0, 1, 2]
    assert load_protocol(write(tmp_path, reordered, "b.toml")).content_hash == base
    # any change to the grid does
    for old, new in [("steps = 1000", "steps = 2000"), ("seeds = [0, 1, 2]", "seeds = [0, 1, 3]"),
                     ("eval_seed = 100", "eval_seed = 101"), ('"Walker2d-v5" = 2000', '"Walker2d-v5" = 3000'),
                     ("version = 2", "version = 3")]:
        assert load_protocol(write(tmp_path, VALID.replace(old, new), "c.toml")).content_hash != base


@pytest.mark.parametrize("old,new,key,problem", [
    ('metric = "mean"', 'metric = "median"', "metric", "'median' is not one of ['iqm', 'mean']"),
    ("seeds = [0, 1, 2]", "seeds = [0, 1, 1]", "seeds", "duplicate seeds"),
    ("seeds = [0, 1, 2]", 'seeds = ["0"]', "seeds", "expected a non-empty list of integers >= 0"),
    ("steps = 1000", "steps = 1100", "steps", "not a multiple of eval_every (250)"),
    ("steps = 1000", "steps = -5", "steps", "expected an integer >= 1, got -5"),
    ("eval_episodes = 3", "eval_episodes = 0", "eval_episodes", "expected an integer >= 1"),
    ("eval_seed = 100", "eval_seed = 1", "eval_seed", "overlap the training seeds [1, 2]"),
    ("version = 2", 'version = "2"', "version", "expected an integer >= 1, got '2'"),
    ('tasks = ["Hopper-v5", "Walker2d-v5"]', 'tasks = ["Hopper-v5", "Hopper-v5"]', "tasks", "duplicate entries"),
    ('tasks = ["Hopper-v5", "Walker2d-v5"]', 'tasks = ["Hopper-v5", "Hoper-v5"]', "tasks",
     "'Hoper-v5' is not a registered env id"),
    ('agents = ["sac"]', 'agents = ["sacc"]', "agents", "'sacc' is not a registered agent; registered: ["),
    ('"Walker2d-v5" = 2000', '"Ant-v5" = 2000', "task_steps.Ant-v5", "is not in tasks"),
    ('"Walker2d-v5" = 2000', '"Walker2d-v5" = 2100', "task_steps.Walker2d-v5", "not a multiple of eval_every"),
    ("random = 1.0, reference = 11.0", "random = 1.0, reference = 0.5", "reference_scores.Hopper-v5",
     "must exceed 'random'"),
    ("random = 1.0, reference = 11.0", "random = 1.0", "reference_scores.Hopper-v5",
     "expected exactly the keys 'random' and 'reference'"),
    ('reference_source = "made up"', 'reference_source = ""', "reference_source", "say where they come from"),
    ('description = "a test protocol"', 'description = "a test protocol"\nmetrics = "iqm"', "metrics",
     "unknown key; valid keys are ["),
    ("eval_every = 250\n", "", "eval_every", "missing required key"),
    ('name = "mine"', 'name = "my protocol!"', "name", "expected a non-empty string of letters"),
])
def test_malformed_file_names_file_key_and_problem(tmp_path, old, new, key, problem):
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and msg.count(str(path)) == 1, msg
    assert any(p.startswith(f"key {key!r}: ") and problem in p for p in info.value.problems), msg
    if len(info.value.problems) == 1:
        assert msg == f"{path}: {info.value.problems[0]}"


def test_every_problem_is_reported_at_once_naming_the_file_once(tmp_path, capsys):
    # five independent mistakes: all five are named, each under its key, the path once
    text = (VALID.replace('metric = "mean"', 'metric = "median"').replace("seeds = [0, 1, 2]", "seeds = [0, 1, 1]")
            .replace("eval_episodes = 3", "eval_episodes = 0").replace('"Walker2d-v5" = 2000', '"Ant-v5" = 2000')
            .replace('description = "a test protocol"', 'description = "a test protocol"\nmetrics = "iqm"'))
    path = write(tmp_path, text)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 5 problems:\n"), msg
    assert msg.count(str(path)) == 1, msg
    keys = [re.match(r"key '([^']+)': ", p).group(1) for p in info.value.problems]
    assert sorted(keys) == sorted(["metrics", "seeds", "eval_episodes", "task_steps.Ant-v5", "metric"])
    assert msg.splitlines()[1:] == [f"  {p}" for p in info.value.problems]
    # the runner prints it as it is: one error, the path once
    from vagram_bench import run

    assert run.main(["agent=sac", "env=Hopper-v5", f"protocol={path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: 5 problems:") and err.count(str(path)) == 1, err


def test_invalid_toml_and_unknown_names(tmp_path):
    path = write(tmp_path, VALID.replace('metric = "mean"', "metric = mean"))
    with pytest.raises(ProtocolError, match=re.escape(f"{path}: invalid TOML")):
        load_protocol(path)
    with pytest.raises(ProtocolError, match=r"unknown protocol 'cpux'.*\['ablation-idp', 'capacity', 'cpu', 'cpu2', 'cpu2-svg', 'distraction', 'mbpo-suite', 'smoke'\]"):
        load_protocol("cpux")


def test_protocol_is_frozen():
    p = load_protocol("smoke")
    with pytest.raises(Exception):
        p.steps = 5  # type: ignore[misc]
    assert load_protocol(p) is p


def _reference_cases():
    cases = {}
    for p in list_protocols():
        for task, ref in p.reference_scores.items():
            cases.setdefault(task, ref.random)
    return sorted(cases.items())


@pytest.mark.parametrize("task,random_return", [
    pytest.param(t, r, marks=() if t.startswith("Hopper") else pytest.mark.slow)
    for t, r in _reference_cases()
])
def test_random_reference_points_are_reproducible(task, random_return):
    """The documented `random` reference of every shipped task, re-measured the documented way."""
    from vagram_bench.leaderboard import random_policy_return

    assert random_policy_return(task) == pytest.approx(random_return, abs=0.05)


def test_the_cpu2_halves_share_one_design_and_fresh_seeds():
    """docs/cpu2.md: the MBPO and SVG halves are one preregistered design (anchor, seeds, budget,
    evaluation, threshold); their seeds are used by no other shipped protocol, and not by the seeds that
    chose the design (pilots 100-101, cost measurement 102-109)."""
    mbpo, svg = load_protocol("cpu2"), load_protocol("cpu2-svg")
    for field in ("seeds", "steps", "eval_every", "eval_episodes", "eval_seed", "metric", "final_evals"):
        assert getattr(mbpo, field) == getattr(svg, field), field
    assert len(mbpo.seeds) >= 8 and set(svg.tasks) < set(mbpo.tasks)
    assert mbpo.interaction[0].anchor == svg.interaction[0].anchor == "InvertedPendulumDistract-0-v0"
    assert mbpo.interaction[0].solved_threshold == svg.interaction[0].solved_threshold == 950.0
    assert ("mbpo_vagram", "mbpo_mle") in mbpo.interaction[0].pairs and svg.interaction[0].pairs == (("svg_vagram", "svg_mle"),)
    distractors = [t for t in mbpo.interaction[0].settings if "Distract" in t]
    capacities = [t for t in mbpo.interaction[0].settings if "Capacity" in t]
    assert len(distractors) >= 3 and len(capacities) >= 2  # issue 24's dose-response
    from pathlib import Path

    pilots = sorted((Path(__file__).parents[1] / "protocols" / "pilots").glob("*.toml"))
    assert pilots  # the pilots' seeds count too: they chose designs
    others = set().union(*(load_protocol(n).seeds for n in SHIPPED if not n.startswith("cpu2")),
                         *(load_protocol(p, check_ids=False).seeds for p in pilots))
    assert set(range(100, 110)) <= others  # the design seeds docs/cpu2.md names are the pilots'
    assert not set(mbpo.seeds) & others


def test_the_claims_tool_reads_the_preregistered_claims_of_cpu2():
    """tools/claims.py's PRIMARY_CLAIMS are docs/cpu2.md's: per family the (VaGraM, MLE) pair of the
    protocol's interaction, from its anchor to d=20 and to 2x8."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("claims", Path(__file__).parents[1] / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    for name, family in (("cpu2", "MBPO"), ("cpu2-svg", "SVG")):
        (entry,) = load_protocol(name).interaction
        mine = [(c, v, x, s) for c, f, v, x, s in claims.PRIMARY_CLAIMS if f == family]
        assert entry.anchor == claims.ANCHOR
        assert [(c, s) for c, _, _, s in mine] == [("C1 distraction", "InvertedPendulumDistract-20-v0"),
                                                    ("C2 capacity", "InvertedPendulumCapacity-2x8-v0")]
        assert all((v, x) in entry.pairs and x.endswith("_mle") and s in entry.settings for _, v, x, s in mine)
    assert "drop(MLE) − drop(VaGraM)" in (Path(__file__).parents[1] / "docs" / "cpu2.md").read_text()
