"""Adam over a population's stacked parameters, each member stepped as its own single run's optimiser.

A population holds ``K`` learners as tensors with a leading member dimension. :class:`MemberAdam`
steps member ``k``'s slices exactly as ``torch.optim.Adam`` (or ``AdamW``) steps the single learner's
tensors, so a member's numbers do not depend on which other members share its process, and a member
left out of a step (per-member early stopping) changes neither its weights, its moments nor its step
counts. Two users, each with the kernel of the single-run optimiser it replaced:

* ``kernel="fused"``: SAC's population learner (``agents/sac/population.py``), whose single-seed
  reference (``tests/reference/sac_learner.py``) trains with ``torch.optim.Adam(fused=True)``;
* ``kernel="single_tensor"``: the model trainer of a population
  (:class:`~vagram_bench.models.population.PopulationModelTrainer`), whose single trainer
  (:class:`~vagram_bench.models.trainer.ModelTrainer`) trains with a default ``torch.optim.Adam``,
  which runs the single-tensor implementation on CPU tensors.

Examples:
    >>> import torch
    >>> stacked = torch.nn.Parameter(torch.ones(2, 3))
    >>> opt = MemberAdam([stacked], 2, lr=0.1, kernel="single_tensor")
    >>> stacked.grad = torch.ones(2, 3)
    >>> opt.step([1])  # member 0 is left out
    >>> stacked.detach()
    tensor([[1.0000, 1.0000, 1.0000],
            [0.9000, 0.9000, 0.9000]])
    >>> [int(s) for s in opt.member_state(1)["step"]], [int(s) for s in opt.member_state(0)["step"]]
    ([1], [0])
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import torch
from torch.optim.adam import adam as functional_adam

__all__ = ["KERNELS", "MemberAdam"]

#: the values of :class:`MemberAdam`'s ``kernel``
KERNELS = ("fused", "single_tensor")


class MemberAdam:
    """``torch.optim.Adam`` (or ``AdamW``) over stacked parameters ``(K, ...)``, member by member.

    Each member's slices are passed as tensors of their own to the code ``torch.optim.Adam.step`` runs
    (torch's functional ``adam`` for ``"single_tensor"``; for ``"fused"``, ``torch._fused_adam_`` or
    ``torch._fused_adamw_`` as ``torch.optim.adam._fused_adam`` calls them), with one step count per
    member and parameter (as ``torch.optim.Adam`` keeps one per tensor), so member ``k`` follows its
    single run's optimiser bitwise (``tests/test_optim.py``).

    Why the kernel matters: Adam is elementwise, but the two CPU kernels round differently, and the
    fused one is not even the same function for every element of a tensor. ``torch.optim.Adam(fused=True)``'s
    CPU kernel updates the elements past the last whole SIMD vector in double precision, the others in
    float (``aten/src/ATen/native/cpu/FusedAdamKernel.cpp``). One optimiser over the stacked tensors would
    therefore round the tail of, e.g., a ``(K, 6)`` actor-head bias or a ``(K,)`` log-temperature
    differently from the single learner, and differently for every population size (1 ulp of
    ``exp_avg_sq``, enough to fork a training run). Passing the K per-member views as K tensors
    reproduces the single run exactly, for both kernels (also under multi-threading, which chunks each
    tensor the same way), for a few microseconds of launch overhead per view. Which kernel a user
    picks is set by the single-run reference it replaced and must match (see the module docstring):
    the other kernel's numbers are equally valid but not that reference's.

    Args:
        params: stacked leaf tensors, member dimension first.
        num_members: ``K``.
        lr: learning rate.
        weight_decay: as ``torch.optim.Adam`` (an L2 term added to the gradient).
        decoupled_weight_decay: ``AdamW``'s decay ``lr · weight_decay · θ`` instead of the L2 term.
        betas, eps: as ``torch.optim.Adam`` (whose defaults they are).
        kernel: ``"fused"`` (``torch.optim.Adam(fused=True)``'s kernel; step counts on the parameters'
            device) or ``"single_tensor"`` (``torch.optim.Adam``'s default on CPU tensors, also
            ``foreach=False``; step counts on the CPU, as torch keeps them).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        num_members: int,
        lr: float,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        kernel: Literal["fused", "single_tensor"],
    ) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r}: expected one of {', '.join(KERNELS)}")
        self.params, self.num_members, self.kernel = list(params), int(num_members), kernel
        for p in self.params:
            if p.ndim == 0 or p.shape[0] != self.num_members:
                raise ValueError(f"parameter of shape {tuple(p.shape)} has no member dimension {num_members}")
        self.lr, self.weight_decay, self.decoupled = float(lr), float(weight_decay), bool(decoupled_weight_decay)
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        # contiguous moments: a member's slice of each is then laid out as its parameter's slice, so the
        # fused kernel's SIMD tail falls on the same elements (the layout does not change single-tensor maths)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]
        # float32 step counts where torch.optim.Adam keeps them (the device for fused, else the CPU), as one
        # (K, parameters) tensor whose 0-d elements are the kernels' step tensors: a member's counts are then
        # incremented by one op on its row (a foreach add over one 0-d tensor per parameter took ~2 us each)
        step_device = self.params[0].device if kernel == "fused" else torch.device("cpu")
        self.step_counts = torch.zeros(self.num_members, len(self.params), dtype=torch.float32, device=step_device)
        self._step_rows = self.step_counts.unbind(0)
        self.steps = [list(row.unbind(0)) for row in self._step_rows]
        """``steps[k][i]``: member ``k``'s step count of parameter ``i`` (a view of :attr:`step_counts`)."""
        self._param_views = [p.detach().unbind(0) for p in self.params]
        self._exp_avg_views = [t.unbind(0) for t in self.exp_avg]
        self._exp_avg_sq_views = [t.unbind(0) for t in self.exp_avg_sq]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, members: Sequence[int] | None = None) -> None:
        """One Adam step of ``members`` (default: all) on the parameters' current gradients; a
        parameter without a gradient is skipped (its step counts stay), as ``torch.optim.Adam`` does."""
        members = range(self.num_members) if members is None else members
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad_views = p.grad.unbind(0)
            for k in members:
                params.append(self._param_views[i][k])
                grads.append(grad_views[k])
                exp_avgs.append(self._exp_avg_views[i][k])
                exp_avg_sqs.append(self._exp_avg_sq_views[i][k])
                steps.append(self.steps[k][i])
        if not params:
            return
        if self.kernel == "fused":
            # what torch.optim.adam._fused_adam does for one device and dtype (all of a population's
            # tensors) without its grouping pass; the counts first, as there (the kernel only reads them)
            if len(params) == len(self.params) * len(members):  # every parameter has a gradient
                torch._foreach_add_([self._step_rows[k] for k in members], 1)
            else:
                torch._foreach_add_(steps, 1)
            fused_kernel = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
            fused_kernel(
                params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=self.lr, beta1=self.betas[0],
                beta2=self.betas[1], weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False,
            )
        else:
            functional_adam(
                params, grads, exp_avgs, exp_avg_sqs, [], steps, foreach=False, fused=False,
                decoupled_weight_decay=self.decoupled, amsgrad=False, beta1=self.betas[0], beta2=self.betas[1],
                lr=self.lr, weight_decay=self.weight_decay, eps=self.eps, maximize=False,
            )

    def member_state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s moments and step counts (one per parameter; clones), for checkpoints."""
        return {
            "exp_avg": [t[member].clone() for t in self.exp_avg],
            "exp_avg_sq": [t[member].clone() for t in self.exp_avg_sq],
            "step": [s.clone() for s in self.steps[member]],
        }

    @torch.no_grad()
    def load_member_state(self, member: int, state: Mapping[str, Any]) -> None:
        """Restore :meth:`member_state` into member ``member``'s slices (in place).

        Also reads the states of the two classes this one replaced, so checkpoints written before
        resume: SAC's ``MemberAdam`` kept one step tensor per member (``"step"`` a 0-d tensor, which
        every parameter's count takes), the model trainer's ``MemberTorchAdam`` a list per parameter
        (this class's format)."""
        if len(state["exp_avg"]) != len(self.params):
            raise ValueError(f"optimiser state has {len(state['exp_avg'])} tensors, expected {len(self.params)}")
        saved_steps = state["step"]
        if isinstance(saved_steps, torch.Tensor):  # the SAC population's format (one count per member)
            saved_steps = [saved_steps] * len(self.params)
        if len(saved_steps) != len(self.params):
            raise ValueError(f"optimiser state has {len(saved_steps)} step counts, expected {len(self.params)}")
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq, [*state["exp_avg"], *state["exp_avg_sq"]]):
            mine[member].copy_(saved)
        for mine, saved in zip(self.steps[member], saved_steps):
            mine.copy_(saved)
