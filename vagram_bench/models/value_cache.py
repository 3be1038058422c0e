"""A per-transition value-gradient cache keyed by replay-buffer index.

Implements vagram-bench Decisions 1–2 (``shared/spec/vagram_mbpo.md`` §1.8) and avoids every upstream
cache bug listed in §1.6:

* **Key = replay-buffer index**, not the position inside a shuffled iterator, so train and validation
  batches read the *same* entry for the same transition (upstream bug 2: train and val shared
  position-keyed slots, and val was scored with train-split gradients).
* **Per-transition, hence per-member entries**: a lookup with per-member bootstrap indices of shape
  ``(E, B)`` returns gradients of shape ``(4, E, B, d)`` — every member gets the gradients of the
  transitions it actually trains on (upstream bug 1: member 0's gradients were broadcast to all
  members).
* **No "all known" shortcut**: hits and misses are resolved per entry; only the misses are computed,
  in one batched :func:`~vagram_bench.models.losses.value_gradients` call (upstream bug 3: a batch whose
  slots were marked known by someone else read never-written zeros).
* **Invalidation by** ``value_fn.critic_version`` (any change of the online or target critic), not by
  a timer or a training-call counter. An entry is also invalid when the stored next observation differs
  from the one passed in (the FIFO replay buffer overwrote the slot), so stale entries can never be
  returned even if the caller forgets :meth:`ValueGradientCache.invalidate`.
"""

from __future__ import annotations

import torch

from vagram_bench.interfaces import ValueFunction
from vagram_bench.models.losses import ValueTargets, value_gradients

__all__ = ["ValueGradientCache"]


class ValueGradientCache:
    """Cache of :class:`~vagram_bench.models.losses.ValueTargets` per replay-buffer index.

    Storage is allocated lazily on the first :meth:`get` (the state dim and head count come from the
    first computation): ``grads (capacity, H, d)``, ``values (capacity, H)``, the stored next
    observations ``(capacity, d)`` and the critic version each entry was computed with.

    Args:
        capacity: number of replay-buffer slots (indices must lie in ``[0, capacity)``).
        device: where the entries live.
        compute_chunk: misses are computed in batches of at most this many transitions (one batched
            autograd call each), which bounds the critic's activation memory on large fills.

    Attributes:
        hits, lookups: entry counters since construction (or :meth:`reset_stats`); duplicates inside
            one request count individually.
        computed: number of entries computed (unique misses).

    Examples:
        >>> import torch
        >>> class Quad:
        ...     critic_version = 0
        ...     def q_heads(self, x, a):
        ...         return 0.5 * x.pow(2).sum(-1).expand(4, -1) + a.sum(-1)
        ...     def policy_mean(self, x):
        ...         return torch.zeros(x.shape[0], 1)
        >>> vf, cache = Quad(), ValueGradientCache(100)
        >>> next_obs = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
        >>> idx = torch.arange(10)
        >>> cache.get(idx, next_obs[idx], vf).grads.shape
        torch.Size([4, 10, 3])
        >>> members = torch.tensor([[0, 1, 1], [5, 0, 20]])  # per-member bootstrap indices (E=2, B=3)
        >>> cache.get(members, next_obs[members], vf).grads.shape
        torch.Size([4, 2, 3, 3])
        >>> round(cache.hit_rate, 3)  # 5 of the 6 member entries were cached
        0.312
        >>> vf.critic_version = 1  # a critic update invalidates everything
        >>> _ = cache.get(idx, next_obs[idx], vf); cache.computed
        21
    """

    def __init__(self, capacity: int, device: str | torch.device = "cpu", *, compute_chunk: int = 32_768):
        if int(capacity) <= 0:
            raise ValueError(f"capacity must be a positive int; got {capacity}")
        if int(compute_chunk) <= 0:
            raise ValueError(f"compute_chunk must be a positive int; got {compute_chunk}")
        self.compute_chunk = int(compute_chunk)
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self._grads: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self._obs: torch.Tensor | None = None
        self._version = torch.full((self.capacity,), -1, dtype=torch.long, device=self.device)
        self._owner: int | None = None  # id() of the value_fn the entries belong to
        self.hits = 0
        self.lookups = 0
        self.computed = 0

    # ------------------------------------------------------------------ public API
    @property
    def hit_rate(self) -> float:
        """Fraction of looked-up entries served from the cache (0.0 before any lookup)."""
        return self.hits / self.lookups if self.lookups else 0.0

    def reset_stats(self) -> None:
        """Zero the hit/lookup/computed counters (entries are kept)."""
        self.hits = self.lookups = self.computed = 0

    def clear(self) -> None:
        """Invalidate every entry."""
        self._version.fill_(-1)

    def invalidate(self, indices: torch.Tensor) -> None:
        """Invalidate the entries at ``indices`` (e.g. replay slots that were just overwritten)."""
        self._version[self._check_indices(indices).reshape(-1)] = -1

    def get(
        self, indices: torch.Tensor, next_obs: torch.Tensor, value_fn: ValueFunction
    ) -> ValueTargets:
        """Value targets for the transitions at replay-buffer ``indices``.

        Args:
            indices: integer tensor of any shape ``I`` (``(B,)`` for a shared batch, ``(E, B)`` for
                per-member bootstrap batches); duplicates allowed.
            next_obs: the true next observations of those transitions, shape ``(*I, d)``.
            value_fn: the critic/actor view; its ``critic_version`` decides validity.

        Returns:
            :class:`ValueTargets` with ``grads (H, *I, d)`` and ``values (H, *I)`` (float32, on the
            cache's device). Only the misses (unique indices) are computed, in one batch (or
            ``compute_chunk``-sized batches).
        """
        indices = self._check_indices(indices)
        if next_obs.shape[:-1] != indices.shape:
            raise ValueError(
                f"next_obs must have shape (*indices.shape, d) = ({', '.join(map(str, indices.shape))}, d);"
                f" got {tuple(next_obs.shape)}"
            )
        if self._owner is not None and self._owner != id(value_fn):
            self.clear()
        self._owner = id(value_fn)
        version = int(value_fn.critic_version)
        d = next_obs.shape[-1]
        flat_idx = indices.reshape(-1)
        flat_obs = next_obs.detach().reshape(-1, d).to(self.device, torch.float32)

        if self._obs is not None and self._obs.shape[-1] != d:
            raise ValueError(f"state dim changed from {self._obs.shape[-1]} to {d}; use a new cache")
        if self._obs is None:
            valid = torch.zeros_like(flat_idx, dtype=torch.bool)
        else:
            valid = (self._version[flat_idx] == version) & (self._obs[flat_idx] == flat_obs).all(-1)

        self.lookups += flat_idx.numel()
        self.hits += int(valid.sum())
        miss_pos = (~valid).nonzero().squeeze(-1)
        if miss_pos.numel():
            miss_idx, first = _unique_first(flat_idx[miss_pos])
            obs_new = flat_obs[miss_pos[first]]
            # one batched autograd call per chunk of misses: bounds the critic's activation memory
            # when a whole replay buffer (e.g. 500k transitions) is filled at once
            for start in range(0, miss_idx.numel(), self.compute_chunk):
                sl = slice(start, start + self.compute_chunk)
                vt = value_gradients(value_fn, obs_new[sl])  # (H, M, d), (H, M)
                self._store(miss_idx[sl], obs_new[sl], vt, version)
            self.computed += miss_idx.numel()

        grads = self._grads[flat_idx]  # (N, H, d)
        values = self._values[flat_idx]  # (N, H)
        H = grads.shape[1]
        return ValueTargets(
            grads.permute(1, 0, 2).reshape(H, *indices.shape, d),
            values.T.reshape(H, *indices.shape),
        )

    # ------------------------------------------------------------------ internals
    def _check_indices(self, indices) -> torch.Tensor:
        indices = torch.as_tensor(indices, device=self.device)
        if indices.dtype in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.bool):
            raise TypeError(f"indices must be an integer tensor; got dtype {indices.dtype}")
        indices = indices.long()
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.capacity):
            raise IndexError(
                f"replay indices must lie in [0, {self.capacity}); got range "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )
        return indices

    def _store(self, idx: torch.Tensor, obs: torch.Tensor, vt: ValueTargets, version: int) -> None:
        H, _, d = vt.grads.shape
        if self._grads is None:
            self._grads = torch.zeros(self.capacity, H, d, device=self.device)
            self._values = torch.zeros(self.capacity, H, device=self.device)
            self._obs = torch.full((self.capacity, d), float("nan"), device=self.device)
        self._grads[idx] = vt.grads.permute(1, 0, 2).to(self.device)
        self._values[idx] = vt.values.T.to(self.device)
        self._obs[idx] = obs
        self._version[idx] = version


def _unique_first(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values of ``x`` and the position of each one's first occurrence."""
    uniq, inverse = torch.unique(x, return_inverse=True)
    first = torch.full((uniq.numel(),), x.numel(), dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, torch.arange(x.numel(), device=x.device), reduce="amin")
    return uniq, first
