"""vagram-bench environments: registration of every id on import, and helpers agents and the runner use.

Importing ``vagram_bench`` (or ``vagram_bench.envs``) registers every id with gymnasium. This module imports only
gymnasium and numpy: the env classes are registered by entry-point *strings*, so MuJoCo, dm-control and torch
are imported only when an env is made or :func:`termination_fn` is called.

Id scheme (see ``docs/envs.md``):

* ``<Family>Distract-<d>-v0`` for ``d in {0, 5, 10, 15, 20}`` and the parametric ``<Family>Distract-v0``
  (kwarg ``distraction_dims``, default 10), with ``Family`` in ``Hopper, Walker2d, HalfCheetah, AntTruncated,
  HumanoidTruncated, InvertedPendulum, InvertedDoublePendulum`` and the dm-control families ``DMCHopperHop, DMCCheetahRun,
  DMCWalkerWalk, DMCHumanoidWalk``;
* ``AntTruncatedObs-v0`` (27 dims) and ``HumanoidTruncatedObs-v0`` (45 dims, actions in [-1, 1]);
* ``HopperCapacity-{2,3,4}x64-v0`` (Hopper-v5 whose spec carries ``kwargs["model_capacity"]``),
  ``InvertedPendulumCapacity-<L>x<W>-v0`` for ``(L, W)`` in :data:`IP_CAPACITY_SIZES` (the same on
  InvertedPendulum-v5) and ``InvertedDoublePendulumCapacity-<L>x<W>-v0`` for ``(L, W)`` in
  :data:`IDP_CAPACITY_SIZES` (the same on InvertedDoublePendulum-v5);
* ``DMC<Domain><Task>-v0`` for hopper-hop, cheetah-run, walker-walk and humanoid-walk.

Examples:
    >>> import gymnasium as gym
    >>> import vagram_bench
    >>> env = gym.make("HopperDistract-15-v0")
    >>> env.observation_space.shape
    (26,)
    >>> vagram_bench.envs.model_capacity("HopperCapacity-3x64-v0")
    {'num_layers': 3, 'hid_size': 64}
    >>> vagram_bench.envs.env_family("HopperDistract-15-v0"), vagram_bench.envs.base_obs_dim("HopperDistract-15-v0")
    ('hopper', 11)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import gymnasium as gym

from vagram_bench.envs.distraction import default_distractor_seed

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "EnvInfo",
    "DISTRACTION_DIMS",
    "CAPACITY_LAYERS",
    "IP_CAPACITY_SIZES",
    "IDP_CAPACITY_SIZES",
    "FAMILIES",
    "model_capacity",
    "termination_fn",
    "env_family",
    "env_variant",
    "VARIANTS",
    "base_obs_dim",
    "env_info",
    "registered_ids",
    "markdown_table",
    "register_envs",
]

#: The registered distractor dimensions of every distraction family.
DISTRACTION_DIMS = (0, 5, 10, 15, 20)
#: Default ``distraction_dims`` of the parametric ``<Family>Distract-v0`` ids (VaGraM's config default).
PARAMETRIC_DEFAULT_DIMS = 10
#: Hidden-layer counts of the ``HopperCapacity-<L>x64-v0`` ids (hidden width 64).
CAPACITY_LAYERS = (2, 3, 4)
CAPACITY_HIDDEN = 64
#: ``(hidden layers, hidden width)`` of the ``InvertedDoublePendulumCapacity-<L>x<W>-v0`` ids: the one place the
#: registered sizes are set (registration, the README table and the tests follow it; ``docs/envs.md`` lists the ids).
IDP_CAPACITY_SIZES = ((2, 16), (2, 32), (2, 64))
#: ``(hidden layers, hidden width)`` of the ``InvertedPendulumCapacity-<L>x<W>-v0`` ids, the one place their sizes
#: are set (as :data:`IDP_CAPACITY_SIZES`). It starts one width below that sweep, at 2x8: the single pole's 4-dim
#: state is a smaller prediction problem than the double pendulum's 9 dims.
IP_CAPACITY_SIZES = ((2, 8), (2, 16), (2, 32), (2, 64))
MAX_EPISODE_STEPS = 1000

#: Every family name :func:`env_family` can return.
FAMILIES = (
    "hopper",
    "walker2d",
    "halfcheetah",
    "ant",
    "humanoid",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "dmc_hopper_hop",
    "dmc_cheetah_run",
    "dmc_walker_walk",
    "dmc_humanoid_walk",
    "other",
)

#: Every track :func:`env_variant` can return (agents pick variant-specific defaults from it).
VARIANTS = ("plain", "distraction", "capacity")


@dataclass(frozen=True)
class EnvInfo:
    """Static description of one id: what :func:`markdown_table` prints and the helpers answer from.

    Args:
        env_id: the gymnasium id.
        base_env: the id of the environment the observation is built on (itself for base envs).
        family: see :data:`FAMILIES`.
        base_obs_dim: observation dims of the base env (without distractors).
        act_dim: action dims.
        distraction_dims: distractor dims; ``None`` for no distractors, ``-1`` for the parametric ids.
        capacity: the ``model_capacity`` constraint or ``None``.
        max_episode_steps: the registered time limit.
        suite: ``True`` for ids registered by vagram-bench, ``False`` for the plain gymnasium ids it knows.
    """

    env_id: str
    base_env: str
    family: str
    base_obs_dim: int
    act_dim: int
    distraction_dims: int | None = None
    capacity: dict[str, int] | None = None
    max_episode_steps: int = MAX_EPISODE_STEPS
    suite: bool = True


# name, base id, family, base obs dim, act dim, entry point, extra kwargs
_DISTRACT_FAMILIES: tuple[tuple[str, str, str, int, int, str], ...] = (
    ("Hopper", "Hopper-v5", "hopper", 11, 3, "HopperDistractEnv"),
    ("Walker2d", "Walker2d-v5", "walker2d", 17, 6, "Walker2dDistractEnv"),
    ("HalfCheetah", "HalfCheetah-v5", "halfcheetah", 17, 6, "HalfCheetahDistractEnv"),
    ("AntTruncated", "AntTruncatedObs-v0", "ant", 27, 8, "AntTruncatedDistractEnv"),
    ("HumanoidTruncated", "HumanoidTruncatedObs-v0", "humanoid", 45, 17, "HumanoidTruncatedDistractEnv"),
    ("InvertedPendulum", "InvertedPendulum-v5", "inverted_pendulum", 4, 1, "InvertedPendulumDistractEnv"),
    ("InvertedDoublePendulum", "InvertedDoublePendulum-v5", "inverted_double_pendulum", 9, 1,
     "InvertedDoublePendulumDistractEnv"),
    ("DMCHopperHop", "DMCHopperHop-v0", "dmc_hopper_hop", 15, 4, "DMCDistractEnv"),
    ("DMCCheetahRun", "DMCCheetahRun-v0", "dmc_cheetah_run", 17, 6, "DMCDistractEnv"),
    ("DMCWalkerWalk", "DMCWalkerWalk-v0", "dmc_walker_walk", 24, 6, "DMCDistractEnv"),
    ("DMCHumanoidWalk", "DMCHumanoidWalk-v0", "dmc_humanoid_walk", 67, 21, "DMCDistractEnv"),
)

# Reduced-model-capacity families: name, base id, family, base obs dim, act dim, entry point, (layers, width) per id.
_CAPACITY_FAMILIES: tuple[tuple[str, str, str, int, int, str, tuple[tuple[int, int], ...]], ...] = (
    ("Hopper", "Hopper-v5", "hopper", 11, 3, "HopperCapacityEnv",
     tuple((layers, CAPACITY_HIDDEN) for layers in CAPACITY_LAYERS)),
    ("InvertedPendulum", "InvertedPendulum-v5", "inverted_pendulum", 4, 1, "InvertedPendulumCapacityEnv",
     IP_CAPACITY_SIZES),
    ("InvertedDoublePendulum", "InvertedDoublePendulum-v5", "inverted_double_pendulum", 9, 1,
     "InvertedDoublePendulumCapacityEnv", IDP_CAPACITY_SIZES),
)

# The plain gymnasium ids the helpers know (not registered by us).
_PLAIN: tuple[EnvInfo, ...] = (
    EnvInfo("Hopper-v5", "Hopper-v5", "hopper", 11, 3, suite=False),
    EnvInfo("Walker2d-v5", "Walker2d-v5", "walker2d", 17, 6, suite=False),
    EnvInfo("HalfCheetah-v5", "HalfCheetah-v5", "halfcheetah", 17, 6, suite=False),
    EnvInfo("Ant-v5", "Ant-v5", "ant", 105, 8, suite=False),
    EnvInfo("Humanoid-v5", "Humanoid-v5", "humanoid", 348, 17, suite=False),
    EnvInfo("InvertedPendulum-v5", "InvertedPendulum-v5", "inverted_pendulum", 4, 1, suite=False),
    EnvInfo(
        "InvertedDoublePendulum-v5", "InvertedDoublePendulum-v5", "inverted_double_pendulum", 9, 1, suite=False
    ),
)

_DMC_TASKS = (
    ("DMCHopperHop-v0", "DMCHopperHopEnv", "dmc_hopper_hop", 15, 4),
    ("DMCCheetahRun-v0", "DMCCheetahRunEnv", "dmc_cheetah_run", 17, 6),
    ("DMCWalkerWalk-v0", "DMCWalkerWalkEnv", "dmc_walker_walk", 24, 6),
    ("DMCHumanoidWalk-v0", "DMCHumanoidWalkEnv", "dmc_humanoid_walk", 67, 21),
)

_INFO: dict[str, EnvInfo] = {info.env_id: info for info in _PLAIN}
_SUITE_IDS: list[str] = []


def _register(info: EnvInfo, entry_point: str, kwargs: dict[str, Any]) -> None:
    _INFO[info.env_id] = info
    _SUITE_IDS.append(info.env_id)
    if info.env_id not in gym.registry:  # re-import (e.g. importlib.reload) must not warn "Overriding"
        gym.register(
            id=info.env_id,
            entry_point=entry_point,
            max_episode_steps=info.max_episode_steps,
            kwargs=kwargs,
        )


def register_envs() -> None:
    """Register every vagram-bench id with gymnasium (idempotent; runs on import)."""
    if _SUITE_IDS:
        return
    variants = "vagram_bench.envs.mujoco_variants"
    _register(EnvInfo("AntTruncatedObs-v0", "Ant-v5", "ant", 27, 8), f"{variants}:AntTruncatedObsEnv", {})
    _register(
        EnvInfo("HumanoidTruncatedObs-v0", "Humanoid-v5", "humanoid", 45, 17),
        f"{variants}:HumanoidTruncatedObsEnv",
        {},
    )
    for name, base, family, obs_dim, act_dim, cls, sizes in _CAPACITY_FAMILIES:
        for layers, width in sizes:
            capacity = {"num_layers": layers, "hid_size": width}
            _register(
                EnvInfo(f"{name}Capacity-{layers}x{width}-v0", base, family, obs_dim, act_dim, capacity=capacity),
                f"{variants}:{cls}",
                {"model_capacity": dict(capacity)},
            )
    for env_id, cls, family, obs_dim, act_dim in _DMC_TASKS:
        task = family[len("dmc_"):].replace("_", "-")
        _register(EnvInfo(env_id, f"dm_control {task}", family, obs_dim, act_dim), f"vagram_bench.envs.dmc:{cls}", {})
    for name, base, family, obs_dim, act_dim, cls in _DISTRACT_FAMILIES:
        entry = f"vagram_bench.envs.distraction:{cls}"
        extra = {"base_env": base} if cls == "DMCDistractEnv" else {}
        seed_name = f"{name}Distract"
        for d in DISTRACTION_DIMS:
            _register(
                EnvInfo(f"{seed_name}-{d}-v0", base, family, obs_dim, act_dim, distraction_dims=d),
                entry,
                {**extra, "distraction_dims": d, "distractor_seed": default_distractor_seed(seed_name, d),
                 "pure_noise": False, "id_distraction_dims": d},
            )
        _register(
            EnvInfo(f"{seed_name}-v0", base, family, obs_dim, act_dim, distraction_dims=-1),
            entry,
            {**extra, "distraction_dims": PARAMETRIC_DEFAULT_DIMS, "distractor_seed": None, "pure_noise": False},
        )


register_envs()


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------
_MODULE_PREFIX = re.compile(r"^[\w.]+:")


def _resolve_id(env_or_id: Any) -> str:
    """The id of a made env or an id string (a ``"module:"`` prefix, as in ``gym.make``, is dropped)."""
    if isinstance(env_or_id, str):
        return _MODULE_PREFIX.sub("", env_or_id)
    spec = getattr(env_or_id, "spec", None) or getattr(getattr(env_or_id, "unwrapped", None), "spec", None)
    if spec is None:
        raise ValueError(
            f"expected an env id string or an env made with gymnasium.make (with a spec), got {env_or_id!r}"
        )
    return spec.id


def _unknown(env_id: str) -> ValueError:
    return ValueError(
        f"unknown env id {env_id!r}; valid choices: {', '.join(registered_ids())} and the gymnasium ids "
        f"{', '.join(info.env_id for info in _PLAIN)}"
    )


def env_info(env_or_id: Any) -> EnvInfo:
    """The :class:`EnvInfo` of a suite id or a known gymnasium id (``ValueError`` otherwise)."""
    env_id = _resolve_id(env_or_id)
    try:
        return _INFO[env_id]
    except KeyError:
        raise _unknown(env_id) from None


def model_capacity(env_or_id: Any) -> dict[str, int] | None:
    """The dynamics-model capacity constraint of an env: ``{"num_layers": L, "hid_size": H}`` or ``None``.

    Args:
        env_or_id: an id (``"HopperCapacity-3x64-v0"``, also with a ``"vagram_bench:"`` prefix) or an env made with
            ``gymnasium.make`` (its ``spec.kwargs``, which include make-time overrides, are read).

    Raises:
        ValueError: for an id gymnasium does not know.

    Examples:
        >>> model_capacity("HopperCapacity-2x64-v0")
        {'num_layers': 2, 'hid_size': 64}
        >>> model_capacity("HopperDistract-15-v0") is None
        True
    """
    if not isinstance(env_or_id, str):
        unwrapped = getattr(env_or_id, "unwrapped", env_or_id)
        capacity = getattr(unwrapped, "model_capacity", None)
        if capacity is not None:
            return dict(capacity)
    env_id = _resolve_id(env_or_id)
    if env_id not in gym.registry:
        raise _unknown(env_id)
    capacity = gym.registry[env_id].kwargs.get("model_capacity")
    return None if capacity is None else dict(capacity)


def env_family(env_or_id: Any) -> str:
    """The family of an env (one of :data:`FAMILIES`); distraction and capacity ids map to their base family.

    Registered ids that the suite does not know (e.g. ``"CartPole-v1"``) give ``"other"``.

    Examples:
        >>> env_family("AntTruncatedDistract-5-v0"), env_family("DMCCheetahRunDistract-15-v0")
        ('ant', 'dmc_cheetah_run')
    """
    env_id = _resolve_id(env_or_id)
    info = _INFO.get(env_id)
    if info is not None:
        return info.family
    if env_id in gym.registry:
        return "other"
    raise _unknown(env_id)


def env_variant(env_or_id: Any) -> str:
    """The track of an env (one of :data:`VARIANTS`): ``"distraction"`` for every ``<Family>Distract-*`` id
    (``d = 0`` and the parametric id included), ``"capacity"`` for every ``<Family>Capacity-*`` id, else ``"plain"``.

    Upstream VaGraM runs the distraction track with its own config (``mbpo_hopper_distraction.yaml``,
    ``d = 0`` included in ``scripts/hopper_experiments.sh``) and the capacity track with the plain Hopper
    one, so agents choose defaults by ``(env_family, env_variant)``.

    Examples:
        >>> env_variant("HopperDistract-0-v0"), env_variant("HopperCapacity-2x64-v0"), env_variant("Hopper-v5")
        ('distraction', 'capacity', 'plain')
    """
    env_id = _resolve_id(env_or_id)
    info = _INFO.get(env_id)
    if info is None:
        if env_id in gym.registry:
            return "plain"
        raise _unknown(env_id)
    if info.distraction_dims is not None:
        return "distraction"
    if info.capacity is not None:
        return "capacity"
    return "plain"


def base_obs_dim(env_or_id: Any) -> int:
    """Observation dims of the base env, without distractors (``HopperDistract-15-v0`` -> 11).

    For a registered id the suite does not know, the env is made once to read its observation space.
    """
    env_id = _resolve_id(env_or_id)
    info = _INFO.get(env_id)
    if info is not None:
        return info.base_obs_dim
    if env_id not in gym.registry:
        raise _unknown(env_id)
    env = gym.make(env_id, disable_env_checker=True)
    try:
        shape = env.observation_space.shape
        if shape is None or len(shape) != 1:
            raise ValueError(f"env {env_id!r} has observation space {env.observation_space}, not a 1-D Box")
        return int(shape[0])
    finally:
        env.close()


_HEALTH_KEYS = ("healthy_state_range", "healthy_z_range", "healthy_angle_range", "terminate_when_unhealthy")


def termination_fn(env_or_id: Any) -> Callable[["torch.Tensor"], "torch.Tensor"]:
    """Batched termination function ``next_obs (..., obs_dim) -> bool (...)`` for model rollouts.

    Reads only the base env's dimensions (distractors are appended after them; docs/envs.md "Termination functions for model rollouts") and
    reproduces gymnasium v5's ``terminated`` for hopper, walker2d, ant, humanoid, inverted pendulum and inverted
    double pendulum (health ranges taken from the registered ``spec.kwargs`` where set); all-False for halfcheetah
    and the dm-control tasks.

    Raises:
        ValueError: for ids of family ``"other"`` or unknown ids.

    Examples:
        >>> import torch
        >>> fn = termination_fn("HopperDistract-15-v0")
        >>> obs = torch.zeros(2, 26); obs[:, 0] = 1.25; obs[1, 0] = 0.5   # second hopper has fallen
        >>> fn(obs)
        tensor([False,  True])
    """
    from vagram_bench.envs import termination as T  # imports torch

    env_id = _resolve_id(env_or_id)
    family = env_family(env_id)
    base_dim = base_obs_dim(env_id)
    spec_kwargs = gym.registry[env_id].kwargs if env_id in gym.registry else {}
    health = {k: spec_kwargs[k] for k in _HEALTH_KEYS if k in spec_kwargs}
    if family == "hopper":
        return T.make_hopper(**health)
    if family == "walker2d":
        return T.make_walker2d(**{k: v for k, v in health.items() if k != "healthy_state_range"})
    if family == "ant":
        return T.make_ant(base_dim, **{k: v for k, v in health.items() if k in ("healthy_z_range", "terminate_when_unhealthy")})
    if family == "humanoid":
        return T.make_humanoid(
            base_dim, **{k: v for k, v in health.items() if k in ("healthy_z_range", "terminate_when_unhealthy")}
        )
    if family == "inverted_pendulum":
        return T.make_inverted_pendulum()
    if family == "inverted_double_pendulum":
        return T.make_inverted_double_pendulum()
    if family == "halfcheetah" or family.startswith("dmc_"):
        return T.make_never(base_dim)
    raise ValueError(
        f"no termination function for {env_id!r} (family {family!r}); valid choices: ids of the families "
        f"{', '.join(f for f in FAMILIES if f != 'other')}"
    )


def registered_ids() -> list[str]:
    """Every id registered by vagram-bench, sorted."""
    return sorted(_SUITE_IDS)


def _capacity_str(capacity: dict[str, int] | None) -> str:
    return "—" if capacity is None else f"{capacity['num_layers']}×{capacity['hid_size']}"


def _natural_key(env_id: str) -> list[Any]:
    # "HopperDistract-5-v0" before "HopperDistract-10-v0"; the parametric id after the numbered ones.
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", env_id)]


def markdown_table() -> str:
    """The README table of every registered id (generated from the registry; a test checks the README)."""
    rows = [
        "| id | base env | obs dim | action dim | distractor dims | model capacity | max steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id in sorted(_SUITE_IDS, key=_natural_key):
        info = _INFO[env_id]
        d = info.distraction_dims
        if d is None:
            obs, dd = str(info.base_obs_dim), "—"
        elif d < 0:
            obs = f"{info.base_obs_dim} + d"
            dd = f"d (`distraction_dims`, default {PARAMETRIC_DEFAULT_DIMS})"
        else:
            obs, dd = str(info.base_obs_dim + d), str(d)
        rows.append(
            f"| `{env_id}` | `{info.base_env}` | {obs} | {info.act_dim} | {dd} | {_capacity_str(info.capacity)} "
            f"| {info.max_episode_steps} |"
        )
    return "\n".join(rows)
