"""dm-control suite tasks as gymnasium environments, written against ``dm_control.suite`` directly (no shimmy)."""

from __future__ import annotations

import contextlib
import logging
import textwrap
import warnings
from typing import Any, Iterator

import numpy as np

import gymnasium as gym
from gymnasium import spaces, utils

__all__ = [
    "DMControlSuiteEnv",
    "DMCHopperHopEnv",
    "DMCCheetahRunEnv",
    "DMCWalkerWalkEnv",
    "DMCHumanoidWalkEnv",
]


#: What dm-control prints on every process start / ``suite.load`` that says nothing about this env:
#: * glfw's "DISPLAY environment variable is missing" (error 65550): dm-control imports GLFW first when
#:   ``MUJOCO_GL`` is unset; on a machine without a display the import still succeeds and only rendering fails
#:   (``render`` then says to set ``MUJOCO_GL=egl``, see docs/envs.md);
#: * MuJoCo's compiler warning that cheetah.xml's ``settotalmass`` attribute is deprecated (dm-control's
#:   asset, not ours; MuJoCo >= 3.3 still honours it), relayed through the ``absl`` logger.
_GLFW_NO_DISPLAY = r".*The DISPLAY environment variable is missing"
_MUJOCO_DEPRECATED_ATTRIBUTE = "compiler attribute 'settotalmass' is deprecated"


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


@contextlib.contextmanager
def _quiet_dm_control() -> Iterator[None]:
    """Drop exactly the two harmless dm-control messages above while importing the suite / loading a task;
    every other warning and log record passes through."""
    absl_logger = logging.getLogger("absl")
    drop = _DropMessage(_MUJOCO_DEPRECATED_ATTRIBUTE)
    absl_logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_GLFW_NO_DISPLAY, module="glfw")
            yield
    finally:
        absl_logger.removeFilter(drop)


class DMControlSuiteEnv(gym.Env, utils.EzPickle):
    r"""
    ## Description
    A `dm_control.suite` task exposed as a gymnasium environment with a flat, float64 observation and actions in
    `[-1, 1]`, built directly on `dm_control.suite.load` (the suite does not depend on shimmy). The per-task
    classes ([`DMCHopperHopEnv`], [`DMCCheetahRunEnv`], [`DMCWalkerWalkEnv`], [`DMCHumanoidWalkEnv`]) document
    each task; ids are `DMC<Domain><Task>-v0`, e.g. `DMCCheetahRun-v0`.

    ## Action Space
    `Box(-1, 1, (m,), float32)`. An action `a` is mapped linearly to the task's native bounds
    `low + (a + 1) / 2 * (high - low)` (for the four suite tasks the native bounds are already `[-1, 1]`, so the
    map is the identity) and clipped to them.

    ## Observation Space
    `Box(-inf, inf, (n,), float64)`: the task's observation dict flattened in dm-control's key order;
    `observation_structure` maps each key to its size.

    ## Rewards
    The task reward (in `[0, 1]` per step for these tasks).

    ## Starting State
    The task's random initial state. dm-control draws it from the task's `numpy.random.RandomState`; this env
    re-seeds that generator at every `reset` with an integer drawn from the gymnasium `np_random`, so
    `reset(seed=s)` is deterministic and un-seeded resets continue the seeded stream.

    ## Episode End
    None of the four tasks terminates: `terminated` is `True` only if dm-control reports a terminal step with
    discount 0. The dm-control time limit is disabled inside the env (`time_limit=inf`) and the registered
    `max_episode_steps=1000` (`TimeLimit`) ends every episode with `truncated=True` after 1000 control steps,
    exactly dm-control's own 1000-step episodes for these tasks.

    ## Arguments
    | Parameter          | Type         | Default | Description |
    |--------------------|--------------|---------|-------------|
    | `domain`           | **str**      | required| dm-control domain, e.g. `"cheetah"`. |
    | `task`             | **str**      | required| dm-control task, e.g. `"run"`. |
    | `render_mode`      | **str/None** | `None`  | `"rgb_array"` or `None` (needs `MUJOCO_GL=egl` or `osmesa` headless). |
    | `width`, `height`  | **int**      | `480`   | Rendered image size. |
    | `camera_id`        | **int**      | `0`     | dm-control camera used for rendering. |
    | `environment_kwargs` | **dict/None** | `None` | Extra `dm_control.rl.control.Environment` kwargs (except `time_limit`). |

    ## Version History
    * v0: Initial release (dm-control 1.0.50, mujoco 3.x).
    """

    #: As gymnasium's MuJoCo envs: the class declares the render modes, the instance adds ``render_fps`` (it depends
    #: on the domain's control step); the per-task classes below declare their fps too.
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        domain: str,
        task: str,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        camera_id: int = 0,
        environment_kwargs: dict[str, Any] | None = None,
    ):
        utils.EzPickle.__init__(self, domain, task, render_mode, width, height, camera_id, environment_kwargs)
        with _quiet_dm_control():
            from dm_control import suite  # heavy import, deferred until an env is made

        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(
                f"unknown dm-control task {domain}-{task}; valid choices: "
                + ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS)
            )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        env_kwargs = dict(environment_kwargs or {})
        if "time_limit" in env_kwargs:
            raise ValueError(
                "environment_kwargs['time_limit'] is not supported: episode length is set by max_episode_steps"
            )

        # The task keeps a reference to this RandomState; ``reset`` re-seeds it in place from ``np_random``.
        self._task_random = np.random.RandomState(0)
        with _quiet_dm_control():
            self._env = suite.load(
                domain, task, task_kwargs={"random": self._task_random, "time_limit": float("inf")},
                environment_kwargs=env_kwargs,
            )
        self.domain, self.task = domain, task
        self.render_mode = render_mode
        self._width, self._height, self._camera_id = int(width), int(height), int(camera_id)

        obs_spec = self._env.observation_spec()
        self.observation_structure = {k: int(np.prod(v.shape)) for k, v in obs_spec.items()}
        n = sum(self.observation_structure.values())
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float64)

        act_spec = self._env.action_spec()
        self._act_low = np.asarray(act_spec.minimum, dtype=np.float64) * np.ones(act_spec.shape)
        self._act_high = np.asarray(act_spec.maximum, dtype=np.float64) * np.ones(act_spec.shape)
        self._act_scale = (self._act_high - self._act_low) / 2.0
        self.action_space = spaces.Box(-1.0, 1.0, shape=act_spec.shape, dtype=np.float32)
        self.metadata = {
            "render_modes": list(type(self).metadata["render_modes"]),
            "render_fps": int(round(1.0 / self._env.control_timestep())),
        }

    @staticmethod
    def _flatten(observation) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in observation.values()])

    def native_action(self, action: np.ndarray) -> np.ndarray:
        """Map an action in [-1, 1] to the task's native bounds (clipped to them)."""
        native = self._act_low + (np.asarray(action, dtype=np.float64) + 1.0) * self._act_scale
        return np.clip(native, self._act_low, self._act_high)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._task_random.seed(int(self.np_random.integers(0, 2**32 - 1)))
        time_step = self._env.reset()
        return self._flatten(time_step.observation), {}

    def step(self, action):
        time_step = self._env.step(self.native_action(action))
        terminated = bool(time_step.last() and time_step.discount == 0.0)
        reward = float(time_step.reward or 0.0)
        return self._flatten(time_step.observation), reward, terminated, False, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        try:
            return self._env.physics.render(height=self._height, width=self._width, camera_id=self._camera_id)
        except Exception as exc:  # mujoco.FatalError / RuntimeError: no OpenGL context could be made
            if "OpenGL" not in str(exc) and "rendering backend" not in str(exc):
                raise
            raise RuntimeError(
                f"rendering {self.domain}-{self.task} failed: {exc}. On a machine without a display set "
                "MUJOCO_GL=egl (or osmesa) before the first import of dm_control / mujoco."
            ) from exc

    def close(self):
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()


class _DMCTaskEnv(DMControlSuiteEnv):
    domain_name = ""
    task_name = ""
    #: the task's action dimension, for the docstring's Action Space section
    num_actions = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # each task's docstring: its own sections, then those all tasks share (_TASK_TAIL)
        super().__init_subclass__(**kwargs)
        # (re-indented: Python 3.13 strips a docstring's indentation, _TASK_TAIL keeps its own)
        own = textwrap.indent(textwrap.dedent(cls.__doc__ or ""), "    ")
        cls.__doc__ = own + _TASK_TAIL.replace("ACT", str(cls.num_actions))

    def __init__(
        self,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        camera_id: int = 0,
        environment_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(
            self.domain_name, self.task_name, render_mode, width, height, camera_id, environment_kwargs
        )
        utils.EzPickle.__init__(self, render_mode, width, height, camera_id, environment_kwargs)


_TASK_TAIL = r"""
    ## Action Space
    `Box(-1, 1, (ACT,), float32)` (the native bounds are `[-1, 1]`).

    ## Rewards
    dm-control's task reward, in `[0, 1]` per step (so returns are in `[0, 1000]`).

    ## Starting State
    dm-control's random initial state, seeded from the env's `np_random` at every reset.

    ## Episode End
    Never terminates; truncated after 1000 steps (dm-control's episode length for this task).

    ## Arguments
    `render_mode` (`None` or `"rgb_array"`), `width`, `height`, `camera_id`, `environment_kwargs` (see
    [`DMControlSuiteEnv`]).

    ## Version History
    * v0: Initial release (dm-control 1.0.50 via `dm_control.suite`).
"""


class DMCHopperHopEnv(_DMCTaskEnv):
    r"""
    ## Description
    dm-control's **hopper-hop** (`DMCHopperHop-v0`): a planar one-legged hopper that must hop forward (reward for
    torso height above 0.6 times forward speed towards 2 m/s). Control step 0.02 s.

    ## Observation Space
    `Box(-inf, inf, (15,), float64)`: `position` (6: joint positions without the x-coordinate), `velocity` (7),
    `touch` (2: log-scaled toe and heel touch sensors).
"""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    domain_name, task_name, num_actions = "hopper", "hop", 4


class DMCCheetahRunEnv(_DMCTaskEnv):
    r"""
    ## Description
    dm-control's **cheetah-run** (`DMCCheetahRun-v0`): a planar cheetah rewarded linearly for forward speed up to
    10 m/s. Control step 0.01 s.

    ## Observation Space
    `Box(-inf, inf, (17,), float64)`: `position` (8: joint positions without the x-coordinate), `velocity` (9).
"""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 100}
    domain_name, task_name, num_actions = "cheetah", "run", 6


class DMCWalkerWalkEnv(_DMCTaskEnv):
    r"""
    ## Description
    dm-control's **walker-walk** (`DMCWalkerWalk-v0`): a planar biped rewarded for standing upright and moving
    forward at 1 m/s. Control step 0.025 s.

    ## Observation Space
    `Box(-inf, inf, (24,), float64)`: `orientations` (14: xx and xz entries of each body's rotation), `height`
    (1: torso height), `velocity` (9).
"""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 40}
    domain_name, task_name, num_actions = "walker", "walk", 6


class DMCHumanoidWalkEnv(_DMCTaskEnv):
    r"""
    ## Description
    dm-control's **humanoid-walk** (`DMCHumanoidWalk-v0`): a 21-DoF humanoid rewarded for standing, staying
    upright, small controls and moving at 1 m/s. This is the Humanoid that VaGraM ran (`dmcontrol___humanoid--walk`).
    Control step 0.025 s.

    ## Observation Space
    `Box(-inf, inf, (67,), float64)`: `joint_angles` (21), `head_height` (1), `extremities` (12: hand and foot
    positions in the torso frame), `torso_vertical` (3), `com_velocity` (3), `velocity` (27).
"""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 40}
    domain_name, task_name, num_actions = "humanoid", "walk", 21
