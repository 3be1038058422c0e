"""The model loss of ``mbpo_*`` / ``svg_*`` is chosen by the registered agent only
(``LossVariants.with_loss``): the agent's config records it but does not let it be set."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest

from vagram_bench import registry, run
from vagram_bench.agents.mbpo import MBPOAgent, MBPOConfig, MBPOMLEAgent, MBPOMSEAgent
from vagram_bench.agents.svg import SVGAgent, SVGConfig, SVGVaGraMAgent
from vagram_bench.cli import field_types
from vagram_bench.runner.policy import agent_config_from_record
from vagram_bench.runner.config import _to_jsonable

LOSSES = ("mse", "mle", "itervaml", "vagram")


@pytest.mark.parametrize("family", ["mbpo", "svg"])
@pytest.mark.parametrize("loss", LOSSES)
def test_each_registered_agent_fixes_its_loss(family, loss):
    cls = registry.load_agent(f"{family}_{loss}")
    cfg = cls.default_config("HopperDistract-5-v0")
    assert cfg.model_loss == loss and type(cfg) is cls.Config
    assert isinstance(cfg, MBPOConfig if family == "mbpo" else SVGConfig)
    assert "model_loss" not in field_types(cls.Config)  # no command-line setting
    with pytest.raises(TypeError):
        cls.Config(model_loss="mse")
    # dataclasses.replace (per-env defaults, capacity constraints) keeps the loss
    field = "hid_size" if family == "mbpo" else "num_seed_steps"
    assert dataclasses.replace(cfg, **{field: 8}).model_loss == loss


def test_with_loss_is_made_once_and_pickles_by_name():
    assert MBPOAgent.with_loss("mse") is MBPOMSEAgent
    assert SVGAgent.with_loss("vagram") is SVGVaGraMAgent
    assert pickle.loads(pickle.dumps(MBPOMSEAgent)) is MBPOMSEAgent
    cfg = MBPOMLEAgent.default_config("Hopper-v5")
    again = pickle.loads(pickle.dumps(cfg))
    assert type(again) is MBPOMLEAgent.Config and again == cfg


def test_the_recorded_loss_is_first_and_rebuilds_from_the_record():
    cfg = MBPOMLEAgent.default_config("HopperDistract-5-v0")
    record = json.loads(json.dumps(_to_jsonable(dataclasses.asdict(cfg))))
    assert list(record)[0] == "model_loss" and record["model_loss"] == "mle"
    assert agent_config_from_record(MBPOMLEAgent, "mbpo_mle", record) == cfg
    with pytest.raises(Exception, match="model_loss"):  # a record of another loss is not this agent's
        agent_config_from_record(MBPOMSEAgent, "mbpo_mse", record)


def test_a_user_subclass_keeps_the_loss_of_its_base():
    class MyMSE(MBPOMSEAgent):
        description = "mine"

        def update(self, env_step):  # an override: trains unbatched, as itself
            return super().update(env_step)

    assert MyMSE.default_config("Hopper-v5").model_loss == "mse"
    assert MyMSE.Config is MBPOMSEAgent.Config and MyMSE.unbatched_overrides == ("update",)


def _fails(capsys, argv):
    assert run.main(argv) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("agent, value, advice", [
    ("mbpo_mse", "mle", "use agent=mbpo_mle"),
    ("svg_vagram", "itervaml", "use agent=svg_itervaml"),
    ("mbpo_mse", "huber", "no installed agent has model_loss=huber"),
])
def test_setting_the_loss_names_the_agent_to_use(capsys, tmp_path, agent, value, advice):
    err = _fails(capsys, [f"agent={agent}", f"agent.model_loss={value}", "env=HopperDistract-5-v0",
                          f"out={tmp_path / 'runs'}"])
    assert f"agent.model_loss is not a setting: agent {agent!r} fixes it at" in err and advice in err
    assert not (tmp_path / "runs").exists()


def test_a_fixed_sac_field_is_not_a_setting(capsys, tmp_path):
    err = _fails(capsys, ["agent=sac", "agent.loss_impl=torchrl", f"out={tmp_path / 'runs'}"])
    assert "agent.loss_impl is not a setting: agent 'sac' fixes it at 'fused'" in err
