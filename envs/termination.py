"""Batched torch termination functions for model rollouts (docs/envs.md "Termination functions for model rollouts").

Each ``make_*`` returns ``fn(next_obs) -> terminated`` with ``next_obs`` of shape ``(..., obs_dim)`` and a bool
result of shape ``(...)``. Only the base environment's leading dimensions are read; distractor dimensions
(appended after them) are never looked at. Comparisons reproduce gymnasium v5's strict / inclusive inequalities.
This module imports torch, so it is only imported by :func:`vagram_bench.envs.termination_fn`.
"""

from __future__ import annotations

from typing import Callable

import torch

TerminationFn = Callable[[torch.Tensor], torch.Tensor]


def _check(next_obs: torch.Tensor, min_dim: int) -> None:
    if next_obs.shape[-1] < min_dim:
        raise ValueError(
            f"next_obs has {next_obs.shape[-1]} dims in its last axis, the base env needs at least {min_dim}"
        )


def make_never(base_dim: int) -> TerminationFn:
    """All-False: families that never terminate (HalfCheetah, dm-control tasks)."""

    def never(next_obs: torch.Tensor) -> torch.Tensor:
        _check(next_obs, base_dim)
        return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)

    return never


def make_hopper(
    healthy_state_range=(-100.0, 100.0),
    healthy_z_range=(0.7, float("inf")),
    healthy_angle_range=(-0.2, 0.2),
    terminate_when_unhealthy: bool = True,
) -> TerminationFn:
    """Hopper-v5: unhealthy unless every ``obs[1:11]`` is in ``healthy_state_range`` (strict), the height ``obs[0]``
    is in ``healthy_z_range`` and the angle ``obs[1]`` in ``healthy_angle_range`` (both strict).

    gymnasium applies the state-range test to the unclipped ``qvel`` while the observation clips velocities to
    +-10, so for real observations the velocity part of the test can only fire on model predictions; the real env
    reaches |qvel| >= 100 essentially never (it did not happen in the agreement tests).
    """
    s_lo, s_hi = healthy_state_range
    z_lo, z_hi = healthy_z_range
    a_lo, a_hi = healthy_angle_range

    def hopper(next_obs: torch.Tensor) -> torch.Tensor:
        _check(next_obs, 11)
        state = next_obs[..., 1:11]
        z, angle = next_obs[..., 0], next_obs[..., 1]
        healthy = ((state > s_lo) & (state < s_hi)).all(-1)
        healthy = healthy & (z > z_lo) & (z < z_hi) & (angle > a_lo) & (angle < a_hi)
        out = ~healthy
        return out if terminate_when_unhealthy else torch.zeros_like(out)

    return hopper


def make_walker2d(
    healthy_z_range=(0.8, 2.0), healthy_angle_range=(-1.0, 1.0), terminate_when_unhealthy: bool = True
) -> TerminationFn:
    """Walker2d-v5: unhealthy unless ``obs[0]`` in ``healthy_z_range`` and ``obs[1]`` in ``healthy_angle_range``
    (strict)."""
    z_lo, z_hi = healthy_z_range
    a_lo, a_hi = healthy_angle_range

    def walker2d(next_obs: torch.Tensor) -> torch.Tensor:
        _check(next_obs, 17)
        z, angle = next_obs[..., 0], next_obs[..., 1]
        out = ~((z > z_lo) & (z < z_hi) & (angle > a_lo) & (angle < a_hi))
        return out if terminate_when_unhealthy else torch.zeros_like(out)

    return walker2d


def make_ant(
    base_dim: int, healthy_z_range=(0.2, 1.0), terminate_when_unhealthy: bool = True
) -> TerminationFn:
    """Ant-v5: unhealthy unless every base entry is finite and ``z_lo <= obs[0] <= z_hi`` (inclusive)."""
    z_lo, z_hi = healthy_z_range

    def ant(next_obs: torch.Tensor) -> torch.Tensor:
        _check(next_obs, base_dim)
        z = next_obs[..., 0]
        healthy = torch.isfinite(next_obs[..., :base_dim]).all(-1) & (z >= z_lo) & (z <= z_hi)
        out = ~healthy
        return out if terminate_when_unhealthy else torch.zeros_like(out)

    return ant


def make_humanoid(
    base_dim: int, healthy_z_range=(1.0, 2.0), terminate_when_unhealthy: bool = True
) -> TerminationFn:
    """Humanoid-v5: unhealthy unless ``z_lo < obs[0] < z_hi`` (strict)."""
    z_lo, z_hi = healthy_z_range

    def humanoid(next_obs: torch.Tensor) -> torch.Tensor:
        _check(next_obs, base_dim)
        z = next_obs[..., 0]
        out = ~((z > z_lo) & (z < z_hi))
        return out if terminate_when_unhealthy else torch.zeros_like(out)

    return humanoid


def make_inverted_pendulum() -> TerminationFn:
    """InvertedPendulum-v5: terminated if any of the 4 entries is non-finite or ``|obs[1]| > 0.2``."""

    def inverted_pendulum(next_obs: torch.Tensor) -> torch.Tensor:
        _check(next_obs, 4)
        base = next_obs[..., :4]
        return ~torch.isfinite(base).all(-1) | (base[..., 1].abs() > 0.2)

    return inverted_pendulum


#: Pole lengths of gymnasium's ``inverted_double_pendulum.xml`` (the tip site sits 0.6 above the second hinge).
_IDP_POLE = 0.6


def make_inverted_double_pendulum() -> TerminationFn:
    """InvertedDoublePendulum-v5: terminated if the pole tip height ``y <= 1``.

    ``y = 0.6 cos(t1) + 0.6 cos(t1 + t2)`` with ``cos(t1 + t2) = cos t1 cos t2 - sin t1 sin t2`` from the observation
    ``[x, sin t1, sin t2, cos t1, cos t2, ...]``. gymnasium reads ``data.site_xpos`` after ``mj_step`` with the RK4
    integrator, i.e. the kinematics of the last Runge-Kutta stage rather than of the returned state, so the real
    env's ``y`` differs from the observed state's by O(dt^2); transitions with the tip within ~1e-2 of the threshold
    can therefore disagree with the env (see ``docs/envs.md``). No function of the observation can do better.
    """

    def inverted_double_pendulum(next_obs: torch.Tensor) -> torch.Tensor:
        _check(next_obs, 9)
        s1, s2, c1, c2 = next_obs[..., 1], next_obs[..., 2], next_obs[..., 3], next_obs[..., 4]
        y = _IDP_POLE * c1 + _IDP_POLE * (c1 * c2 - s1 * s2)
        return y <= 1.0

    return inverted_double_pendulum
