"""Stepping a learned ensemble: one model step and MBPO's branched rollouts.

* :func:`model_step` is the one implementation of a model transition: every sample goes through a
  random elite (:meth:`EnsembleDynamicsModel.sample_step`), the reward comes from the model, a
  non-finite prediction raises :class:`~vagram_bench.models.trainer.ModelDivergenceError`, and
  ``terminated`` comes from the env's termination function
  (``vagram_bench.envs.termination_fn(env_id)``, which reads only the base env's dims, see
  docs/envs.md).
* :func:`branched_rollout` rolls start states forward with it, each rollout stopping at its first
  termination, on plain tensors (MBPO's rollouts; ``benchmarks/bench_models.py`` measures it against
  the TorchRL env of ``tests/reference/model_env.py``, which the tests check them against).
"""

from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict

from vagram_bench.models.ensemble import EnsembleDynamicsModel
from vagram_bench.models.trainer import ModelDivergenceError

__all__ = ["branched_rollout", "model_step"]

TerminationFn = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def model_step(
    model: EnsembleDynamicsModel,
    obs: torch.Tensor,
    action: torch.Tensor,
    *,
    termination_fn: TerminationFn,
    generator: torch.Generator,
    deterministic: bool = False,
    chunk_size: int | None = 10_000,
    bf16: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One transition of the learned model for a flat batch: ``(obs (N, d), action (N, a))`` ->
    ``(next_obs (N, d), reward (N,), terminated (N,) bool)``.

    Args:
        model: the ensemble (its elites; each sample through a random one).
        obs, action: the batch (the action is cast to the observation dtype).
        termination_fn: batched ``next_obs (N, d) -> bool (N,)``.
        generator: seeded generator (elite assignment, Gaussian noise).
        deterministic, chunk_size, bf16: see :meth:`EnsembleDynamicsModel.sample_step`.

    Raises:
        ModelDivergenceError: a prediction is not finite (nothing non-finite leaves the model).
    """
    next_obs, reward = model.sample_step(
        obs, action.to(obs.dtype), generator=generator, deterministic=deterministic, chunk_size=chunk_size,
        bf16=bf16,
    )
    if not (torch.isfinite(next_obs).all() and torch.isfinite(reward).all()):
        bad = (~torch.isfinite(next_obs).all(-1) | ~torch.isfinite(reward)).sum().item()
        raise ModelDivergenceError(
            f"dynamics model produced non-finite predictions for {bad} of {obs.shape[0]} states"
        )
    terminated = termination_fn(next_obs).reshape(-1).to(torch.bool)
    return next_obs, reward, terminated


@torch.no_grad()
def branched_rollout(
    start_obs: torch.Tensor,
    horizon: int,
    policy: Callable[[torch.Tensor], torch.Tensor],
    step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> TensorDict:
    """Roll ``horizon`` steps out from every start state, each rollout stopping at its first
    termination.

    Only live rollouts are propagated (the batch shrinks as rollouts terminate), so the returned
    transitions are exactly those of not-yet-terminated rollouts, the terminating step included
    (mbrl-lib's ``rollout_model_and_populate_sac_buffer``, facebookresearch/mbrl-lib
    ``mbrl/algorithms/mbpo.py``).

    Args:
        start_obs: ``(N, obs_dim)`` start states (MBPO: real states from the replay buffer).
        horizon: rollout length ``L >= 1``.
        policy: ``obs (n, obs_dim) -> action (n, act_dim)``; MBPO passes the stochastic SAC policy.
        step: ``(obs, action) -> (next_obs (n, obs_dim), reward (n,), terminated (n,) bool)``; for a
            learned ensemble :func:`model_step` with the model, termination function and generator
            bound (``functools.partial(model_step, model, termination_fn=..., generator=...)``).

    Returns:
        A flat :class:`~tensordict.TensorDict` of the kept transitions with keys ``observation``,
        ``action``, ``("next", "observation")``, ``("next", "reward")`` ``(n, 1)``,
        ``("next", "terminated")`` and ``("next", "done")`` (bool ``(n, 1)``), in step order.

    Examples:
        >>> step = lambda s, a: (s + 1.0, s[:, 0], s[:, 0] + 1.0 >= 2.0)  # terminate at 2
        >>> td = branched_rollout(torch.tensor([[0.0], [1.0]]), 3, lambda s: torch.zeros(len(s), 1), step)
        >>> td["observation"].squeeze(-1).tolist(), td["next", "terminated"].squeeze(-1).tolist()
        ([0.0, 1.0, 1.0], [False, True, True])
    """
    if horizon < 1:
        raise ValueError(f"rollout horizon must be >= 1, got {horizon}")
    obs = start_obs
    pieces: list[TensorDict] = []
    for _ in range(horizon):
        action = policy(obs)
        next_obs, reward, terminated = step(obs, action)
        n = obs.shape[0]
        pieces.append(
            TensorDict(
                {
                    "observation": obs,
                    "action": action,
                    "next": {
                        "observation": next_obs,
                        "reward": reward.reshape(n, 1),
                        "terminated": terminated.reshape(n, 1),
                        "done": terminated.reshape(n, 1),
                    },
                },
                batch_size=[n],
            )
        )
        alive = ~terminated
        if not bool(alive.any()):
            break
        obs = next_obs[alive]
    return torch.cat(pieces, 0)
