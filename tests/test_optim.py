"""MemberAdam (vagram_bench/optim.py), the one per-member optimiser of SAC's population learner and the
population model trainer: member ``k`` is ``torch.optim.Adam`` (or ``AdamW``) on that member alone, bitwise,
with either kernel; a member left out of a step does not change; the checkpoints of the two classes it
replaced still load."""

from __future__ import annotations

import pytest
import torch

from vagram_bench.optim import MemberAdam

K = 3
# Sizes not a multiple of the SIMD width included: torch's fused CPU kernel updates a tensor's last
# partial vector in double precision, so only per-member tensors reproduce it bitwise.
SHAPES = [(37, 5), (6,), (2, 1), ()]
DECAYS = [(0.0, False), (0.5, False), (0.5, True)]  # (weight_decay, decoupled_weight_decay)


def _torch_optimizer(param, kernel, weight_decay, decoupled):
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    if kernel == "fused":
        return cls([param], lr=1e-2, weight_decay=weight_decay, fused=True)
    return cls([param], lr=1e-2, weight_decay=weight_decay, foreach=False)


def _run(shape, kernel, weight_decay=0.0, decoupled=False, steps=6):
    """MemberAdam over ``(K, *shape)`` next to one torch optimiser per member, member 1 left out of steps
    2 and 3: the stacked parameter, the optimiser, and the members' own parameters and optimisers."""
    g = torch.Generator().manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(K, *shape, generator=g))
    members = [torch.nn.Parameter(stacked.detach()[k].clone()) for k in range(K)]
    opt = MemberAdam([stacked], K, lr=1e-2, weight_decay=weight_decay, decoupled_weight_decay=decoupled,
                     kernel=kernel)
    opts = [_torch_optimizer(p, kernel, weight_decay, decoupled) for p in members]
    for step in range(steps):
        active = [0, 2] if step in (2, 3) else [0, 1, 2]
        grad = torch.randn(K, *shape, generator=g)
        stacked.grad = grad.clone()
        opt.step(active)
        for k in active:
            members[k].grad = grad[k].clone()
            opts[k].step()
    return stacked, opt, members, opts


@pytest.mark.parametrize("weight_decay,decoupled", DECAYS, ids=["plain", "l2", "adamw"])
@pytest.mark.parametrize("kernel", ["fused", "single_tensor"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_each_member_is_torch_adam_alone_and_a_left_out_member_keeps_its_state(shape, kernel, weight_decay, decoupled):
    stacked, opt, members, opts = _run(shape, kernel, weight_decay, decoupled)
    for k, p in enumerate(members):
        state, mine = opts[k].state[p], opt.member_state(k)
        assert torch.equal(stacked.detach()[k], p.detach())
        assert torch.equal(mine["exp_avg"][0], state["exp_avg"])
        assert torch.equal(mine["exp_avg_sq"][0], state["exp_avg_sq"])
        assert mine["step"][0].item() == state["step"].item() == (4 if k == 1 else 6)
        assert mine["step"][0].device == state["step"].device and mine["step"][0].dtype == state["step"].dtype


def test_the_kernels_round_differently_and_a_stacked_fused_adam_is_not_per_member():
    # why the kernel is a setting and why members are separate tensors: both differences are real on
    # these inputs, so the bitwise test above would catch a swapped kernel or a stacked step
    fused, _, _, _ = _run((37, 5), "fused", steps=20)
    single, _, _, _ = _run((37, 5), "single_tensor", steps=20)
    assert not torch.equal(fused, single)
    assert torch.allclose(fused, single, rtol=1e-5, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(K, 6, generator=g))
    members = [torch.nn.Parameter(stacked.detach()[k].clone()) for k in range(K)]
    whole = torch.optim.Adam([stacked], lr=1e-2, fused=True)
    opts = [torch.optim.Adam([p], lr=1e-2, fused=True) for p in members]
    for _ in range(20):
        grad = torch.randn(K, 6, generator=g)
        stacked.grad = grad.clone()
        whole.step()
        for k, (p, o) in enumerate(zip(members, opts)):
            p.grad = grad[k].clone()
            o.step()
    same = all(torch.equal(whole.state[stacked]["exp_avg_sq"][k], o.state[p]["exp_avg_sq"])
               for k, (p, o) in enumerate(zip(members, opts)))
    # the stacked tensor's SIMD tail falls elsewhere only with vectorised kernels; ATen's scalar
    # ("DEFAULT") kernels have no tail, so there the two agree (and per-member steps stay exact either way)
    assert same == (torch.backends.cpu.get_cpu_capability() == "DEFAULT")


def test_parameters_without_a_gradient_are_skipped_as_torch_skips_them():
    a, b = torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(2, 4))
    opt = MemberAdam([a, b], 2, lr=0.1, kernel="fused")
    a.grad = torch.ones(2, 3)
    opt.step()
    assert [s.item() for s in opt.member_state(0)["step"]] == [1.0, 0.0]
    assert torch.equal(b.detach(), torch.ones(2, 4)) and not torch.equal(a.detach(), torch.ones(2, 3))


@pytest.mark.parametrize("kernel", ["fused", "single_tensor"])
def test_the_two_replaced_classes_checkpoints_resume(kernel):
    """``member_state`` of the classes this one replaced: SAC's ``MemberAdam`` wrote ``"step"`` as one
    0-d float32 tensor per member, the model trainer's ``MemberTorchAdam`` a list with one per parameter
    (as this class). Either, loaded into a fresh optimiser, continues exactly as the one that wrote it."""
    shapes = [(4, 5), (5,)]
    g = torch.Generator().manual_seed(1)
    params = [torch.nn.Parameter(torch.randn(K, *s, generator=g)) for s in shapes]

    def step(opt, ps):
        for p, grad in zip(ps, [torch.randn(K, *s, generator=g) for s in shapes]):
            p.grad = grad
        opt.step()

    opt = MemberAdam(params, K, lr=1e-2, weight_decay=0.1, kernel=kernel)
    for _ in range(3):
        step(opt, params)
    new = opt.member_state(1)
    old_sac = {"exp_avg": new["exp_avg"], "exp_avg_sq": new["exp_avg_sq"], "step": torch.tensor(3.0)}
    old_models = {"exp_avg": new["exp_avg"], "exp_avg_sq": new["exp_avg_sq"],
                  "step": [torch.tensor(3.0), torch.tensor(3.0)]}
    assert [s.item() for s in new["step"]] == [3.0, 3.0]
    copies = []
    for state in (old_sac, old_models, new):
        ps = [torch.nn.Parameter(p.detach().clone()) for p in params]
        fresh = MemberAdam(ps, K, lr=1e-2, weight_decay=0.1, kernel=kernel)
        for k in range(K):
            fresh.load_member_state(k, state)  # every member from member 1's state
        copies.append((fresh, ps))
    for member in range(K):
        opt.load_member_state(member, new)
    gen_state = g.get_state()
    step(opt, params)
    for fresh, ps in copies:
        g.set_state(gen_state)
        step(fresh, ps)
        assert all(torch.equal(p, q) for p, q in zip(ps, params))
        assert all(torch.equal(a, b) for a, b in zip(fresh.exp_avg_sq, opt.exp_avg_sq))
        assert [s.item() for s in fresh.member_state(0)["step"]] == [4.0, 4.0]


def test_bad_settings_and_states_are_refused():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="kernel='foreach': expected one of fused, single_tensor"):
        MemberAdam([p], 2, lr=0.1, kernel="foreach")
    with pytest.raises(ValueError, match="no member dimension 3"):
        MemberAdam([p], 3, lr=0.1, kernel="fused")
    opt = MemberAdam([p], 2, lr=0.1, kernel="fused")
    with pytest.raises(ValueError, match="2 tensors, expected 1"):
        opt.load_member_state(0, {"exp_avg": [p[0]] * 2, "exp_avg_sq": [p[0]] * 2, "step": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="2 step counts, expected 1"):
        opt.load_member_state(0, {"exp_avg": [p[0]], "exp_avg_sq": [p[0]], "step": [torch.tensor(1.0)] * 2})
