"""Stepping a learned ensemble: one model step, MBPO's branched rollouts, and a TorchRL env.

* :func:`model_step` is the one implementation of a model transition: every sample goes through a
  random elite (:meth:`EnsembleDynamicsModel.sample_step`), the reward comes from the model, a
  non-finite prediction raises :class:`~vagram_bench.models.trainer.ModelDivergenceError`, and
  ``terminated`` comes from the env's termination function
  (``vagram_bench.envs.termination_fn(env_id)``, which reads only the base env's dims, see
  docs/envs.md).
* :func:`branched_rollout` rolls start states forward with it, each rollout stopping at its first
  termination, on plain tensors (MBPO's rollouts; ``benchmarks/bench_models.py`` measures it against
  the env below).
* :class:`EnsembleModelEnv` subclasses :class:`torchrl.envs.model_based.ModelBasedEnvBase` with
  explicit specs (TorchRL 0.14's ``WorldModelEnv`` builds its specs wrongly) and steps with
  :func:`model_step`, writing **both** ``terminated`` and ``done``. It is not batch-locked: any
  leading batch shape works. For TorchRL users; MBPO does not need the env bookkeeping.
"""

from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs.model_based import ModelBasedEnvBase

from vagram_bench.models.ensemble import EnsembleDynamicsModel
from vagram_bench.models.trainer import ModelDivergenceError

__all__ = ["EnsembleModelEnv", "branched_rollout", "model_step"]

TerminationFn = Callable[[torch.Tensor], torch.Tensor]


def _resolve_termination(termination_fn: TerminationFn | str) -> TerminationFn:
    if isinstance(termination_fn, str):
        from vagram_bench.envs import termination_fn as lookup

        return lookup(termination_fn)
    if not callable(termination_fn):
        raise TypeError(f"termination_fn must be a callable or an env id string; got {type(termination_fn)}")
    return termination_fn


class EnsembleModelEnv(ModelBasedEnvBase):
    """A TorchRL environment whose dynamics are a learned :class:`EnsembleDynamicsModel`.

    Keys: ``"observation"`` ``(*B, d)`` float32; ``"action"`` ``(*B, act_dim)`` in ``[-1, 1]``;
    ``("next", "reward")`` ``(*B, 1)``; ``("next", "terminated")`` and ``("next", "done")`` bool
    ``(*B, 1)`` (``done == terminated``: a model rollout has no time limit of its own).

    Reset semantics: ``reset(td)`` starts from ``td["observation"]`` (e.g. states sampled from the
    real replay buffer, as MBPO does). ``reset()`` without observations samples ``batch_size`` start
    states uniformly from the states given to :meth:`set_start_states` (with the env's generator);
    the same happens to terminated rollouts that TorchRL auto-resets during
    ``rollout(..., break_when_any_done=False)``. For MBPO-style branched rollouts where a terminated
    rollout should simply stop contributing, use :func:`branched_rollout`.

    Args:
        model: the trained ensemble (its elites are used).
        termination_fn: batched ``next_obs (..., d) -> bool (...)`` or an env id, resolved with
            :func:`vagram_bench.envs.termination_fn`.
        generator: seeded ``torch.Generator`` for elite assignment, Gaussian sampling and start states.
        deterministic: use the Gaussian model's mean instead of sampling.
        bf16: bfloat16 autocast for the model's hidden layers (see ``sample_step``).
        chunk_size: states per forward pass (see ``sample_step``).
        batch_size: the batch used by a ``reset()`` without observations (default ``()``: one state).
        device: env device.

    Examples:
        >>> import torch
        >>> from torchrl.envs.utils import check_env_specs
        >>> g = torch.Generator().manual_seed(0)
        >>> model = EnsembleDynamicsModel(4, 2, ensemble_size=3, num_elites=2, num_layers=2, hid_size=8,
        ...                               generator=g)
        >>> env = EnsembleModelEnv(model, lambda s: s[..., 0].abs() > 10.0, generator=g)
        >>> env.set_start_states(torch.randn(50, 4, generator=g))
        >>> check_env_specs(env)
        >>> start = env.reset(TensorDict({"observation": torch.zeros(100, 4)}, batch_size=[100]))
        >>> td = env.rollout(5, auto_reset=False, tensordict=start, break_when_any_done=False)
        >>> td["next", "reward"].shape, td["next", "done"].dtype
        (torch.Size([100, 5, 1]), torch.bool)
    """

    def __init__(
        self,
        model: EnsembleDynamicsModel,
        termination_fn: TerminationFn | str,
        *,
        generator: torch.Generator,
        deterministic: bool = False,
        bf16: bool = False,
        chunk_size: int | None = 10_000,
        batch_size: torch.Size | tuple[int, ...] | None = None,
        device: str | torch.device = "cpu",
    ):
        super().__init__(model, device=device, batch_size=None)
        self.model = model
        self.termination_fn = _resolve_termination(termination_fn)
        self.generator = generator
        self.deterministic, self.bf16, self.chunk_size = deterministic, bf16, chunk_size
        self.reset_batch_size = torch.Size(batch_size if batch_size is not None else ())
        self._start_states: torch.Tensor | None = None
        d, a = model.obs_dim, model.act_dim
        self.observation_spec = Composite(
            observation=Unbounded(shape=(d,), dtype=torch.float32, device=self.device), shape=()
        )
        self.action_spec = Bounded(low=-1.0, high=1.0, shape=(a,), dtype=torch.float32, device=self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        self.done_spec = Composite(
            done=Categorical(2, shape=(1,), dtype=torch.bool, device=self.device),
            terminated=Categorical(2, shape=(1,), dtype=torch.bool, device=self.device),
            shape=(),
        )

    def set_start_states(self, obs: torch.Tensor) -> None:
        """States a ``reset()`` without observations samples from (``(N, d)``, e.g. the real buffer)."""
        if obs.dim() != 2 or obs.shape[1] != self.model.obs_dim:
            raise ValueError(f"start states must be (N, {self.model.obs_dim}); got {tuple(obs.shape)}")
        self._start_states = obs.detach().to(self.device, torch.float32)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        if tensordict is not None and "observation" in tensordict.keys():
            obs = tensordict.get("observation").to(torch.float32)
            batch = tensordict.batch_size
        else:
            if self._start_states is None:
                raise RuntimeError(
                    "EnsembleModelEnv.reset() needs start states: pass a tensordict with 'observation' "
                    "or call set_start_states(obs) first"
                )
            # a partial reset inside ``rollout(break_when_any_done=False)`` passes a td holding only
            # ``_reset`` with the rollout's batch: draw a full batch, TorchRL keeps the masked rows
            batch = tensordict.batch_size if tensordict is not None and tensordict.batch_dims else self.reset_batch_size
            idx = torch.randint(
                0, self._start_states.shape[0], batch, generator=self.generator, device=self.device
            )
            obs = self._start_states[idx]
        false = torch.zeros(*batch, 1, dtype=torch.bool, device=self.device)
        return TensorDict(
            {"observation": obs, "done": false, "terminated": false.clone()}, batch_size=batch, device=self.device
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get("observation")
        action = tensordict.get("action")
        batch = obs.shape[:-1]
        next_obs, reward, terminated = model_step(
            self.model,
            obs.reshape(-1, obs.shape[-1]),
            action.reshape(-1, action.shape[-1]),
            termination_fn=self.termination_fn,
            generator=self.generator,
            deterministic=self.deterministic,
            chunk_size=self.chunk_size,
            bf16=self.bf16,
        )
        next_obs = next_obs.reshape(*batch, -1)
        terminated = terminated.reshape(*batch, 1)
        return TensorDict(
            {
                "observation": next_obs,
                "reward": reward.reshape(*batch, 1),
                "terminated": terminated,
                "done": terminated.clone(),
            },
            batch_size=tensordict.batch_size,
            device=self.device,
        )

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self.generator.manual_seed(seed)


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
