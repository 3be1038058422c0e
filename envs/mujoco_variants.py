"""MuJoCo variants of the suite: MBPO/SVG truncated-observation Ant and Humanoid, and the reduced-capacity Hopper,
InvertedPendulum and InvertedDoublePendulum ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv
from gymnasium.envs.mujoco.inverted_double_pendulum_v5 import InvertedDoublePendulumEnv
from gymnasium.envs.mujoco.inverted_pendulum_v5 import InvertedPendulumEnv
from gymnasium.wrappers.utils import rescale_box

__all__ = [
    "AntTruncatedObsEnv",
    "HumanoidTruncatedObsEnv",
    "HopperCapacityEnv",
    "InvertedPendulumCapacityEnv",
    "InvertedDoublePendulumCapacityEnv",
    "ModelCapacityMixin",
    "validate_model_capacity",
]


class AntTruncatedObsEnv(AntEnv):
    r"""
    ## Description
    The "truncated observation" Ant of MBPO (Janner et al., 2019) and SAC-SVG (Amos et al., 2021): gymnasium's
    `Ant-v5` (a 3-D quadruped that must walk forward) whose observation drops the 78 external contact-force entries
    (`cfrc_ext`), leaving the 27-dim proprioceptive state. Registered as `AntTruncatedObs-v0`; the distraction
    family `AntTruncatedDistract-*` builds on it.

    MBPO/SVG truncated `Ant-v2`'s 111-dim observation (84 clipped contact forces) to the same 27 dims; the
    suite uses the maintained v5 dynamics and reward, so returns are comparable to `Ant-v5`, not to `Ant-v2`.

    ## Action Space
    `Box(-1, 1, (8,), float32)`: torques on the four hip and four ankle hinges (as `Ant-v5`).

    ## Observation Space
    `Box(-inf, inf, (27,), float64)`, `observation_structure = {"skipped_qpos": 2, "qpos": 13, "qvel": 14,
    "cfrc_ext": 0}`:

    | Num   | Observation                                                   |
    |-------|---------------------------------------------------------------|
    | 0     | z-coordinate of the torso                                      |
    | 1-4   | torso orientation quaternion (w, x, y, z)                      |
    | 5-12  | hip and ankle angles of the four legs                          |
    | 13-15 | torso linear velocity (x, y, z)                                |
    | 16-18 | torso angular velocity                                         |
    | 19-26 | hip and ankle angular velocities                               |

    ## Rewards
    `Ant-v5`'s, unchanged: `healthy_reward + forward_reward - ctrl_cost - contact_cost` (defaults 1,
    `dx/dt`, `0.5 |a|^2`, `5e-4 |clip(cfrc_ext, -1, 1)|^2`). The contact cost still uses the simulator's contact
    forces; they are only hidden from the observation.

    ## Starting State
    `Ant-v5`'s (uniform qpos noise and Gaussian qvel noise of scale 0.1).

    ## Episode End
    Terminated when the state is non-finite or the torso height `obs[0]` is outside `[0.2, 1.0]` (inclusive,
    `Ant-v5`'s `healthy_z_range`). Truncated after 1000 steps.

    ## Arguments
    Every `Ant-v5` argument except `include_cfrc_ext_in_observation` (always `False`; passing `True` raises a
    `ValueError`).

    ## Version History
    * v0: `Ant-v5` (gymnasium 1.x) with `include_cfrc_ext_in_observation=False`.
    """

    def __init__(self, **kwargs: Any):
        if kwargs.pop("include_cfrc_ext_in_observation", False):
            raise ValueError(
                "AntTruncatedObs excludes contact forces: include_cfrc_ext_in_observation must be False, got True "
                "(use Ant-v5 for the full observation)"
            )
        super().__init__(include_cfrc_ext_in_observation=False, **kwargs)
        utils.EzPickle.__init__(self, **kwargs)


_HUMANOID_EXCLUDED = (
    "include_cinert_in_observation",
    "include_cvel_in_observation",
    "include_qfrc_actuator_in_observation",
    "include_cfrc_ext_in_observation",
)


class HumanoidTruncatedObsEnv(HumanoidEnv):
    r"""
    ## Description
    The "truncated observation" Humanoid of MBPO and SAC-SVG: gymnasium's `Humanoid-v5` (a 3-D bipedal robot that
    must walk forward without falling) whose observation keeps only joint positions and velocities (45 dims),
    dropping the centre-of-mass inertia (`cinert`), centre-of-mass velocity (`cvel`), actuator forces
    (`qfrc_actuator`) and external contact forces (`cfrc_ext`). Registered as `HumanoidTruncatedObs-v0`; the
    distraction family `HumanoidTruncatedDistract-*` builds on it.

    **Actions are rescaled to [-1, 1]**, as SVG wraps every env in `RescaleAction(env, -1, 1)` (`svg.md` §2.3):
    an action `a` is applied as the native torque `-0.4 + (a + 1) / 2 * 0.8`, i.e. `0.4 a`. This keeps the
    suite's convention that every action space is `[-1, 1]` (what SAC's tanh policy produces) and lives in the
    env class itself, so `env.unwrapped.action_space` is the one agents see.

    ## Action Space
    `Box(-1, 1, (17,), float32)`, mapped linearly to `Humanoid-v5`'s `[-0.4, 0.4]` motor ranges (abdomen, hips,
    knees, shoulders, elbows).

    ## Observation Space
    `Box(-inf, inf, (45,), float64)`, `observation_structure` has `"qpos": 22, "qvel": 23` and zeros for the
    excluded parts:

    | Num   | Observation                                                              |
    |-------|--------------------------------------------------------------------------|
    | 0     | z-coordinate of the torso                                                 |
    | 1-4   | torso orientation quaternion                                              |
    | 5-21  | joint angles (abdomen z/y/x, right hip x/z/y, right knee, left hip x/z/y, left knee, right shoulder 1/2, right elbow, left shoulder 1/2, left elbow) |
    | 22-24 | torso linear velocity                                                     |
    | 25-27 | torso angular velocity                                                    |
    | 28-44 | joint angular velocities (same order as 5-21)                             |

    ## Rewards
    `Humanoid-v5`'s, computed on the native torques: `healthy_reward + forward_reward - ctrl_cost - contact_cost`
    (defaults 5, `1.25 d(COM x)/dt`, `0.1 |ctrl|^2`, `min(5e-7 |cfrc_ext|^2, 10)`).

    ## Starting State
    `Humanoid-v5`'s (uniform noise of scale 1e-2 on qpos and qvel).

    ## Episode End
    Terminated when the torso height `obs[0]` is outside `(1.0, 2.0)`. Truncated after 1000 steps.

    ## Arguments
    Every `Humanoid-v5` argument except the four `include_*_in_observation` flags (always `False`; passing `True`
    raises a `ValueError`).

    ## Version History
    * v0: `Humanoid-v5` (gymnasium 1.x) with the four `include_*` flags off and actions rescaled to [-1, 1].
    """

    def __init__(self, **kwargs: Any):
        for key in _HUMANOID_EXCLUDED:
            if kwargs.pop(key, False):
                raise ValueError(
                    f"HumanoidTruncatedObs excludes {key[len('include_'):-len('_in_observation')]}: {key} must be "
                    "False, got True (use Humanoid-v5 for the full observation)"
                )
        super().__init__(**{key: False for key in _HUMANOID_EXCLUDED}, **kwargs)
        utils.EzPickle.__init__(self, **kwargs)
        # gymnasium's own rescaling (the function behind ``RescaleAction``), so this env matches
        # ``RescaleAction(Humanoid-v5 with the flags off, -1, 1)`` bit for bit.
        self.native_action_space = self.action_space
        self.action_space, _, self._to_native = rescale_box(
            self.native_action_space, np.float32(-1.0), np.float32(1.0)
        )

    def native_action(self, action: np.ndarray) -> np.ndarray:
        """Map an action in [-1, 1] to the native torque range ([-0.4, 0.4])."""
        return self._to_native(action)

    def step(self, action):
        return super().step(self.native_action(action))


def validate_model_capacity(model_capacity: Any) -> dict[str, int]:
    """Check a ``{"num_layers": L, "hid_size": H}`` constraint (positive ints) and return a clean copy.

    Raises:
        ValueError: naming the bad key or value and the valid choices.

    Examples:
        >>> validate_model_capacity({"num_layers": 3, "hid_size": 64})
        {'num_layers': 3, 'hid_size': 64}
    """
    if not isinstance(model_capacity, dict) or set(model_capacity) != {"num_layers", "hid_size"}:
        raise ValueError(
            "model_capacity must be a dict with exactly the keys 'num_layers' and 'hid_size', got "
            f"{model_capacity!r}"
        )
    out = {}
    for key in ("num_layers", "hid_size"):
        value = model_capacity[key]
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        if not ok or value <= 0:
            raise ValueError(f"model_capacity[{key!r}] must be a positive integer (1, 2, ...), got {value!r}")
        out[key] = int(value)
    return out


class ModelCapacityMixin:
    """A MuJoCo env, unchanged, that carries a dynamics-model capacity constraint for the agent.

    Put it before the env class in the bases (``class XCapacityEnv(ModelCapacityMixin, XEnv)``): the first argument,
    ``model_capacity``, is checked by :func:`validate_model_capacity` and kept as ``self.model_capacity``; every
    other keyword goes to the env class. ``EzPickle`` records the constraint too, so a pickled copy keeps it.
    """

    model_capacity: dict[str, int]

    def __init__(self, model_capacity: dict[str, int], **kwargs: Any):
        self.model_capacity = validate_model_capacity(model_capacity)
        super().__init__(**kwargs)
        utils.EzPickle.__init__(self, model_capacity, **kwargs)


class HopperCapacityEnv(ModelCapacityMixin, HopperEnv):
    r"""
    ## Description
    The reduced-model-capacity track of VaGraM (Voelcker et al., ICLR 2022, the model-capacity experiment; docs/envs.md "Reduced model capacity"): plain gymnasium `Hopper-v5`, whose registered
    spec carries `kwargs["model_capacity"] = {"num_layers": L, "hid_size": 64}`. The environment is unchanged; the
    constraint is on the **agent**: the runner builds the dynamics model with `L` hidden layers of width 64
    (instead of the default 4 x 200), read via `vagram_bench.envs.model_capacity(env_id)`. VaGraM's claim is that
    a decision-aware loss degrades less than maximum likelihood when the model is too small.
    Registered ids: `HopperCapacity-2x64-v0`, `HopperCapacity-3x64-v0` (VaGraM's sweep) and
    `HopperCapacity-4x64-v0` (the post-publication rerun).

    ## Action Space
    `Box(-1, 1, (3,), float32)`, exactly `Hopper-v5`'s (torques on the thigh, leg and foot hinges).

    ## Observation Space
    `Box(-inf, inf, (11,), float64)`, exactly `Hopper-v5`'s (`qpos[1:]` then `qvel` clipped to +-10).

    ## Rewards
    `Hopper-v5`'s: `1 + dx/dt - 1e-3 |a|^2` (the healthy reward only while healthy).

    ## Starting State
    `Hopper-v5`'s.

    ## Episode End
    Terminated when unhealthy (height `<= 0.7`, `|angle| >= 0.2`, or a state entry outside `(-100, 100)`),
    truncated after 1000 steps.

    ## Arguments
    | Parameter        | Type     | Default  | Description |
    |------------------|----------|----------|-------------|
    | `model_capacity` | **dict** | required | `{"num_layers": L, "hid_size": H}`, positive ints (else `ValueError`). |
    | `**kwargs`       |          |          | Every `Hopper-v5` argument. |

    The constraint is available as `env.unwrapped.model_capacity`.

    ## Version History
    * v0: Initial release (`Hopper-v5` dynamics).
    """


class InvertedPendulumCapacityEnv(ModelCapacityMixin, InvertedPendulumEnv):
    r"""
    ## Description
    The reduced-model-capacity question of VaGraM (Voelcker et al., ICLR 2022) on the suite's cheapest task: plain
    gymnasium `InvertedPendulum-v5` (a cart on a rail carrying one hinged pole, to be kept upright), whose
    registered spec carries `kwargs["model_capacity"] = {"num_layers": L, "hid_size": W}`. The environment is
    unchanged; the constraint is on the **agent**: the runner builds the dynamics model with `L` hidden layers of
    width `W` (instead of the default 4 x 200), read via `vagram_bench.envs.model_capacity(env_id)`, as for
    `HopperCapacity-*`. The family is `inverted_pendulum` (termination function and per-family agent defaults),
    the variant `capacity`.
    Registered ids: `InvertedPendulumCapacity-<L>x<W>-v0`, one per `(L, W)` in
    `vagram_bench.envs.IP_CAPACITY_SIZES` (listed in `docs/envs.md` and its id table).

    ## Action Space
    `Box(-3, 3, (1,), float32)`, exactly `InvertedPendulum-v5`'s (the force on the cart in N).

    ## Observation Space
    `Box(-inf, inf, (4,), float64)`, exactly `InvertedPendulum-v5`'s:

    | Num | Observation                                |
    |-----|--------------------------------------------|
    | 0   | position of the cart along the rail (m)    |
    | 1   | angle of the pole from vertical (rad)      |
    | 2   | velocity of the cart (m/s)                 |
    | 3   | angular velocity of the pole (rad/s)       |

    ## Rewards
    `InvertedPendulum-v5`'s: `+1` for every step on which the episode does not terminate (`0` on the terminating
    step); a full 1000-step episode returns 1000.

    ## Starting State
    `InvertedPendulum-v5`'s: positions and velocities uniform in `+-0.01` around upright and at rest.

    ## Episode End
    Terminated when an observation entry is not finite or the pole angle `|obs[1]| > 0.2`, truncated after 1000
    steps.

    ## Arguments
    | Parameter        | Type     | Default  | Description |
    |------------------|----------|----------|-------------|
    | `model_capacity` | **dict** | required | `{"num_layers": L, "hid_size": W}`, positive ints (else `ValueError`). |
    | `**kwargs`       |          |          | Every `InvertedPendulum-v5` argument (e.g. `reset_noise_scale`). |

    The constraint is available as `env.unwrapped.model_capacity`.

    ## Version History
    * v0: Initial release (`InvertedPendulum-v5` dynamics).
    """


class InvertedDoublePendulumCapacityEnv(ModelCapacityMixin, InvertedDoublePendulumEnv):
    r"""
    ## Description
    The reduced-model-capacity question of VaGraM (Voelcker et al., ICLR 2022) on a task a CPU can learn: plain
    gymnasium `InvertedDoublePendulum-v5` (a cart on a rail carrying two hinged poles, to be kept upright), whose
    registered spec carries `kwargs["model_capacity"] = {"num_layers": L, "hid_size": W}`. The environment is
    unchanged; the constraint is on the **agent**: the runner builds the dynamics model with `L` hidden layers of
    width `W` (instead of the default 4 x 200), read via `vagram_bench.envs.model_capacity(env_id)`, as for
    `HopperCapacity-*`. The family is `inverted_double_pendulum` (termination function and per-family agent
    defaults), the variant `capacity`.
    Registered ids: `InvertedDoublePendulumCapacity-<L>x<W>-v0`, one per `(L, W)` in
    `vagram_bench.envs.IDP_CAPACITY_SIZES` (listed in `docs/envs.md` and the README's id table).

    ## Action Space
    `Box(-1, 1, (1,), float32)`, exactly `InvertedDoublePendulum-v5`'s (the force on the cart).

    ## Observation Space
    `Box(-inf, inf, (9,), float64)`, exactly `InvertedDoublePendulum-v5`'s:

    | Num | Observation                                               |
    |-----|-----------------------------------------------------------|
    | 0   | cart position                                             |
    | 1-2 | sine of the first pole's angle and of the inter-pole angle |
    | 3-4 | cosine of the same two angles                             |
    | 5-7 | cart velocity and the two hinges' angular velocities (clipped to +-10) |
    | 8   | constraint force on the cart along the rail (clipped to +-10) |

    ## Rewards
    `InvertedDoublePendulum-v5`'s: `10 - (0.01 x_tip^2 + (y_tip - 2)^2) - (1e-3 w1^2 + 5e-3 w2^2)`, where
    `(x_tip, y_tip)` is the free end of the second pole and `w1, w2` are the hinges' angular velocities (the
    healthy reward of 10 only while not terminated).

    ## Starting State
    `InvertedDoublePendulum-v5`'s: positions uniform in `+-0.1` around upright, velocities `N(0, 0.1^2)`.

    ## Episode End
    Terminated when the tip height `y_tip <= 1` (upright it is 1.2), truncated after 1000 steps.

    ## Arguments
    | Parameter        | Type     | Default  | Description |
    |------------------|----------|----------|-------------|
    | `model_capacity` | **dict** | required | `{"num_layers": L, "hid_size": W}`, positive ints (else `ValueError`). |
    | `**kwargs`       |          |          | Every `InvertedDoublePendulum-v5` argument. |

    The constraint is available as `env.unwrapped.model_capacity`.

    ## Version History
    * v0: Initial release (`InvertedDoublePendulum-v5` dynamics).
    """
