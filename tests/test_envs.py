"""Registry, helpers, gymnasium/TorchRL checkers, documentation and bad input of the env suite."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import check_env

import vagram_bench
from vagram_bench import envs as E
from vagram_bench.envs.distraction import DistractionEnv

REPO = Path(__file__).resolve().parents[1]
FAMILY_NAMES = (
    "Hopper", "Walker2d", "HalfCheetah", "AntTruncated", "HumanoidTruncated", "InvertedPendulum", "InvertedDoublePendulum"
)
DMC_NAMES = ("DMCHopperHop", "DMCCheetahRun", "DMCWalkerWalk", "DMCHumanoidWalk")
# The InvertedDoublePendulum capacity ids, written out from the constant that sets their sizes (it may change).
IDP_CAPACITY_IDS = [f"InvertedDoublePendulumCapacity-{layers}x{width}-v0" for layers, width in E.IDP_CAPACITY_SIZES]
IP_CAPACITY_IDS = [f"InvertedPendulumCapacity-{layers}x{width}-v0" for layers, width in E.IP_CAPACITY_SIZES]
# The small capacity families: (id prefix, base env, base obs dims, action bound from gymnasium's v5 doc tables,
# (layers, width) pairs of the constant that sets them).
SMALL_CAPACITY = [
    ("InvertedPendulumCapacity", "InvertedPendulum-v5", 4, 3.0, E.IP_CAPACITY_SIZES),
    ("InvertedDoublePendulumCapacity", "InvertedDoublePendulum-v5", 9, 1.0, E.IDP_CAPACITY_SIZES),
]
SMALL_CAPACITY_CASES = [(name, base, dim, bound, layers, width)
                        for name, base, dim, bound, sizes in SMALL_CAPACITY for layers, width in sizes]

# gymnasium's checker warns about the +-inf bounds of every MuJoCo observation space (Hopper-v5 included).
pytestmark = pytest.mark.filterwarnings("ignore:.*infinity:UserWarning")


def _expected_ids() -> list[str]:
    """The id list of the issue / preamble, written out independently of the registry code."""
    ids = ["AntTruncatedObs-v0", "HumanoidTruncatedObs-v0"]
    ids += [f"HopperCapacity-{n}x64-v0" for n in (2, 3, 4)] + IDP_CAPACITY_IDS
    ids += [f"InvertedPendulumCapacity-2x{w}-v0" for w in (8, 16, 32, 64)]
    ids += [f"{name}-v0" for name in DMC_NAMES]
    for name in FAMILY_NAMES + DMC_NAMES:
        ids += [f"{name}Distract-{d}-v0" for d in (0, 5, 10, 15, 20)] + [f"{name}Distract-v0"]
    return sorted(ids)


def test_registered_ids_are_exactly_the_suite():
    assert E.registered_ids() == _expected_ids()
    for env_id in E.registered_ids():
        spec = gym.spec(env_id)
        assert spec.max_episode_steps == 1000, env_id


def test_import_is_light():
    code = "import sys, vagram_bench; print(sorted(m for m in ('torch', 'mujoco', 'dm_control', 'torchrl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "form",
    [
        "import gymnasium as gym; import vagram_bench; env = gym.make('HopperDistract-15-v0')",
        "import gymnasium as gym; env = gym.make('vagram_bench:HopperDistract-15-v0')",
        "import gymnasium as gym; import vagram_bench; gym.register_envs(vagram_bench); env = gym.make('HopperDistract-15-v0')",
    ],
    ids=["import", "module-prefix", "register_envs"],
)
def test_fresh_interpreter_can_make(form, tmp_path):
    code = form + "; obs, _ = env.reset(seed=0); assert obs.shape == (26,), obs.shape; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env_id,family,dim",
    [
        ("Hopper-v5", "hopper", 11),
        ("HopperDistract-15-v0", "hopper", 11),
        ("HopperDistract-v0", "hopper", 11),
        ("HopperCapacity-2x64-v0", "hopper", 11),
        ("Walker2dDistract-5-v0", "walker2d", 17),
        ("HalfCheetahDistract-20-v0", "halfcheetah", 17),
        ("Ant-v5", "ant", 105),
        ("AntTruncatedObs-v0", "ant", 27),
        ("AntTruncatedDistract-10-v0", "ant", 27),
        ("Humanoid-v5", "humanoid", 348),
        ("HumanoidTruncatedObs-v0", "humanoid", 45),
        ("HumanoidTruncatedDistract-0-v0", "humanoid", 45),
        ("InvertedPendulum-v5", "inverted_pendulum", 4),
        ("InvertedPendulumDistract-0-v0", "inverted_pendulum", 4),
        ("InvertedPendulumDistract-20-v0", "inverted_pendulum", 4),
        ("InvertedPendulumDistract-v0", "inverted_pendulum", 4),
        *[(env_id, "inverted_pendulum", 4) for env_id in IP_CAPACITY_IDS],
        ("InvertedDoublePendulum-v5", "inverted_double_pendulum", 9),
        ("InvertedDoublePendulumDistract-0-v0", "inverted_double_pendulum", 9),
        ("InvertedDoublePendulumDistract-20-v0", "inverted_double_pendulum", 9),
        ("InvertedDoublePendulumDistract-v0", "inverted_double_pendulum", 9),
        *[(env_id, "inverted_double_pendulum", 9) for env_id in IDP_CAPACITY_IDS],
        ("DMCHopperHop-v0", "dmc_hopper_hop", 15),
        ("DMCCheetahRunDistract-15-v0", "dmc_cheetah_run", 17),
        ("DMCWalkerWalkDistract-v0", "dmc_walker_walk", 24),
        ("DMCHumanoidWalkDistract-5-v0", "dmc_humanoid_walk", 67),
        ("vagram_bench:HopperDistract-15-v0", "hopper", 11),
    ],
)
def test_env_family_and_base_obs_dim(env_id, family, dim):
    assert E.env_family(env_id) == family
    assert E.base_obs_dim(env_id) == dim


def test_env_family_other_and_unknown():
    assert E.env_family("CartPole-v1") == "other"
    assert E.base_obs_dim("CartPole-v1") == 4  # read from the made env
    with pytest.raises(ValueError, match="NotAnEnv-v3"):
        E.env_family("NotAnEnv-v3")
    with pytest.raises(ValueError, match="NotAnEnv-v3"):
        E.model_capacity("NotAnEnv-v3")
    with pytest.raises(ValueError, match="CartPole-v1.*valid choices"):
        E.termination_fn("CartPole-v1")


@pytest.mark.parametrize(
    "env_id, variant",
    [
        ("Hopper-v5", "plain"),
        ("InvertedPendulum-v5", "plain"),
        ("DMCHopperHop-v0", "plain"),
        ("AntTruncatedObs-v0", "plain"),
        ("CartPole-v1", "plain"),
        ("HopperDistract-0-v0", "distraction"),
        ("HopperDistract-15-v0", "distraction"),
        ("HopperDistract-v0", "distraction"),
        ("InvertedPendulumDistract-0-v0", "distraction"),
        ("InvertedPendulumDistract-v0", "distraction"),
        ("InvertedDoublePendulum-v5", "plain"),
        ("InvertedDoublePendulumDistract-0-v0", "distraction"),
        ("InvertedDoublePendulumDistract-v0", "distraction"),
        ("vagram_bench:DMCCheetahRunDistract-5-v0", "distraction"),
        ("HopperCapacity-2x64-v0", "capacity"),
        ("HopperCapacity-4x64-v0", "capacity"),
        *[(env_id, "capacity") for env_id in IDP_CAPACITY_IDS + IP_CAPACITY_IDS],
    ],
)
def test_env_variant(env_id, variant):
    assert E.env_variant(env_id) == variant
    assert variant in E.VARIANTS


def test_env_variant_unknown_id():
    with pytest.raises(ValueError, match="NotAnEnv-v3"):
        E.env_variant("NotAnEnv-v3")


@pytest.mark.parametrize("layers", [2, 3, 4])
def test_model_capacity(layers):
    env_id = f"HopperCapacity-{layers}x64-v0"
    expected = {"num_layers": layers, "hid_size": 64}
    assert gym.spec(env_id).kwargs["model_capacity"] == expected
    assert E.model_capacity(env_id) == expected
    env = gym.make(env_id)
    assert E.model_capacity(env) == expected
    assert env.unwrapped.model_capacity == expected
    # The env itself is plain Hopper-v5: same trajectories (independent check by gymnasium).
    from gymnasium.utils.env_match import check_environments_match

    check_environments_match(env, gym.make("Hopper-v5"), num_steps=50, seed=layers)
    assert E.model_capacity("Hopper-v5") is None
    assert E.model_capacity("HopperDistract-15-v0") is None
    assert E.model_capacity(gym.make("HopperDistract-5-v0")) is None


@pytest.mark.parametrize("name,base,dim,bound,layers,width", SMALL_CAPACITY_CASES)
def test_small_capacity_families_model_capacity(name, base, dim, bound, layers, width):
    env_id = f"{name}-{layers}x{width}-v0"
    expected = {"num_layers": layers, "hid_size": width}
    assert gym.spec(env_id).kwargs["model_capacity"] == expected
    assert E.model_capacity(env_id) == E.model_capacity(f"vagram_bench:{env_id}") == expected
    assert E.env_info(env_id).capacity == expected and E.env_info(env_id).base_env == base
    _check(env_id, action_bound=bound)  # gymnasium's check_env on the unwrapped env, base bounds, float64 dims
    env = gym.make(env_id)
    assert E.model_capacity(env) == env.unwrapped.model_capacity == expected
    assert env.observation_space.shape == (dim,) and env.action_space.shape == (1,)
    # The env itself is the plain base env: same trajectories (independent check by gymnasium).
    from gymnasium.utils.env_match import check_environments_match

    check_environments_match(env, gym.make(base), num_steps=50, seed=layers + width)


@pytest.mark.parametrize("env_id", ["HopperCapacity-3x64-v0", IDP_CAPACITY_IDS[0], IP_CAPACITY_IDS[0]])
def test_capacity_env_pickles_with_its_constraint(env_id):
    import pickle

    env = gym.make(env_id).unwrapped
    copy = pickle.loads(pickle.dumps(env))
    assert type(copy) is type(env) and copy.model_capacity == env.model_capacity == E.model_capacity(env_id)
    obs, _ = copy.reset(seed=3)
    np.testing.assert_array_equal(obs, env.reset(seed=3)[0])


@pytest.mark.parametrize("env_id", ["HopperCapacity-2x64-v0", IDP_CAPACITY_IDS[0], IP_CAPACITY_IDS[0]])
@pytest.mark.parametrize(
    "bad,match",
    [
        ({"num_layers": 0, "hid_size": 64}, "num_layers.*0"),
        ({"num_layers": 2, "hid_size": -64}, "hid_size.*-64"),
        ({"num_layers": 2.5, "hid_size": 64}, "num_layers.*2.5"),
        ({"num_layers": 2}, "num_layers.*hid_size"),
    ],
)
def test_capacity_bad_input(env_id, bad, match):
    with pytest.raises(ValueError, match=match):
        gym.make(env_id, model_capacity=bad)


@pytest.mark.parametrize("bad", [-1, -15, 2.5, "15", True, None])
def test_distraction_dims_bad_input(bad):
    with pytest.raises(ValueError, match=r"distraction_dims must be a non-negative integer.*got " + re.escape(repr(bad))):
        gym.make("HopperDistract-v0", distraction_dims=bad)


def test_unknown_base_env():
    with pytest.raises(ValueError, match=r"'Nope-v0'.*valid choices.*Hopper-v5"):
        DistractionEnv("Nope-v0", distraction_dims=3)
    with pytest.raises(ValueError, match=r"FrozenLake-v1.*Discrete.*valid choices"):
        DistractionEnv("FrozenLake-v1", distraction_dims=3)
    with pytest.raises(ValueError, match="distractor_seed.*'abc'"):
        DistractionEnv("Hopper-v5", distraction_dims=3, distractor_seed="abc")


def test_generic_distraction_of_any_base_env():
    env = DistractionEnv("InvertedPendulum-v5", distraction_dims=4)
    assert env.observation_space.shape == (8,)
    check_env(env, skip_render_check=True)


# ---------------------------------------------------------------------------------------------------------------
# gymnasium check_env and TorchRL check_env_specs
# ---------------------------------------------------------------------------------------------------------------
DEFAULT_CHECK_IDS = [
    "HopperDistract-15-v0",
    "Walker2dDistract-20-v0",
    "HalfCheetahDistract-0-v0",
    "AntTruncatedObs-v0",
    "HumanoidTruncatedObs-v0",
    "HumanoidTruncatedDistract-5-v0",
    "HopperCapacity-3x64-v0",
    "DMCCheetahRun-v0",
    "DMCWalkerWalkDistract-15-v0",
]


def _check(env_id: str, action_bound: float = 1.0, **kwargs) -> None:
    """gymnasium's ``check_env`` plus the suite's shape and dtype rules; actions in ``[-action_bound, action_bound]``
    (1 for every id but the InvertedPendulum ones, which keep ``InvertedPendulum-v5``'s force range of 3)."""
    env = gym.make(env_id, **kwargs)
    try:
        with warnings.catch_warnings():
            # gymnasium recommends [-1, 1] action boxes; the InvertedPendulum ids keep their base env's [-3, 3].
            warnings.filterwarnings("ignore", message=".*symmetric and normalized space", category=UserWarning)
            check_env(env.unwrapped, skip_render_check=True)  # rendering needs a GL context (MUJOCO_GL=egl)
        d = env.unwrapped.distraction_dims if isinstance(env.unwrapped, DistractionEnv) else 0
        assert env.observation_space.shape == (E.base_obs_dim(env_id) + d,)
        assert env.observation_space.dtype == np.float64
        assert env.unwrapped.observation_space == env.observation_space
        assert np.all(env.action_space.low == -action_bound) and np.all(env.action_space.high == action_bound)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", DEFAULT_CHECK_IDS)
def test_check_env_subset(env_id):
    _check(env_id)


def test_check_env_parametric():
    _check("HopperDistract-v0", distraction_dims=7)
    _check("HopperDistract-v0", distraction_dims=15, pure_noise=True)


# The InvertedPendulum and InvertedDoublePendulum families are cheap (~20 us per step), so every id is checked in
# the default suite. (family, base env, base obs dims from gymnasium's v5 doc tables, action bound from the same)
PENDULUM_FAMILIES = [
    ("InvertedPendulumDistract", "InvertedPendulum-v5", 4, 3.0),
    ("InvertedDoublePendulumDistract", "InvertedDoublePendulum-v5", 9, 1.0),
]
PENDULUM_IDS = [(f"{name}-{d}-v0", base, n, bound) for name, base, n, bound in PENDULUM_FAMILIES
                for d in (0, 5, 10, 15, 20)] + [(f"{name}-v0", base, n, bound) for name, base, n, bound in PENDULUM_FAMILIES]


@pytest.mark.parametrize("env_id,base,n,bound", PENDULUM_IDS, ids=[c[0] for c in PENDULUM_IDS])
def test_check_env_pendulum_families(env_id, base, n, bound):
    _check(env_id, action_bound=bound)
    # n base dims + d; the parametric id defaults to d = 10
    d = 10 if env_id.endswith("Distract-v0") else int(env_id.split("-")[1])
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (n + d,)
    assert env.action_space.shape == (1,)
    base_obs, _ = gym.make(base).reset(seed=0)
    np.testing.assert_array_equal(obs[:n], base_obs)
    assert env.unwrapped.observation_structure["distractors"] == d


def test_pendulum_families_get_the_family_agent_defaults():
    """The distraction ids map to the ``inverted_pendulum`` / ``inverted_double_pendulum`` families, so the agents'
    per-family defaults apply. Expected values are written out: mbrl-lib v0.2.0's ``mbpo_inv_pendulum.yaml``
    (temperature learned from log alpha = 0) with the suite's 500 exploration steps (docs/mbpo.md) and the SAC
    family defaults of docs/ (``learning_starts=1000``, lrs 1e-3, alpha 0.2)."""
    assert E.env_family("InvertedPendulumDistract-15-v0") == "inverted_pendulum"
    for env_id in ("InvertedDoublePendulumDistract-15-v0", "InvertedPendulumDistract-15-v0"):
        _assert_pendulum_family_defaults(env_id)


def _assert_pendulum_family_defaults(env_id):
    from vagram_bench.registry import load_agent

    mbpo = load_agent("mbpo_mse").default_config(env_id)
    assert (mbpo.initial_exploration_steps, mbpo.epoch_length, mbpo.rollout_schedule) == (500, 250, (1, 15, 1, 1))
    assert (mbpo.num_sac_updates_per_step, mbpo.sac_hidden_size, mbpo.sac_init_alpha) == (10, 256, 1.0)
    assert (mbpo.sac_learnable_alpha, mbpo.sac_target_entropy, mbpo.model_wd) == (True, -1.0, 1e-5)
    sac = load_agent("sac").default_config(env_id)
    assert (sac.learning_starts, sac.init_alpha, sac.actor_lr, sac.critic_lr) == (1000, 0.2, 1e-3, 1e-3)
    # SVG has no entry for either pendulum family: the distraction ids get exactly the base env's defaults, which
    # are SVG's generic ones
    svg = load_agent("svg_mse")
    assert svg.default_config(env_id) == svg.default_config(E.env_info(env_id).base_env)
    assert svg.default_config(env_id) == svg.default_config("CartPole-v1")  # family "other": no family entry


@pytest.mark.parametrize("name,base,dim,bound,layers,width", SMALL_CAPACITY_CASES)
def test_small_capacity_ids_get_the_family_defaults_and_the_id_model_size(name, base, dim, bound, layers, width):
    """A capacity id resolves to the base env's MBPO config with only the model's layers and width replaced: the
    family has no capacity-specific override (docs/mbpo.md)."""
    import dataclasses

    from vagram_bench.registry import load_agent
    from vagram_bench.run import parse_args

    env_id = f"{name}-{layers}x{width}-v0"
    mbpo = load_agent("mbpo_mse")
    base_config = mbpo.default_config(base)
    assert (base_config.num_layers, base_config.hid_size) == (4, 200)  # the default model the capacity ids shrink
    assert mbpo.default_config(env_id) == base_config
    resolved = parse_args(["agent=mbpo_mse", f"env={env_id}"]).agent_config
    assert resolved == dataclasses.replace(base_config, num_layers=layers, hid_size=width)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", E.registered_ids())
def test_check_env_all(env_id):
    # InvertedPendulum-v5's force range is [-3, 3] (gymnasium's doc table); every other id acts in [-1, 1]
    _check(env_id, action_bound=3.0 if env_id.startswith("InvertedPendulum") else 1.0)


def test_torchrl_check_env_specs():
    from torchrl.envs import GymEnv, check_env_specs

    env = GymEnv("HopperDistract-15-v0")
    check_env_specs(env, seed=0)
    td = env.rollout(5)
    assert td["observation"].shape == (5, 26)


# ---------------------------------------------------------------------------------------------------------------
# documentation
# ---------------------------------------------------------------------------------------------------------------
def _docs_table_block() -> str:
    text = (REPO / "docs" / "envs.md").read_text()
    m = re.search(r"<!-- env-table:start -->\n(.*?)\n?<!-- env-table:end -->", text, re.S)
    assert m, "docs/envs.md lacks the env-table markers"
    return m.group(1).strip()


def test_docs_env_table_matches_registry():
    assert _docs_table_block() == E.markdown_table().strip(), (
        "docs/envs.md's env table is stale: regenerate it with `python -m vagram_bench.envs --write-table docs/envs.md`"
    )


def test_markdown_table_rows():
    lines = E.markdown_table().splitlines()
    assert len(lines) == 2 + len(E.registered_ids())
    row = next(line for line in lines if line.startswith("| `HopperDistract-15-v0`"))
    assert row == "| `HopperDistract-15-v0` | `Hopper-v5` | 26 | 3 | 15 | — | 1000 |"
    row = next(line for line in lines if line.startswith("| `HopperCapacity-3x64-v0`"))
    assert "3×64" in row
    for (layers, width), env_id in zip(E.IDP_CAPACITY_SIZES, IDP_CAPACITY_IDS):
        row = next(line for line in lines if line.startswith(f"| `{env_id}`"))
        assert row == f"| `{env_id}` | `InvertedDoublePendulum-v5` | 9 | 1 | — | {layers}×{width} | 1000 |"
    for (layers, width), env_id in zip(E.IP_CAPACITY_SIZES, IP_CAPACITY_IDS):
        row = next(line for line in lines if line.startswith(f"| `{env_id}`"))
        assert row == f"| `{env_id}` | `InvertedPendulum-v5` | 4 | 1 | — | {layers}×{width} | 1000 |"
    row = next(line for line in lines if line.startswith("| `InvertedPendulumDistract-15-v0`"))
    assert row == "| `InvertedPendulumDistract-15-v0` | `InvertedPendulum-v5` | 19 | 1 | 15 | — | 1000 |"


@pytest.mark.parametrize("name,ids", [("InvertedDoublePendulumCapacity", IDP_CAPACITY_IDS),
                                      ("InvertedPendulumCapacity", IP_CAPACITY_IDS)])
def test_docs_list_exactly_the_registered_small_capacity_ids(name, ids):
    """``docs/envs.md`` is the one hand-written list of the ``InvertedDoublePendulumCapacity`` and
    ``InvertedPendulumCapacity`` ids: it must follow ``IDP_CAPACITY_SIZES`` / ``IP_CAPACITY_SIZES`` when the sizes
    change (the generated table is checked above)."""
    listed = re.findall(rf"\b{name}-\d+x\d+-v0", (REPO / "docs" / "envs.md").read_text())
    assert sorted(set(listed)) == sorted(ids)


@pytest.mark.parametrize("env_id", sorted({gym.spec(i).entry_point for i in E.registered_ids()}))
def test_class_docstring_is_a_doc_page(env_id):
    cls = load_env_creator(env_id)
    doc = inspect.getdoc(cls) or ""
    for section in ("## Description", "## Observation Space", "## Episode End", "## Arguments", "## Version History"):
        assert section in doc, f"{cls.__name__} docstring lacks {section}"


def test_docs_page_mentions_every_family():
    text = (REPO / "docs" / "envs.md").read_text()
    for name in FAMILY_NAMES + DMC_NAMES:
        assert f"{name}Distract" in text
    for needle in ("gym.register_envs(vagram_bench)", "vagram_bench:", "termination_fn", "model_capacity"):
        assert needle in text


def test_python_m_envs_prints_and_writes_table(tmp_path, capsys):
    from vagram_bench.envs.__main__ import main

    assert main([]) == 0
    assert capsys.readouterr().out.strip() == E.markdown_table()
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- env-table:start -->\nstale\n<!-- env-table:end -->\n\ntail\n")
    assert main(["--write-table", str(readme)]) == 0
    text = readme.read_text()
    assert "stale" not in text and text.endswith("<!-- env-table:end -->\n\ntail\n")
    assert E.markdown_table() in text


def test_make_vec():
    envs = gym.make_vec("HopperDistract-5-v0", num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=[0, 1])
    assert obs.shape == (2, 16)
    assert not np.array_equal(obs[0], obs[1])
    obs, rew, term, trunc, _ = envs.step(envs.action_space.sample())
    assert obs.shape == (2, 16) and rew.shape == (2,)
    envs.close()


def _gl_backend() -> str | None:
    """A MUJOCO_GL backend that can render in a subprocess here, or None (headless CI without EGL/OSMesa)."""
    for backend in ("egl", "osmesa"):
        code = "import mujoco, numpy; m = mujoco.MjModel.from_xml_string('<mujoco/>'); r = mujoco.Renderer(m, 8, 8); r.render()"
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        if subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0:
            return backend
    return None


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["HopperDistract-15-v0", "DMCCheetahRunDistract-5-v0", "HumanoidTruncatedObs-v0"])
def test_render_rgb_array(env_id, tmp_path):
    backend = _gl_backend()
    if backend is None:
        pytest.skip("no headless OpenGL backend (EGL / OSMesa) available on this machine")
    code = (
        "import gymnasium as gym, vagram_bench; "
        f"env = gym.make({env_id!r}, render_mode='rgb_array'); env.reset(seed=0); env.step(env.action_space.sample()); "
        "img = env.render(); assert img.ndim == 3 and img.shape[2] == 3 and img.dtype.name == 'uint8', img.shape; "
        "assert img.std() > 0; print('ok')"
    )
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("module", ["vagram_bench.envs", "vagram_bench.envs.distraction", "vagram_bench.envs.mujoco_variants"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------------------------
# metadata and the messages printed on make
# ---------------------------------------------------------------------------------------------------------------
# One id per registered entry point and base env (the d-variants share their family's class).
METADATA_IDS = sorted({i for i in E.registered_ids() if "Distract-" not in i or "Distract-5-" in i})


@pytest.mark.parametrize("env_id", METADATA_IDS)
def test_class_metadata_matches_instance(env_id):
    # gymnasium's make reads the *class* metadata to validate render_mode; the instance's is the truth.
    creator = load_env_creator(gym.spec(env_id).entry_point)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id, render_mode="rgb_array")
    try:
        render_warnings = [str(w.message) for w in caught if "render_mode" in str(w.message)]
        assert render_warnings == []
        instance = env.unwrapped.metadata
        assert list(creator.metadata["render_modes"]) == list(instance["render_modes"])
        assert "rgb_array" in instance["render_modes"] and env.unwrapped.render_mode == "rgb_array"
        if "render_fps" in creator.metadata:
            assert creator.metadata["render_fps"] == instance["render_fps"]
    finally:
        env.close()


def test_dmc_make_prints_nothing_harmless():
    # A fresh process (dm_control prints the GLFW line once, at its first import), no display, no MUJOCO_GL:
    # neither glfw's "DISPLAY missing" nor MuJoCo's settotalmass deprecation (cheetah.xml) may reach stderr.
    code = ("import gymnasium as gym, vagram_bench; "
            "[gym.make(i).reset(seed=0) for i in ('DMCCheetahRun-v0', 'DMCHopperHopDistract-5-v0')]; print('ok')")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")}
    out = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "DISPLAY" not in out.stderr and "settotalmass" not in out.stderr and "absl" not in out.stderr, out.stderr


def test_dmc_quieting_is_narrow():
    import logging

    from vagram_bench.envs.dmc import _quiet_dm_control

    absl_logger = logging.getLogger("absl")
    filters_before = list(absl_logger.filters)
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    absl_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _quiet_dm_control():
                absl_logger.warning("compiler attribute 'settotalmass' is deprecated and will be removed")
                absl_logger.warning("some other MuJoCo warning")
                warnings.warn_explicit("(65550) b'X11: The DISPLAY environment variable is missing'",
                                       UserWarning, "glfw/__init__.py", 917, module="glfw")
                warnings.warn("an unrelated warning", UserWarning)
    finally:
        absl_logger.removeHandler(handler)
    assert seen == ["some other MuJoCo warning"]
    assert [str(w.message) for w in caught] == ["an unrelated warning"]
    assert absl_logger.filters == filters_before  # nothing left behind after the block


@pytest.mark.skipif(bool(os.environ.get("DISPLAY")) or bool(os.environ.get("MUJOCO_GL")),
                    reason="the GLFW default can render where a display exists")
def test_dmc_render_without_gl_says_what_to_set():
    code = ("import gymnasium as gym, vagram_bench\n"
            "env = gym.make('DMCHopperHop-v0', render_mode='rgb_array'); env.reset(seed=0)\n"
            "try:\n    env.render()\nexcept RuntimeError as exc:\n    print(exc)\nelse:\n    print('rendered')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYOPENGL_PLATFORM",)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.stdout.strip() == "rendered":
        pytest.skip("this machine renders without MUJOCO_GL")
    assert "MUJOCO_GL=egl" in out.stdout and "hopper-hop" in out.stdout, (out.stdout, out.stderr)
