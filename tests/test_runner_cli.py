"""Command line of ``python -m vagram_bench.run``: both syntaxes, --help, list, protocols, bad input."""

from __future__ import annotations

import dataclasses
import re

import pytest

from vagram_bench import run
from vagram_bench.agents.sac import SACConfig
from vagram_bench.cli import to_tyro_form
from vagram_bench.envs import IDP_CAPACITY_SIZES, model_capacity
from vagram_bench.run import UsageError, normalize_argv, parse_args
from vagram_bench.runner.config import RunOptions


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["agent=sac", "seed=3"], ["--agent=sac", "--seed=3"]),
        (["agent.batch_size=512", "out=/tmp/a=b"], ["--agent.batch_size=512", "--out=/tmp/a=b"]),
        (["--env", "Hopper-v5", "--eval-every=5"], ["--env", "Hopper-v5", "--eval-every=5"]),
        (["list"], ["list"]),
        (["a b=c"], ["a b=c"]),  # not a key: passed through untouched
    ],
)
def test_normalize_argv(argv, expected):
    assert normalize_argv(argv) == expected


@pytest.mark.parametrize(
    "tokens,expected",
    [
        (["--quiet=true"], ["--quiet"]),
        (["--quiet=False"], ["--no-quiet"]),
        (["--agent.learn_alpha=no"], ["--agent.no-learn-alpha"]),
        (["--agent.learn-alpha=1"], ["--agent.learn-alpha"]),
        (["--seed=1"], ["--seed=1"]),
    ],
)
def test_bool_values_become_flags(tokens, expected):
    assert to_tyro_form(tokens, {"quiet", "agent.learn_alpha"}, set()) == expected


def test_bad_bool_value():
    with pytest.raises(UsageError, match="quiet: expected a boolean"):
        to_tyro_form(["--quiet=maybe"], {"quiet"}, set())


def test_key_value_and_tyro_syntax_give_the_same_config():
    hydra = parse_args(
        ["agent=sac", "env=HopperDistract-15-v0", "seed=3", "steps=20000", "eval_every=500",
         "agent.batch_size=512", "agent.learn_alpha=false", "quiet=true", "agent.target_entropy=-2"]
    )
    tyro_form = parse_args(
        ["--agent", "sac", "--env", "HopperDistract-15-v0", "--seed", "3", "--steps", "20000",
         "--eval-every", "500", "--agent.batch-size", "512", "--agent.no-learn-alpha", "--quiet",
         "--agent.target-entropy", "-2"]
    )
    mixed = parse_args(
        ["--agent=sac", "env=HopperDistract-15-v0", "--seed=3", "steps=20000", "--eval_every", "500",
         "agent.batch_size=512", "--agent.no-learn-alpha", "quiet=1", "agent.target_entropy=-2"]
    )
    assert hydra == tyro_form == mixed
    assert hydra.agent == "sac" and hydra.steps == 20000 and hydra.eval_every == 500 and hydra.quiet
    assert hydra.agent_config == dataclasses.replace(
        SACConfig(), batch_size=512, learn_alpha=False, target_entropy=-2.0
    )


def test_defaults_and_per_family_agent_defaults():
    cfg = parse_args(["env=InvertedPendulum-v5"])
    assert cfg.agent == "sac" and cfg.out == "runs" and cfg.protocol_info is None
    assert cfg.agent_config.learning_starts == 1000  # SACAgent.default_config for the family
    assert parse_args(["env=Hopper-v5"]).agent_config.learning_starts == SACConfig().learning_starts
    # An explicit value wins over the family default.
    assert parse_args(["env=InvertedPendulum-v5", "agent.learning_starts=7"]).agent_config.learning_starts == 7


def test_help_lists_every_field_with_its_docstring(capsys):
    assert run.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(RunOptions):
        assert f"--{field.name.replace('_', '-')}" in text
    assert "real env steps to train for" in text
    assert "--agent.batch-size" in text and "transitions per gradient step" in text
    assert "--agent NAME" in text and "(default: sac)" in text and "--list" in text


def test_help_for_a_plugin_agent_shows_its_fields(capsys):
    from vagram_bench import registry

    other = [n for n, i in registry.available_agents().items() if n != "sac"]
    if not other:
        pytest.skip("no second agent installed")
    name = other[0]
    assert run.main([f"agent={name}", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    fields = registry.load_agent(name).config_fields()
    assert all(f"--agent.{f.replace('_', '-')}" in text for f in fields)


def test_list_prints_agents_envs_and_protocols(capsys):
    assert run.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "agents:" in out and "envs:" in out and "protocols:" in out
    sac_line = next(line for line in out.splitlines() if line.strip().startswith("sac "))
    assert "Soft Actor-Critic" in sac_line
    assert "HopperDistract-15-v0" in out and "HopperCapacity-3x64-v0" in out
    try:
        from vagram_bench.protocol import list_protocols
    except ImportError:
        return
    for protocol in list_protocols():
        assert protocol.name in out


# ---------------------------------------------------------------------------------------------- bad input


def _fails(capsys, argv: list[str]) -> str:
    assert run.main(argv) == 2
    return capsys.readouterr().err


def test_unknown_agent_lists_close_matches(capsys):
    err = _fails(capsys, ["agent=sacc", "steps=10"])
    assert "unknown agent 'sacc'" in err and "did you mean sac" in err


def test_unknown_agent_far_from_everything_lists_all(capsys):
    err = _fails(capsys, ["--agent", "zzzzzz"])
    assert "available agents:" in err and "sac" in err


def test_unknown_env_lists_close_matches(capsys):
    err = _fails(capsys, ["env=HopperDistract-16-v0"])
    assert "unknown env 'HopperDistract-16-v0'" in err and "HopperDistract-15-v0" in err


def test_unknown_env_far_from_everything_lists_the_suite(capsys):
    err = _fails(capsys, ["env=qqq"])
    assert "unknown env 'qqq'" in err and "HopperDistract-0-v0" in err


@pytest.mark.parametrize(
    "argv,needle,suggestion",
    [
        (["agent.batch_sise=5"], "unknown field 'agent.batch_sise'", "agent.batch_size"),
        (["--agent.batch-sise", "5"], "unknown field 'agent.batch_sise'", "agent.batch_size"),
        (["step=5"], "unknown field 'step'", "steps"),
        (["--eval-evry", "5"], "unknown field 'eval_evry'", "eval_every"),
    ],
)
def test_unknown_field_suggests_the_closest(capsys, argv, needle, suggestion):
    err = _fails(capsys, argv)
    assert needle in err and f"did you mean {suggestion}" in err


def test_wrong_type_names_field_and_type(capsys):
    err = " ".join(_fails(capsys, ["steps=abc"]).split())
    assert "--steps" in err and "INT" in err and "abc" in err
    err = " ".join(_fails(capsys, ["agent.gamma=fast"]).split())
    assert "--agent.gamma" in err and "FLOAT" in err


def test_out_of_range_values(capsys):
    assert "steps must be a positive integer" in _fails(capsys, ["steps=0"])
    assert "seed must be >= 0, got -1" in _fails(capsys, ["seed=-1"])
    assert "eval_seed must be >= 0, got -5" in _fails(capsys, ["eval_seed=-5"])
    assert "agent.gamma must lie in [0, 1]" in _fails(capsys, ["agent.gamma=1.5"])


def test_a_negative_seed_is_refused_before_anything_is_created(tmp_path, capsys):
    assert run.main(["seed=-1", "steps=10", f"out={tmp_path / 'runs'}"]) == 2
    assert "seed must be >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _one_error_line(capsys, argv: list[str], out) -> str:
    assert run.main([*argv, "env=InvertedPendulum-v5", "steps=10", f"out={out}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not out.exists()  # refused before the run directory was made
    return lines[0]


@pytest.mark.parametrize("value,needle", [
    ("gpu", "device 'gpu' is not a torch device; did you mean cuda? devices here: cpu"),
    ("CPU", "device 'CPU' is not a torch device; did you mean cpu?"),
    ("cuda:x", "device 'cuda:x' is not a torch device"),
    ("mps", "device 'mps' is not available on this machine; devices here: cpu"),
])
def test_a_device_torch_cannot_use_is_refused_up_front(capsys, monkeypatch, tmp_path, value, needle):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert needle in _one_error_line(capsys, [f"device={value}"], tmp_path / "runs")


def test_cuda_on_a_cpu_only_torch_or_without_a_gpu_is_refused_up_front(capsys, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    line = _one_error_line(capsys, ["device=cuda"], tmp_path / "runs")
    assert f"device 'cuda' is not available: this torch ({torch.__version__}) is a CPU-only build" in line
    assert "use device=cpu, or install a CUDA build of torch" in line
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # a CUDA build on a machine without a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _one_error_line(capsys, ["device=cuda:0"], tmp_path / "runs")
    assert "device 'cuda:0' is not available: no CUDA GPU is visible to torch" in line
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU: cuda:1 does not exist
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    line = _one_error_line(capsys, ["device=cuda:1"], tmp_path / "runs")
    assert "device 'cuda:1' does not exist: 1 CUDA GPU(s) are visible; devices here: cpu, cuda, cuda:0" in line


# one capacity id per family: VaGraM's Hopper track and the CPU-sized InvertedDoublePendulum one
CAPACITY_IDS = ["HopperCapacity-3x64-v0", "InvertedDoublePendulumCapacity-{}x{}-v0".format(*IDP_CAPACITY_SIZES[0])]


@pytest.mark.parametrize("env_id,base_id", zip(CAPACITY_IDS, ["Hopper-v5", "InvertedDoublePendulum-v5"]))
def test_sac_runs_a_capacity_env_unconstrained(env_id, base_id):
    # The constraint bounds the dynamics model; sac has none, so its config is the base env's.
    constrained = parse_args(["agent=sac", f"env={env_id}"])
    plain = parse_args(["agent=sac", f"env={base_id}"])
    assert constrained.agent_config == plain.agent_config


def test_a_model_based_agent_without_the_capacity_hook_is_refused():
    from vagram_bench.agents.sac import SACAgent
    from vagram_bench.interfaces import AgentConfigError

    class ModelBasedWithoutHook(SACAgent):
        uses_dynamics_model = True

    config = SACAgent.Config()
    assert SACAgent.apply_model_capacity(config, {"num_layers": 2, "hid_size": 64}, set()) is config
    with pytest.raises(AgentConfigError, match=r"ModelBasedWithoutHook has a dynamics model but does not implement"):
        ModelBasedWithoutHook.apply_model_capacity(config, {"num_layers": 2, "hid_size": 64}, set())


@pytest.mark.parametrize("env_id", CAPACITY_IDS)
def test_an_explicit_model_size_against_a_capacity_env_is_refused(capsys, tmp_path, env_id):
    layers, width = (int(n) for n in re.search(r"-(\d+)x(\d+)-v0$", env_id).groups())  # read from the id itself
    out = f"out={tmp_path / 'runs'}"
    err = _fails(capsys, ["agent=mbpo_mse", f"env={env_id}", f"agent.hid_size={2 * width}", out])
    assert env_id in err and f"agent.hid_size={2 * width} conflicts" in err, err
    assert f"constraint hid_size={width}" in err, err
    assert not (tmp_path / "runs").exists()
    # the same value given explicitly is accepted
    cfg = parse_args(["agent=mbpo_mse", f"env={env_id}", f"agent.hid_size={width}"])
    assert (cfg.agent_config.num_layers, cfg.agent_config.hid_size) == (layers, width)


def _a_protocol():
    try:
        from vagram_bench.protocol import list_protocols
    except ImportError:
        pytest.skip("vagram_bench.protocol not available")
    protocols = [p for p in list_protocols() if p.agents is None or "sac" in p.agents]
    protocols = [p for p in protocols if any(model_capacity(t) is None for t in p.tasks)]
    if not protocols:
        pytest.skip("no protocol usable with sac")
    return protocols[0]


def test_protocol_fills_budget_and_is_recorded():
    p = _a_protocol()
    task = next(t for t in p.tasks if model_capacity(t) is None)
    cfg = parse_args(["agent=sac", f"env={task}", f"protocol={p.name}"])
    assert (cfg.steps, cfg.eval_every, cfg.eval_episodes, cfg.eval_seed) == (
        p.steps_for(task), p.eval_every, p.eval_episodes, p.eval_seed,
    )
    assert cfg.protocol_info == {"name": p.name, "version": p.version, "hash": p.content_hash}
    assert cfg.to_dict()["protocol"] == cfg.protocol_info


def test_protocol_conflicts_and_wrong_task(capsys):
    p = _a_protocol()
    task = next(t for t in p.tasks if model_capacity(t) is None)
    err = _fails(capsys, ["agent=sac", f"env={task}", f"protocol={p.name}", f"steps={p.steps_for(task) + 1}"])
    assert "conflicts with protocol" in err
    err = _fails(capsys, ["agent=sac", "env=InvertedPendulum-v5", f"protocol={p.name}"])
    assert "not a task of protocol" in err
    err = _fails(capsys, ["agent=sac", f"env={task}", "protocol=no-such-protocol"])
    assert "no-such-protocol" in err


def test_sequence_fields_take_comma_separated_values():
    assert to_tyro_form(["--agent.sched=1,2,3", "--seed=1"], set(), {"agent.sched"}) == [
        "--agent.sched", "1", "2", "3", "--seed=1",
    ]
    from vagram_bench import registry

    agent_cls = registry.load_agent("mbpo_vagram") if "mbpo_vagram" in registry.available_agents() else None
    if agent_cls is None or "rollout_schedule" not in agent_cls.config_fields():
        pytest.skip("mbpo_vagram with a rollout_schedule field not installed")
    a = parse_args(["agent=mbpo_vagram", "env=HopperDistract-10-v0", "agent.rollout_schedule=20,150,1,1"])
    b = parse_args(["--agent", "mbpo_vagram", "--env", "HopperDistract-10-v0", "--agent.rollout-schedule", "20", "150", "1", "1"])
    assert tuple(a.agent_config.rollout_schedule) == (20, 150, 1, 1) and a == b
    # the Hydra-style bracketed list is the same value
    c = parse_args(["agent=mbpo_vagram", "env=HopperDistract-10-v0", "agent.rollout_schedule=[20,150,1,1]"])
    assert c == b


def test_protocol_agents_are_a_default_set_not_a_whitelist(tmp_path):
    """``smoke`` lists sac and mbpo_mse; an agent outside that list still runs on its tasks, with the
    protocol's budget recorded."""
    import json
    import subprocess
    import sys

    from vagram_bench.protocol import load_protocol

    smoke = load_protocol("smoke")
    outside = "svg_mse"
    assert smoke.agents is not None and outside not in smoke.agents
    task = smoke.tasks[0]
    proc = subprocess.run(
        [sys.executable, "-m", "vagram_bench.run", f"agent={outside}", f"env={task}", "protocol=smoke",
         f"out={tmp_path}", "quiet=true", "seed=0"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((tmp_path / task / outside / "seed0" / "config.json").read_text())
    assert config["protocol"]["name"] == "smoke"
    assert config["steps"] == smoke.steps_for(task)


# ---------------------------------------------------------------------------------------------- one pre-pass


@pytest.mark.parametrize("value,expected", [("true", True), ("Yes", True), ("1", True), ("on", True),
                                            ("false", False), ("NO", False), ("0", False), ("off", False)])
def test_a_boolean_value_means_the_same_for_run_and_sweep(value, expected):
    """run and sweep share one pre-pass: the same spelling gives the same boolean, and tyro's own
    flag pair works for both."""
    import tyro

    from vagram_bench.cli import kv_to_tyro
    from vagram_bench.sweep import SweepConfig

    assert parse_args([f"quiet={value}"]).quiet is expected
    sweep = tyro.cli(SweepConfig, args=kv_to_tyro(["protocol=cpu", f"dry_run={value}"], SweepConfig))
    assert sweep.dry_run is expected
    flag = "--dry-run" if expected else "--no-dry-run"
    assert tyro.cli(SweepConfig, args=kv_to_tyro(["protocol=cpu", flag], SweepConfig)) == sweep


def test_a_bad_boolean_is_refused_the_same_way_by_run_and_sweep(capsys):
    from vagram_bench import sweep

    assert run.main(["quiet=maybe"]) == 2
    assert "quiet: expected a boolean (true/false), got 'maybe'" in capsys.readouterr().err
    assert sweep.main(["protocol=cpu", "dry_run=maybe"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "dry_run: expected a boolean (true/false), got 'maybe'" in err


def test_sequences_split_the_same_way_for_run_sweep_and_leaderboard():
    import tyro

    from vagram_bench.cli import kv_to_tyro
    from vagram_bench.leaderboard import LeaderboardConfig
    from vagram_bench.sweep import SweepConfig

    board = tyro.cli(LeaderboardConfig, args=kv_to_tyro(["runs", "protocol=cpu", "agents=[sac,mbpo_mse]"],
                                                         LeaderboardConfig))
    sweep = tyro.cli(SweepConfig, args=kv_to_tyro(["protocol=cpu", "agents=sac,mbpo_mse", "seeds=1,2"],
                                                  SweepConfig))
    assert board.agents == sweep.agents == ("sac", "mbpo_mse") and sweep.seeds == (1, 2)
    assert board.runs == "runs"  # positional arguments pass through


# ---------------------------------------------------------------------------------------------- env kwargs


def test_env_kwargs_in_both_spellings_are_parsed_and_recorded():
    kv = parse_args(["env=HopperDistract-v0", "env.distraction_dims=7", "env.reset_noise_scale=0.01"])
    tyro_form = parse_args(["--env", "HopperDistract-v0", "--env.distraction-dims", "7",
                            "--env.reset-noise-scale=0.01"])
    assert kv.env_kwargs == tyro_form.env_kwargs == {"distraction_dims": 7, "reset_noise_scale": 0.01}
    assert kv.to_dict()["env_kwargs"] == {"distraction_dims": 7, "reset_noise_scale": 0.01}
    assert parse_args(["env=Hopper-v5"]).to_dict()["env_kwargs"] == {}


@pytest.mark.parametrize("argv,needle", [
    # the id fixes d=15: the env's own ValueError, as a usage error
    (["env=HopperDistract-15-v0", "env.distraction_dims=7"], "fixes distraction_dims=15"),
    (["env=HopperDistract-v0", "env.distraction_dims=-1"], "must be a non-negative integer"),
    (["env=HopperDistract-v0", "env.no_such_kwarg=1"], "takes no keyword argument 'no_such_kwarg' (env.no_such_kwarg=1); its keyword arguments: "),
    (["env=HopperDistract-v0", "--env.distraction-dims", "--seed=1"], "env.distraction_dims needs a value"),
    (["env=HopperDistract-0-v0", "protocol=distraction", "env.distraction_dims=3"], "takes no env kwargs"),
])
def test_env_kwargs_an_env_refuses_are_usage_errors(tmp_path, capsys, argv, needle):
    err = _fails(capsys, [*argv, f"out={tmp_path / 'runs'}"])
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------- --help


def _help(capsys, monkeypatch, argv: list[str]) -> str:
    monkeypatch.setenv("COLUMNS", "400")  # rich does not wrap: each help text is one line
    assert run.main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def test_help_shows_the_defaults_a_run_on_that_env_uses(capsys, monkeypatch):
    import re

    from vagram_bench.protocol import load_protocol

    def default(text: str, option: str) -> str:
        return re.search(rf"{re.escape(option)} \S+\s.*?\(default: ([^)]*)\)", text, re.S).group(1)

    # capacity id: the ensemble's layers and width are the id's (3x64), the protocol's budget is shown
    text = _help(capsys, monkeypatch, ["agent=mbpo_mse", "env=HopperCapacity-3x64-v0", "protocol=capacity"])
    assert (default(text, "--agent.num-layers"), default(text, "--agent.hid-size")) == ("3", "64")
    assert default(text, "--steps") == str(load_protocol("capacity").steps_for("HopperCapacity-3x64-v0"))
    assert default(text, "--agent") == "mbpo_mse"
    # per-family defaults: sac learns after 1000 steps on the pendulums, 5000 elsewhere
    assert default(_help(capsys, monkeypatch, ["env=InvertedPendulum-v5"]), "--agent.learning-starts") == "1000"
    assert default(_help(capsys, monkeypatch, ["env=Hopper-v5"]), "--agent.learning-starts") == "5000"


def test_help_text_is_plain_and_lists_agent_and_list_in_the_options_box(capsys, monkeypatch):
    import re

    from vagram_bench import registry

    for name in registry.available_agents():
        text = _help(capsys, monkeypatch, [f"agent={name}"])
        assert "``" not in text and not re.search(r":[a-z]+:`", text), name  # no raw reST
    text = _help(capsys, monkeypatch, ["agent=sac"])
    # RunOptions.threads' docstring spans three source lines: shown as one sentence run
    assert "One suits small nets and sweeps (one process per core); wide nets gain from more:" in text
    # the options box (at this width tyro may draw the agent's box beside it, so read it line by line)
    box = "\n".join(line.split("││")[0] for line in text.split("usage:", 1)[1].splitlines())
    assert re.search(r"--agent NAME\s+the agent plugin", box) and re.search(r"--list\s+print the installed", box)
    assert "`python -m vagram_bench.run list`" in box
    assert run.main(["--list"]) == 0 and "agents:" in capsys.readouterr().out


def test_list_sorts_ids_naturally(capsys):
    assert run.main(["list"]) == 0
    out = capsys.readouterr().out
    envs = " ".join(out.split("envs:", 1)[1].split("protocols:", 1)[0].split()).split(", ")
    hopper = [e for e in envs if e.startswith("HopperDistract-")]
    assert hopper == [f"HopperDistract-{d}-v0" for d in (0, 5, 10, 15, 20)] + ["HopperDistract-v0"]


@pytest.mark.parametrize("argv,field,expected", [
    (["steps=1e3"], "steps", 1000),
    (["--steps", "2.5e3"], "steps", 2500),
    (["eval_every=1000.0"], "eval_every", 1000),
    (["seed=0,1e1"], "seeds", (0, 10)),
])
def test_an_exact_integer_in_another_notation_is_an_int(argv, field, expected):
    assert getattr(parse_args(["env=InvertedPendulum-v5", *argv]), field) == expected
    cfg = parse_args(["agent=mbpo_mse", "env=InvertedPendulum-v5", "agent.rollout_schedule=1,1e2,1,2e1"])
    assert cfg.agent_config.rollout_schedule == (1, 100, 1, 20)


@pytest.mark.parametrize("argv,needle", [
    (["steps=abc"], "error: --steps expects an integer (INT), got 'abc'"),
    (["steps=1.5e0"], "error: --steps expects an integer (INT), got '1.5e0'"),
    (["agent.gamma=fast"], "error: --agent.gamma expects a number (FLOAT), got 'fast'"),
    (["seed=0,x"], "error: --seed expects [INT [INT ...]], got '0 x'"),
    (["agent.init=orthogonl"],
     "error: --agent.init: invalid choice 'orthogonl'; did you mean orthogonal? valid choices: torch_default, orthogonal"),
    # recorded in config.json, but no setting (the fused losses are the only ones)
    (["agent.loss_impl=torchrl"], "error: agent.loss_impl is not a setting"),
    (["out="], "error: out must name a directory, got ''"),
    (["env=HopperDistract-v0", "env.distraction_dim=7"],
     "error: env 'HopperDistract-v0' takes no keyword argument 'distraction_dim' (env.distraction_dim=7); did you "
     "mean env.distraction_dims"),
])
def test_bad_values_are_one_line_errors_naming_value_and_choices(capsys, monkeypatch, tmp_path, argv, needle):
    monkeypatch.chdir(tmp_path)  # out= must not write into the current directory
    assert run.main(["env=InvertedPendulum-v5", "steps=10", *argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(needle), lines
    assert not any(tmp_path.iterdir())


def test_error_status_is_2_for_bad_input_and_1_for_a_failed_run(capsys):
    from vagram_bench.cli import UsageError, error_status
    from vagram_bench.records import CheckpointError
    from vagram_bench.runner.policy import PolicyError
    from vagram_bench.runner.rundir import RunError

    cases = [(UsageError("bad seed 'x'"), 2), (PolicyError("no policy.pt"), 2), (RunError("occupied", usage=True), 2),
             (RunError("non-finite loss"), 1), (CheckpointError("truncated checkpoint"), 1)]
    for exc, status in cases:
        assert error_status(exc) == status
        assert capsys.readouterr().err == f"error: {exc}\n"


@pytest.mark.parametrize("module", ["vagram_bench.cli", "vagram_bench.optim"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_the_error_line_example_names_a_real_option():
    # tyro_error_line's docstring example is an --agent.init box: the option and its choices must exist
    import typing

    from vagram_bench.cli import field_types, tyro_error_line

    assert "'--agent.init'" in tyro_error_line.__doc__
    assert typing.get_args(field_types(SACConfig)["init"]) == ("torch_default", "orthogonal")
