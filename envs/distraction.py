"""Distractor dimensions (VaGraM, ICLR 2022) as a gymnasium environment composed around any base env.

Design note -- why an ``Env`` class that *owns* the base env instead of a registered ``ObservationWrapper``:
gymnasium's ``check_env`` must be called on ``env.unwrapped`` (it warns on wrapped envs, and its seeding checks
inspect ``env.unwrapped._np_random``). With a registered wrapper, ``gym.make(...).unwrapped`` is the *base* env, so
``check_env`` would never see a distractor, the observation space at the ``unwrapped`` level would be the base one,
and the per-episode distractor randomness would not live in the ``np_random`` that the checker tests. With this
composition ``gym.make("HopperDistract-15-v0").unwrapped`` *is* the distraction env: ``check_env`` exercises the
26-dim observation space, the seeded-reset determinism of the distractors, and the "returned data is not reused"
check on the concatenated observation (``check_env`` in ``gymnasium/utils/env_checker.py``, gymnasium 1.x; see
docs/envs.md).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

import gymnasium as gym
from gymnasium import spaces, utils

__all__ = [
    "DistractorDynamics",
    "DistractionEnv",
    "HopperDistractEnv",
    "Walker2dDistractEnv",
    "HalfCheetahDistractEnv",
    "AntTruncatedDistractEnv",
    "HumanoidTruncatedDistractEnv",
    "InvertedPendulumDistractEnv",
    "InvertedDoublePendulumDistractEnv",
    "DMCDistractEnv",
    "default_distractor_seed",
    "validate_distraction_dims",
]

#: Distractor entries whose magnitude exceeds this are reset to ``rho`` ("switching" distractors).
RESET_THRESHOLD = 20.0
#: Amplitude of the sinusoidal non-linearity.
SIN_SCALE = 0.1
#: Standard deviation of the initial distractor state ``x0 ~ N(0, 0.1^2)``.
INIT_STD = 0.1
#: Standard deviation of the frequency draws, ``P = N(0, 10^2)^2`` elementwise.
FREQ_STD = 10.0
#: Spawn key that separates the distractor random stream from the base env's reset-noise stream.
_DISTRACTOR_STREAM = (0x0D15,)


def validate_distraction_dims(distraction_dims: Any) -> int:
    """Return ``distraction_dims`` as an ``int`` or raise a ``ValueError`` naming the bad value.

    Args:
        distraction_dims: the number of distractor dimensions; a non-negative integer (``bool`` is rejected).

    Examples:
        >>> validate_distraction_dims(15)
        15
        >>> validate_distraction_dims(-1)
        Traceback (most recent call last):
        ...
        ValueError: distraction_dims must be a non-negative integer (0, 1, 2, ...), got -1 (int)
    """
    ok = isinstance(distraction_dims, (int, np.integer)) and not isinstance(distraction_dims, (bool, np.bool_))
    if not ok or distraction_dims < 0:
        raise ValueError(
            "distraction_dims must be a non-negative integer (0, 1, 2, ...), "
            f"got {distraction_dims!r} ({type(distraction_dims).__name__})"
        )
    return int(distraction_dims)


def default_distractor_seed(name: str, distraction_dims: int) -> int:
    """The fixed default distractor seed of a family and dimension: ``crc32(f"{name}-{d}")``.

    It depends only on the family name (``"HopperDistract"``, or the base id for a generic
    :class:`DistractionEnv`) and ``d``, so ``HopperDistract-15-v0`` and ``HopperDistract-v0`` with
    ``distraction_dims=15`` share their distractor dynamics, and every process gets the same numbers.

    Examples:
        >>> default_distractor_seed("HopperDistract", 15) == default_distractor_seed("HopperDistract", 15)
        True
    """
    return zlib.crc32(f"{name}-{int(distraction_dims)}".encode())


class DistractorDynamics:
    """The parameters and the in-place transition of VaGraM's switching non-linear distractors.

    Parameters are drawn once from ``np.random.default_rng(distractor_seed)`` in this order (docs/envs.md "Distractor dynamics";
    ``correlated=False``, so only the d x d block of upstream's ``W`` acts and is drawn here):

    * ``W ~ N(0, 1)^{d x d}`` (mixing matrix),
    * ``P = (N(0, 10^2))^2`` elementwise, ``d x d`` (non-negative frequencies, mean about 100),
    * ``rho ~ N(0, 1)^d`` (reset vector).

    One transition is ``x <- W x; x <- x + 0.1 sin(P x); x_i <- rho_i where |x_i| > 20``.

    The step runs on preallocated buffers with six numpy calls, because at d = 15 numpy's per-call overhead, not the
    arithmetic, is the cost (see ``benchmarks/bench_envs.py``): ``W`` and ``P W`` are stacked into one (2d, d)
    matrix so a single matrix-vector product yields both ``W x`` and ``P (W x)``, and ``W x + 0.1 sin(.)`` is one
    (2,) @ (2, d) product. Both are the same arithmetic as the two-step formula up to floating-point association
    (the tests compare against the literal formula).

    Args:
        distraction_dims: ``d``, the number of distractor dimensions (>= 0).
        distractor_seed: seed of the parameter draw; the same seed gives the same ``W``, ``P``, ``rho``.

    Examples:
        >>> dyn = DistractorDynamics(3, distractor_seed=0)
        >>> x = np.zeros(3); dyn.step_(x); x.shape
        (3,)
    """

    def __init__(self, distraction_dims: int, distractor_seed: int):
        d = validate_distraction_dims(distraction_dims)
        rng = np.random.default_rng(distractor_seed)
        self.dims = d
        self.W = rng.standard_normal((d, d))
        self.P = np.square(rng.normal(0.0, FREQ_STD, size=(d, d)))
        self.rho = rng.standard_normal(d)
        for a in (self.W, self.P, self.rho):
            a.setflags(write=False)
        self._stacked = np.ascontiguousarray(np.concatenate([self.W, self.P @ self.W], axis=0))
        self._buf = np.empty(2 * d)
        self._buf2 = self._buf.reshape(2, d)
        self._sin_part = self._buf[d:]
        self._mix = np.array([1.0, SIN_SCALE])
        self._abs = np.empty(d)
        self._mask = np.empty(d, dtype=bool)
        self._threshold = np.full(d, RESET_THRESHOLD)
        self._stacked_dot = self._stacked.dot
        self._mix_dot = self._mix.dot

    def step_(self, x: np.ndarray) -> None:
        """Advance the distractor state ``x`` (float64, shape (d,), C-contiguous) by one transition, in place."""
        # Bound ndarray methods, positional ``out`` arguments and an array threshold: at d = 15 each numpy call
        # costs ~0.5 us of dispatch, and these choices measured ~20% faster than ``np.dot(..., out=...)`` etc.
        self._stacked_dot(x, self._buf)  # buf = [W x ; P W x]
        _sin(self._sin_part, self._sin_part)  # buf = [W x ; sin(P W x)]
        self._mix_dot(self._buf2, x)  # x = W x + 0.1 sin(P W x)
        _putmask(x, _greater(_abs(x, self._abs), self._threshold, self._mask), self.rho)


_sin, _abs, _greater, _putmask = np.sin, np.abs, np.greater, np.putmask


class DistractionEnv(gym.Env, utils.EzPickle):
    r"""
    ## Description
    Any base environment with `d` **distractor dimensions** appended to its observation, following VaGraM
    (Voelcker et al., ICLR 2022, "Value Gradient weighted Model-Based Reinforcement Learning"). The distractors are
    a deterministic, chaotic, "switching" non-linear dynamical system that is independent of the action and of the
    base state. They carry no information about the task but are hard to predict, so a dynamics model trained by
    maximum likelihood spends capacity on them; a decision-aware loss can learn to ignore them.

    The family classes ([`HopperDistractEnv`], [`Walker2dDistractEnv`], ...) fix `base_env`; this class takes any
    registered gymnasium id whose observation space is a 1-D `Box`.

    ## Distractor dynamics
    Parameters, drawn once from `np.random.default_rng(distractor_seed)`: `W ~ N(0,1)^{d x d}`,
    `P = N(0, 10^2)^2` elementwise (`d x d`), `rho ~ N(0,1)^d`. Per step (and once at reset, after drawing
    `x0 ~ N(0, 0.1^2)^d`):

    $$x \leftarrow W x, \qquad x \leftarrow x + 0.1 \sin(P x), \qquad x_i \leftarrow \rho_i \text{ where } |x_i| > 20.$$

    With `pure_noise=True` (ablation) the distractors are instead i.i.d. `N(0, 1)^d` at every reset and step.

    ## Action Space
    The base environment's action space, unchanged.

    ## Observation Space
    `Box(-inf, inf, (n + d,), float64)`: the base observation (`n` dims) first, then the `d` distractors.
    `observation_structure` is the base env's (if it has one) plus `{"distractors": d}`.

    ## Rewards
    The base environment's reward, untouched.

    ## Starting State
    The base environment's starting state. The initial distractor state comes from this env's `np_random`.

    ## Episode End
    The base environment's `terminated` and `truncated`, untouched: the distractors never influence termination
    (docs/envs.md "Termination functions for model rollouts"). The time limit is the registered `max_episode_steps` (1000 for every id of the
    suite).

    ## Seeding
    `reset(seed=s)` resets the base env with the same seed `s` (so the base dims equal those of the base env reset
    with `s`, step for step) and re-seeds this env's `np_random` from `SeedSequence(s, spawn_key=(0x0D15,))`, a
    stream independent of the base env's reset noise. All per-episode distractor randomness (initial state,
    pure-noise draws) comes from that `np_random`. The parameters `W, P, rho` do **not** depend on `s`: they come
    from the fixed `distractor_seed`, so training and evaluation envs share the distractor dynamics
    (docs/envs.md "Seeding"). Upstream VaGraM drew both from the global numpy RNG, which gave training and
    evaluation envs different distractor dynamics; that bug is not reproduced.

    ## Arguments
    | Parameter          | Type         | Default           | Description |
    |--------------------|--------------|-------------------|-------------|
    | `base_env`         | **str**      | required          | Registered gymnasium id of the base env (e.g. `"Hopper-v5"`). |
    | `distraction_dims` | **int**      | `10`              | `d >= 0`, the number of distractor dims (10 is VaGraM's config default). |
    | `distractor_seed`  | **int/None** | `None`            | Seed of `W, P, rho`; `None` = `crc32(f"{base_env}-{d}")` (families: `crc32(f"{Family}Distract-{d}")`). |
    | `pure_noise`       | **bool**     | `False`           | Ablation: replace the distractors by i.i.d. `N(0, 1)` noise. |
    | `render_mode`      | **str/None** | `None`            | Passed to the base env; rendering shows the base env only. |
    | `id_distraction_dims` | **int/None** | `None`         | The `d` a fixed-d id (`HopperDistract-15-v0`) stands for; a different `distraction_dims` raises `ValueError`. Set by the registration, `None` for the parametric ids. |
    | `**base_kwargs`    |              |                   | Passed to the base env's constructor (e.g. `healthy_z_range`). |

    ## Version History
    * v0: Initial release (gymnasium 1.x, MuJoCo v5 base envs, seeded distractor parameters).
    """

    #: Replaced per instance by the base env's metadata. The generic class cannot know its base env's render
    #: modes; the registered family classes below declare theirs (gymnasium's ``make`` reads the class's).
    metadata: dict[str, Any] = {"render_modes": []}

    #: Name used for the default distractor seed; the family classes set it to e.g. ``"HopperDistract"``.
    seed_name: str | None = None

    def _name_for_seed(self, base_env: str) -> str:
        """The name the default distractor seed (and a fixed-d id's check) is derived from."""
        return self.seed_name or base_env

    def __init__(
        self,
        base_env: str,
        distraction_dims: int = 10,
        distractor_seed: int | None = None,
        pure_noise: bool = False,
        render_mode: str | None = None,
        id_distraction_dims: int | None = None,
        **base_kwargs: Any,
    ):
        utils.EzPickle.__init__(
            self, base_env, distraction_dims, distractor_seed, pure_noise, render_mode, id_distraction_dims,
            **base_kwargs,
        )
        d = validate_distraction_dims(distraction_dims)
        if not isinstance(base_env, str) or base_env not in gym.registry:
            raise ValueError(
                f"unknown base env {base_env!r}; valid choices: any registered gymnasium id with a 1-D Box "
                f"observation space, e.g. {', '.join(_SUITE_BASE_ENVS)}"
            )
        name = self._name_for_seed(base_env)
        _check_id_distraction_dims(name, d, id_distraction_dims)
        if distractor_seed is None:
            distractor_seed = default_distractor_seed(name, d)
        if not isinstance(distractor_seed, (int, np.integer)) or isinstance(distractor_seed, bool):
            raise ValueError(f"distractor_seed must be an int or None, got {distractor_seed!r}")
        if not isinstance(pure_noise, (bool, np.bool_)):
            raise ValueError(f"pure_noise must be True or False, got {pure_noise!r}")

        self.base_env_id = base_env
        self.distraction_dims = d
        self.distractor_seed = int(distractor_seed)
        self.pure_noise = bool(pure_noise)

        # The raw base env: no TimeLimit / checker wrappers (ours come from our own registration).
        self.base = gym.make(base_env, render_mode=render_mode, disable_env_checker=True, **base_kwargs).unwrapped
        base_space = self.base.observation_space
        if not isinstance(base_space, spaces.Box) or len(base_space.shape) != 1:
            self.base.close()
            raise ValueError(
                f"base env {base_env!r} has observation space {base_space}; valid choices: envs with a 1-D Box "
                "observation space"
            )
        self.base_obs_dim = int(base_space.shape[0])
        self.render_mode = self.base.render_mode
        self.metadata = dict(self.base.metadata)
        self.action_space = self.base.action_space
        self.observation_space = spaces.Box(
            low=-np.inf, high=np.inf, shape=(self.base_obs_dim + d,), dtype=np.float64
        )
        structure = getattr(self.base, "observation_structure", None)
        self.observation_structure = {**(structure or {"base": self.base_obs_dim}), "distractors": d}

        self.dynamics = DistractorDynamics(d, self.distractor_seed)
        self._x = np.zeros(d)
        # Bound once: the per-step path is one call to the base env, one to the distractor update and one
        # concatenate (benchmarks/bench_envs.py measures what this adds per step).
        self._base_step = self.base.step
        if self.pure_noise:
            self._advance_ = self._noise_
        elif d:
            self._advance_ = self.dynamics.step_
        else:
            self._advance_ = _no_op

    # ------------------------------------------------------------------------------------------------------------
    @property
    def distractor_state(self) -> np.ndarray:
        """A copy of the current distractor state ``x`` (shape ``(d,)``)."""
        return self._x.copy()

    def _noise_(self, x: np.ndarray) -> None:
        self.np_random.standard_normal(out=x)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random = np.random.Generator(
                np.random.PCG64(np.random.SeedSequence(seed, spawn_key=_DISTRACTOR_STREAM))
            )
            self._np_random_seed = seed
        base_obs, info = self.base.reset(seed=seed, options=options)
        # Upstream draws x0 ~ N(0, 0.1^2) and applies one transition at reset (pure noise: a fresh N(0, 1) draw).
        self.np_random.standard_normal(out=self._x)
        self._x *= INIT_STD
        self._advance_(self._x)
        # A fresh array per call: users (and check_env) keep returned observations.
        return np.concatenate((base_obs, self._x)), info

    def step(self, action):
        base_obs, reward, terminated, truncated, info = self._base_step(action)
        self._advance_(self._x)
        return np.concatenate((base_obs, self._x)), reward, terminated, truncated, info

    def render(self):
        return self.base.render()

    def close(self):
        base = getattr(self, "base", None)
        if base is not None:
            base.close()


def _no_op(x: np.ndarray) -> None:
    pass


def _check_id_distraction_dims(name: str, distraction_dims: int, id_distraction_dims: int | None) -> None:
    """Refuse a ``distraction_dims`` that contradicts the fixed-d id being made.

    ``gym.make("HopperDistract-15-v0", distraction_dims=3)`` would otherwise build a 14-dim env whose
    ``spec.id`` still says 15 (and whose distractor seed is the 15-dim one). The registration of every
    ``<Family>Distract-<d>-v0`` id records ``id_distraction_dims=d``; the parametric ``<Family>Distract-v0``
    ids record nothing and accept any ``d``.

    Examples:
        >>> _check_id_distraction_dims("HopperDistract", 15, 15)
        >>> _check_id_distraction_dims("HopperDistract", 3, None)
        >>> _check_id_distraction_dims("HopperDistract", 3, 15)
        Traceback (most recent call last):
        ...
        ValueError: HopperDistract-15-v0 fixes distraction_dims=15, got distraction_dims=3; valid choices: distraction_dims=15 (or leave it out), or the parametric id gym.make('HopperDistract-v0', distraction_dims=3)
    """
    if id_distraction_dims is None:
        return
    fixed = validate_distraction_dims(id_distraction_dims)
    if distraction_dims != fixed:
        raise ValueError(
            f"{name}-{fixed}-v0 fixes distraction_dims={fixed}, got distraction_dims={distraction_dims}; valid "
            f"choices: distraction_dims={fixed} (or leave it out), or the parametric id "
            f"gym.make('{name}-v0', distraction_dims={distraction_dims})"
        )


_SUITE_BASE_ENVS = (
    "Hopper-v5",
    "Walker2d-v5",
    "HalfCheetah-v5",
    "Ant-v5",
    "Humanoid-v5",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "AntTruncatedObs-v0",
    "HumanoidTruncatedObs-v0",
    "DMCHopperHop-v0",
    "DMCCheetahRun-v0",
    "DMCWalkerWalk-v0",
    "DMCHumanoidWalk-v0",
)


class _FamilyDistractEnv(DistractionEnv):
    """A :class:`DistractionEnv` whose base env is fixed by the subclass."""

    base_id: str = ""
    #: The render modes of gymnasium's v5 MuJoCo envs (``HopperEnv.metadata`` etc.), which every family's base
    #: (including the truncated-observation Ant/Humanoid) inherits; tests/test_envs.py checks each instance.
    metadata: dict[str, Any] = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}

    def __init__(
        self,
        distraction_dims: int = 10,
        distractor_seed: int | None = None,
        pure_noise: bool = False,
        render_mode: str | None = None,
        id_distraction_dims: int | None = None,
        **base_kwargs: Any,
    ):
        super().__init__(
            self.base_id,
            distraction_dims=distraction_dims,
            distractor_seed=distractor_seed,
            pure_noise=pure_noise,
            render_mode=render_mode,
            id_distraction_dims=id_distraction_dims,
            **base_kwargs,
        )
        # EzPickle must re-create the family class without a ``base_env`` argument.
        utils.EzPickle.__init__(
            self, distraction_dims, distractor_seed, pure_noise, render_mode, id_distraction_dims, **base_kwargs
        )


_COMMON_DOC = r"""
    ## Distractor dynamics
    See [`DistractionEnv`]: `x <- W x; x <- x + 0.1 sin(P x); x_i <- rho_i where |x_i| > 20`, parameters
    `W ~ N(0,1)^{d x d}`, `P = N(0,10^2)^2`, `rho ~ N(0,1)^d` drawn from the fixed `distractor_seed`, initial state
    `x0 ~ N(0, 0.1^2)^d` (one transition applied at reset) from the env's `np_random`. The distractors do not depend
    on the action or the base state, and never affect reward or termination.

    ## Arguments
    | Parameter          | Type         | Default | Description |
    |--------------------|--------------|---------|-------------|
    | `distraction_dims` | **int**      | `10`    | `d >= 0` (fixed by the id for `...Distract-<d>-v0`). |
    | `distractor_seed`  | **int/None** | per id  | Seed of `W, P, rho`; `None` = `crc32(f"{FAMILY}-{d}")`, which is what the registered ids record in `spec.kwargs`. |
    | `pure_noise`       | **bool**     | `False` | Ablation: i.i.d. `N(0, 1)` distractors instead of the dynamics above. |
    | `render_mode`      | **str/None** | `None`  | Passed to the base env (renders the base env). |
    | `id_distraction_dims` | **int/None** | per id | Set by the fixed-d ids (`FAMILY-15-v0`: 15); a different `distraction_dims` raises `ValueError`. |
    | `**base_kwargs`    |              |         | Passed to the base env (e.g. `healthy_z_range`, `reset_noise_scale`). |

    ## Seeding
    `reset(seed=s)` resets the base env with `s` (base dims identical to `BASE` reset with `s`) and seeds the
    distractor stream with `SeedSequence(s, spawn_key=(0x0D15,))`.

    ## Version History
    * v0: Initial release (gymnasium 1.x / MuJoCo v5 base, distractor parameters from a fixed per-id seed; upstream
      VaGraM drew them from the global RNG, so its training and evaluation envs differed).
"""


def _family_doc(body: str, family: str, base: str) -> str:
    return body + _COMMON_DOC.replace("FAMILY", family).replace("BASE", base)


class HopperDistractEnv(_FamilyDistractEnv):
    base_id = "Hopper-v5"
    seed_name = "HopperDistract"
    __doc__ = _family_doc(
        r"""
    ## Description
    gymnasium's `Hopper-v5` (a 2-D one-legged robot that must hop forward) with `d` VaGraM distractor dimensions
    appended to the observation. This is the environment of VaGraM's distraction experiments (upstream used
    `Hopper-v2`; the suite uses the maintained v5 with the same observation layout).
    Registered ids: `HopperDistract-{0,5,10,15,20}-v0` and the parametric `HopperDistract-v0`
    (`gym.make("HopperDistract-v0", distraction_dims=7)`).

    ## Action Space
    `Box(-1, 1, (3,), float32)`: torques on the thigh, leg and foot hinges (as `Hopper-v5`).

    ## Observation Space
    `Box(-inf, inf, (11 + d,), float64)`:

    | Num       | Observation                                              |
    |-----------|----------------------------------------------------------|
    | 0         | z-coordinate (height) of the torso                       |
    | 1         | angle of the torso                                       |
    | 2-4       | angles of the thigh, leg and foot joints                 |
    | 5-10      | velocities of rootx, rootz, rooty, thigh, leg, foot (clipped to +-10) |
    | 11..11+d-1| distractors                                              |

    ## Rewards
    `Hopper-v5`'s: `healthy_reward + forward_reward - ctrl_cost` (`1 + dx/dt - 1e-3 |a|^2` by default).

    ## Starting State
    `Hopper-v5`'s (uniform noise of scale 5e-3 on qpos and qvel) plus the distractor initial state.

    ## Episode End
    Terminated when `Hopper-v5` is unhealthy: height `obs[0] <= 0.7`, or `|obs[1]| >= 0.2`, or any element of the
    base state `obs[1:11]` outside `(-100, 100)`; distractor dims are never checked (docs/envs.md "Termination functions
    for model rollouts"; upstream VaGraM's termination function also read the distractors). Truncated after 1000 steps.
""",
        "HopperDistract",
        "Hopper-v5",
    )


class Walker2dDistractEnv(_FamilyDistractEnv):
    base_id = "Walker2d-v5"
    seed_name = "Walker2dDistract"
    __doc__ = _family_doc(
        r"""
    ## Description
    gymnasium's `Walker2d-v5` (a 2-D bipedal robot that must walk forward) with `d` VaGraM distractor dimensions
    appended to the observation. Registered ids: `Walker2dDistract-{0,5,10,15,20}-v0` and the parametric
    `Walker2dDistract-v0`.

    ## Action Space
    `Box(-1, 1, (6,), float32)`: torques on the six hinges (as `Walker2d-v5`).

    ## Observation Space
    `Box(-inf, inf, (17 + d,), float64)`: indices 0-7 are `qpos[1:]` (torso height, torso angle, six joint angles),
    8-16 are `qvel` clipped to +-10, then the `d` distractors.

    ## Rewards
    `Walker2d-v5`'s: `healthy_reward + forward_reward - ctrl_cost`.

    ## Starting State
    `Walker2d-v5`'s plus the distractor initial state.

    ## Episode End
    Terminated when `Walker2d-v5` is unhealthy: height `obs[0]` outside `(0.8, 2.0)` or angle `obs[1]` outside
    `(-1, 1)`. Truncated after 1000 steps.
""",
        "Walker2dDistract",
        "Walker2d-v5",
    )


class HalfCheetahDistractEnv(_FamilyDistractEnv):
    base_id = "HalfCheetah-v5"
    seed_name = "HalfCheetahDistract"
    __doc__ = _family_doc(
        r"""
    ## Description
    gymnasium's `HalfCheetah-v5` (a 2-D cheetah that must run forward) with `d` VaGraM distractor dimensions
    appended to the observation. Registered ids: `HalfCheetahDistract-{0,5,10,15,20}-v0` and the parametric
    `HalfCheetahDistract-v0`.

    ## Action Space
    `Box(-1, 1, (6,), float32)`: torques on the six hinges (as `HalfCheetah-v5`).

    ## Observation Space
    `Box(-inf, inf, (17 + d,), float64)`: indices 0-7 are `qpos[1:]`, 8-16 are `qvel`, then the `d` distractors.

    ## Rewards
    `HalfCheetah-v5`'s: `forward_reward - ctrl_cost` (`dx/dt - 0.1 |a|^2`).

    ## Starting State
    `HalfCheetah-v5`'s plus the distractor initial state.

    ## Episode End
    Never terminates; truncated after 1000 steps.
""",
        "HalfCheetahDistract",
        "HalfCheetah-v5",
    )


class AntTruncatedDistractEnv(_FamilyDistractEnv):
    base_id = "AntTruncatedObs-v0"
    seed_name = "AntTruncatedDistract"
    __doc__ = _family_doc(
        r"""
    ## Description
    The MBPO/SVG Ant with the truncated 27-dim observation ([`AntTruncatedObsEnv`], `AntTruncatedObs-v0`: `Ant-v5`
    without contact forces in the observation) with `d` VaGraM distractor dimensions appended. Registered ids:
    `AntTruncatedDistract-{0,5,10,15,20}-v0` and the parametric `AntTruncatedDistract-v0`.

    ## Action Space
    `Box(-1, 1, (8,), float32)`: torques on the eight hip and ankle hinges.

    ## Observation Space
    `Box(-inf, inf, (27 + d,), float64)`: 0-12 are `qpos[2:]` (torso z, torso quaternion, 8 joint angles), 13-26 are
    `qvel` (torso linear and angular velocity, 8 joint velocities), then the `d` distractors.

    ## Rewards
    `Ant-v5`'s: `healthy_reward + forward_reward - ctrl_cost - contact_cost`.

    ## Starting State
    `Ant-v5`'s plus the distractor initial state.

    ## Episode End
    Terminated when any base entry is non-finite or the torso height `obs[0]` is outside `[0.2, 1.0]`.
    Truncated after 1000 steps.
""",
        "AntTruncatedDistract",
        "AntTruncatedObs-v0",
    )


class HumanoidTruncatedDistractEnv(_FamilyDistractEnv):
    base_id = "HumanoidTruncatedObs-v0"
    seed_name = "HumanoidTruncatedDistract"
    __doc__ = _family_doc(
        r"""
    ## Description
    The MBPO/SVG Humanoid with the truncated 45-dim observation ([`HumanoidTruncatedObsEnv`],
    `HumanoidTruncatedObs-v0`: `Humanoid-v5` without `cinert`, `cvel`, `qfrc_actuator` and `cfrc_ext`, actions
    rescaled to [-1, 1]) with `d` VaGraM distractor dimensions appended. Registered ids:
    `HumanoidTruncatedDistract-{0,5,10,15,20}-v0` and the parametric `HumanoidTruncatedDistract-v0`.

    ## Action Space
    `Box(-1, 1, (17,), float32)`, mapped linearly to `Humanoid-v5`'s native `[-0.4, 0.4]` torques.

    ## Observation Space
    `Box(-inf, inf, (45 + d,), float64)`: 0-21 are `qpos[2:]`, 22-44 are `qvel`, then the `d` distractors.

    ## Rewards
    `Humanoid-v5`'s: `healthy_reward + forward_reward - ctrl_cost - contact_cost` (on the native torques).

    ## Starting State
    `Humanoid-v5`'s plus the distractor initial state.

    ## Episode End
    Terminated when the torso height `obs[0]` is outside `(1.0, 2.0)`. Truncated after 1000 steps.
""",
        "HumanoidTruncatedDistract",
        "HumanoidTruncatedObs-v0",
    )


class InvertedPendulumDistractEnv(_FamilyDistractEnv):
    base_id = "InvertedPendulum-v5"
    seed_name = "InvertedPendulumDistract"
    __doc__ = _family_doc(
        r"""
    ## Description
    gymnasium's `InvertedPendulum-v5` (a cart on a rail carrying one hinged pole; pushing the cart left or right
    must keep the pole upright) with `d` VaGraM distractor dimensions appended to the observation. It is the
    suite's cheapest task, an anchor for results grids: on the base env the suite's MBPO reached the maximum
    return of 1000 within 2,500 env steps (earlier defaults) and SAC within 4k-10k (docs/mbpo.md and
    docs/runner.md, learning checks), so a learning curve with and without distractors costs a few thousand steps.
    Registered ids: `InvertedPendulumDistract-{0,5,10,15,20}-v0` and the parametric `InvertedPendulumDistract-v0`
    (`gym.make("InvertedPendulumDistract-v0", distraction_dims=7)`).

    ## Action Space
    `Box(-3, 3, (1,), float32)`: the force on the cart in N, exactly `InvertedPendulum-v5`'s (not rescaled to
    `[-1, 1]`; the suite's agents map their `[-1, 1]` policy outputs onto any bounded `Box`).

    ## Observation Space
    `Box(-inf, inf, (4 + d,), float64)`:

    | Num      | Observation                                    |
    |----------|------------------------------------------------|
    | 0        | position of the cart along the rail (m)        |
    | 1        | angle of the pole from vertical (rad)          |
    | 2        | velocity of the cart (m/s)                     |
    | 3        | angular velocity of the pole (rad/s)           |
    | 4..4+d-1 | distractors                                    |

    ## Rewards
    `InvertedPendulum-v5`'s: `+1` for every step on which the episode does not terminate (`0` on the terminating
    step), so a full 1000-step episode returns 1000.

    ## Starting State
    `InvertedPendulum-v5`'s (`U(-0.01, 0.01)` on qpos and on qvel) plus the distractor initial state.

    ## Episode End
    Terminated when a base observation entry is not finite or the pole angle `|obs[1]| > 0.2`, as
    `InvertedPendulum-v5`; distractor dims are never checked (`termination_fn` reproduces it from `obs[0:4]`).
    Truncated after 1000 steps.
""",
        "InvertedPendulumDistract",
        "InvertedPendulum-v5",
    )


class InvertedDoublePendulumDistractEnv(_FamilyDistractEnv):
    base_id = "InvertedDoublePendulum-v5"
    seed_name = "InvertedDoublePendulumDistract"
    __doc__ = _family_doc(
        r"""
    ## Description
    gymnasium's `InvertedDoublePendulum-v5` (a cart on a rail carrying two hinged poles; pushing the cart left or
    right must keep the free tip of the second pole up) with `d` VaGraM distractor dimensions appended to the
    observation. It is the suite's small distraction task: MBPO balances the base env within roughly 10-20k
    steps, so whole learning curves with and without distractors fit a CPU budget, where `HopperDistract` needs
    ~100k steps per curve. Registered ids: `InvertedDoublePendulumDistract-{0,5,10,15,20}-v0` and the parametric
    `InvertedDoublePendulumDistract-v0` (`gym.make("InvertedDoublePendulumDistract-v0", distraction_dims=7)`).

    ## Action Space
    `Box(-1, 1, (1,), float32)`: the force on the cart (as `InvertedDoublePendulum-v5`).

    ## Observation Space
    `Box(-inf, inf, (9 + d,), float64)`:

    | Num      | Observation                                                    |
    |----------|----------------------------------------------------------------|
    | 0        | position of the cart `x`                                       |
    | 1-2      | `sin t1`, `sin t2` (`t1`: first pole vs. cart, `t2`: second pole vs. first) |
    | 3-4      | `cos t1`, `cos t2`                                             |
    | 5-7      | velocities of the cart and of the two hinges (clipped to +-10) |
    | 8        | constraint force on the cart's slider, x (clipped to +-10)     |
    | 9..9+d-1 | distractors                                                    |

    ## Rewards
    `InvertedDoublePendulum-v5`'s: `alive_bonus - distance_penalty - velocity_penalty`, with `alive_bonus = 10`
    while healthy, `distance_penalty = 0.01 x_tip^2 + (y_tip - 2)^2` from the tip of the second pole and
    `velocity_penalty = 1e-3 w1^2 + 5e-3 w2^2` from the unclipped hinge velocities. At most about 9.36 per step,
    so a full 1000-step episode returns about 9,350.

    ## Starting State
    `InvertedDoublePendulum-v5`'s (`U(-0.1, 0.1)` on qpos, `N(0, 0.1^2)` on qvel) plus the distractor initial
    state.

    ## Episode End
    Terminated when the tip of the second pole is at height `y <= 1` (upright it is at 1.2), as
    `InvertedDoublePendulum-v5`; distractor dims are never checked. gymnasium reads `y` from MuJoCo's kinematics
    of the last RK4 stage rather than of the returned state, so `termination_fn`, which computes
    `y = 0.6 cos t1 + 0.6 cos(t1 + t2)` from `obs[1:5]`, can disagree with the env on transitions whose tip is
    within ~1e-3 of the threshold (see `docs/envs.md`). Truncated after 1000 steps.
""",
        "InvertedDoublePendulumDistract",
        "InvertedDoublePendulum-v5",
    )


class DMCDistractEnv(DistractionEnv):
    r"""
    ## Description
    A dm-control suite task (as a gymnasium env, [`DMControlSuiteEnv`]) with `d` VaGraM distractor dimensions
    appended to the flattened observation. Registered ids: `DMC<Domain><Task>Distract-{0,5,10,15,20}-v0` and the
    parametric `DMC<Domain><Task>Distract-v0` for hopper-hop, cheetah-run, walker-walk and humanoid-walk, e.g.
    `DMCCheetahRunDistract-15-v0`.

    ## Action Space
    The task's actions rescaled to `Box(-1, 1, (m,), float32)`.

    ## Observation Space
    `Box(-inf, inf, (n + d,), float64)`: the task's flattened observation (dm-control's key order, see
    `observation_structure`), then the `d` distractors.

    ## Rewards
    The dm-control task reward in `[0, 1]` per step.

    ## Starting State
    The task's random initial state, seeded from the env's `np_random`, plus the distractor initial state.

    ## Episode End
    Never terminates; truncated after 1000 steps.

    ## Arguments
    | Parameter          | Type         | Default | Description |
    |--------------------|--------------|---------|-------------|
    | `base_env`         | **str**      | required| The dm-control base id, e.g. `"DMCCheetahRun-v0"`. |
    | `distraction_dims` | **int**      | `10`    | `d >= 0`. |
    | `distractor_seed`  | **int/None** | per id  | `None` = `crc32(f"DMC<Domain><Task>Distract-{d}")`. |
    | `pure_noise`       | **bool**     | `False` | Ablation: i.i.d. `N(0, 1)` distractors. |
    | `render_mode`      | **str/None** | `None`  | `"rgb_array"` or `None`. |
    | `id_distraction_dims` | **int/None** | per id | Set by the fixed-d ids; a different `distraction_dims` raises `ValueError`. |

    ## Version History
    * v0: Initial release (dm-control 1.0.50, written against `dm_control.suite` directly).
    """

    #: dm-control tasks render ``rgb_array`` only (as :class:`~vagram_bench.envs.dmc.DMControlSuiteEnv`).
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}

    def _name_for_seed(self, base_env: str) -> str:
        # ``DMC<Domain><Task>-v0`` -> ``DMC<Domain><Task>Distract``, as the family classes' ``seed_name``
        if isinstance(base_env, str) and base_env.startswith("DMC") and base_env.endswith("-v0"):
            return base_env[: -len("-v0")] + "Distract"
        return super()._name_for_seed(base_env)
