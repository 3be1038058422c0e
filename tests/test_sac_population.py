"""SACPopulationLearner against the single SACLearner (independent reference: each member must be
the single learner built from its generator), member independence, non-finite
isolation and acting."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reference.sac_learner import SACLearner
from vagram_bench.agents.sac import SACConfig
from vagram_bench.agents.sac.population import SACPopulationLearner
from vagram_bench.interfaces import AgentConfigError

# test_sac_learner's 9-wide observations and 3-wide actions (6-wide actor head) are thin enough that
# a plain baddbmm weight gradient rounds differently from nn.Linear's (see _MemberLinear), so the
# bitwise tests below can fail.
from test_sac_learner import ACT, OBS, _batch  # noqa: E402
from test_sac_learner import _learner as _single  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test here on one torch thread, the determinism contract's condition (docs/runner.md). With
    more, MKL splits one GEMM's output over the threads but runs a batched GEMM member by member on one
    thread each: a 6-row actor-head weight gradient of a population of one (or a single learner) is then
    computed as rows 0-3 and 4-5, whose 2-row kernel rounds differently, and a member of K >= 2 differs
    from it for the thread count, not the code (seen with 2 threads on an AMD EPYC)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(**overrides) -> SACConfig:
    return dataclasses.replace(SACConfig(hidden_size=32), **overrides)


def _population(seeds, impl: str = "bmm", **overrides) -> SACPopulationLearner:
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    return SACPopulationLearner(OBS, ACT, _config(**overrides), generators=gens, impl=impl)


def _single_state(learner: SACLearner, grads: bool = False) -> dict[str, torch.Tensor]:
    """Every learnable tensor (or its gradient) of a single learner, named as in the population."""
    pick = (lambda p: p.grad) if grads else (lambda p: p.detach())
    out = {f"actor.{n}": pick(p) for n, p in learner.actor_net.named_parameters()}
    for key, p in learner.loss_module.qvalue_network_params.items(True, True):
        out["q." + ".".join(key)] = pick(p)
    if not grads:
        for key, p in learner.loss_module.target_qvalue_network_params.items(True, True):
            out["target." + ".".join(key)] = p.detach()
    out["log_alpha"] = pick(learner.loss_module.log_alpha)
    return out


def _member_state(pop: SACPopulationLearner, k: int, grads: bool = False) -> dict[str, torch.Tensor]:
    """Member ``k``'s slice of every learnable tensor (or gradient) of the population."""
    pick = (lambda p: None if p.grad is None else p.grad[k]) if grads else (lambda p: p.detach()[k])
    out = {"actor." + ".".join(key): pick(p) for key, p in pop.actor_params.items(True, True)}
    for key, p in pop.qvalue_params.items(True, True):
        out["q." + ".".join(key)] = pick(p)
    if not grads:
        for key, p in pop.target_qvalue_params.items(True, True):
            out["target." + ".".join(key)] = p.detach()[k]
    out["log_alpha"] = pick(pop.log_alpha)
    return out


def _assert_states(actual: dict, expected: dict, exact: bool = True) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        if expected[name] is None or actual[name] is None:
            assert expected[name] is None and actual[name] is None, name
        elif exact:
            assert torch.equal(actual[name], expected[name]), name
        else:
            torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)


def test_each_member_is_initialised_as_its_single_learner():
    rng_before = torch.get_rng_state()
    pop = _population([3, 7, 11])
    assert torch.equal(torch.get_rng_state(), rng_before)
    for k, seed in enumerate([3, 7, 11]):
        _assert_states(_member_state(pop, k), _single_state(_single(seed)))
        assert pop.target_entropy[k].item() == -ACT
    # The generators are left where the single learners' are after construction.
    single = _single(3)
    assert torch.equal(pop.generators[0].get_state(), single.generator.get_state())


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"actor_update_interval": 2, "target_update_interval": 2, "gamma": 0.9},
        {"num_layers": 3, "target_entropy": -1.3, "init_alpha": 0.2},
        {"learn_alpha": False, "init_alpha": 0.1},
    ],
)
def test_population_of_one_equals_the_single_learner_bitwise(overrides):
    """Same init, same batches, same generator => same losses, gradients and parameters, bitwise
    (MKL, CPU, fp32), over several updates (actor / target intervals included)."""
    single = _single(0, **overrides)
    pop = _population([0], **overrides)
    for step in range(4):
        batch = _batch(seed=step, terminated_frac=0.3 * (step % 2))
        expected = single.update(batch)
        got = pop.update(batch.unsqueeze(0))
        assert sorted(got) == sorted(expected)
        for name, value in expected.items():
            assert got[name].shape == (1,)
            assert got[name].item() == value, (step, name)
        _assert_states(_member_state(pop, 0, grads=True), _single_state(single, grads=True))
        _assert_states(_member_state(pop, 0), _single_state(single))
    assert torch.equal(pop.generators[0].get_state(), single.generator.get_state())


def test_vmap_impl_equals_the_single_learner_to_tolerance():
    """The vmap path's Linear weight gradients take baddbmm's orientation (x^T @ grad), which rounds
    differently from nn.Linear's for thin layers: equal to 1e-6, not bitwise."""
    single, pop = _single(0), _population([0], impl="vmap")
    for step in range(3):
        batch = _batch(seed=step)
        expected = single.update(batch)
        got = pop.update(batch.unsqueeze(0))
        for name, value in expected.items():
            assert got[name].item() == pytest.approx(value, rel=1e-5, abs=1e-6), name
    _assert_states(_member_state(pop, 0), _single_state(single), exact=False)


def test_a_member_does_not_depend_on_the_other_members():
    """Member 0 of {0, 1} and of {0, 2} (other member with other batches) are bitwise equal."""
    pops = [_population([0, 1]), _population([0, 2])]
    for step in range(4):
        member0 = _batch(seed=step)
        metrics = [
            pop.update(torch.stack([member0, _batch(seed=100 * other + step)]))
            for pop, other in zip(pops, (1, 2))
        ]
        for name in metrics[0]:
            assert metrics[0][name][0].item() == metrics[1][name][0].item(), name
    _assert_states(_member_state(pops[0], 0), _member_state(pops[1], 0))
    assert not torch.equal(_member_state(pops[0], 1)["q.module.0.weight"],
                           _member_state(pops[1], 1)["q.module.0.weight"])


def test_a_member_does_not_depend_on_the_population_size():
    """Member 0 alone, of {0, 1} and of {0, 1, 2}: bitwise the same numbers (same batches)."""
    pops = [_population(list(range(n))) for n in (1, 2, 3)]
    for step in range(3):
        for pop in pops:
            pop.update(torch.stack([_batch(seed=10 * k + step) for k in range(pop.num_members)]))
    for pop in pops[1:]:
        _assert_states(_member_state(pop, 0), _member_state(pops[0], 0))
        _assert_states(_member_state(pop, 1), _member_state(pops[-1], 1))


@pytest.mark.parametrize("batch_size, num_members", [(16, 2), (13, 3), (7, 6)])
def test_a_member_equals_its_population_of_one_at_any_simd_width(batch_size, num_members):
    """Updates (losses, temperature, actor and critic steps) and acting of every member of a
    population of K equal those of its population of one, bitwise, at sizes where a member's
    elements straddle the blocks of vectorised loops: batch 16 with 3 action dims (48 elements: one
    32-float AVX-512 block and a scalar tail) differed on AVX-512 CPUs before the per-member
    operations, batch 13 on AVX2 ones too. The suite passes this under ATEN_CPU_CAPABILITY=default,
    avx2 and (on AVX-512 CPUs) unset: equal by construction, not by the CPU's vector width."""
    seeds = list(range(num_members))
    pop = _population(seeds, actor_update_interval=1)
    singles = [_population([s], actor_update_interval=1) for s in seeds]
    obs = torch.randn(num_members, 1, OBS, generator=torch.Generator().manual_seed(5))
    for step in range(3):
        batches = [_batch(B=batch_size, seed=100 * k + step) for k in range(num_members)]
        got = pop.update(torch.stack(batches))
        acted = pop.act(obs, deterministic=False)
        for k, single in enumerate(singles):
            expected = single.update(batches[k].unsqueeze(0))
            for name, value in expected.items():
                assert got[name][k].item() == value.item(), (step, k, name)
            assert torch.equal(acted[k], single.act(obs[k : k + 1], deterministic=False)[0]), (step, k)
    for k, single in enumerate(singles):
        _assert_states(_member_state(pop, k), _member_state(single, 0))


@pytest.mark.parametrize("impl", ["bmm", "vmap"])
def test_population_equals_separate_single_learners(impl):
    seeds = [4, 5, 6]
    singles = [_single(s) for s in seeds]
    pop = _population(seeds, impl=impl)
    exact = impl == "bmm"
    for step in range(3):
        batches = [_batch(seed=10 * k + step) for k in range(len(seeds))]
        expected = [s.update(b) for s, b in zip(singles, batches)]
        got = pop.update(torch.stack(batches))
        for k in range(len(seeds)):
            for name, value in expected[k].items():
                if exact:
                    assert got[name][k].item() == value, (k, name)
                else:
                    assert got[name][k].item() == pytest.approx(value, rel=1e-5, abs=1e-6), (k, name)
    for k, single in enumerate(singles):
        _assert_states(_member_state(pop, k), _single_state(single), exact=exact)


def test_a_non_finite_member_is_recorded_and_isolated():
    clean, poisoned = _population([0, 1]), _population([0, 1])
    for step in range(3):
        batches = [_batch(seed=step), _batch(seed=50 + step)]
        clean.update(torch.stack(batches))
        bad = batches[1].clone()
        if step == 1:
            bad["next", "reward"][0] = float("nan")
        metrics = poisoned.update(torch.stack([batches[0], bad]))
    assert poisoned.first_nonfinite_update.tolist() == [0, 2]
    assert clean.first_nonfinite_update.tolist() == [0, 0]
    assert torch.isnan(metrics["loss_qvalue"][1]) and torch.isfinite(metrics["loss_qvalue"][0])
    _assert_states(_member_state(poisoned, 0), _member_state(clean, 0))


def test_acting_matches_the_single_learners():
    seeds = [2, 9]
    pop, singles = _population(seeds), [_single(s) for s in seeds]
    obs = torch.randn(2, 5, OBS, generator=torch.Generator().manual_seed(3))
    act = torch.rand(2, 5, ACT, generator=torch.Generator().manual_seed(4)) * 2 - 1
    for deterministic in (True, False):
        got = pop.act(obs, deterministic=deterministic)
        for k, single in enumerate(singles):
            assert torch.equal(got[k], single.act(obs[k], deterministic=deterministic))
    assert got.abs().max() <= 1.0
    heads = pop.q_heads(obs, act)
    means = pop.policy_mean(obs)
    for k, single in enumerate(singles):
        torch.testing.assert_close(heads[k], single.q_heads(obs[k], act[k]), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(means[k], single.policy_mean(obs[k]), atol=1e-6, rtol=1e-5)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="impl must be 'bmm' or 'vmap', got 'jit'"):
        _population([0], impl="jit")
    with pytest.raises(ValueError, match="at least one generator"):
        SACPopulationLearner(OBS, ACT, _config(), generators=[])
