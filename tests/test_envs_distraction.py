"""Behaviour of the distraction envs, checked against the base envs and the literal VaGraM formula."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import gymnasium as gym
from gymnasium.utils.env_match import check_environments_match
from gymnasium.wrappers import RescaleAction

import vagram_bench  # noqa: F401  (registers the ids)
from vagram_bench.envs.distraction import DistractorDynamics, default_distractor_seed

BASES = [
    ("HopperDistract", "Hopper-v5"),
    ("Walker2dDistract", "Walker2d-v5"),
    ("HalfCheetahDistract", "HalfCheetah-v5"),
    ("AntTruncatedDistract", "AntTruncatedObs-v0"),
    ("HumanoidTruncatedDistract", "HumanoidTruncatedObs-v0"),
    ("InvertedPendulumDistract", "InvertedPendulum-v5"),
    ("InvertedDoublePendulumDistract", "InvertedDoublePendulum-v5"),
    ("DMCCheetahRunDistract", "DMCCheetahRun-v0"),
]


def _rollout(env, actions, seed, reset_seeds=None):
    """Step through ``actions``; on episode end reset (un-seeded unless ``reset_seeds`` gives one)."""
    out = {"obs": [], "rew": [], "term": [], "trunc": []}
    obs, _ = env.reset(seed=seed)
    out["obs"].append(obs)
    n_resets = 0
    for a in actions:
        obs, rew, term, trunc, _ = env.step(a)
        for k, v in zip(("obs", "rew", "term", "trunc"), (obs, rew, term, trunc)):
            out[k].append(v)
        if term or trunc:
            n_resets += 1
            seed_i = None if reset_seeds is None else reset_seeds[n_resets - 1]
            obs, _ = env.reset(seed=seed_i)
            out["obs"].append(obs)
    return {k: np.array(v) for k, v in out.items()}


def _actions(space, n, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)


def _literal_transition(W, P, rho, x):
    """VaGraM's distractor step, literally: x <- W x; x <- x + 0.1 sin(P x); reset |x| > 20 to rho."""
    y = W @ x
    y = y + 0.1 * np.sin(P @ y)
    return np.where(np.abs(y) > 20, rho, y)


@pytest.mark.parametrize("name,base_id", BASES)
def test_base_dims_reward_and_done_equal_base_env(name, base_id):
    """Step for step (across time-limit ends and resets), the first n dims, reward, terminated and truncated of
    ``<name>-15-v0`` equal those of the base env under the same seed and actions."""
    env = gym.make(f"{name}-15-v0", max_episode_steps=120)
    base = gym.make(base_id, max_episode_steps=120)
    n = base.observation_space.shape[0]
    actions = _actions(base.action_space, 400, seed=1)
    a = _rollout(env, actions, seed=7)
    b = _rollout(base, actions, seed=7)
    assert a["obs"].shape == (len(b["obs"]), n + 15)
    np.testing.assert_array_equal(a["obs"][:, :n], b["obs"])
    np.testing.assert_array_equal(a["rew"], b["rew"])
    np.testing.assert_array_equal(a["term"], b["term"])
    np.testing.assert_array_equal(a["trunc"], b["trunc"])
    assert a["trunc"].sum() + a["term"].sum() >= 3  # several episode ends were crossed
    # gymnasium's own matcher as an independent check (obs skipped: shapes differ by design)
    check_environments_match(env, base, num_steps=100, seed=3, skip_obs=True)


def test_zero_distractors_is_the_base_env():
    check_environments_match(gym.make("HopperDistract-0-v0"), gym.make("Hopper-v5"), num_steps=300, seed=0)
    check_environments_match(gym.make("DMCHopperHopDistract-0-v0"), gym.make("DMCHopperHop-v0"), num_steps=50)
    check_environments_match(
        gym.make("InvertedDoublePendulumDistract-0-v0"), gym.make("InvertedDoublePendulum-v5"), num_steps=300, seed=0
    )
    check_environments_match(
        gym.make("InvertedPendulumDistract-0-v0"), gym.make("InvertedPendulum-v5"), num_steps=300, seed=0
    )


def test_truncated_variants_match_gymnasium_configuration():
    """AntTruncatedObs-v0 / HumanoidTruncatedObs-v0 equal Ant-v5 / Humanoid-v5 configured with gymnasium's own
    flags (and, for Humanoid, gymnasium's RescaleAction to [-1, 1])."""
    ant = gym.make("Ant-v5", include_cfrc_ext_in_observation=False)
    check_environments_match(gym.make("AntTruncatedObs-v0"), ant, num_steps=200, seed=0)
    flags = {
        f"include_{k}_in_observation": False for k in ("cinert", "cvel", "qfrc_actuator", "cfrc_ext")
    }
    humanoid = RescaleAction(gym.make("Humanoid-v5", **flags), -1.0, 1.0)
    check_environments_match(gym.make("HumanoidTruncatedObs-v0"), humanoid, num_steps=200, seed=0)
    assert gym.make("AntTruncatedObs-v0").observation_space.shape == (27,)
    assert gym.make("HumanoidTruncatedObs-v0").observation_space.shape == (45,)


@pytest.mark.parametrize(
    "env_id",
    ["HopperDistract-15-v0", "DMCWalkerWalkDistract-5-v0", "HumanoidTruncatedDistract-20-v0",
     "InvertedDoublePendulumDistract-10-v0", "InvertedPendulumDistract-10-v0"],
)
def test_same_seed_same_trajectory(env_id):
    e1, e2 = gym.make(env_id), gym.make(env_id)
    actions = _actions(e1.action_space, 150, seed=2)
    a, b = _rollout(e1, actions, seed=11), _rollout(e2, actions, seed=11)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = _rollout(gym.make(env_id), actions, seed=12)
    assert not np.array_equal(a["obs"][0], c["obs"][0])


def test_distractors_do_not_depend_on_actions():
    env_a, env_b = gym.make("HopperDistract-20-v0"), gym.make("HopperDistract-20-v0")
    env_a.reset(seed=5)
    env_b.reset(seed=5)
    rng = np.random.default_rng(0)
    diverged = False
    for _ in range(60):
        oa, _, ta, *_ = env_a.step(rng.uniform(-1, 1, 3).astype(np.float32))
        ob, _, tb, *_ = env_b.step(np.zeros(3, np.float32))
        np.testing.assert_array_equal(oa[11:], ob[11:])
        diverged |= not np.array_equal(oa[:11], ob[:11])
        if ta or tb:
            break
    assert diverged  # the base states did differ, the distractors did not


def test_distractor_step_is_the_vagram_formula():
    env = gym.make("HopperDistract-15-v0").unwrapped
    dyn = env.dynamics
    obs, _ = env.reset(seed=3)
    # initial state: x0 ~ N(0, 0.1^2) from the documented stream, then one transition
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(3, spawn_key=(0x0D15,))))
    x0 = 0.1 * rng.standard_normal(15)
    np.testing.assert_allclose(obs[11:], _literal_transition(dyn.W, dyn.P, dyn.rho, x0), rtol=1e-9, atol=1e-9)
    n_reset = 0
    for _ in range(300):
        x = obs[11:]
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        expected = _literal_transition(dyn.W, dyn.P, dyn.rho, x)
        np.testing.assert_allclose(obs[11:], expected, rtol=1e-9, atol=1e-9)
        assert np.all(np.abs(obs[11:]) <= 20)
        n_reset += int(np.sum(obs[11:] == dyn.rho))
        if term or trunc:
            obs, _ = env.reset()
    assert n_reset > 0  # the switching branch was exercised


def test_parameters_distribution_and_fixed_seed():
    dyn = DistractorDynamics(20, distractor_seed=123)
    assert dyn.W.shape == dyn.P.shape == (20, 20) and dyn.rho.shape == (20,)
    assert abs(dyn.W.mean()) < 0.15 and 0.85 < dyn.W.std() < 1.15  # N(0, 1), 400 draws
    assert np.all(dyn.P >= 0) and 70 < dyn.P.mean() < 130  # (N(0, 10^2))^2 has mean 100
    same = DistractorDynamics(20, distractor_seed=123)
    np.testing.assert_array_equal(dyn.W, same.W)
    np.testing.assert_array_equal(dyn.P, same.P)
    np.testing.assert_array_equal(dyn.rho, same.rho)


def test_same_distractor_seed_shares_parameters_across_instances_and_ids():
    train = gym.make("HopperDistract-15-v0").unwrapped
    evaluation = gym.make("HopperDistract-15-v0").unwrapped
    parametric = gym.make("HopperDistract-v0", distraction_dims=15).unwrapped
    train.reset(seed=0)
    evaluation.reset(seed=1000)  # different episode seeds do not change the parameters
    assert gym.spec("HopperDistract-15-v0").kwargs["distractor_seed"] == default_distractor_seed("HopperDistract", 15)
    for other in (evaluation, parametric):
        assert other.distractor_seed == train.distractor_seed
        for attr in ("W", "P", "rho"):
            np.testing.assert_array_equal(getattr(other.dynamics, attr), getattr(train.dynamics, attr))


def test_different_distractor_seeds_differ():
    a = gym.make("HopperDistract-15-v0", distractor_seed=1).unwrapped
    b = gym.make("HopperDistract-15-v0", distractor_seed=2).unwrapped
    for attr in ("W", "P", "rho"):
        assert not np.allclose(getattr(a.dynamics, attr), getattr(b.dynamics, attr))
    # different families / dims get different default seeds
    seeds = {gym.spec(f"{n}-{d}-v0").kwargs["distractor_seed"] for n, _ in BASES for d in (5, 10, 15, 20)}
    assert len(seeds) == 4 * len(BASES)
    oa, _ = a.reset(seed=0)
    ob, _ = b.reset(seed=0)
    np.testing.assert_array_equal(oa[:11], ob[:11])
    assert not np.allclose(oa[11:], ob[11:])


def test_pure_noise_ablation():
    env = gym.make("HopperDistract-15-v0", pure_noise=True, max_episode_steps=10_000)
    base = gym.make("Hopper-v5", max_episode_steps=10_000)
    actions = _actions(base.action_space, 1500, seed=4)
    a, b = _rollout(env, actions, seed=9), _rollout(base, actions, seed=9)
    np.testing.assert_array_equal(a["obs"][:, :11], b["obs"])
    np.testing.assert_array_equal(a["rew"], b["rew"])
    np.testing.assert_array_equal(a["term"], b["term"])
    noise = a["obs"][:, 11:]
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05  # N(0, 1), ~2e4 draws
    lag1 = np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1]
    assert abs(lag1) < 0.05  # i.i.d. over time
    assert np.abs(noise).max() > 3  # not the bounded |x| <= 20 dynamics with std ~8 either: checked below
    dyn_env = _rollout(gym.make("HopperDistract-15-v0", max_episode_steps=10_000), actions, seed=9)
    assert dyn_env["obs"][:, 11:].std() > 3
    again = _rollout(gym.make("HopperDistract-15-v0", pure_noise=True, max_episode_steps=10_000), actions, seed=9)
    np.testing.assert_array_equal(again["obs"], a["obs"])


def test_pickle_roundtrip():
    env = gym.make("HopperDistract-5-v0", distractor_seed=42).unwrapped
    clone = pickle.loads(pickle.dumps(env))
    assert type(clone) is type(env) and clone.distractor_seed == 42
    np.testing.assert_array_equal(clone.reset(seed=1)[0], env.reset(seed=1)[0])


_FIXED_D_IDS = [i for i in vagram_bench.envs.registered_ids() if re.fullmatch(r".+Distract-\d+-v0", i)]


def test_every_family_has_fixed_d_ids():
    # 11 families (7 MuJoCo, 4 dm-control) x d in {0, 5, 10, 15, 20}
    assert len(_FIXED_D_IDS) == 11 * 5
    assert {"HopperDistract-15-v0", "DMCHopperHopDistract-0-v0", "DMCHumanoidWalkDistract-20-v0",
            "InvertedDoublePendulumDistract-15-v0", "InvertedPendulumDistract-15-v0"} <= set(_FIXED_D_IDS)


@pytest.mark.parametrize("env_id", _FIXED_D_IDS)
def test_fixed_d_id_refuses_a_conflicting_distraction_dims(env_id):
    fixed = int(env_id.rsplit("-", 2)[1])
    other = 3 if fixed != 3 else 4
    name = env_id[: -len(f"-{fixed}-v0")]
    with pytest.raises(ValueError) as err:
        gym.make(env_id, distraction_dims=other)
    msg = str(err.value)
    assert f"{env_id} fixes distraction_dims={fixed}" in msg
    assert f"got distraction_dims={other}" in msg
    assert f"gym.make('{name}-v0', distraction_dims={other})" in msg


@pytest.mark.parametrize(
    "env_id, base_dims",
    [("HopperDistract-15-v0", 11), ("DMCCheetahRunDistract-5-v0", 17), ("InvertedDoublePendulumDistract-20-v0", 9),
     ("InvertedPendulumDistract-5-v0", 4)],
)
def test_fixed_d_id_accepts_its_own_distraction_dims(env_id, base_dims):
    fixed = int(env_id.rsplit("-", 2)[1])
    env = gym.make(env_id, distraction_dims=fixed)
    assert env.observation_space.shape == (base_dims + fixed,)
    assert env.spec.kwargs["id_distraction_dims"] == fixed


@pytest.mark.parametrize(
    "env_id, base_dims",
    [("HopperDistract-v0", 11), ("DMCCheetahRunDistract-v0", 17), ("InvertedDoublePendulumDistract-v0", 9),
     ("InvertedPendulumDistract-v0", 4)],
)
def test_parametric_id_accepts_any_distraction_dims(env_id, base_dims):
    env = gym.make(env_id, distraction_dims=3)
    assert env.observation_space.shape == (base_dims + 3,)
    assert "id_distraction_dims" not in env.spec.kwargs


def test_fixed_d_refusal_survives_pickle():
    env = gym.make("HopperDistract-15-v0").unwrapped
    clone = pickle.loads(pickle.dumps(env))
    assert clone.observation_space.shape == (26,)
    with pytest.raises(ValueError, match="HopperDistract-15-v0 fixes distraction_dims=15, got distraction_dims=2"):
        type(env)(distraction_dims=2, id_distraction_dims=15)
