"""Ensemble dynamics model with batched weights (mbrl-lib's ``OneDTransitionRewardModel`` + ``GaussianMLP``
semantics: ``mbrl/models/one_dim_tr_model.py``, ``mbrl/models/gaussian_mlp.py``, pairlab/vagram@cc7e2e4).

* ``E`` members, each an MLP ``in → hid_size × num_layers (SiLU) → out`` with weights stored as one
  ``(E, in, out)`` tensor per layer, so a forward pass over all members is one batched matmul
  (``torch.baddbmm``) per layer, not a Python loop.
* Input ``x = (concat(s, a) − μ_in) / σ_in`` with the statistics fitted on the real replay buffer
  (:meth:`EnsembleDynamicsModel.fit_normalizer`; float64 accumulation).
* Outputs ``(Δ̂, r̂)``: the next-state delta in **raw units** (no output normalisation) and the reward;
  with ``gaussian=True`` also a log-variance per output, soft-bounded into ``[min_logvar, max_logvar]``
  (``−10``, ``0.5``; not learned).
* Init: weights ``N(0, (1/(2√fan_in))²)`` truncated at ±2σ — the truncation is *actually applied*
  here (upstream's ``truncated_normal_`` rebound a local and was a no-op, ``mbrl/util/math.py`` in
  pairlab/vagram), biases 0.
* Elites and random-elite propagation for rollouts (:meth:`EnsembleDynamicsModel.sample_step`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EnsembleDynamicsModel", "EnsembleLinear", "ModelPrediction", "soft_bound_logvar"]


def soft_bound_logvar(raw: torch.Tensor, min_logvar: torch.Tensor, max_logvar: torch.Tensor) -> torch.Tensor:
    """mbrl-lib's soft bounds (``GaussianMLP``, ``mbrl/models/gaussian_mlp.py``): ``lv₁ = max −
    softplus(max − raw)``, then
    ``lv = min + softplus(lv₁ − min)``."""
    lv = max_logvar - F.softplus(max_logvar - raw)
    return min_logvar + F.softplus(lv - min_logvar)


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers with weights ``(E, in, out)`` and biases ``(E, 1, out)``.

    Args:
        ensemble_size: ``E``.
        in_features, out_features: layer sizes.
        generator: seeds the truncated-normal init.

    Examples:
        >>> layer = EnsembleLinear(3, 4, 2, generator=torch.Generator().manual_seed(0))
        >>> layer(torch.zeros(3, 5, 4)).shape
        torch.Size([3, 5, 2])
    """

    def __init__(self, ensemble_size: int, in_features: int, out_features: int, *, generator=None):
        super().__init__()
        self.ensemble_size, self.in_features, self.out_features = ensemble_size, in_features, out_features
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, out_features))
        std = 1.0 / (2.0 * math.sqrt(in_features))
        with torch.no_grad():
            nn.init.trunc_normal_(self.weight, 0.0, std, -2 * std, 2 * std, generator=generator)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` of shape ``(E', N, in)``; ``members`` (``E'`` indices) selects which members'
        weights are used (``None``: all, ``E' = E``)."""
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class ModelPrediction(NamedTuple):
    """One-step prediction of every (selected) member.

    Attributes:
        next_obs: ``(E', N, d)`` mean next state ``s + Δ̂`` in raw units.
        reward: ``(E', N)`` mean reward.
        obs_logvar: ``(E', N, d)`` or ``None`` (deterministic model).
        reward_logvar: ``(E', N)`` or ``None``.
    """

    next_obs: torch.Tensor
    reward: torch.Tensor
    obs_logvar: torch.Tensor | None
    reward_logvar: torch.Tensor | None


class EnsembleDynamicsModel(nn.Module):
    """Ensemble of MLP dynamics models predicting ``(s' − s, r)`` from ``(s, a)``.

    Args:
        obs_dim: state dimension ``d`` (distractors included).
        act_dim: action dimension.
        ensemble_size: number of members ``E`` (MBPO: 7).
        num_elites: members used in rollouts (MBPO: 5).
        num_layers: hidden layers per member (capacity ids set it; default 4).
        hid_size: hidden width (capacity ids set it; default 200).
        gaussian: add a soft-bounded log-variance head (``mle``); otherwise deterministic.
        min_logvar, max_logvar: the soft bounds of the log-variance (constants).
        generator: seeds the weight init (every random draw comes from a seeded generator).
        device: parameter device.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> model = EnsembleDynamicsModel(11, 3, ensemble_size=7, num_elites=5, num_layers=3, hid_size=64,
        ...                               generator=g)
        >>> obs, act = torch.randn(32, 11, generator=g), torch.rand(32, 3, generator=g) * 2 - 1
        >>> model.fit_normalizer(obs, act)
        >>> pred = model.predict(obs, act)          # every member on the same batch
        >>> pred.next_obs.shape, pred.reward.shape
        (torch.Size([7, 32, 11]), torch.Size([7, 32]))
        >>> next_obs, reward = model.sample_step(obs, act, generator=g)  # random elite per sample
        >>> next_obs.shape, reward.shape
        (torch.Size([32, 11]), torch.Size([32]))
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        ensemble_size: int = 7,
        num_elites: int = 5,
        num_layers: int = 4,
        hid_size: int = 200,
        gaussian: bool = False,
        min_logvar: float = -10.0,
        max_logvar: float = 0.5,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        for name, val, lo in (("obs_dim", obs_dim, 1), ("act_dim", act_dim, 1), ("ensemble_size", ensemble_size, 1),
                              ("num_layers", num_layers, 1), ("hid_size", hid_size, 1)):
            if int(val) < lo:
                raise ValueError(f"{name} must be an int >= {lo}; got {val}")
        if not 1 <= num_elites <= ensemble_size:
            raise ValueError(f"num_elites must be in [1, ensemble_size={ensemble_size}]; got {num_elites}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.ensemble_size, self.num_elites = int(ensemble_size), int(num_elites)
        self.num_layers, self.hid_size = int(num_layers), int(hid_size)
        self.gaussian = bool(gaussian)
        in_dim = self.obs_dim + self.act_dim
        self.out_dim = self.obs_dim + 1  # delta + reward
        sizes = [in_dim] + [self.hid_size] * self.num_layers
        self.hidden = nn.ModuleList(
            EnsembleLinear(self.ensemble_size, a, b, generator=generator) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.head = EnsembleLinear(
            self.ensemble_size, self.hid_size, self.out_dim * (2 if self.gaussian else 1), generator=generator
        )
        self.register_buffer("min_logvar", torch.full((self.out_dim,), float(min_logvar)))
        self.register_buffer("max_logvar", torch.full((self.out_dim,), float(max_logvar)))
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self.register_buffer("elite_idx", torch.arange(self.num_elites))
        self.to(device)

    # ------------------------------------------------------------------ normalisation and elites
    @torch.no_grad()
    def fit_normalizer(self, obs: torch.Tensor, action: torch.Tensor, eps: float = 1e-8) -> None:
        """Fit the input statistics on the whole real replay buffer: per-column mean and unbiased std
        of ``concat(s, a)``, accumulated in float64 (mbrl-lib optionally does the same). Columns with
        ``std < eps`` (e.g. a constant distractor) get std 1 instead of dividing by ~0."""
        x = torch.cat([obs, action], -1).reshape(-1, self.obs_dim + self.act_dim).to(torch.float64)
        if x.shape[0] < 2:
            raise ValueError(f"fit_normalizer needs at least 2 transitions; got {x.shape[0]}")
        mean, std = x.mean(0), x.std(0)
        std = torch.where(std < eps, torch.ones_like(std), std)
        self.in_mean.copy_(mean.to(self.in_mean))
        self.in_std.copy_(std.to(self.in_std))

    def set_elites(self, elite_idx) -> None:
        """Set the elite members (``num_elites`` distinct indices in ``[0, ensemble_size)``)."""
        idx = torch.as_tensor(elite_idx, dtype=torch.long, device=self.elite_idx.device).reshape(-1)
        if idx.numel() != self.num_elites or idx.unique().numel() != idx.numel() or \
                int(idx.min()) < 0 or int(idx.max()) >= self.ensemble_size:
            raise ValueError(
                f"elites must be {self.num_elites} distinct indices in [0, {self.ensemble_size}); got {idx.tolist()}"
            )
        self.elite_idx.copy_(idx)

    def member_modules(self) -> list[nn.Sequential]:
        """Independent ``nn.Linear``/``SiLU`` stacks holding copies of each member's weights.

        Member ``e``'s stack maps normalised inputs to its raw head output (before the mean/log-variance
        split and the log-variance bound). Useful to export one member, and as the per-member
        reference the batched forward is tested and benchmarked against.
        """
        members = []
        for e in range(self.ensemble_size):
            layers: list[nn.Module] = []
            for layer in list(self.hidden) + [self.head]:
                lin = nn.Linear(layer.in_features, layer.out_features)
                with torch.no_grad():
                    lin.weight.copy_(layer.weight[e].T)
                    lin.bias.copy_(layer.bias[e, 0])
                layers += [lin, nn.SiLU()]
            members.append(nn.Sequential(*layers[:-1]))
        return members

    # ------------------------------------------------------------------ forward passes
    def normalize_input(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (torch.cat([obs, action], -1) - self.in_mean) / self.in_std

    def forward_normalized(
        self, x: torch.Tensor, members: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw ensemble output for normalised inputs ``x (E', N, in)``: ``(mean (E', N, d+1), logvar)``
        with ``mean = (Δ̂, r̂)`` and ``logvar`` soft-bounded (``None`` when deterministic)."""
        h = x
        for layer in self.hidden:
            h = F.silu(layer(h, members))
        return self._head(h, members)

    def _head(self, h: torch.Tensor, members: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.head(h, members)
        if not self.gaussian:
            return out, None
        mean, raw_lv = out.split(self.out_dim, dim=-1)
        return mean, soft_bound_logvar(raw_lv, self.min_logvar, self.max_logvar)

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar)`` of ``(Δ, r)`` per member.

        Args:
            obs: ``(N, d)`` (shared by all members) or ``(E', N, d)`` (one batch per member).
            action: same leading shape as ``obs``.
            members: ``E'`` member indices (``None``: all ``E``).
        """
        n_members = self.ensemble_size if members is None else len(members)
        x = self.normalize_input(obs, action)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(n_members, -1, -1)
        elif x.dim() != 3 or x.shape[0] != n_members:
            raise ValueError(
                f"obs/action must be (N, dim) or ({n_members}, N, dim) for {n_members} members; got {tuple(obs.shape)}"
            )
        return self.forward_normalized(x, members)

    def predict(
        self, obs: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None
    ) -> ModelPrediction:
        """Mean next state ``s + Δ̂`` and reward (and log-variances) per member; see :meth:`forward`."""
        mean, logvar = self.forward(obs, action, members)
        next_obs = obs + mean[..., : self.obs_dim]
        reward = mean[..., self.obs_dim]
        if logvar is None:
            return ModelPrediction(next_obs, reward, None, None)
        return ModelPrediction(next_obs, reward, logvar[..., : self.obs_dim], logvar[..., self.obs_dim])

    @torch.no_grad()
    def sample_step(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator,
        deterministic: bool = False,
        chunk_size: int | None = 10_000,
        bf16: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One model step for a batch of states, each propagated through a random elite.

        mbrl-lib's ``random_model`` propagation: the batch is randomly permuted (``generator``) and
        split evenly over the elites, so each elite runs one forward on ``N / num_elites`` states
        (not the whole ensemble on all ``N``). ``N`` need not be a multiple of the number of elites
        (shares then differ by one; the padding is discarded). Gaussian models sample
        ``N(μ̂, exp(lv))`` unless ``deterministic``.

        Args:
            obs: ``(N, d)`` states (raw units).
            action: ``(N, act_dim)``.
            generator: the seeded generator for the elite assignment and Gaussian noise.
            deterministic: use the mean even for a Gaussian model.
            chunk_size: process at most this many states per forward pass (keeps activations in
                cache; ``None``: all at once). Results do not depend on it.
            bf16: run the hidden layers in bfloat16 (measured 1.7–2.1× faster on a CPU with native
                bf16 matmuls, slower on CPUs without; the output head, the state update ``s + Δ̂`` and
                the sampling stay float32; median next-state error 0.6 % of the step ``|Δ̂|``). See
                ``benchmarks/bench_models.py``.

        Returns:
            ``(next_obs (N, d), reward (N,))``.
        """
        n = obs.shape[0]
        elites = self.elite_idx
        n_el = elites.numel()
        per = -(-n // n_el)
        perm = torch.randperm(n, generator=generator, device=obs.device)
        if per * n_el > n:
            perm = torch.cat([perm, perm[: per * n_el - n]])
        # sample perm[j] goes to elite j mod n_el: shares differ by at most one state
        x = self.normalize_input(obs, action)[perm].reshape(per, n_el, -1).transpose(0, 1).contiguous()
        step = per if not chunk_size else max(1, chunk_size // n_el)
        mean, lv = self._forward_elites(x, elites, step, bf16)
        mean = mean.transpose(0, 1).reshape(n_el * per, -1)[:n]
        if self.gaussian and not deterministic:
            lv = lv.transpose(0, 1).reshape(n_el * per, -1)[:n]
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            mean = mean + noise * torch.exp(0.5 * lv)
        out = torch.empty_like(mean)
        out[perm[:n]] = mean
        return obs + out[:, : self.obs_dim], out[:, self.obs_dim]

    def _forward_elites(
        self, x: torch.Tensor, elites: torch.Tensor, step: int, bf16: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar)`` of elite ``k`` on ``x[k]`` for normalised ``x (n_el, per, in)``."""
        # Per-elite 2-D matmuls (torch.addmm) instead of one batched baddbmm: for thousands of rows per
        # member the 2-D GEMM is measurably faster on CPU (benchmarks/bench_models.py), and the Python
        # loop is only num_elites × num_layers calls. With bf16 the elites' hidden weights are cast once
        # per call (autocast would re-cast them at every op); the output head stays float32.
        n_el, per = x.shape[0], x.shape[1]
        dtype = torch.bfloat16 if bf16 else x.dtype
        hidden = [(layer.weight[elites].to(dtype), layer.bias[elites, 0].to(dtype)) for layer in self.hidden]
        head_w, head_b = self.head.weight[elites], self.head.bias[elites, 0]
        out_all = torch.empty(n_el, per, self.head.out_features, dtype=x.dtype, device=x.device)
        for k in range(n_el):
            for start in range(0, per, step):
                h = x[k, start : start + step].to(dtype)
                for w, b in hidden:
                    h = F.silu(torch.addmm(b[k], h, w[k]))
                out_all[k, start : start + step] = torch.addmm(head_b[k], h.to(x.dtype), head_w[k])
        if not self.gaussian:
            return out_all, None
        m, raw_lv = out_all.split(self.out_dim, dim=-1)
        return m, soft_bound_logvar(raw_lv, self.min_logvar, self.max_logvar)
