"""Reference implementation for the tests: checkpoints of a single agent's TorchRL replay buffer (the
agents before populations kept one; the product's buffer is
:class:`vagram_bench.agents.common.PopulationReplayBuffer`)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torchrl.data import ReplayBuffer

__all__ = ["load_replay_buffer_state", "replay_buffer_state"]


def replay_buffer_state(buffer: "ReplayBuffer") -> dict[str, Any]:
    """Checkpoint state of a TorchRL replay buffer over a ``LazyTensorStorage``: the filled rows and
    the writer's state (cursor, write count).

    ``ReplayBuffer.state_dict()`` would store the whole preallocated storage (1M rows by default,
    ~250 MB for Hopper) at every checkpoint; the filled prefix is all that is needed, since the
    storage index of a transition does not change.
    """
    n = len(buffer)
    return {"data": buffer.storage[:n].clone() if n else None, "writer": buffer.writer.state_dict()}


def load_replay_buffer_state(
    buffer: "ReplayBuffer", state: Mapping[str, Any], device: str | torch.device = "cpu"
) -> None:
    """Restore :func:`replay_buffer_state` into a buffer of the same capacity (same rows at the same
    storage indices, same write cursor; the sampler's generator is untouched)."""
    buffer.empty()
    if state["data"] is not None:
        buffer.extend(state["data"].to(device))
    buffer.writer.load_state_dict(state["writer"])
