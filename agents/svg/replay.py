"""Replay storage of the SVG agents: running observation statistics and a circular transition
buffer that samples single transitions and multi-step windows inside episodes.

Plain preallocated tensors rather than a TorchRL ``TensorDictReplayBuffer``: the window sampler
needs index arithmetic on the circular storage (episode ends, write position), and raw indexing is
about 2x cheaper per sample than ``TensorDictReplayBuffer.sample`` (measured with
``benchmarks/bench_svg.py`` on TorchRL 0.14).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

__all__ = ["RunningObsNormalizer", "SVGReplayBuffer", "NoValidWindowError"]


class NoValidWindowError(RuntimeError):
    """The buffer holds no window of the requested length inside one episode."""


class RunningObsNormalizer:
    """Running mean and std of every observation ever added (Welford/Chan, float64).

    The statistics cover all data collected, not only what is still in the buffer (upstream
    ``svg/utils.py: Welford``). ``std`` is the population std clipped to ``[std_min, std_max]``.
    With ``enabled=False`` it is the identity (mean 0, std 1).

    Args:
        dim: observation size.
        std_min, std_max: clip range of the std.
        enabled: ``False`` turns normalisation off.
        device: device of the returned statistics.

    Examples:
        >>> norm = RunningObsNormalizer(2, 0.1, 10.0)
        >>> norm.update(torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
        >>> norm.mean.tolist(), [round(v, 6) for v in norm.std.tolist()]  # std clipped at 0.1
        ([1.0, 1.0], [1.0, 0.1])
    """

    def __init__(self, dim: int, std_min: float, std_max: float, *, enabled: bool = True,
                 device: str | torch.device = "cpu") -> None:
        self.dim, self.std_min, self.std_max, self.enabled = dim, std_min, std_max, enabled
        self.device = torch.device(device)
        self.count = 0
        self._mean = torch.zeros(dim, dtype=torch.float64, device=self.device)
        self._m2 = torch.zeros(dim, dtype=torch.float64, device=self.device)
        self._refresh()

    def update(self, obs: torch.Tensor) -> None:
        """Add observations of shape ``(dim,)`` or ``(n, dim)``."""
        x = obs.reshape(-1, self.dim).to(self.device, torch.float64)
        n = x.shape[0]
        batch_mean = x.mean(0)
        batch_m2 = ((x - batch_mean) ** 2).sum(0)
        total = self.count + n
        delta = batch_mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + batch_m2 + delta**2 * (self.count * n / total)
        self.count = total
        self._refresh()

    def _refresh(self) -> None:
        if not self.enabled or self.count == 0:
            self.mean = torch.zeros(self.dim, device=self.device)
            self.std = torch.ones(self.dim, device=self.device)
            if self.enabled:  # no data yet: the clip still applies to the unit std
                self.std = self.std.clamp(self.std_min, self.std_max)
            return
        var = self._m2 / self.count
        self.mean = self._mean.float()
        self.std = var.sqrt().clamp(self.std_min, self.std_max).float()

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self._mean.clone(), "m2": self._m2.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.count = int(state["count"])
        self._mean = state["mean"].to(self.device, torch.float64).clone()
        self._m2 = state["m2"].to(self.device, torch.float64).clone()
        self._refresh()


class SVGReplayBuffer:
    """Circular buffer of raw transitions ``(obs, action, reward, next_obs, terminated, end)``.

    ``end = terminated or truncated`` marks the last transition of an episode (time limits
    included); ``terminated`` marks only true terminal states (no bootstrap, done-model label).

    Window sampling (:meth:`sample_windows`) draws start positions uniformly over all *valid*
    starts: a window of ``length`` consecutive transitions is valid when

    * all of them are stored and follow each other in time: it does not run past the newest
      transition (the write position), also after the buffer has wrapped around;
    * none of its first ``length - 1`` transitions ends an episode, so consecutive transitions
      belong to one episode. The last transition may end the episode: its ``next_obs`` is the true
      successor state. With ``allow_final_end=False`` (upstream, ``paper_compat``) it may not.

    Args:
        capacity: number of transitions kept.
        obs_dim, act_dim: sizes.
        device: storage device.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int,
                 device: str | torch.device = "cpu") -> None:
        self.capacity, self.obs_dim, self.act_dim = capacity, obs_dim, act_dim
        self.device = torch.device(device)
        self.obs = torch.zeros(capacity, obs_dim, device=self.device)
        self.action = torch.zeros(capacity, act_dim, device=self.device)
        self.reward = torch.zeros(capacity, device=self.device)
        self.next_obs = torch.zeros(capacity, obs_dim, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.end = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.pos = 0  # next write index
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: float, next_obs: torch.Tensor,
            terminated: bool, truncated: bool) -> None:
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = float(reward)
        self.next_obs[i] = next_obs
        self.terminated[i] = bool(terminated)
        self.end[i] = bool(terminated) or bool(truncated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    @property
    def oldest(self) -> int:
        """Physical index of the oldest stored transition."""
        return self.pos if self.size == self.capacity else 0

    def sample_transitions(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Uniform (with replacement) single transitions, raw observations."""
        idx = torch.randint(self.size, (batch_size,), generator=generator, device=self.device)
        return {
            "index": idx, "obs": self.obs[idx], "action": self.action[idx],
            "reward": self.reward[idx], "next_obs": self.next_obs[idx],
            "terminated": self.terminated[idx],
        }

    def _window_ok(self, start: torch.Tensor, length: int, allow_final_end: bool) -> torch.Tensor:
        """Which physical start indices (of windows already inside the stored range) stay within
        one episode."""
        checked = length - 1 if allow_final_end else length
        if checked == 0:
            return torch.ones_like(start, dtype=torch.bool)
        offsets = torch.arange(checked, device=self.device)
        phys = (start[:, None] + offsets) % self.capacity
        return ~self.end[phys].any(dim=1)

    def valid_window_starts(self, length: int, allow_final_end: bool = True) -> torch.Tensor:
        """Physical indices of every valid window start (for inspection and tests; O(size))."""
        if self.size < length:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        logical = torch.arange(self.size - length + 1, device=self.device)
        start = (self.oldest + logical) % self.capacity
        return start[self._window_ok(start, length, allow_final_end)]

    def sample_windows(self, batch_size: int, length: int, generator: torch.Generator, *,
                       allow_final_end: bool = True, max_rounds: int = 64) -> dict[str, torch.Tensor]:
        """``batch_size`` windows of ``length`` consecutive transitions, time-major: ``obs``,
        ``next_obs`` ``(length, B, obs_dim)``, ``action`` ``(length, B, act_dim)``, ``reward``,
        ``terminated`` ``(length, B)``, ``index`` ``(length, B)`` physical indices.

        Starts are drawn uniformly over the stored range that ends before the write position and
        rejected when the window crosses an episode end (batched rejection sampling: uniform over
        the valid starts, and cheap because most starts are valid).
        """
        n_starts = self.size - length + 1
        if n_starts < 1:
            raise NoValidWindowError(
                f"need at least {length} stored transitions for windows of length {length}, "
                f"have {self.size}"
            )
        accepted: list[torch.Tensor] = []
        n_accepted = 0
        draw = max(2 * batch_size, 64)
        for _ in range(max_rounds):
            logical = torch.randint(n_starts, (draw,), generator=generator, device=self.device)
            start = (self.oldest + logical) % self.capacity
            start = start[self._window_ok(start, length, allow_final_end)]
            accepted.append(start)
            n_accepted += start.numel()
            if n_accepted >= batch_size:
                break
        else:
            raise NoValidWindowError(
                f"found only {n_accepted} of {batch_size} windows of length {length} inside episodes "
                f"after {max_rounds} rounds of {draw} draws; episodes are too short for "
                f"seq_train_length={length + 1} (lower it or collect more data first)"
            )
        start = torch.cat(accepted)[:batch_size]
        idx = (start[None, :] + torch.arange(length, device=self.device)[:, None]) % self.capacity
        return {
            "index": idx, "obs": self.obs[idx], "action": self.action[idx],
            "reward": self.reward[idx], "next_obs": self.next_obs[idx],
            "terminated": self.terminated[idx],
        }

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        # Stored in physical order: positions [0, size) are exactly the filled slots.
        return {
            "capacity": self.capacity, "pos": self.pos, "size": n,
            "obs": self.obs[:n].clone(), "action": self.action[:n].clone(),
            "reward": self.reward[:n].clone(), "next_obs": self.next_obs[:n].clone(),
            "terminated": self.terminated[:n].clone(), "end": self.end[:n].clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"checkpoint replay capacity {state['capacity']} != configured {self.capacity}"
            )
        n = int(state["size"])
        for key in ("obs", "action", "reward", "next_obs", "terminated", "end"):
            getattr(self, key)[:n] = state[key].to(self.device)
        self.pos, self.size = int(state["pos"]), n
