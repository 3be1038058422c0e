"""Agent plugin registry: discovery, validation, broken plugins, and an out-of-tree plugin (a package
plus a ``*.dist-info/entry_points.txt`` on a temporary path) run through the runner."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vagram_bench import registry, run
from vagram_bench.interfaces import Agent
from vagram_bench.records import read_csv

PLUGIN_SOURCE = '''
"""A tiny out-of-tree vagram-bench agent: linear feedback plus seeded exploration noise."""
import dataclasses

import numpy as np

from vagram_bench.interfaces import Agent


@dataclasses.dataclass
class ToyConfig:
    gain: float = 0.5
    """feedback gain on the first observation dims"""
    noise: float = 0.1
    """std of the exploration noise"""


class ToyAgent(Agent):
    Config = ToyConfig
    description = "Toy linear-feedback agent (test plugin)"

    def __init__(self, config, observation_space, action_space, *, env_id, seed, device="cpu"):
        super().__init__(config, observation_space, action_space, env_id=env_id, seed=seed, device=device)
        self.rng = np.random.default_rng(seed)
        self.seen = 0

    def act(self, obs, deterministic):
        n = self.action_space.shape[0]
        action = -self.config.gain * np.resize(obs, n)
        if not deterministic:
            action = action + self.config.noise * self.rng.standard_normal(n)
        return np.clip(action, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)

    def observe(self, obs, action, reward, next_obs, terminated, truncated):
        self.seen += 1

    def update(self, env_step):
        return {"transitions_seen": float(self.seen)}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "seen": self.seen}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]
        self.seen = state["seen"]


class NotAnAgent:
    pass


@dataclasses.dataclass
class NoDefaultConfig:
    width: int


class NoDefaultAgent(ToyAgent):
    Config = NoDefaultConfig
'''

ENTRY_POINTS = """
[vagram_bench.agents]
toy = toy_vb_plugin:ToyAgent
toy_not_an_agent = toy_vb_plugin:NotAnAgent
toy_no_default = toy_vb_plugin:NoDefaultAgent
toy_missing_module = toy_vb_plugin_does_not_exist:Agent
"""


@pytest.fixture()
def plugin_path(tmp_path) -> Path:
    """An 'installed' distribution: the package and its dist-info metadata on a plain directory."""
    site = tmp_path / "site"
    (site / "toy_vb_plugin").mkdir(parents=True)
    (site / "toy_vb_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist_info = site / "toy_vb_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-vb-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS.lstrip())
    return site


def test_builtin_sac_is_discovered_and_valid():
    agents = registry.discover()
    assert agents["sac"].ok and agents["sac"].target == "vagram_bench.agents.sac:SACAgent"
    assert agents["sac"].description == registry.load_agent("sac").description
    assert "sac" in registry.agent_names() and "sac" in registry.available_agents()


def _valid_agent_class():
    from vagram_bench.agents.sac import SACAgent

    return SACAgent


def test_validation_accepts_sac_and_names_each_problem():
    assert registry.validate_agent_class(_valid_agent_class()) == []
    assert "not a subclass" in registry.validate_agent_class(int)[0]

    class Abstract(Agent):
        Config = _valid_agent_class().Config
        description = "x"

    assert any("does not implement" in p and "act" in p for p in registry.validate_agent_class(Abstract))

    @dataclasses.dataclass
    class NoDefault:
        a: int
        b: int = 1

    Bad = type("Bad", (_valid_agent_class(),), {"Config": NoDefault, "description": "two\nlines"})
    problems = " | ".join(registry.validate_agent_class(Bad))
    assert "fields without a default: a" in problems and "single line" in problems
    NotDataclass = type("NotDataclass", (_valid_agent_class(),), {"Config": dict})
    assert "@dataclass" in registry.validate_agent_class(NotDataclass)[0]
    NoDescription = type("NoDescription", (_valid_agent_class(),), {"description": ""})
    assert "description" in registry.validate_agent_class(NoDescription)[0]


def test_unknown_agent_error_suggests():
    with pytest.raises(registry.UnknownAgentError, match="did you mean sac"):
        registry.load_agent("sca")


def test_broken_plugins_are_reported_not_raised(plugin_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(plugin_path))
    agents = registry.discover()
    assert agents["toy"].ok and agents["toy"].distribution == "toy-vb-plugin"
    assert "not a subclass" in agents["toy_not_an_agent"].error
    assert "without a default: width" in agents["toy_no_default"].error
    assert "cannot import" in agents["toy_missing_module"].error
    assert "toy_not_an_agent" not in registry.available_agents()

    assert run.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  toy")}
    assert "Toy linear-feedback agent" in lines["toy"]
    assert "BROKEN" in lines["toy_not_an_agent"] and "BROKEN" in lines["toy_missing_module"]
    assert "sac" in out  # the good agents are still listed

    assert run.main(["agent=toy_no_default", "env=InvertedPendulum-v5"]) == 2
    err = capsys.readouterr().err
    assert "toy_no_default" in err and "unusable" in err and "width" in err


def test_broken_plugins_never_reach_a_sweep(plugin_path, monkeypatch, tmp_path, capsys):
    from vagram_bench import sweep

    monkeypatch.syspath_prepend(str(plugin_path))
    # the unknown-agent message lists the usable agents, and the broken ones apart
    with pytest.raises(registry.UnknownAgentError) as info:
        registry.load_agent("toy_missing")
    usable, _, broken = str(info.value).partition(" (installed but broken")
    assert usable.split("available agents: ")[1].split(", ") == sorted(registry.available_agents())
    assert "toy" in registry.available_agents() and "toy_missing_module" not in registry.available_agents()
    assert "toy_missing_module" in broken and "toy_no_default" in broken
    assert registry.agent_problems(["toy", "sac"]) == {}
    # every requested agent is checked before anything is launched, each broken one with its reason
    with pytest.raises(ValueError) as info:
        sweep.check_agents(["sac", "toy_missing_module", "toy_no_default", "nope"], ["HopperDistract-0-v0"])
    msg = str(info.value)
    assert msg.startswith("cannot run agent(s) toy_missing_module, toy_no_default, nope:")
    assert "cannot import toy_vb_plugin_does_not_exist:Agent: ModuleNotFoundError" in msg
    assert "fields without a default: width" in msg and "unknown agent 'nope'" in msg
    out = tmp_path / "runs"
    assert sweep.main(["protocol=smoke", "agents=sac,toy_missing_module", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "toy_missing_module" in err and "No module named 'toy_vb_plugin_does_not_exist'" in err
    assert not out.exists()  # nothing was launched, no cell directory or log was made


def test_out_of_tree_plugin_runs_through_the_runner(plugin_path, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_path), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "vagram_bench.run", "agent=toy", "env=InvertedPendulum-v5", "seed=2",
         "steps=300", "eval_every=100", "eval_episodes=2", "log_every=100", "agent.gain=0.7",
         f"out={out}", "quiet=true"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = out / "InvertedPendulum-v5" / "toy" / "seed2"
    config = json.loads((d / "config.json").read_text())
    assert config["agent"] == "toy" and config["agent_config"] == {"gain": 0.7, "noise": 0.1}
    assert [int(r["env_step"]) for r in read_csv(d / "eval.csv")] == [100, 200, 300]
    train = read_csv(d / "train.csv")
    # update() reports the number of transitions seen; the row holds its mean over the window.
    assert [float(r["transitions_seen"]) for r in train] == [50.5, 150.5, 250.5]
    assert (d / "summary.json").exists()
