"""A population of independent SAC learners trained as one batched computation.

:class:`SACPopulationLearner` holds ``K`` SAC learners -- actor, both critics, target critics,
temperature and Adam states -- as tensors with a leading member dimension, and one :meth:`update`
steps all ``K`` with batched kernels: no Python loop over members in the maths and no host
synchronisation (metrics are returned as ``(K,)`` tensors on the device).

Member ``k`` is the single-seed learner (``tests/reference/sac_learner.py``, on TorchRL's ``SACLoss``) built from generator
``generators[k]``: its initial parameters are that learner's (the population is built by stacking
``K`` single learners), every random draw of member ``k`` comes from ``generators[k]`` in the order
the single learner draws it, and the update is the single learner's fused maths per
member. Hence a population of one reproduces the single learner, and a member's numbers do not
depend on which other members share its process (``tests/test_sac_population.py``).

Two interchangeable evaluations of the stacked networks (``impl``):

* ``"bmm"`` (default): hand-batched layers, one ``baddbmm`` per layer over the member dimension
  (over members x 2 Q-nets for the critics; the first critic layer of both Q-nets is one matmul per
  member, as in the single learner).
* ``"vmap"``: tensordict's functional machinery: the single learner's own modules called with
  stacked parameters through ``TensorDictParams.to_module`` under ``torch.vmap`` (members x Q-nets
  nested), the way TorchRL's ``SACLoss`` evaluates its Q ensemble.

``benchmarks/bench_population.py`` times both and the population against ``K`` separate single
learners.

Adam: :class:`~vagram_bench.optim.MemberAdam` with ``kernel="fused"`` runs the single learner's
``torch.optim.Adam(fused=True)`` kernel on each member's slice as a tensor of its own (one optimiser
over the stacked tensors would round some elements differently, see there), with per-member step counts.

Non-finite losses: the single learner raises before touching its parameters; a population cannot
without a host sync per update. Instead :attr:`SACPopulationLearner.first_nonfinite_update` records,
on the device, the first gradient step at which each member's loss was not finite (0: never). A
non-finite member's later numbers are meaningless but stay confined to its own slices (every kernel
is per member), so the caller reads the record once per log window and stops that member.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from vagram_bench.agents.sac import SACConfig
    >>> from vagram_bench.agents.sac.population import SACPopulationLearner
    >>> gens = [torch.Generator().manual_seed(s) for s in (0, 1, 2)]
    >>> pop = SACPopulationLearner(11, 3, SACConfig(hidden_size=64), generators=gens)
    >>> pop.act(torch.zeros(3, 5, 11), deterministic=True).shape
    torch.Size([3, 5, 3])
    >>> K, B = 3, 32
    >>> batch = TensorDict({
    ...     "observation": torch.randn(K, B, 11), "action": torch.rand(K, B, 3) * 2 - 1,
    ...     "next": {"observation": torch.randn(K, B, 11), "reward": torch.randn(K, B, 1),
    ...              "terminated": torch.zeros(K, B, 1, dtype=torch.bool)}}, batch_size=[K, B])
    >>> metrics = pop.update(batch)
    >>> sorted(metrics), metrics["loss_qvalue"].shape
    (['alpha', 'entropy', 'loss_actor', 'loss_alpha', 'loss_qvalue', 'q_mean'], torch.Size([3]))
    >>> pop.q_heads(torch.randn(3, 7, 11), torch.zeros(3, 7, 3)).shape
    torch.Size([3, 4, 7])
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictParams
from torch import nn

from vagram_bench.agents.sac.config import SACConfig
from vagram_bench.agents.sac.learner import _tanh_gaussian_log_prob, build_member_networks, q_ensemble
from vagram_bench.optim import MemberAdam

__all__ = ["MemberValueFunction", "SACPopulationLearner", "NONFINITE_LOSSES"]

#: the losses :attr:`SACPopulationLearner.first_nonfinite_loss` indexes
NONFINITE_LOSSES = ("loss_qvalue", "loss_actor", "loss_alpha")

def _each_member(fn: Any, *tensors: torch.Tensor) -> Any:
    """``fn`` applied to each member's slice of ``tensors`` (leading member dimension) as a tensor of
    its own, the results stacked again (``fn`` may return a tensor or a tuple of tensors).

    Why: an elementwise CPU kernel runs over a contiguous ``(K, ...)`` tensor as one loop over all
    its elements, vectorised in blocks of twice the SIMD width with the last partial block computed
    by the scalar code, and for ``exp``, ``log``, ``tanh``, ``softplus`` (and their derivatives) the
    vectorised and the scalar code round differently. Which of member ``k``'s elements fall in the
    scalar tail then depends on ``K`` and on the CPU's vector width: a member of a population
    differed from its single run by 1 ulp in the first update on an AVX-512 CPU (32-float blocks)
    but not on an AVX2 one (16), at batch 16 with 3 action dims, and on both at batch 13. Run per
    member, each loop starts at the member's first element and covers exactly the elements of its
    single run, so the rounding is the single run's on any CPU, by construction. Autograd follows
    ``unbind``/``stack``, so the backward kernels run per member too. The cost is K small kernel
    launches per call (a population of one calls ``fn`` once, on the whole tensor).
    """
    if tensors[0].shape[0] == 1:
        return fn(*tensors)
    outs = [fn(*parts) for parts in zip(*(t.unbind(0) for t in tensors))]
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*outs))
    return torch.stack(outs)


def _sample_head(loc: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``u = loc + scale * noise`` -> ``(log pi(tanh u), tanh u)``, as :meth:`SACLearner.compute_losses`."""
    pre = loc + scale * noise
    return _tanh_gaussian_log_prob(noise, scale, pre), torch.tanh(pre)


def _linear_names(module: nn.Module) -> list[str]:
    return [name for name, m in module.named_children() if isinstance(m, nn.Linear)]


class _MemberLinear(torch.autograd.Function):
    """``nn.Linear`` of every member at once: ``(K, N, in), (K, out, in), (K, out) -> (K, N, out)``.

    Forward is one ``baddbmm``. The backward computes the weight gradient as ``grad^T @ x`` (the
    orientation ``addmm``'s backward takes for ``nn.Linear``'s transposed weight) instead of
    ``baddbmm``'s ``x^T @ grad``: the two round differently for thin matrices (an 11-wide
    observation layer or a 6-wide actor head: up to 3e-5 apart on a batch of 256, measured with MKL
    on CPU), and this orientation keeps member ``k``'s gradient bitwise equal to its single learner's.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad.bmm(weight) if ctx.needs_input_grad[0] else None
        grad_weight = grad.transpose(1, 2).bmm(x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class _MemberQInputLayer(torch.autograd.Function):
    """First layer of both Q-nets of every member: ``(K, N, in), (K, 2, H, in), (K, 2, H) ->
    (2K, N, H)``, the hidden activations laid out contiguously per (member, net) for the deeper
    ``bmm`` layers.

    The single learner evaluates this layer as one ``addmm`` over both nets (``2H`` outputs); per net
    the forward and the weight gradient are the same numbers, but the input gradient (which reaches
    the actor through ``Q(s, pi(s))``) must be one contraction over all ``2H`` units to round as the
    single learner's does (a per-net sum of two ``H``-contractions differs by ~1e-9 at H=256). So the
    backward regroups the output gradient to ``(K, N, 2H)`` -- one copy, only when the input needs a
    gradient -- instead of every forward regrouping its output (10.1 -> 6.8 ms forward + backward at
    K=5, 2x256, one thread).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        members, n, width = x.shape[0], x.shape[1], weight.shape[2]
        ctx.save_for_backward(x, weight)
        x_per_net = x.unsqueeze(1).expand(members, 2, n, x.shape[-1]).reshape(members * 2, n, -1)
        return torch.baddbmm(
            bias.reshape(members * 2, 1, width),
            x_per_net,
            weight.reshape(members * 2, width, -1).transpose(1, 2),
        )

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        members, width, n = weight.shape[0], weight.shape[2], x.shape[1]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_all_units = grad.view(members, 2, n, width).transpose(1, 2).reshape(members, n, 2 * width)
            grad_x = grad_all_units.bmm(weight.reshape(members, 2 * width, -1))
        if ctx.needs_input_grad[1]:
            x_per_net = x.unsqueeze(1).expand(members, 2, n, x.shape[-1]).reshape(members * 2, n, -1)
            grad_weight = grad.transpose(1, 2).bmm(x_per_net).view(weight.shape)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1).view(members, 2, width)
        return grad_x, grad_weight, grad_bias


class SACPopulationLearner(nn.Module):
    """``K`` independent SAC learners with a leading member dimension, updated together.

    Args:
        obs_dim: observation dimensions.
        act_dim: action dimensions; actions are in ``[-1, 1]``.
        config: a :class:`SACConfig` shared by all members.

    Keyword Args:
        generators: one ``torch.Generator`` per member, the only source of that member's randomness
            (initialisation, action noise, reparameterisation noise), on the networks' device.
        device: torch device of the networks.
        impl: ``"bmm"`` (hand-batched layers) or ``"vmap"`` (``torch.vmap`` over the single
            learner's modules with stacked parameters); same maths.

    Attributes:
        num_members: ``K``.
        actor_params: ``TensorDictParams`` of batch ``(K,)``, the actor trunk's parameters.
        qvalue_params: ``TensorDictParams`` of batch ``(K, 2)``, both online Q-networks.
        target_qvalue_params: ``TensorDictParams`` of batch ``(K, 2)`` (buffers), the target critics.
        log_alpha: ``(K,)`` log-temperatures.
        target_entropy: ``(K,)`` target entropies.
        first_nonfinite_update: ``(K,)`` int64, member ``k``'s first gradient step with a non-finite
            loss (0: none yet).
        first_nonfinite_loss: ``(K,)`` int64, which loss it was (an index into
            :data:`NONFINITE_LOSSES`).
        member_updates: ``(K,)`` int64 numpy array, the gradient steps each member has taken (members
            left out of an update keep their count, as a single learner that was not updated).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: SACConfig,
        *,
        generators: Sequence[torch.Generator],
        device: str | torch.device = "cpu",
        impl: Literal["bmm", "vmap"] = "bmm",
    ) -> None:
        super().__init__()
        if impl not in ("bmm", "vmap"):
            raise ValueError(f"impl must be 'bmm' or 'vmap', got {impl!r}")
        if len(generators) < 1:
            raise ValueError("a population needs at least one generator (one per member)")
        self.obs_dim, self.act_dim, self.config, self.impl = int(obs_dim), int(act_dim), config, impl
        self.generators = list(generators)
        self.num_members = len(self.generators)
        self.device = torch.device(device)

        # Each member's networks are built from its own generator, then the K copies are stacked.
        members = [build_member_networks(obs_dim, act_dim, config, g, device) for g in self.generators]
        self.actor_params = TensorDict.from_modules(*[actor for actor, _, _ in members], as_module=True, lock=False)
        self.qvalue_params = TensorDictParams(torch.stack([q for _, q, _ in members]).clone())
        # the target critics start as copies of the online ones (SACLoss's delay_qvalue)
        self.target_qvalue_params = TensorDictParams(
            torch.stack([q for _, q, _ in members]).clone(), no_convert=True
        )
        self.log_alpha = nn.Parameter(
            torch.full((self.num_members,), math.log(config.init_alpha), dtype=torch.float32, device=self.device),
            requires_grad=config.learn_alpha,
        )
        target_entropy = float(config.target_entropy) if config.target_entropy is not None else -float(act_dim)
        self.register_buffer(
            "target_entropy",
            torch.full((self.num_members,), target_entropy, dtype=torch.float32, device=self.device),
        )
        self.register_buffer(
            "first_nonfinite_update", torch.zeros(self.num_members, dtype=torch.long, device=self.device)
        )
        self.register_buffer(
            "first_nonfinite_loss", torch.zeros(self.num_members, dtype=torch.long, device=self.device)
        )
        # TorchRL SoftUpdate's lerp weight, 1 - eps with eps = 1 - tau, kept in that exact float form
        self._tau = 1.0 - (1 - config.tau)
        # Stateless templates for the vmap path (their own parameters are never used).
        self._actor_template = copy.deepcopy(members[0][0]).to("meta")
        self._q_template = copy.deepcopy(members[0][2]).to("meta")
        del members

        # The single learner's torch.optim.Adam(fused=True), member by member (see MemberAdam).
        K = self.num_members
        self.actor_optimizer = MemberAdam(list(self.actor_params.values(True, True)), K, config.actor_lr, kernel="fused")
        self.critic_optimizer = MemberAdam(list(self.qvalue_params.values(True, True)), K, config.critic_lr,
                                           kernel="fused")
        self.alpha_optimizer = (
            MemberAdam([self.log_alpha], K, config.alpha_lr, kernel="fused") if config.learn_alpha else None
        )
        self.member_updates = np.zeros(K, dtype=np.int64)
        self._all_members = torch.ones(K, dtype=torch.bool, device=self.device)
        self._bind_fast_views()

    # ------------------------------------------------------------------ parameter views
    def _bind_fast_views(self) -> None:
        """Per-layer ``(weight, bias)`` of the actor ``(K, out, in)`` and of the critics
        ``(K, 2, out, in)``, so the ``bmm`` path indexes no TensorDict in its inner loop."""
        self._actor_layers = [
            (self.actor_params.get(("trunk", n, "weight")), self.actor_params.get(("trunk", n, "bias")))
            for n in _linear_names(self._actor_template.trunk)
        ]
        q_names = _linear_names(self._q_template)
        self._q_online = [
            (self.qvalue_params.get(("module", n, "weight")), self.qvalue_params.get(("module", n, "bias")))
            for n in q_names
        ]
        self._q_target = [
            (
                self.target_qvalue_params.get(("module", n, "weight")),
                self.target_qvalue_params.get(("module", n, "bias")),
            )
            for n in q_names
        ]

    # ------------------------------------------------------------------ networks
    def _actor(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(K, N, obs_dim) -> (loc, scale)``, each ``(K, N, act_dim)``."""
        if self.impl == "vmap":
            return torch.vmap(self._actor_member)(self.actor_params, obs)
        return self._squash(self._actor_trunk(obs))

    def _actor_trunk(self, obs: torch.Tensor) -> torch.Tensor:
        """The ``bmm`` path's actor trunk: ``(K, N, obs_dim) -> (K, N, 2 act_dim)``."""
        h = obs
        last = len(self._actor_layers) - 1
        for i, (weight, bias) in enumerate(self._actor_layers):
            h = _MemberLinear.apply(h, weight, bias)
            if i < last:
                h = h.relu_()  # in place: see _q
        return h

    def _squash(self, trunk_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor head of :class:`TanhGaussianActorNet` on trunk outputs ``(K, ..., 2 act_dim)``,
        member by member (:func:`_each_member`)."""
        return _each_member(self._squash_one, trunk_out)

    def _squash_one(self, trunk_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor head on one member's (or a single learner's) trunk outputs."""
        loc, raw_log_std = trunk_out.chunk(2, dim=-1)
        t = self._actor_template
        log_std = t.log_std_min + t.log_std_half_range * (torch.tanh(raw_log_std) + 1.0)
        return loc, log_std.exp()

    def _actor_member(self, params: TensorDictBase, obs: torch.Tensor):
        with params.to_module(self._actor_template):
            return self._actor_template(obs)

    def _q_member(self, params: TensorDictBase, x: torch.Tensor) -> torch.Tensor:
        with params.to_module(self._q_template):
            return self._q_template(x)

    def _q(self, obs: torch.Tensor, action: torch.Tensor, *, target: bool, detach_params: bool = False):
        """Both online (or ``target``) Q-networks of every member:
        ``(K, N, obs_dim), (K, N, act_dim) -> (K, 2, N)``."""
        x = torch.cat([obs, action], dim=-1)
        if self.impl == "vmap":
            params = self.target_qvalue_params if target else self.qvalue_params
            if detach_params:
                params = params.detach()
            q_pair = torch.vmap(self._q_member, (0, None))
            return torch.vmap(q_pair, (0, 0))(params["module"], x).squeeze(-1)
        members, n = x.shape[0], x.shape[1]
        layers = self._q_target if target else self._q_online
        weight, bias = layers[0]
        if detach_params:
            weight, bias = weight.detach(), bias.detach()
        h = _MemberQInputLayer.apply(x, weight, bias)  # (2K, N, H): members x Q-nets
        for weight, bias in layers[1:]:
            if detach_params:
                weight, bias = weight.detach(), bias.detach()
            out_features = weight.shape[2]
            # relu in place (exact, so the same numbers): the hidden activations are (2K, N, H),
            # 2.6 MB at K=5, 2x256, beyond L2, and a fresh output tensor per layer cost a new
            # allocation and a pass of write traffic over it (nothing else holds the pre-activation:
            # the layers save their inputs, relu_ its output)
            h = _MemberLinear.apply(
                h.relu_(),
                weight.reshape(members * 2, out_features, -1),
                bias.reshape(members * 2, out_features),
            )
        return h.view(members, 2, n)

    def _noise(self, like: torch.Tensor, members: Sequence[int] | None = None) -> torch.Tensor:
        """Standard-normal noise shaped like ``like`` ``(K, ...)``, member ``k``'s slice drawn from
        ``generators[k]`` alone (a draw never depends on which other members exist); members not in
        ``members`` (default: all) draw nothing and get zeros. A loop of K small ``randn`` calls:
        1.2% of a 2x256 update at K=1, <= 0.5% at K >= 5 (``benchmarks/bench_population.py``)."""
        chosen = set(range(self.num_members) if members is None else members)
        shape = like.shape[1:]
        return torch.stack(
            [
                torch.randn(shape, generator=g, device=like.device, dtype=like.dtype)
                if k in chosen
                else torch.zeros(shape, device=like.device, dtype=like.dtype)
                for k, g in enumerate(self.generators)
            ]
        )

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool, members: Sequence[int] | None = None) -> torch.Tensor:
        """Actions in ``[-1, 1]`` for ``(K, N, obs_dim)``: ``tanh(loc)`` if ``deterministic``,
        else ``tanh(loc + scale * eps)`` with member ``k``'s ``eps`` from ``generators[k]``. Only
        ``members`` (default: all) draw noise; the others' rows are not meaningful.

        Acting evaluates each member's layers with ``F.linear`` (K small calls), not the batched
        ``baddbmm``: for the few rows an env step acts on, MKL's batched gemm rounds differently from
        the single learner's ``addmm`` (1e-8 apart on one row, measured), which would fork a member's
        trajectory from its single run's."""
        if self.impl == "vmap":
            loc, scale = self._actor(obs)
        else:
            loc, scale = self._squash(torch.stack([self._member_trunk(k, obs[k]) for k in range(self.num_members)]))
        if deterministic:
            return _each_member(torch.tanh, loc)
        return _each_member(torch.tanh, loc + scale * self._noise(loc, members))

    def _policy(
        self, obs: torch.Tensor, noise: torch.Tensor | None, members: Sequence[int] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised policy sample of every member on ``(K, B, obs_dim)``: ``(log_prob (K, B),
        action (K, B, act_dim), noise)``, the noise drawn for ``members`` when not given.

        The ``bmm`` path runs the actor trunk batched and everything after it -- the head's squash,
        ``u = loc + scale * noise``, the log-density and ``tanh(u)`` -- per member
        (:func:`_each_member`) as one function with the single learner's operations in its order:
        split at another place, the gradients of ``u`` and ``scale`` (which reach them along several
        paths) would be summed in another order than the single learner's autograd sums them."""
        if self.impl == "vmap":
            loc, scale = self._actor(obs)
            if noise is None:
                noise = self._noise(loc, members)
            log_prob, action = _each_member(_sample_head, loc, scale, noise)
            return log_prob, action, noise
        trunk_out = self._actor_trunk(obs)
        if noise is None:
            noise = self._noise(trunk_out[..., : self.act_dim], members)
        log_prob, action = _each_member(self._squash_sample_head, trunk_out, noise)
        return log_prob, action, noise

    def _squash_sample_head(self, trunk_out: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _sample_head(*self._squash_one(trunk_out), noise)

    def _member_trunk(self, member: int, obs: torch.Tensor) -> torch.Tensor:
        """Member ``member``'s actor trunk on ``(N, obs_dim)`` with ``F.linear`` (``addmm``, as its
        single learner's ``nn.Linear`` layers)."""
        h = obs
        for i, (weight, bias) in enumerate(self._actor_layers):
            h = torch.nn.functional.linear(h, weight[member], bias[member])
            if i < len(self._actor_layers) - 1:
                h = torch.relu(h)
        return h

    @torch.no_grad()
    def member_act(self, member: int, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Member ``member``'s actions for its own batch ``(N, obs_dim)`` (batches of members may
        differ in size, as MBPO's rollouts whose live states differ per member): its single
        learner's ``act``, noise from ``generators[member]``."""
        loc, scale = self._squash_one(self._member_trunk(member, obs))
        if deterministic:
            return torch.tanh(loc)
        g = self.generators[member]
        return torch.tanh(loc + scale * torch.randn(loc.shape, generator=g, device=loc.device, dtype=loc.dtype))

    def member_value_function(self, member: int) -> "MemberValueFunction":
        """Member ``member``'s critic and policy mean as a single-learner
        :class:`~vagram_bench.interfaces.ValueFunction` (a view: it follows the member's parameters)."""
        return MemberValueFunction(self, member)

    def policy_mean(self, obs: torch.Tensor) -> torch.Tensor:
        """``(K, *batch, obs_dim) -> (K, *batch, act_dim)``: ``tanh(loc(obs))`` (differentiable)."""
        flat = obs.reshape(obs.shape[0], -1, obs.shape[-1])
        return _each_member(torch.tanh, self._actor(flat)[0]).reshape(*obs.shape[:-1], self.act_dim)

    def q_heads(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``(K, 4, *batch)``: online ``Q1, Q2`` then target ``Q̄1, Q̄2`` of each member."""
        members, batch_shape = obs.shape[0], obs.shape[1:-1]
        obs3 = obs.reshape(members, -1, obs.shape[-1])
        act3 = action.reshape(members, -1, action.shape[-1])
        online = self._q(obs3, act3, target=False)
        target = self._q(obs3, act3, target=True)
        return torch.cat([online, target], dim=1).reshape(members, 4, *batch_shape)

    @property
    def alpha(self) -> torch.Tensor:
        """``(K,)`` temperatures (a tensor on the device; reading it is the caller's sync), each
        member's ``exp`` computed as its single learner's (:func:`_each_member`)."""
        return _each_member(torch.exp, self.log_alpha.detach())

    # ------------------------------------------------------------------ learning
    def compute_losses(
        self,
        batch: TensorDictBase,
        *,
        next_noise: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        with_actor: bool = True,
        members: Sequence[int] | None = None,
        actor_members: Sequence[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-member SAC losses ``(K,)`` of a batch ``(K, B)``: member ``k``'s entries equal
        ``SACLearner.compute_losses`` on ``batch[k]`` with ``next_noise[k]`` / ``noise[k]`` (drawn
        from each member's generator when omitted, in the single learner's order: the next-state
        noise for ``members``, the policy noise for ``actor_members``; default: all)."""
        K = self.num_members
        obs = batch.get("observation")
        action = batch.get("action")
        next_obs = batch.get(("next", "observation"))
        reward = batch.get(("next", "reward")).reshape(K, -1)
        not_terminated = (~batch.get(("next", "terminated"))).reshape(K, -1).to(reward.dtype)
        alpha = self.alpha.unsqueeze(-1)

        with torch.no_grad():
            log_prob_n, action_n, _ = self._policy(next_obs, next_noise, members)
            q_next = self._q(next_obs, action_n, target=True)
            next_value = (q_next - (alpha * log_prob_n).unsqueeze(1)).amin(1)
            target = reward + self.config.gamma * not_terminated * next_value
        q_pred = self._q(obs, action, target=False)
        losses = {
            "loss_qvalue": (q_pred - target.unsqueeze(1)).square().sum(1).mean(-1),
            "q_mean": q_pred.detach().flatten(1).mean(-1),
        }
        if not with_actor:
            return losses

        log_prob, action_pi, noise = self._policy(obs, noise, members if actor_members is None else actor_members)
        q_pi = self._q(obs, action_pi, target=False, detach_params=True)
        losses["loss_actor"] = (alpha * log_prob - q_pi.amin(1)).mean(-1)
        losses["loss_alpha"] = (
            (-self.log_alpha).unsqueeze(-1) * (log_prob.detach() + self.target_entropy.unsqueeze(-1))
        ).mean(-1)
        losses["log_prob"] = log_prob.detach()
        return losses

    def update(
        self, batch: TensorDictBase, members: Sequence[int] | None = None
    ) -> dict[str, torch.Tensor]:
        """One gradient step of each of ``members`` (default: all) on its own slice of ``batch``,
        then the target update.

        Args:
            batch: a TensorDict of batch ``(K, B)`` with the keys of :meth:`SACLearner.update`
                (``observation``, ``action``, ``("next", "observation")``, ``("next", "reward")``
                ``(K, B, 1)``, ``("next", "terminated")`` bool ``(K, B, 1)``). The rows of members
                left out are computed but change nothing (any finite values do).
            members: the members that take this step, ascending. The others' parameters, optimiser
                moments, step counts, update counts and generators stay untouched, as for a single
                learner that was not updated (a member still collecting random steps, a member that
                finished or failed).

        Returns:
            ``(K,)`` device tensors ``loss_qvalue, loss_actor, loss_alpha, alpha, entropy, q_mean``
            (the actor entries only when some member updates its actor on this step). Which members
            they are meaningful for: :attr:`last_members`, :attr:`last_actor_members`. Nothing is
            read back to the host; non-finite losses are recorded in :attr:`first_nonfinite_update`.
        """
        cfg = self.config
        K = self.num_members
        members = list(range(K)) if members is None else [int(k) for k in members]
        steps = self.member_updates + 1
        actor_members = [k for k in members if steps[k] % cfg.actor_update_interval == 0]
        target_members = [k for k in members if steps[k] % cfg.target_update_interval == 0]
        with_actor = bool(actor_members)
        losses = self.compute_losses(batch, with_actor=with_actor, members=members, actor_members=actor_members)
        per_member = losses["loss_qvalue"]
        if with_actor:
            per_member = per_member + losses["loss_actor"] + losses["loss_alpha"]
        with torch.no_grad():
            if len(members) == K and len(actor_members) in (0, K):
                checked, stepped = per_member, self._all_members
            else:  # a member's actor losses count only when it updates its actor
                actor_mask = self._mask(actor_members)
                checked = torch.where(actor_mask, per_member, losses["loss_qvalue"]) if with_actor else per_member
                stepped = self._mask(members)
            newly_bad = ~torch.isfinite(checked) & (self.first_nonfinite_update == 0) & stepped
            step_t = torch.as_tensor(steps, device=self.device)
            self.first_nonfinite_update.copy_(torch.where(newly_bad, step_t, self.first_nonfinite_update))
            # which loss (an index into NONFINITE_LOSSES): the critic's, else the actor's, else alpha's
            which = torch.where(torch.isfinite(losses["loss_qvalue"]), 1, 0)
            if with_actor:
                which = torch.where((which == 1) & torch.isfinite(losses["loss_actor"]), 2, which)
            self.first_nonfinite_loss.copy_(torch.where(newly_bad, which, self.first_nonfinite_loss))

        self.critic_optimizer.zero_grad()
        if with_actor:
            self.actor_optimizer.zero_grad()
            if self.alpha_optimizer is not None:
                self.alpha_optimizer.zero_grad()
        # Each member's loss depends on its own parameters only, so the gradient of the sum with
        # respect to member k's slices is member k's gradient.
        per_member.sum().backward()
        self.critic_optimizer.step(members)
        if with_actor:
            self.actor_optimizer.step(actor_members)
            if self.alpha_optimizer is not None:
                self.alpha_optimizer.step(actor_members)
        if target_members:
            self._soft_update(target_members)
        self.member_updates[members] += 1
        self.last_members, self.last_actor_members = members, actor_members

        metrics = {name: losses[name].detach() for name in ("loss_qvalue", "q_mean")}
        if with_actor:
            metrics["loss_actor"] = losses["loss_actor"].detach()
            metrics["loss_alpha"] = losses["loss_alpha"].detach()
            metrics["entropy"] = -losses["log_prob"].mean(-1)
        metrics["alpha"] = self.alpha
        return metrics

    def _mask(self, members: Sequence[int]) -> torch.Tensor:
        mask = torch.zeros(self.num_members, dtype=torch.bool)
        mask[list(members)] = True
        return mask.to(self.device)

    def _soft_update(self, members: Sequence[int]) -> None:
        """Polyak-average the target critics of ``members``: one ``_foreach_lerp_`` over each member's
        slices as tensors of their own, with the single learner's weight. Per member even when every
        member takes part: lerp's vectorised code (an FMA) and its scalar tail round differently, and
        over the stacked tensors the tail would fall on other elements for every population size and
        vector width (:func:`_each_member`)."""
        with torch.no_grad():
            targets = [t[k] for pair in self._q_target for t in pair for k in members]
            onlines = [p.detach()[k] for pair in self._q_online for p in pair for k in members]
            torch._foreach_lerp_(targets, onlines, self._tau)

    # ------------------------------------------------------------------ checkpoints
    def member_state_dict(self, member: int) -> dict[str, Any]:
        """Everything of member ``member`` needed to continue it bit-identically (clones): its
        networks, temperature, Adam moments and step counts, update count, non-finite record and
        generator state. Restored by :meth:`load_member_state_dict` into any population (or slot)."""
        def params(td: TensorDictBase) -> dict[str, torch.Tensor]:
            return {".".join(key): value.detach()[member].clone() for key, value in td.items(True, True)}

        return {
            "actor": params(self.actor_params),
            "qvalue": params(self.qvalue_params),
            "target_qvalue": params(self.target_qvalue_params),
            "log_alpha": self.log_alpha.detach()[member].clone(),
            "actor_optimizer": self.actor_optimizer.member_state(member),
            "critic_optimizer": self.critic_optimizer.member_state(member),
            "alpha_optimizer": (
                self.alpha_optimizer.member_state(member) if self.alpha_optimizer is not None else None
            ),
            "num_updates": int(self.member_updates[member]),
            "first_nonfinite_update": int(self.first_nonfinite_update[member]),
            "first_nonfinite_loss": int(self.first_nonfinite_loss[member]),
            "generator": self.generators[member].get_state(),
        }

    def member_actor_state(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s actor parameters (clones): all that :meth:`act` with
        ``deterministic=True`` reads (``tanh(loc)``; the head's log-std bounds are the config's)."""
        return {".".join(key): value.detach()[member].clone() for key, value in self.actor_params.items(True, True)}

    @torch.no_grad()
    def load_member_actor_state(self, member: int, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`member_actor_state` into member ``member`` (in place).

        Raises:
            ValueError/RuntimeError: parameters of another architecture.
        """
        keys = {".".join(key): value for key, value in self.actor_params.items(True, True)}
        if set(state) != set(keys):
            raise ValueError(f"actor parameters {sorted(state)} do not fit {sorted(keys)}")
        for key, value in keys.items():
            value.detach()[member].copy_(state[key])

    @torch.no_grad()
    def load_member_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        """Restore :meth:`member_state_dict` into member ``member`` (in place).

        Raises:
            ValueError/KeyError/RuntimeError: a state of another architecture (a key or a shape
            that does not fit).
        """
        for name, td in (("actor", self.actor_params), ("qvalue", self.qvalue_params),
                         ("target_qvalue", self.target_qvalue_params)):
            saved = state[name]
            keys = {".".join(key): value for key, value in td.items(True, True)}
            if set(saved) != set(keys):
                raise ValueError(f"{name} parameters {sorted(saved)} do not fit {sorted(keys)}")
            for key, value in keys.items():
                value.detach()[member].copy_(saved[key])
        self.log_alpha.detach()[member].copy_(state["log_alpha"])
        self.actor_optimizer.load_member_state(member, state["actor_optimizer"])
        self.critic_optimizer.load_member_state(member, state["critic_optimizer"])
        if self.alpha_optimizer is not None:
            self.alpha_optimizer.load_member_state(member, state["alpha_optimizer"])
        self.member_updates[member] = int(state["num_updates"])
        self.first_nonfinite_update[member] = int(state["first_nonfinite_update"])
        self.first_nonfinite_loss[member] = int(state["first_nonfinite_loss"])
        self.generators[member].set_state(state["generator"])


class MemberValueFunction:
    """One member of a :class:`SACPopulationLearner` behind the single learner's
    :class:`~vagram_bench.interfaces.ValueFunction` API (``q_heads``, ``policy_mean``), computed with
    the single learner's kernels on the member's parameter slices (``SACLearner._q_ensemble``: one
    ``addmm`` for the first layer of both Q-nets, ``baddbmm`` after it; ``F.linear`` for the actor),
    so its values and gradients are those of the member's single learner, bitwise."""

    def __init__(self, population: SACPopulationLearner, member: int) -> None:
        self.population, self.member = population, int(member)

    @property
    def critic_version(self) -> int:
        return int(self.population.member_updates[self.member])

    def policy_mean(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.population._squash_one(self.population._member_trunk(self.member, obs))[0])

    def q_heads(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        k, pop = self.member, self.population
        batch_shape = obs.shape[:-1]
        obs2, act2 = obs.reshape(-1, obs.shape[-1]), action.reshape(-1, action.shape[-1])
        online = q_ensemble([(w[k], b[k]) for w, b in pop._q_online], obs2, act2)
        target = q_ensemble([(w[k], b[k]) for w, b in pop._q_target], obs2, act2)
        return torch.cat([online, target], dim=0).reshape(4, *batch_shape)
