"""Reference implementation for the tests: a learned ensemble as a TorchRL environment.

:class:`EnsembleModelEnv` subclasses :class:`torchrl.envs.model_based.ModelBasedEnvBase` with explicit
specs (TorchRL 0.14's ``WorldModelEnv`` builds its specs wrongly) and steps with the package's
:func:`~vagram_bench.models.model_env.model_step`, writing **both** ``terminated`` and ``done``; it is
not batch-locked. MBPO does not use it (its rollouts are
:func:`~vagram_bench.models.model_env.branched_rollout` on plain tensors); the tests and
``benchmarks/bench_models.py`` compare the two.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs.model_based import ModelBasedEnvBase

from vagram_bench.models.ensemble import EnsembleDynamicsModel
from vagram_bench.models.model_env import TerminationFn, model_step

__all__ = ["EnsembleModelEnv"]


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
