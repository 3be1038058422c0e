"""``[[agent_overrides]]``: agent settings a protocol fixes per agent and task (loader and runner)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest

from vagram_bench import run
from vagram_bench.protocol import ProtocolError, list_protocols, load_protocol
from vagram_bench.runner.config import check_protocol_agent_overrides, parse_args

MBPO = ["mbpo_mse", "mbpo_mle", "mbpo_vagram"]
TASKS = ["HopperDistract-0-v0", "HopperDistract-15-v0", "HopperCapacity-3x64-v0"]

HEAD = f'''name = "cpu"
version = 1
description = "a CPU-sized test protocol"
tasks = {json.dumps(TASKS)}
seeds = [0, 1]
steps = 1000
eval_every = 500
eval_episodes = 2
eval_seed = 1000
metric = "iqm"
'''

REDUCED = '''
[[agent_overrides]]
agents = ["mbpo_mse", "mbpo_mle", "mbpo_vagram"]
tasks = ["HopperDistract-15-v0"]
values = { sac_hidden_size = 256, num_sac_updates_per_step = 10, initial_exploration_steps = 5000 }
reason = "2x1024 nets with 20 updates per step cost ~2 s per env step on 2 CPU cores"

[[agent_overrides]]
agents = ["mbpo_vagram"]
values = { model_data_likelihood = [0, 20, 0, 0.5], random_initial_explore = true }
reason = "  a second entry, every task  "
'''


def write(tmp_path: Path, text: str, name: str = "cpu.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def reduced(tmp_path) -> Path:
    return write(tmp_path, HEAD + REDUCED)


# ---------------------------------------------------------------------------------------------- loader


def test_entries_are_loaded_with_default_tasks_and_arrays_as_tuples(reduced):
    p = load_protocol(reduced)
    first, second = p.agent_overrides
    assert first.agents == tuple(MBPO) and first.tasks == ("HopperDistract-15-v0",)
    assert dict(first.values) == {"sac_hidden_size": 256, "num_sac_updates_per_step": 10,
                                  "initial_exploration_steps": 5000}
    assert first.reason.startswith("2x1024 nets")
    # no `tasks`: every task of the protocol; the reason is stripped
    assert second.tasks == tuple(TASKS) and second.reason == "a second entry, every task"
    assert second.values["model_data_likelihood"] == (0, 20, 0, 0.5)


def test_agent_overrides_for_matches_agent_and_task(reduced):
    p = load_protocol(reduced)
    reduced_values = {"sac_hidden_size": 256, "num_sac_updates_per_step": 10, "initial_exploration_steps": 5000}
    vagram_values = {"model_data_likelihood": (0, 20, 0, 0.5), "random_initial_explore": True}
    assert p.agent_overrides_for("mbpo_mse", "HopperDistract-15-v0") == reduced_values
    assert p.agent_overrides_for("mbpo_mse", "HopperDistract-0-v0") == {}
    assert p.agent_overrides_for("sac", "HopperDistract-15-v0") == {}
    # two entries apply: their fields are merged, and each entry keeps its reason
    assert p.agent_overrides_for("mbpo_vagram", "HopperDistract-15-v0") == {**reduced_values, **vagram_values}
    assert p.agent_overrides_for("mbpo_vagram", "HopperCapacity-3x64-v0") == vagram_values
    assert [e.reason for e in p.agent_override_entries("mbpo_vagram", "HopperDistract-15-v0")] == [
        p.agent_overrides[0].reason, p.agent_overrides[1].reason]
    with pytest.raises(KeyError, match="not in protocol 'cpu'"):
        p.agent_overrides_for("mbpo_mse", "Hopper-v5")


def _entry(**keys: str) -> str:
    base = {"agents": '["mbpo_mse"]', "values": "{ sac_hidden_size = 256 }", "reason": '"cheaper"'}
    base.update(keys)
    return "\n[[agent_overrides]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v is not None)


@pytest.mark.parametrize("entries,key,problem", [
    (_entry(agent='"x"'), "agent_overrides[0].agent", "unknown key; valid keys are ['agents', 'tasks', 'values', 'reason']"),
    (_entry(agents=None), "agent_overrides[0].agents", "missing required key"),
    (_entry(values=None), "agent_overrides[0].values", "missing required key"),
    (_entry(reason=None), "agent_overrides[0].reason", "missing required key"),
    (_entry(agents="[]"), "agent_overrides[0].agents", "expected a non-empty list of non-empty strings, got []"),
    (_entry(agents='"mbpo_mse"'), "agent_overrides[0].agents", "expected a non-empty list of non-empty strings"),
    (_entry(agents='["mbpo_mse", ""]'), "agent_overrides[0].agents", "expected a non-empty list of non-empty strings"),
    (_entry(agents='["mbpo_msee"]'), "agent_overrides[0].agents", "'mbpo_msee' is not a registered agent; registered: ["),
    (_entry(tasks='["Hopper-v5"]'), "agent_overrides[0].tasks", "task 'Hopper-v5' is not in tasks ['HopperDistract-0-v0'"),
    (_entry(tasks="[]"), "agent_overrides[0].tasks", "expected a non-empty list of non-empty strings"),
    (_entry(values="{}"), "agent_overrides[0].values", "expected a non-empty table of agent config fields, got {}"),
    (_entry(values="5"), "agent_overrides[0].values", "expected a non-empty table of agent config fields, got 5"),
    (_entry(values="{ sac = { hidden_size = 5 } }"), "agent_overrides[0].values.sac",
     "expected a string, boolean, number (not NaN) or an array of them, got {'hidden_size': 5}"),
    (_entry(values="{ sac_gamma = nan }"), "agent_overrides[0].values.sac_gamma", "number (not NaN)"),
    (_entry(values="{ rollout_schedule = [[1, 2], [3]] }"), "agent_overrides[0].values.rollout_schedule",
     "or an array of them, got [[1, 2], [3]]"),
    (_entry(reason='"  "'), "agent_overrides[0].reason", "expected a non-empty string saying why, got '  '"),
    (_entry(reason="3"), "agent_overrides[0].reason", "expected a non-empty string saying why, got 3"),
    ("\nagent_overrides = 3\n", "agent_overrides", "expected [[agent_overrides]] tables, got 3"),
    # the same field for the same (agent, task) in two entries, even with the same value
    (_entry() + _entry(agents='["mbpo_mle", "mbpo_mse"]', tasks='["HopperDistract-15-v0"]'),
     "agent_overrides[1].values.sac_hidden_size",
     "agent_overrides[0] already sets 'sac_hidden_size' for (agent, task) [('mbpo_mse', 'HopperDistract-15-v0')]"),
])
def test_malformed_entries_name_the_file_the_entry_key_and_the_problem(tmp_path, entries, key, problem):
    path = write(tmp_path, HEAD + entries)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and msg.count(str(path)) == 1, msg
    assert any(p.startswith(f"key {key!r}: ") and problem in p for p in info.value.problems), msg


def test_disjoint_entries_may_set_the_same_field(tmp_path):
    # the same field for other agents or other tasks is not a clash
    text = (HEAD + _entry(tasks='["HopperDistract-0-v0"]') + _entry(tasks='["HopperDistract-15-v0"]')
            + _entry(agents='["mbpo_mle"]', values="{ sac_hidden_size = 512 }"))
    p = load_protocol(write(tmp_path, text))
    assert p.agent_overrides_for("mbpo_mse", "HopperDistract-0-v0") == {"sac_hidden_size": 256}
    assert p.agent_overrides_for("mbpo_mle", "HopperDistract-0-v0") == {"sac_hidden_size": 512}
    assert p.agent_overrides_for("mbpo_mse", "HopperCapacity-3x64-v0") == {}


def test_every_entry_problem_is_reported_at_once(tmp_path):
    text = HEAD + _entry(agents="[]", reason='""') + _entry(tasks='["Ant-v5"]', values="{}")
    with pytest.raises(ProtocolError) as info:
        load_protocol(write(tmp_path, text))
    keys = sorted(re.match(r"key '([^']+)': ", p).group(1) for p in info.value.problems)
    assert keys == ["agent_overrides[0].agents", "agent_overrides[0].reason",
                    "agent_overrides[1].tasks", "agent_overrides[1].values"]


def test_hash_covers_agents_tasks_and_values_but_not_the_reason(tmp_path, reduced):
    base = load_protocol(reduced).content_hash
    text = HEAD + REDUCED
    for old, new in [("sac_hidden_size = 256", "sac_hidden_size = 257"),
                     ('agents = ["mbpo_vagram"]', 'agents = ["mbpo_vagram", "mbpo_mse"]'),
                     ('tasks = ["HopperDistract-15-v0"]', 'tasks = ["HopperDistract-0-v0"]'),
                     ("random_initial_explore = true", "random_initial_explore = false")]:
        assert old in text
        assert load_protocol(write(tmp_path, text.replace(old, new), "b.toml")).content_hash != base, old
    # the reason is prose, as the description is
    reworded = text.replace("a second entry, every task", "reworded")
    assert load_protocol(write(tmp_path, reworded, "c.toml")).content_hash == base
    # no entries and an empty array are the same content
    none = load_protocol(write(tmp_path, HEAD, "d.toml")).content_hash
    assert load_protocol(write(tmp_path, HEAD + "agent_overrides = []\n", "e.toml")).content_hash == none


def test_shipped_protocols_hashes_and_overrides():
    """A shipped protocol's hash is SHA-256 over its sorted-key JSON without the description and without
    the overrides' reasons (computed here from the file directly; for a file without overrides this is
    the hash of earlier versions), and every override it ships is accepted by its agents."""
    with_overrides = []
    for p in list_protocols():
        content = tomllib.loads(p.path.read_text())
        payload = {k: v for k, v in content.items() if k != "description"}
        if "agent_overrides" in content:
            with_overrides.append(p.name)
            assert len(p.agent_overrides) == len(content["agent_overrides"])
            payload["agent_overrides"] = [{k: v for k, v in e.items() if k != "reason"} for e in content["agent_overrides"]]
        else:
            assert p.agent_overrides == ()
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert p.content_hash == hashlib.sha256(text.encode()).hexdigest(), p.name
        assert check_protocol_agent_overrides(p) == []
    assert with_overrides == ["ablation-idp", "capacity", "cpu", "cpu2-svg"]


# ---------------------------------------------------------------------------------------------- runner


def test_runner_applies_overrides_only_for_the_listed_agents_and_tasks(reduced):
    protocol = f"protocol={reduced}"
    cfg = parse_args(["agent=mbpo_mse", "env=HopperDistract-15-v0", protocol])
    plain = parse_args(["agent=mbpo_mse", "env=HopperDistract-15-v0"]).agent_config
    a = cfg.agent_config
    assert (a.sac_hidden_size, a.num_sac_updates_per_step, a.initial_exploration_steps) == (256, 10, 5000)
    assert (plain.sac_hidden_size, plain.num_sac_updates_per_step) == (1024, 20)  # what was reduced
    # everything else is the agent's own default for the env
    changed = sorted(f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(plain, f.name))
    assert changed == ["initial_exploration_steps", "num_sac_updates_per_step", "sac_hidden_size"]
    # config.json records the resolved agent config
    assert cfg.to_dict()["agent_config"]["sac_hidden_size"] == 256
    # another task of the protocol, and an agent the entries do not name: untouched
    other_task = parse_args(["agent=mbpo_mse", "env=HopperDistract-0-v0", protocol]).agent_config
    assert other_task == parse_args(["agent=mbpo_mse", "env=HopperDistract-0-v0"]).agent_config
    sac = parse_args(["agent=sac", "env=HopperDistract-15-v0", protocol]).agent_config
    assert sac == parse_args(["agent=sac", "env=HopperDistract-15-v0"]).agent_config


def test_a_toml_array_becomes_the_tuple_a_tuple_field_holds(reduced):
    a = parse_args(["agent=mbpo_vagram", "env=HopperDistract-0-v0", f"protocol={reduced}"]).agent_config
    assert a.model_data_likelihood == (0.0, 20.0, 0.0, 0.5)
    assert isinstance(a.model_data_likelihood, tuple) and all(type(v) is float for v in a.model_data_likelihood)
    assert a.random_initial_explore is True
    # the command line spells the same value this way
    cli = parse_args(["agent=mbpo_vagram", "env=HopperDistract-0-v0", "agent.model_data_likelihood=0,20,0,0.5",
                      "agent.random_initial_explore=true"]).agent_config
    assert cli == a


def test_an_explicit_conflicting_value_is_refused_naming_field_values_and_protocol(reduced, capsys):
    argv = ["agent=mbpo_mse", "env=HopperDistract-15-v0", f"protocol={reduced}", "agent.sac_hidden_size=512"]
    assert run.main(argv) == 2
    err = capsys.readouterr().err
    assert "agent.sac_hidden_size=512 conflicts with protocol 'cpu' (agent.sac_hidden_size=256" in err, err
    assert "2x1024 nets" in err  # the protocol's reason
    assert run.main(["agent=mbpo_vagram", "env=HopperDistract-0-v0", f"protocol={reduced}",
                     "agent.model_data_likelihood=0,20,0,0.6"]) == 2
    err = capsys.readouterr().err
    assert "agent.model_data_likelihood=(0.0, 20.0, 0.0, 0.6) conflicts with protocol 'cpu'" in err, err
    assert "(0.0, 20.0, 0.0, 0.5)" in err


def test_an_explicit_equal_value_is_accepted(reduced):
    # the same values in the command line's own spellings (a tuple as a list, a bool as a word)
    cfg = parse_args(["agent=mbpo_vagram", "env=HopperDistract-15-v0", f"protocol={reduced}",
                      "agent.sac_hidden_size=256", "agent.model_data_likelihood=[0,20.0,0,0.5]",
                      "agent.random_initial_explore=yes"])
    assert cfg.agent_config.sac_hidden_size == 256
    assert cfg.agent_config.model_data_likelihood == (0.0, 20.0, 0.0, 0.5)


def test_an_unknown_field_names_the_field_the_agent_and_its_fields(tmp_path, capsys):
    path = write(tmp_path, HEAD + _entry(values="{ sac_hiden_size = 256 }"))
    assert run.main(["agent=mbpo_mse", "env=HopperDistract-0-v0", f"protocol={path}"]) == 2
    err = capsys.readouterr().err
    assert "protocol 'cpu' sets agent.sac_hiden_size for agent 'mbpo_mse'" in err, err
    assert "has no field 'sac_hiden_size'; did you mean sac_hidden_size" in err
    assert "fields of agent 'mbpo_mse': " in err and "num_sac_updates_per_step" in err
    # the check without a run finds it for every task the entry covers
    problems = check_protocol_agent_overrides(load_protocol(path))
    assert len(problems) == len(TASKS) and all("'sac_hiden_size'" in p for p in problems)


def test_a_value_the_agent_refuses_is_a_usage_error(tmp_path, capsys):
    path = write(tmp_path, HEAD + _entry(values='{ sac_hidden_size = "wide" }'))
    assert run.main(["agent=mbpo_mse", "env=HopperDistract-0-v0", f"protocol={path}"]) == 2
    err = capsys.readouterr().err
    assert "protocol 'cpu' sets agent.sac_hidden_size=wide for agent 'mbpo_mse'" in err, err
    assert "'wide'" in err.split("which the agent refuses:")[1]
    # a value the config's own check refuses
    path = write(tmp_path, HEAD + _entry(values="{ rollout_schedule = [20, 150, 0, 5] }"), "b.toml")
    assert run.main(["agent=mbpo_mse", "env=HopperDistract-0-v0", f"protocol={path}"]) == 2
    assert "rollout lengths must be >= 1" in capsys.readouterr().err


def test_a_capacity_fixed_field_may_not_be_overridden(tmp_path, capsys):
    path = write(tmp_path, HEAD + _entry(tasks='["HopperCapacity-3x64-v0"]', values="{ hid_size = 128 }"))
    assert run.main(["agent=mbpo_mse", "env=HopperCapacity-3x64-v0", f"protocol={path}"]) == 2
    err = capsys.readouterr().err
    assert "protocol 'cpu' sets agent.hid_size=128" in err and "fixes agent.hid_size=64" in err, err
    assert check_protocol_agent_overrides(load_protocol(path)) != []
    # the value the id fixes anyway is no conflict
    path = write(tmp_path, HEAD + _entry(tasks='["HopperCapacity-3x64-v0"]', values="{ hid_size = 64 }"), "b.toml")
    cfg = parse_args(["agent=mbpo_mse", "env=HopperCapacity-3x64-v0", f"protocol={path}"])
    assert (cfg.agent_config.num_layers, cfg.agent_config.hid_size) == (3, 64)
    assert check_protocol_agent_overrides(load_protocol(path)) == []


def test_help_shows_the_protocols_values_as_defaults(reduced, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    assert run.main(["agent=mbpo_mse", "env=HopperDistract-15-v0", f"protocol={reduced}", "--help"]) == 0
    text = capsys.readouterr().out

    def default(option: str) -> str:
        return re.search(rf"{re.escape(option)} \S+\s.*?\(default: ([^)]*)\)", text, re.S).group(1)

    assert default("--agent.sac-hidden-size") == "256"
    assert default("--agent.num-sac-updates-per-step") == "10"


def test_a_sweep_refuses_a_protocol_whose_override_its_agent_lacks_before_launching(tmp_path, capsys):
    from vagram_bench import sweep

    path = write(tmp_path, HEAD + REDUCED.replace("sac_hidden_size = 256", "sac_hiden_size = 256"))
    out = tmp_path / "runs"
    assert sweep.main([f"protocol={path}", "agents=mbpo_mse", f"out={out}", "dry_run=true"]) == 2
    err = capsys.readouterr().err
    assert "sac_hiden_size" in err and "mbpo_mse" in err
    assert not out.exists()
    # the same protocol with the field spelled right plans its grid
    good = write(tmp_path, HEAD + REDUCED, name="good.toml")
    assert sweep.main([f"protocol={good}", "agents=mbpo_mse", f"out={out}", "dry_run=true"]) == 0



# ------------------------------------------------------------------------------ pinned agent settings


def test_the_published_cpu_grid_re_resolves_to_its_recorded_configs():
    """``protocol=cpu`` (version 1) resolves every published cell's agent config as its config.json
    records it -- the InvertedDoublePendulum defaults changed since, and the version's pinned settings
    keep it reproducible; fields added since (MBPO's switches) take their defaults, the behaviour the
    runs had."""
    results = Path(__file__).resolve().parents[1] / "results" / "cpu" / "runs"
    later = {"model_epochs": None, "model_score": "upstream", "model_snapshot": "upstream",
             "rollout_sampling": "upstream"}
    p = load_protocol("cpu")
    for agent in p.agents:
        for task in p.tasks:
            recorded = json.loads((results / task / agent / "seed0" / "config.json").read_text())
            resolved = parse_args([f"agent={agent}", f"env={task}", "protocol=cpu"]).to_dict()
            assert resolved["protocol"] == recorded["protocol"]
            mine = resolved["agent_config"]
            assert {k: mine[k] for k in recorded["agent_config"]} == recorded["agent_config"], (agent, task)
            assert {k: mine[k] for k in set(mine) - set(recorded["agent_config"])} == (
                later if agent.startswith("mbpo") else {})


def test_pins_apply_to_their_exact_protocol_version_only(tmp_path, capsys):
    """A copy of cpu.toml as version 2 (another hash) runs the current defaults; version 1 refuses an
    explicit value that conflicts with its pin, naming the pin's reason."""
    p = load_protocol("cpu")
    assert [e.tasks for e in p.pinned_agent_settings] and p.agent_override_entries("sac", p.tasks[0]) == []
    v2 = write(tmp_path, p.path.read_text().replace("version = 1", "version = 2"))
    idp = "InvertedDoublePendulumDistract-0-v0"
    assert load_protocol(v2).pinned_agent_settings == ()
    assert parse_args(["agent=mbpo_mle", f"env={idp}", f"protocol={v2}"]).agent_config.model_wd == 1e-5
    assert parse_args(["agent=mbpo_mle", f"env={idp}", "protocol=cpu"]).agent_config.model_wd == 5e-5
    assert run.main(["agent=mbpo_mle", f"env={idp}", "protocol=cpu", "agent.model_wd=1e-5",
                     f"out={tmp_path / 'runs'}"]) == 2
    assert "conflicts with protocol 'cpu'" in capsys.readouterr().err
def test_the_capacity_grid_refuses_a_change_of_the_models_size(capsys, tmp_path):
    """protocol=capacity fixes the dynamics model's size: the id fixes each network's layers and width, the
    protocol the ensemble's number of networks; an explicit change of either exits 2 before anything runs."""
    out = tmp_path / "runs"
    for override in ("agent.ensemble_size=50", "agent.num_layers=4", "agent.hid_size=200"):
        assert run.main(["agent=mbpo_mse", "env=HopperCapacity-2x64-v0", "protocol=capacity", override,
                         f"out={out}"]) == 2, override
        err = capsys.readouterr().err
        assert err.startswith("error: ") and f"{override} conflicts with" in err, override
    assert not out.exists()
    cfg = parse_args(["agent=mbpo_vagram", "env=Hopper-v5", "protocol=capacity", "agent.ensemble_size=7",
                      f"out={out}"])
    assert cfg.agent_config.ensemble_size == 7  # the fixed value itself is accepted
