"""Subclassing a built-in agent: ``sac`` and ``mbpo_*`` train through a batched population that
never calls the single agent's methods, so a subclass overriding ``act``/``update``/``__init__`` must
be trained as separate agents running its own methods, and a subclass whose new methods nothing
would call must be refused (exit 2). The subclasses are registered as a third party registers them
(a package plus ``*.dist-info/entry_points.txt`` on a temporary path) and run through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vagram_bench.records import read_csv

PLUGIN_SOURCE = '''
from vagram_bench.agents.mbpo import MBPOMSEAgent
from vagram_bench.agents.sac import SACAgent


class CountingSAC(SACAgent):
    description = "sac whose update also reports its env step (test plugin)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset = 0.5

    def update(self, env_step):
        return {**super().update(env_step), "subclass_env_step": env_step + self.offset}


class RaisingSAC(SACAgent):
    description = "sac whose act raises (test plugin)"

    def act(self, obs, deterministic):
        raise RuntimeError("RaisingSAC.act was called")


class RaisingMBPO(MBPOMSEAgent):
    description = "mbpo_mse whose update raises (test plugin)"

    def update(self, env_step):
        raise FloatingPointError("RaisingMBPO.update was called")


class LossSAC(SACAgent):
    description = "sac with a loss method nothing calls (test plugin)"

    def critic_loss(self, batch):
        return 0.0
'''

ENTRY_POINTS = """
[vagram_bench.agents]
counting_sac = subclass_plugin:CountingSAC
raising_sac = subclass_plugin:RaisingSAC
raising_mbpo = subclass_plugin:RaisingMBPO
loss_sac = subclass_plugin:LossSAC
"""

TINY = ["env=InvertedPendulum-v5", "eval_episodes=2", "log_every=100", "quiet=true"]
SAC_TINY = ["steps=300", "eval_every=100", "agent.learning_starts=100", "agent.batch_size=32",
            "agent.hidden_size=32"]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict:
    site = tmp_path_factory.mktemp("site")
    (site / "subclass_plugin").mkdir()
    (site / "subclass_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist_info = site / "subclass_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: subclass-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS.lstrip())
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vagram_bench.run", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def _without_wall(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


def test_an_overridden_update_is_honoured_and_the_numbers_stay_the_baselines(plugin_env, tmp_path):
    out = tmp_path / "runs"
    sub = _run(plugin_env, "agent=counting_sac", "seed=0,1", *TINY, *SAC_TINY, f"out={out}")
    assert sub.returncode == 0, sub.stderr[-3000:]
    assert "note: CountingSAC overrides __init__, update of SACAgent, so its 2 seeds run as separate" in sub.stderr
    base = _run(plugin_env, "agent=sac", "seed=0,1", *TINY, *SAC_TINY, f"out={out}")
    assert base.returncode == 0, base.stderr[-3000:]
    for seed in (0, 1):
        mine = out / "InvertedPendulum-v5" / "counting_sac" / f"seed{seed}"
        theirs = out / "InvertedPendulum-v5" / "sac" / f"seed{seed}"
        # the subclass's own update ran: its metric is in train.csv (the mean of env_step + 0.5
        # over each 100-step window, 50.5 + 0.5, ...)
        rows = read_csv(mine / "train.csv")
        assert [float(r["subclass_env_step"]) for r in rows] == [51.0, 151.0, 251.0]
        # and calling super() gave exactly the baseline's numbers, member by member
        assert [{k: v for k, v in r.items() if k != "subclass_env_step"} for r in rows] == read_csv(theirs / "train.csv")
        assert _without_wall(read_csv(mine / "eval.csv")) == _without_wall(read_csv(theirs / "eval.csv"))


def test_an_act_that_raises_stops_the_sac_subclass(plugin_env, tmp_path):
    proc = _run(plugin_env, "agent=raising_sac", *TINY, *SAC_TINY, f"out={tmp_path}")
    assert proc.returncode == 1
    assert "RaisingSAC.act was called" in proc.stderr


def test_an_update_that_raises_stops_the_mbpo_subclass(plugin_env, tmp_path):
    proc = _run(plugin_env, "agent=raising_mbpo", "steps=50", "eval_every=50", *TINY, f"out={tmp_path}")
    assert proc.returncode == 1
    assert "RaisingMBPO.update was called" in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "InvertedPendulum-v5" / "raising_mbpo" / "seed0" / "summary.json").exists()


def test_a_method_nothing_calls_is_refused_up_front(plugin_env, tmp_path):
    out = tmp_path / "runs"
    proc = _run(plugin_env, "agent=loss_sac", *TINY, *SAC_TINY, f"out={out}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: agent 'loss_sac'"), proc.stderr
    assert "LossSAC defines critic_loss(), which nothing calls" in lines[0]
    assert "override act/observe/update" in lines[0] and "make_population" in lines[0]
    assert not out.exists()
    listing = _run(plugin_env, "list")
    assert listing.returncode == 0
    assert any(line.split()[:2] == ["loss_sac", "BROKEN:"] for line in listing.stdout.splitlines())
    assert any(line.split()[:1] == ["counting_sac"] and "BROKEN" not in line for line in listing.stdout.splitlines())
