"""``[[variants]]``: a registered agent under another agent name with its own settings, so that one grid holds
the same agent twice (loader, runner, sweep, leaderboard; record equality with the registered agent)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest

from vagram_bench import leaderboard as lb
from vagram_bench import run
from vagram_bench import sweep as sw
from vagram_bench.protocol import AgentVariant, ProtocolError, load_protocol, parse_protocol
from vagram_bench.runner.config import check_protocol_agent_overrides, parse_args

TASKS = ["HopperDistract-0-v0", "HopperDistract-5-v0"]
HEAD = f'''name = "vt"
version = 1
description = "a test protocol with variants"
tasks = {json.dumps(TASKS)}
seeds = [0, 1]
steps = 200
eval_every = 100
eval_episodes = 2
eval_seed = 1000
metric = "iqm"
'''
MEAN = '''
[[variants]]
name = "mbpo_mle_mean"
agent = "mbpo_mle"
values = { rollout_sampling = "mean", model_snapshot = "per_member" }
reason = """  the MLE variant without its non-loss mechanics  """
'''


def write(tmp_path: Path, text: str, name: str = "vt.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def mean(tmp_path) -> Path:
    return write(tmp_path, HEAD + 'agents = ["mbpo_mle", "mbpo_mle_mean"]\n' + MEAN)


# ---------------------------------------------------------------------------------------------- loader


def test_a_variant_is_loaded_and_names_an_agent_of_the_protocol(mean):
    p = load_protocol(mean)
    assert p.variants == (AgentVariant("mbpo_mle_mean", "mbpo_mle",
                                       {"rollout_sampling": "mean", "model_snapshot": "per_member"},
                                       "the MLE variant without its non-loss mechanics"),)
    assert p.agents == ("mbpo_mle", "mbpo_mle_mean")
    assert p.variant("mbpo_mle_mean") is p.variants[0] and p.variant("mbpo_mle") is None
    assert p.base_agent("mbpo_mle_mean") == "mbpo_mle" and p.base_agent("sac") == "sac"
    # the variant's values are settings the protocol fixes for that name on every task, and only for it
    for task in TASKS:
        assert p.agent_overrides_for("mbpo_mle_mean", task) == {"rollout_sampling": "mean",
                                                                "model_snapshot": "per_member"}
        assert p.agent_overrides_for("mbpo_mle", task) == {}
    assert [c[0] for c in p.cells()] == ["mbpo_mle"] * 4 + ["mbpo_mle_mean"] * 4
    assert p.variants[0].record() == {"agent": "mbpo_mle", "values": {"rollout_sampling": "mean",
                                                                       "model_snapshot": "per_member"},
                                      "reason": "the MLE variant without its non-loss mechanics"}


def test_agent_overrides_name_a_variant_and_win_over_its_values(tmp_path):
    text = HEAD + MEAN + '''
[[agent_overrides]]
agents = ["mbpo_mle", "mbpo_mle_mean"]
values = { model_wd = 5e-5 }
reason = "both rows"

[[agent_overrides]]
agents = ["mbpo_mle_mean"]
tasks = ["HopperDistract-5-v0"]
values = { rollout_sampling = "sample", model_epochs = 7 }
reason = "one task"
'''
    p = load_protocol(write(tmp_path, text))
    assert p.agent_overrides_for("mbpo_mle_mean", "HopperDistract-0-v0") == {
        "rollout_sampling": "mean", "model_snapshot": "per_member", "model_wd": 5e-5}
    assert p.agent_overrides_for("mbpo_mle_mean", "HopperDistract-5-v0") == {
        "rollout_sampling": "sample", "model_snapshot": "per_member", "model_wd": 5e-5, "model_epochs": 7}
    # an override naming the registered agent does not reach its variant, nor the variant's the agent
    assert p.agent_overrides_for("mbpo_mle", "HopperDistract-5-v0") == {"model_wd": 5e-5}
    reasons = [e.reason for e in p.agent_override_entries("mbpo_mle_mean", "HopperDistract-5-v0")]
    assert reasons[0].startswith("variant 'mbpo_mle_mean' of agent 'mbpo_mle': the MLE variant")
    assert reasons[1:] == ["both rows", "one task"]


def _variant(**keys: str | None) -> str:
    base = {"name": '"mine"', "agent": '"mbpo_mle"', "values": '{ rollout_sampling = "mean" }', "reason": '"why"'}
    base.update(keys)
    return "\n[[variants]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v is not None)


REGISTERED = "registered agents: ['mbpo_itervaml', 'mbpo_mle'"


@pytest.mark.parametrize("entries,key,problem", [
    (_variant(agents='["x"]'), "variants[0].agents", "unknown key; valid keys are ['name', 'agent', 'values', 'reason']"),
    (_variant(name=None), "variants[0].name", "missing required key"),
    (_variant(agent=None), "variants[0].agent", "missing required key"),
    (_variant(values=None), "variants[0].values", "missing required key"),
    (_variant(reason=None), "variants[0].reason", "missing required key"),
    (_variant(name='"9lives"'), "variants[0].name", "expected a name of ASCII letters, digits and '_' that starts "
                                                    "with a letter (it names run directories and leaderboard rows), got '9lives'"),
    (_variant(name='"a/b"'), "variants[0].name", "got 'a/b'"),
    (_variant(name='"a:b"'), "variants[0].name", "got 'a:b'"),
    (_variant(name='"mbpo-mle"'), "variants[0].name", "got 'mbpo-mle'"),
    (_variant(name="3"), "variants[0].name", "got 3"),
    (_variant(name='"mbpo_mle"'), "variants[0].name",
     f"'mbpo_mle' is a registered agent; a variant needs a name of its own (not one of the {REGISTERED}"),
    (_variant() + _variant(values="{ model_epochs = 5 }"), "variants[1].name",
     "'mine' is already the name of variants[0]; each variant needs its own name"),
    (_variant(agent='"mbpo_mlee"'), "variants[0].agent", f"'mbpo_mlee' is not a registered agent; {REGISTERED}"),
    (_variant() + _variant(name='"other"', agent='"mine"'), "variants[1].agent",
     "'mine' is not a registered agent (a variant is built from a registered agent, not from another variant)"),
    (_variant(agent="[]"), "variants[0].agent", "expected a registered agent's name, got []"),
    (_variant(values="{}"), "variants[0].values", "expected a non-empty table of agent config fields, got {}"),
    (_variant(values="{ model_epochs = nan }"), "variants[0].values.model_epochs", "number (not NaN)"),
    (_variant(reason='" "'), "variants[0].reason", "expected a non-empty string saying why the variant is in the grid"),
    ("\nvariants = 3\n", "variants", "expected [[variants]] tables, got 3"),
    ('agents = ["mbpo_mle", "mine_too"]\n' + _variant(), "agents",
     "'mine_too' is not a registered agent or a variant of this protocol; registered: ['mbpo_itervaml'"),
])
def test_malformed_variants_name_the_file_the_entry_key_and_the_problem(tmp_path, entries, key, problem):
    path = write(tmp_path, HEAD + entries)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and msg.count(str(path)) == 1, msg
    assert any(p.startswith(f"key {key!r}: ") and problem in p for p in info.value.problems), msg


def test_an_unknown_agent_name_lists_the_variants_and_an_invalid_variant_is_reported_once(tmp_path):
    text = HEAD + 'agents = ["mine", "nope"]\n' + _variant(reason='""') + '''
[[agent_overrides]]
agents = ["mine", "nope2"]
values = { model_epochs = 5 }
reason = "r"
'''
    with pytest.raises(ProtocolError) as info:
        load_protocol(write(tmp_path, text))
    problems = info.value.problems
    # "mine" is a variant whose entry has a problem of its own: named there, not as an unknown agent
    assert [p.split(":")[0] for p in problems] == ["key 'variants[0].reason'", "key 'agents'",
                                                   "key 'agent_overrides[0].agents'"], problems
    assert problems[1].endswith("variants: ['mine']") and "'nope'" in problems[1]
    assert "'nope2'" in problems[2] and "'mine'" not in problems[2].split("variants:")[0]


def test_without_the_registries_a_variant_still_cannot_be_built_from_a_variant():
    content = tomllib.loads(HEAD + _variant() + _variant(name='"b"', agent='"mine"')
                            + _variant(name='"b"', agent='"sac"'))
    with pytest.raises(ProtocolError) as info:
        parse_protocol(content, "x.toml", check_ids=False)
    # the second "b" is the clash (the first keeps its name), and "mine" is a variant, not an agent
    assert [p.split(":")[0] for p in info.value.problems] == ["key 'variants[1].agent'", "key 'variants[2].name'"]
    # unregistered names pass unchecked then, as agent names do
    p = parse_protocol(tomllib.loads(HEAD + _variant(agent='"plugin_agent"')), "x.toml", check_ids=False)
    assert p.base_agent("mine") == "plugin_agent"


def test_the_hash_covers_a_variants_name_agent_and_values_but_not_its_reason(tmp_path, mean):
    text = mean.read_text()
    base = load_protocol(mean).content_hash
    # computed from the file directly: sorted-key JSON without the description and the reasons
    content = tomllib.loads(text)
    payload = {k: v for k, v in content.items() if k != "description"}
    payload["variants"] = [{k: v for k, v in e.items() if k != "reason"} for e in content["variants"]]
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert base == expected
    for old, new in [('"mean", model', '"sample", model'), ('"mbpo_mle_mean"', '"mbpo_mle_m"'),
                     ('agent = "mbpo_mle"', 'agent = "mbpo_mse"')]:
        assert old in text
        assert load_protocol(write(tmp_path, text.replace(old, new), "b.toml")).content_hash != base, old
    assert load_protocol(write(tmp_path, text.replace("non-loss", "other"), "c.toml")).content_hash == base
    # a protocol without variants hashes as it did before the table existed; an empty array is no variants
    none = load_protocol(write(tmp_path, HEAD, "d.toml"))
    plain = hashlib.sha256(json.dumps({k: v for k, v in tomllib.loads(HEAD).items() if k != "description"},
                                      sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert none.content_hash == plain
    assert load_protocol(write(tmp_path, HEAD + "variants = []\n", "e.toml")).content_hash == plain


# ---------------------------------------------------------------------------------------------- runner


def test_the_runner_builds_the_registered_agent_with_the_variants_values(mean):
    cfg = parse_args(["agent=mbpo_mle_mean", f"env={TASKS[0]}", f"protocol={mean}"])
    plain = parse_args(["agent=mbpo_mle", f"env={TASKS[0]}"]).agent_config
    a = cfg.agent_config
    assert type(a) is type(plain) and cfg.agent == "mbpo_mle_mean" and cfg.base_agent == "mbpo_mle"
    changed = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(plain, f.name)}
    assert changed == {"rollout_sampling": "mean", "model_snapshot": "per_member"}
    assert plain.rollout_sampling == "upstream"  # what the variant changed
    record = cfg.to_dict()
    assert list(record)[:3] == ["agent", "variant", "env"]
    assert record["agent"] == "mbpo_mle_mean" and record["variant"] == {
        "agent": "mbpo_mle", "values": {"rollout_sampling": "mean", "model_snapshot": "per_member"},
        "reason": "the MLE variant without its non-loss mechanics"}
    assert record["agent_config"]["rollout_sampling"] == "mean"
    # the registered agent under the same protocol: its own defaults, and no "variant" in its record
    base = parse_args(["agent=mbpo_mle", f"env={TASKS[0]}", f"protocol={mean}"])
    assert base.agent_config == plain and "variant" not in base.to_dict() and base.variant is None


def test_precedence_defaults_variant_overrides_command_line(tmp_path, capsys):
    path = write(tmp_path, HEAD + MEAN + '''
[[agent_overrides]]
agents = ["mbpo_mle_mean"]
tasks = ["HopperDistract-5-v0"]
values = { model_snapshot = "upstream", model_epochs = 7 }
reason = "the override's reason"
''')
    env0, env5 = f"env={TASKS[0]}", f"env={TASKS[1]}"
    a0 = parse_args(["agent=mbpo_mle_mean", env0, f"protocol={path}"]).agent_config
    a5 = parse_args(["agent=mbpo_mle_mean", env5, f"protocol={path}"]).agent_config
    assert (a0.rollout_sampling, a0.model_snapshot, a0.model_epochs) == ("mean", "per_member", None)
    assert (a5.rollout_sampling, a5.model_snapshot, a5.model_epochs) == ("mean", "upstream", 7)
    # the command line sets what the protocol leaves open, and may repeat a fixed value ...
    cli = parse_args(["agent=mbpo_mle_mean", env0, f"protocol={path}", "agent.sac_hidden_size=64",
                      "agent.rollout_sampling=mean"]).agent_config
    assert (cli.sac_hidden_size, cli.rollout_sampling) == (64, "mean")
    # ... but another value for a field the variant fixes is refused with the variant's reason
    out = tmp_path / "runs"
    assert run.main(["agent=mbpo_mle_mean", env0, f"protocol={path}", "agent.rollout_sampling=upstream",
                     f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: agent.rollout_sampling=upstream conflicts with protocol 'vt' "
                          "(agent.rollout_sampling=mean for agent 'mbpo_mle_mean'"), err
    assert "variant 'mbpo_mle_mean' of agent 'mbpo_mle': the MLE variant" in err and err.count("\n") == 1
    assert run.main(["agent=mbpo_mle_mean", env5, f"protocol={path}", "agent.model_epochs=8", f"out={out}"]) == 2
    assert "(agent.model_epochs=7 for agent 'mbpo_mle_mean' on 'HopperDistract-5-v0': the override's reason)" \
        in capsys.readouterr().err
    assert not out.exists()


def test_a_variant_name_without_its_protocol_is_an_unknown_agent(mean, tmp_path, capsys):
    out = tmp_path / "runs"
    assert run.main(["agent=mbpo_mle_mean", f"env={TASKS[0]}", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown agent 'mbpo_mle_mean'; ") and err.count("\n") == 1
    assert "available agents: mbpo_itervaml, mbpo_mle," in err
    assert "a protocol's [[variants]] are agents only with that protocol (agent=<variant> protocol=<file>)" in err
    # a protocol without it: close matches among its variants, or that it has none
    assert run.main(["agent=mbpo_mle_maen", f"env={TASKS[0]}", f"protocol={mean}", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "did you mean the variant mbpo_mle_mean? variants of protocol 'vt': mbpo_mle_mean" in err, err
    assert run.main(["agent=mbpo_mle_mean", "env=HopperDistract-5-v0", "protocol=smoke", f"out={out}"]) == 2
    assert "protocol 'smoke' defines no [[variants]]" in capsys.readouterr().err
    assert not out.exists()


def test_a_field_the_agent_lacks_names_the_variant_and_the_agents_fields(tmp_path, capsys):
    path = write(tmp_path, HEAD + MEAN.replace("model_snapshot", "model_snapshat"))
    assert run.main(["agent=mbpo_mle_mean", f"env={TASKS[0]}", f"protocol={path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: protocol 'vt' variant 'mbpo_mle_mean' (of agent 'mbpo_mle') sets "
                          "agent.model_snapshat, but agent 'mbpo_mle' has no field 'model_snapshat'; "
                          "did you mean model_snapshot"), err
    assert "fields of agent 'mbpo_mle': " in err and "rollout_sampling" in err
    # found without a run too (what the sweep checks before launching), once per task
    problems = check_protocol_agent_overrides(load_protocol(path))
    assert len(problems) == len(TASKS) and all("'model_snapshat'" in p for p in problems)
    # a value the agent refuses
    path = write(tmp_path, HEAD + MEAN.replace('"per_member"', '"each"'), "b.toml")
    assert run.main(["agent=mbpo_mle_mean", f"env={TASKS[0]}", f"protocol={path}"]) == 2
    assert "agent.model_snapshot=each" in capsys.readouterr().err
    assert check_protocol_agent_overrides(load_protocol(write(tmp_path, HEAD + MEAN, "c.toml"))) == []


def test_a_reworded_reason_resumes_other_values_do_not():
    """The reason is prose (not in the hash): a run recorded before a rewording is the same run."""
    from vagram_bench.runner.rundir import config_differences

    old = {"agent": "v", "variant": {"agent": "mbpo_mle", "values": {"rollout_sampling": "mean"}, "reason": "a"}}
    reworded = {"agent": "v", "variant": {**old["variant"], "reason": "b"}}
    assert config_differences(old, reworded) == []
    other = {"agent": "v", "variant": {**old["variant"], "values": {"rollout_sampling": "sample"}}}
    assert config_differences(old, other) == [
        "variant.values.rollout_sampling: 'mean' (run dir) vs 'sample' (this command)"]
    assert config_differences({"agent": "v"}, old) == [f"variant: '<absent>' (run dir) vs {old['variant']!r} (this command)"]


def test_list_shows_a_protocols_variants(mean, capsys):
    assert run.main(["list", f"protocol={mean}"]) == 0
    out = capsys.readouterr().out.split("protocols:", 1)[1]
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["vt", "v1"])
    assert lines[at].endswith(f"({mean})")
    assert lines[at + 1].split() == ["variant", "mbpo_mle_mean:", "mbpo_mle", "with",
                                     'rollout_sampling="mean",', 'model_snapshot="per_member"']
    assert run.main(["list", "protocol=nope.toml"]) == 2
    assert "unknown protocol 'nope.toml'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- sweep and board

TINY = {
    "initial_exploration_steps": 100, "freq_train_model": 50, "epoch_length": 100,
    "effective_model_rollouts_per_step": 4, "num_sac_updates_per_step": 2, "sac_hidden_size": 64, "hid_size": 32,
    "num_layers": 2, "ensemble_size": 3, "num_elites": 2, "num_epochs_train_model": 3, "dataset_size": 1000,
    "model_batch_size": 64, "sac_batch_size": 32,
}


def test_a_sweep_plans_variant_rows_and_refuses_a_bad_one_before_launching(mean, tmp_path, capsys):
    out = tmp_path / "runs"
    p = load_protocol(mean)
    cells = sw.plan_cells(sw.SweepConfig(protocol=str(mean), out=str(out)), p)
    variant = [c for c in cells if c.agent == "mbpo_mle_mean"]
    assert len(variant) == 4 and variant[0].run_dir == out.resolve() / TASKS[0] / "mbpo_mle_mean" / "seed0"
    assert variant[0].argv[0] == "agent=mbpo_mle_mean" and f"protocol={mean.resolve()}" in variant[0].argv
    sw.check_agents(["mbpo_mle", "mbpo_mle_mean"], TASKS, p)
    with pytest.raises(ValueError, match=r"cannot run agent\(s\) mbpo_mle_mean:\n  unknown agent"):
        sw.check_agents(["mbpo_mle_mean"], TASKS)  # without the protocol it is no agent
    assert sw.main([f"protocol={mean}", "agents=mbpo_mle_maen", f"out={out}", "dry_run=true"]) == 2
    assert "(variants of protocol 'vt': mbpo_mle_mean)" in capsys.readouterr().err
    bad = write(tmp_path, HEAD + MEAN.replace("model_snapshot", "model_snapshat"), "bad.toml")
    assert sw.main([f"protocol={bad}", "agents=mbpo_mle_mean", f"out={out}", "dry_run=true"]) == 2
    assert "variant 'mbpo_mle_mean' (of agent 'mbpo_mle') sets agent.model_snapshat" in capsys.readouterr().err
    assert not out.exists()


def _rows(path: Path, drop: tuple[str, ...] = ()) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def test_a_grid_with_the_agent_and_its_variants_records_them_side_by_side(tmp_path):
    """The real runner through a sweep, tiny MBPO settings (an [[agent_overrides]] entry for all three rows),
    200 env steps: a variant whose values are the agent's defaults records exactly what the agent records
    (train.csv byte for byte, eval.csv but for its wall-clock column), the mean-rollout variant records its
    switch and other numbers, and the leaderboard shows three rows, the variants' hyperparameters noted."""
    tiny = "{ " + ", ".join(f"{k} = {v}" for k, v in TINY.items()) + " }"
    text = HEAD.replace(json.dumps(TASKS), '["HopperDistract-5-v0"]').replace("seeds = [0, 1]", "seeds = [0]") + \
        'agents = ["mbpo_mle", "mbpo_mle_same", "mbpo_mle_mean"]\n' + MEAN.replace(
            ', model_snapshot = "per_member"', "") + f'''
[[variants]]
name = "mbpo_mle_same"
agent = "mbpo_mle"
values = {{ rollout_sampling = "upstream", model_snapshot = "upstream" }}
reason = "the agent's own defaults under another name"

[[agent_overrides]]
agents = ["mbpo_mle", "mbpo_mle_same", "mbpo_mle_mean"]
values = {tiny}
reason = "seconds per run"
'''
    proto, out, board = write(tmp_path, text), tmp_path / "runs", tmp_path / "board"
    assert sw.main([f"protocol={proto}", f"out={out}", "launcher=local", "local.workers=2"]) == 0
    task = out / "HopperDistract-5-v0"
    assert sorted(d.name for d in task.iterdir()) == ["mbpo_mle", "mbpo_mle_mean", "mbpo_mle_same"]
    base, same, mean_ = (task / a / "seed0" for a in ("mbpo_mle", "mbpo_mle_same", "mbpo_mle_mean"))
    assert (base / "train.csv").read_bytes() == (same / "train.csv").read_bytes()
    assert _rows(base / "eval.csv", ("wall_seconds",)) == _rows(same / "eval.csv", ("wall_seconds",))
    assert len(_rows(base / "eval.csv")) == 2
    configs = {d.parent.name: json.loads((d / "config.json").read_text()) for d in (base, same, mean_)}
    assert configs["mbpo_mle"]["agent_config"] == configs["mbpo_mle_same"]["agent_config"]
    assert "variant" not in configs["mbpo_mle"]
    assert configs["mbpo_mle_same"]["variant"]["agent"] == "mbpo_mle"
    assert configs["mbpo_mle_mean"]["agent"] == "mbpo_mle_mean"
    assert configs["mbpo_mle_mean"]["variant"]["values"] == {"rollout_sampling": "mean"}
    assert configs["mbpo_mle_mean"]["agent_config"]["rollout_sampling"] == "mean"
    assert configs["mbpo_mle_mean"]["agent_config"]["sac_hidden_size"] == 64  # the override reached it too
    # mean rollouts train the policy on other model transitions: the same first evaluation (before any
    # rollout), then other returns
    evals = [_rows(d / "eval.csv", ("wall_seconds",)) for d in (base, mean_)]
    assert evals[0][0] == evals[1][0] and evals[0][1] != evals[1][1]
    assert json.loads((mean_ / "summary.json").read_text())["agent"] == "mbpo_mle_mean"
    # a second sweep finds every cell complete; the board has one row per agent name
    assert sw.main([f"protocol={proto}", f"out={out}", "launcher=local"]) == 0
    assert lb.main([str(out), f"protocol={proto}", f"out={board}", "n_resamples=200"]) == 0
    md = (board / "leaderboard.md").read_text()
    for agent in ("mbpo_mle", "mbpo_mle_same", "mbpo_mle_mean"):
        assert re.search(rf"^\| {agent} \|", md, re.M), agent
    assert ("mbpo_mle_mean is a variant of mbpo_mle defined by protocol vt ([[variants]]): "
            'rollout_sampling = "mean". Why: the MLE variant without its non-loss mechanics') in md
    # the kept policy is rebuilt as the registered agent with the variant's config
    from vagram_bench.runner.policy import run_config_from_record

    cfg = run_config_from_record(configs["mbpo_mle_mean"])
    assert (cfg.agent, cfg.base_agent, cfg.agent_config.rollout_sampling) == ("mbpo_mle_mean", "mbpo_mle", "mean")
