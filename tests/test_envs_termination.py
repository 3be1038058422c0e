"""``termination_fn`` against the real envs' ``terminated`` on thousands of transitions per family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gymnasium as gym

import vagram_bench  # noqa: F401
from vagram_bench.envs import IDP_CAPACITY_SIZES, IP_CAPACITY_SIZES, base_obs_dim, env_family, termination_fn

# env id, qpos indices of (height, angle) to push towards the health boundaries, boundary values
FAMILIES = [
    ("Hopper-v5", (1, 2), (0.7, 0.2)),
    ("Walker2d-v5", (1, 2), (0.8, 1.0)),
    ("Ant-v5", (2, None), (0.2, None)),
    ("AntTruncatedObs-v0", (2, None), (1.0, None)),
    ("Humanoid-v5", (2, None), (1.0, None)),
    ("HumanoidTruncatedObs-v0", (2, None), (2.0, None)),
    ("InvertedPendulum-v5", (None, 1), (None, 0.2)),
    ("InvertedDoublePendulum-v5", (None, 1), (None, 0.3)),
]


def collect(env_id, n, seed, z_boundary=None, angle_boundary=None, z_idx=None, angle_idx=None):
    """``n`` real transitions ``(next_obs, terminated)`` with random and perturbed actions; half of the episodes
    start from a state pushed to within a few percent of a health boundary."""
    env = gym.make(env_id, disable_env_checker=True).unwrapped
    sim = getattr(env, "base", env)  # a distraction env pushes the state of the MuJoCo env it owns
    rng = np.random.default_rng(seed)
    lo, hi = env.action_space.low, env.action_space.high
    obs_list, term_list = [], []

    def reset():
        env.reset(seed=int(rng.integers(2**31)))
        if rng.random() < 0.5:
            qpos, qvel = sim.data.qpos.copy(), sim.data.qvel.copy()
            if z_idx is not None:
                qpos[z_idx] = z_boundary + rng.uniform(-0.05, 0.05)
            if angle_idx is not None:
                qpos[angle_idx] = rng.choice([-1, 1]) * angle_boundary + rng.uniform(-0.03, 0.03)
            qvel += rng.normal(0, 0.5, qvel.shape)
            sim.set_state(qpos, qvel)

    reset()
    action = rng.uniform(lo, hi)
    steps = 0
    for _ in range(n):
        if rng.random() < 0.5:
            action = rng.uniform(lo, hi)  # random
        else:
            action = np.clip(action + rng.normal(0, 0.3, action.shape) * (hi - lo), lo, hi)  # perturbed
        obs, _, terminated, _, _ = env.step(action.astype(np.float32))
        obs_list.append(obs)
        term_list.append(terminated)
        steps += 1
        if terminated or steps >= 200:
            reset()
            steps = 0
    env.close()
    return np.array(obs_list), np.array(term_list)


@pytest.mark.parametrize("env_id,idx,bound", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_termination_fn_agrees_with_env(env_id, idx, bound):
    obs, terminated = collect(env_id, 4000, seed=0, z_boundary=bound[0], angle_boundary=bound[1], z_idx=idx[0],
                              angle_idx=idx[1])
    assert terminated.sum() >= 20 and (~terminated).sum() >= 1000, "not enough of both outcomes to test"
    # append distractor-like junk: the function must read the base dims only
    junk = np.full((len(obs), 7), 1e6)
    assert_agrees(env_id, np.concatenate([obs, junk], axis=1), terminated)


def assert_agrees(env_id, next_obs, terminated):
    """``termination_fn(env_id)`` on ``next_obs`` equals the env's ``terminated``; for the inverted double pendulum
    up to at most 2 transitions whose tip height is within 1e-3 of the threshold: gymnasium tests the tip height
    from the last RK4 stage's kinematics, not the returned state, an O(dt^2) difference (see
    termination.make_inverted_double_pendulum)."""
    pred = termination_fn(env_id)(torch.as_tensor(next_obs)).numpy()
    assert pred.shape == terminated.shape and pred.dtype == np.bool_
    mismatch = np.nonzero(pred != terminated)[0]
    if env_family(env_id) == "inverted_double_pendulum":
        o = next_obs[mismatch]
        y = 0.6 * o[:, 3] + 0.6 * (o[:, 3] * o[:, 4] - o[:, 1] * o[:, 2])
        assert np.all(np.abs(y - 1.0) < 1e-3), y
        assert len(mismatch) <= 2
    else:
        assert len(mismatch) == 0, f"{len(mismatch)} disagreements, first at {next_obs[mismatch[:3]]}"


@pytest.mark.parametrize("env_id", ["InvertedDoublePendulumDistract-0-v0", "InvertedDoublePendulumDistract-15-v0",
                                    "InvertedDoublePendulumDistract-v0"])
def test_inverted_double_pendulum_distract_agrees_on_its_own_rollouts(env_id):
    """On rollouts of the distraction env itself (real distractors in the observation, half of the episodes pushed
    to within 0.03 rad of the pole-angle boundary), the family's function reproduces the env's ``terminated``."""
    obs, terminated = collect(env_id, 4000, seed=5, angle_boundary=0.3, angle_idx=1)
    assert terminated.sum() >= 20 and (~terminated).sum() >= 1000, "not enough of both outcomes to test"
    assert obs.shape[1] == gym.spec(env_id).kwargs["distraction_dims"] + 9
    assert_agrees(env_id, obs, terminated)


def test_inverted_double_pendulum_capacity_agrees_on_its_own_rollouts():
    """A capacity id is the family's base env under another id: its function (looked up by the id, not the base
    env's) reproduces the env's own ``terminated``, with half of the episodes pushed near the pole-angle boundary."""
    layers, width = IDP_CAPACITY_SIZES[0]
    env_id = f"InvertedDoublePendulumCapacity-{layers}x{width}-v0"
    obs, terminated = collect(env_id, 4000, seed=6, angle_boundary=0.3, angle_idx=1)
    assert terminated.sum() >= 20 and (~terminated).sum() >= 1000, "not enough of both outcomes to test"
    assert obs.shape[1] == 9
    assert_agrees(env_id, obs, terminated)


@pytest.mark.parametrize("env_id", ["InvertedPendulumDistract-5-v0", "InvertedPendulumDistract-v0",
                                    f"InvertedPendulumCapacity-{IP_CAPACITY_SIZES[1][0]}x{IP_CAPACITY_SIZES[1][1]}-v0"])
def test_inverted_pendulum_ids_agree_on_random_policy_rollouts(env_id):
    """The truth is the env's own ``terminated`` on 400 steps of a uniform random policy over its ``[-3, 3]`` force
    range (no pushed starts: a random policy topples the pole within tens of steps, so both outcomes occur); the
    function, looked up by the id, must reproduce every flag, distractors in the observation included."""
    env = gym.make(env_id)
    rng = np.random.default_rng(7)
    obs_list, term_list = [], []
    env.reset(seed=7)
    for _ in range(400):
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-3.0, 3.0, (1,)).astype(np.float32))
        obs_list.append(obs)
        term_list.append(terminated)
        if terminated or truncated:
            env.reset(seed=int(rng.integers(2**31)))
    obs, terminated = np.array(obs_list), np.array(term_list)
    assert terminated.sum() >= 10 and (~terminated).sum() >= 100, "not enough of both outcomes to test"
    assert obs.shape[1] == 4 + gym.spec(env_id).kwargs.get("distraction_dims", 0)
    assert env_family(env_id) == "inverted_pendulum" and base_obs_dim(env_id) == 4
    assert_agrees(env_id, obs, terminated)


@pytest.mark.parametrize("env_id", ["InvertedPendulumDistract-15-v0",
                                    f"InvertedPendulumCapacity-{IP_CAPACITY_SIZES[0][0]}x{IP_CAPACITY_SIZES[0][1]}-v0"])
def test_inverted_pendulum_ids_agree_near_the_angle_boundary(env_id):
    """As the double pendulum's checks: half of the episodes start pushed to within 0.03 rad of ``|angle| = 0.2``,
    where a strict-versus-inclusive or wrong-index mistake would show."""
    obs, terminated = collect(env_id, 2000, seed=8, angle_boundary=0.2, angle_idx=1)
    assert terminated.sum() >= 20 and (~terminated).sum() >= 500, "not enough of both outcomes to test"
    assert_agrees(env_id, obs, terminated)


def test_batched_shapes_and_distractor_ids():
    fn = termination_fn("HopperDistract-15-v0")
    obs = torch.zeros(4, 5, 26, dtype=torch.float64)
    obs[..., 0] = 1.25
    assert fn(obs).shape == (4, 5) and not fn(obs).any()
    obs[1, 2, 0] = 0.7  # height at the (exclusive) boundary
    obs[2, 3, 1] = -0.2  # angle at the (exclusive) boundary
    obs[3, 4, 11:] = 1e9  # distractors are never read
    out = fn(obs)
    assert out[1, 2] and out[2, 3] and not out[3, 4] and out.sum() == 2
    with pytest.raises(ValueError, match="at least 11"):
        fn(torch.zeros(3, 10))


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "HalfCheetahDistract-15-v0", "DMCCheetahRunDistract-5-v0",
                                    "DMCHumanoidWalk-v0", "DMCHopperHop-v0", "DMCWalkerWalkDistract-v0"])
def test_never_terminating_families(env_id):
    obs = torch.randn(3, 8, base_obs_dim(env_id) + 5) * 1e3
    out = termination_fn(env_id)(obs)
    assert out.shape == (3, 8) and out.dtype == torch.bool and not out.any()


def test_never_terminating_envs_never_terminate():
    for env_id in ("HalfCheetah-v5", "DMCCheetahRun-v0"):
        env = gym.make(env_id)
        env.reset(seed=0)
        for _ in range(300):
            assert not env.step(env.action_space.sample())[2]


@pytest.mark.parametrize("env_id", ["AntTruncatedDistract-5-v0", "HumanoidTruncatedDistract-20-v0",
                                    "Walker2dDistract-10-v0", "HopperCapacity-4x64-v0"])
def test_suite_ids_use_base_family_function(env_id):
    base = {"Ant": "AntTruncatedObs-v0", "Hum": "HumanoidTruncatedObs-v0", "Wal": "Walker2d-v5", "Hop": "Hopper-v5"}
    base_id = base[env_id[:3]]
    obs, terminated = collect(base_id, 600, seed=1)
    d = gym.make(env_id).observation_space.shape[0] - obs.shape[1]
    padded = np.concatenate([obs, np.random.default_rng(0).normal(0, 100, (len(obs), d))], axis=1)
    np.testing.assert_array_equal(termination_fn(env_id)(torch.as_tensor(padded)).numpy(), terminated)
