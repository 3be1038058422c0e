"""MBPO populations through the runner: ``agent=mbpo_* seed=0,1`` trains the seeds as one
:class:`MBPOPopulation` and writes each seed's single-run records. Member ``k`` equals the population of
one of seed ``k`` (what ``seed=k`` alone trains) and the single-agent view ``MBPOAgent`` of seed ``k``,
does not depend on the other seeds, resumes exactly and fails alone. Also the population buffers, the
learner's member views and the batched model training against independent single-run counterparts
(TorchRL buffers, ``SACLearner``, ``ModelTrainer``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test_mbpo_run import TINY  # the tiny MBPO config the suite uses
from vagram_bench import run
from vagram_bench.records import read_csv

ENV = "HopperDistract-5-v0"


def _args(agent: str = "mbpo_vagram", steps: int = 300) -> list[str]:
    return [f"agent={agent}", f"env={ENV}", f"steps={steps}", "eval_every=100", "eval_episodes=2",
            "checkpoint_every=50", "log_every=50", "quiet=true", "threads=1", *TINY]


def _dir(out: Path, seed: int, agent: str = "mbpo_vagram") -> Path:
    return out / ENV / agent / f"seed{seed}"


def _records(d: Path) -> tuple[list, list]:
    evals = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in read_csv(d / "eval.csv")]
    return evals, read_csv(d / "train.csv")


def _single_agent(agent: str) -> type:
    """The single-agent view (``MBPOAgent``: act/observe/update of its population of one) run by
    ``SeparateAgents``, as a runner that knows only the single-agent API runs it."""
    from vagram_bench import registry
    from vagram_bench.interfaces import Agent

    cls = registry.load_agent(agent)
    return type(f"Single{cls.__name__}", (cls,), {"make_population": classmethod(Agent.make_population.__func__)})


@pytest.fixture(scope="module")
def population_01(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mbpo_pop01")
    assert run.main([*_args(), "seed=0,1", f"out={out}"]) == 0
    return out


def test_a_member_equals_its_single_seed_agent(population_01, tmp_path, monkeypatch):
    from vagram_bench import registry
    from vagram_bench.agents.mbpo.population import MBPOPopulation

    for seed in (0, 1):
        d = _dir(population_01, seed)
        assert {p.name for p in d.iterdir()} == {"config.json", "eval.csv", "train.csv", "summary.json", "policy.pt"}
        assert [int(r["env_step"]) for r in read_csv(d / "eval.csv")] == [100, 200, 300]
        model_rows = [r for r in read_csv(d / "train.csv") if r.get("model_val_score")]
        assert [int(r["env_step"]) for r in model_rows] == [150, 200, 250, 300]
        assert all(r["sac_loss_qvalue"] != "" and r["value_grad_norm_q50"] != "" for r in model_rows[1:])
    assert _records(_dir(population_01, 0)) != _records(_dir(population_01, 1))
    single = _single_agent("mbpo_vagram")
    monkeypatch.setattr(registry, "load_agent", lambda name: single)
    assert run.main([*_args(), "seed=1", f"out={tmp_path}"]) == 0
    assert _records(_dir(tmp_path, 1)) == _records(_dir(population_01, 1))
    assert not isinstance(single.make_population(single.default_config(ENV), *_spaces(), env_id=ENV, seeds=[0]),
                          MBPOPopulation)


def _spaces():
    import gymnasium as gym

    import vagram_bench  # noqa: F401

    env = gym.make(ENV)
    return env.observation_space, env.action_space


def test_a_member_does_not_depend_on_the_other_seeds(population_01, tmp_path):
    """Member 0 of {0, 1} and of {2, 0}: identical records; seed 1 alone (population of one) too."""
    assert run.main([*_args(), "--seed", "2", "0", f"out={tmp_path}"]) == 0
    assert _records(_dir(tmp_path, 0)) == _records(_dir(population_01, 0))
    assert run.main([*_args(), "seed=1", f"out={tmp_path}"]) == 0
    assert _records(_dir(tmp_path, 1)) == _records(_dir(population_01, 1))


@pytest.mark.parametrize("agent", ["mbpo_mle", "mbpo_itervaml"])  # mse: its training is checked per member below
def test_every_model_loss_member_equals_its_population_of_one(agent, tmp_path):
    assert run.main([*_args(agent, 200), "seed=0,1", f"out={tmp_path / 'pop'}"]) == 0
    assert run.main([*_args(agent, 200), "seed=1", f"out={tmp_path / 'single'}"]) == 0
    expected = _records(_dir(tmp_path / "single", 1, agent))
    assert _records(_dir(tmp_path / "pop", 1, agent)) == expected
    assert [int(r["env_step"]) for r in expected[1] if r.get("model_val_score")] == [150, 200]


def _crash_at(monkeypatch, step: int) -> None:
    from test_population_run import _crash_at as crash_at  # the kill of the sac population tests

    from vagram_bench.agents.mbpo.population import MBPOPopulation

    crash_at(monkeypatch, step, MBPOPopulation)


def test_a_killed_population_resumes_exactly(population_01, tmp_path, monkeypatch, capsys):
    _crash_at(monkeypatch, 280)
    # run.main turns the interrupt into exit code 130 and one line naming each seed's checkpoint
    assert run.main([*_args(), "seed=0,1", f"out={tmp_path}"]) == 130
    monkeypatch.undo()
    from vagram_bench.records import load_checkpoint

    steps = [int(load_checkpoint(_dir(tmp_path, s) / "checkpoint.pt")["env_step"]) for s in (0, 1)]
    assert all(150 < s < 280 for s in steps)  # after model trainings: model, buffers and SAC state restored
    assert steps[0] != steps[1]  # the laggard steps alone until it reaches the other (the runner's catch-up)
    capsys.readouterr()
    assert run.main([*_args(), "seed=0,1", f"out={tmp_path}"]) == 0
    err = capsys.readouterr().err
    for seed, step in zip((0, 1), steps):
        assert f"resuming {_dir(tmp_path, seed)} from env step {step} of 300" in err
        assert _records(_dir(tmp_path, seed)) == _records(_dir(population_01, seed))


def test_a_corrupt_member_checkpoint_fails_that_member_only(population_01, tmp_path, monkeypatch, capsys):
    _crash_at(monkeypatch, 280)
    # run.main turns the interrupt into exit code 130 and one line naming each seed's checkpoint
    assert run.main([*_args(), "seed=0,1", f"out={tmp_path}"]) == 130
    monkeypatch.undo()
    bad = _dir(tmp_path, 1) / "checkpoint.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint")
    assert run.main([*_args(), "seed=0,1", f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert f"seed 1: checkpoint {bad}" in err and "1 of 2 seeds stopped" in err
    assert bad.read_bytes() == b"\x80\x02 not a checkpoint"
    assert _records(_dir(tmp_path, 0)) == _records(_dir(population_01, 0))
    assert not (_dir(tmp_path, 1) / "summary.json").exists()


def _poison(monkeypatch, method: str, fn) -> None:
    from vagram_bench.agents.mbpo.population import MBPOPopulation

    original = getattr(MBPOPopulation, method)

    def poisoned(self, *args):
        out = original(self, *args)
        fn(self)
        return out

    monkeypatch.setattr(MBPOPopulation, method, poisoned)


def _nan_rewards_from_step_120(self):
    """Seed 1's real rewards turn NaN from its 120th transition on (its first model training, at
    env step 150, sees them)."""
    k = self.seeds.index(1) if 1 in self.seeds else None
    if k is not None and self.num_observed[k] >= 120:
        self.real_buffer.storage["next", "reward"][k, self.num_observed[k] - 1] = float("nan")


def _nan_model_rewards(self):
    """Seed 1's model-generated rewards turn NaN (its model trains fine; its SAC loss turns NaN)."""
    if 1 in self.seeds and self.model_buffer.storage is not None:
        self.model_buffer.storage["next", "reward"][self.seeds.index(1)] = float("nan")


@pytest.mark.parametrize("method, poison, message", [
    ("observe", _nan_rewards_from_step_120, "non-finite validation score of model loss 'vagram'"),
    ("_fill_model_buffers", _nan_model_rewards, "non-finite SAC loss loss_qvalue"),
])
def test_a_failing_member_stops_alone_and_records_its_error(population_01, tmp_path, monkeypatch, capsys,
                                                            method, poison, message):
    _poison(monkeypatch, method, poison)
    assert run.main([*_args(), "seed=0,1", f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 seeds stopped" in err and "seed 1: run stopped at env step" in err and message in err
    assert _records(_dir(tmp_path, 0)) == _records(_dir(population_01, 0))
    failed = _dir(tmp_path, 1)
    error = json.loads((failed / "error.json").read_text())
    assert message in error["error"] and 150 <= error["env_step"] < 300
    assert not (failed / "summary.json").exists()
    # its records end before the failure (the failure's window is dropped)
    assert all(int(r["env_step"]) < error["env_step"] for r in read_csv(failed / "train.csv"))
    assert [int(r["env_step"]) for r in read_csv(failed / "eval.csv")] == [
        s for s in (100, 200) if s < error["env_step"]]


# --------------------------------------------------------------------------------------------------
# parts


def test_population_buffer_extend_and_resize_equal_torchrl_buffers():
    """Ragged extends (each member its own count), capacity changes (re-create and re-extend, as the
    single agent's model buffer) and samples: member k's storage and draws equal a TorchRL buffer's."""
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

    from vagram_bench.agents.common import PopulationReplayBuffer

    K = 3
    gens = lambda: [torch.Generator().manual_seed(10 + k) for k in range(K)]  # noqa: E731
    pop = PopulationReplayBuffer(K, 0, 4, gens())
    singles: list = [None] * K
    single_gens = gens()
    rng = np.random.default_rng(0)
    for t, capacity in enumerate([5, 5, 9, 9, 4, 6]):
        for k in range(K):
            if singles[k] is None or len(singles[k].storage) == 0 or singles[k].storage.max_size != capacity:
                old = None if singles[k] is None else _oldest_first(singles[k])
                singles[k] = TensorDictReplayBuffer(storage=LazyTensorStorage(capacity), generator=single_gens[k])
                if old is not None:
                    singles[k].extend(old[-capacity:])
            pop.resize(k, capacity)
        counts = rng.integers(1, capacity + 1, size=K)
        data = torch.arange(100 * t, 100 * t + counts.sum(), dtype=torch.float32)
        pop.extend(TensorDict({"x": data}, batch_size=[len(data)]), np.repeat(np.arange(K), counts))
        for k, piece in enumerate(data.split(counts.tolist())):
            singles[k].extend(TensorDict({"x": piece}, batch_size=[len(piece)]))
        for k in range(K):
            n = len(singles[k])
            assert pop.size[k] == n and pop.cursor[k] == singles[k].writer._cursor
            assert torch.equal(pop.storage["x"][k, :n], singles[k].storage[:n]["x"])
            assert torch.equal(pop.gather(torch.stack([pop.draw(j, 7) if j == k else torch.zeros(7, dtype=torch.long)
                                                       for j in range(K)]))["x"][k], singles[k].sample(7)["x"])


def _oldest_first(buffer):
    n = len(buffer)
    data = buffer.storage[:n]
    if n == buffer.storage.max_size:
        cursor = buffer.writer._cursor
        data = torch.cat([data[cursor:], data[:cursor]], 0)
    return data


def test_member_views_of_the_population_learner_equal_the_single_learner():
    """``member_act`` and ``member_value_function`` (what MBPO's rollouts and value-aware model losses
    use) compute member k's single learner's numbers, bitwise, and draw from its generator only."""
    from vagram_bench.agents.mbpo import MBPOAgent, MBPOConfig
    from reference.sac_learner import SACLearner
    from vagram_bench.agents.sac.population import SACPopulationLearner
    from vagram_bench.models.losses import compute_value_targets, values_at

    torch.set_num_threads(1)
    cfg = MBPOAgent.sac_config(MBPOConfig(sac_hidden_size=64))
    pop = SACPopulationLearner(7, 2, cfg, generators=[torch.Generator().manual_seed(s) for s in (3, 4)])
    single = SACLearner(7, 2, cfg, generator=torch.Generator().manual_seed(4))
    obs = torch.randn(300, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pop.member_act(1, obs, deterministic=False), single.act(obs, deterministic=False))
    assert torch.equal(pop.generators[1].get_state(), single.generator.get_state())
    vf = pop.member_value_function(1)
    for gradients in (True, False):
        mine, theirs = compute_value_targets(vf, obs, gradients=gradients), compute_value_targets(single, obs, gradients=gradients)
        assert torch.equal(mine.values, theirs.values)
        assert gradients is False or torch.equal(mine.grads, theirs.grads)
    assert torch.equal(values_at(vf, obs[:5]), values_at(single, obs[:5]))


def _train_model_population(loss_name: str, members: list[int], noise: tuple[float, ...], max_epochs: int | None,
                            n: int = 240, **overrides):
    """``K = len(noise)`` members with different data (next-state noise ``noise[k]``) train their
    ensembles in one batched call (patience 2), and each member's own single ``ModelTrainer`` on its
    data: the population's ``(results, errors)``, its model and trainer, every member's weights before
    training, and a check that member ``k`` equals its single trainer bitwise (one thread): weights,
    Adam moments and step counts, scores, elites and records. ``overrides``: further config fields
    (the model-training switches)."""
    from vagram_bench.agents.mbpo import MBPOAgent, MBPOConfig
    from vagram_bench.agents.mbpo.population import make_dynamics_model, model_trainer_options
    from reference.sac_learner import SACLearner
    from vagram_bench.agents.sac.population import SACPopulationLearner
    from vagram_bench.models.losses import make_model_loss
    from vagram_bench.models.population import EnsemblePopulation, PopulationModelTrainer, stack_value_targets
    from reference.model_trainer import ModelTrainer

    torch.set_num_threads(1)
    cfg = MBPOConfig(**{**dict(model_loss=loss_name, ensemble_size=3, num_elites=2, num_layers=2, hid_size=32,
                               model_batch_size=64, patience=2, improvement_threshold=0.05, model_lr=3e-3,
                               num_epochs_train_model=max_epochs, sac_hidden_size=32), **overrides})
    d, a, K = 4, 2, len(noise)
    data_gen = torch.Generator().manual_seed(0)
    obs, act = torch.randn(K, n, d, generator=data_gen), torch.rand(K, n, a, generator=data_gen) * 2 - 1
    next_obs = (obs + 0.1 * torch.tanh(obs) + act.sum(-1, keepdim=True) * 0.05
                + torch.tensor(noise).view(K, 1, 1) * torch.randn(K, n, d, generator=data_gen))
    reward = obs[..., 0] - act[..., 1] ** 2
    sac_cfg = MBPOAgent.sac_config(cfg)
    loss = make_model_loss(loss_name, clip_quantile=cfg.value_grad_clip_quantile)
    pop_loss = make_model_loss(loss_name, clip_quantile=cfg.value_grad_clip_quantile, member_dims=1)
    gens = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    singles = [make_dynamics_model(cfg, d, a, loss, gens(10 + k), "cpu") for k in range(K)]
    population = EnsemblePopulation([make_dynamics_model(cfg, d, a, loss, gens(10 + k), "cpu") for k in range(K)])
    trainer = PopulationModelTrainer(population, pop_loss, generators=[gens(20 + k) for k in range(K)],
                                     **model_trainer_options(cfg))
    learners = [SACLearner(d, a, sac_cfg, generator=gens(30 + k)) for k in range(K)]
    pop_learner = SACPopulationLearner(d, a, sac_cfg, generators=[gens(30 + k) for k in range(K)])
    targets = [loss.targets(pop_learner.member_value_function(k), next_obs[k]) for k in range(K)]
    value_targets = None if targets[0] is None else stack_value_targets(targets)
    initial = [{name: v.clone() for name, v in population.member_model(k).state_dict().items()} for k in range(K)]
    results, errors = trainer.train_members((obs, act, reward, next_obs), members,
                                            value_fns=[pop_learner.member_value_function(k) for k in range(K)],
                                            value_targets=value_targets)

    def check_equals_single_trainer(k: int, exact: bool = True) -> None:
        """``exact=False``: equal to float rounding (scores, weights, moments) and in every count and elite."""
        single_trainer = ModelTrainer(singles[k], loss, generator=gens(20 + k), **model_trainer_options(cfg))
        expected = single_trainer.train(obs[k], act[k], reward[k], next_obs[k], value_fn=learners[k],
                                        value_targets=loss.targets(learners[k], next_obs[k]))
        same = torch.equal if exact else (lambda x, y: torch.allclose(x, y, rtol=1e-4, atol=1e-6))
        if exact:
            assert results[k] == expected
        else:
            mine_r, theirs_r = dataclasses.asdict(results[k]), dataclasses.asdict(expected)
            for name, value in theirs_r.items():
                if isinstance(value, (int, bool)) or name == "elites":
                    assert mine_r[name] == value, name
                else:
                    assert np.allclose(mine_r[name], value, rtol=1e-4, atol=1e-6), name
        mine, theirs = population.member_model(k).state_dict(), singles[k].state_dict()
        assert all(same(mine[name], theirs[name]) for name in theirs)
        adam = trainer.optimizer.member_state(k)
        for i, p in enumerate(singles[k].parameters()):
            state = single_trainer.optimizer.state[p]
            assert same(adam["exp_avg"][i], state["exp_avg"]) and torch.equal(adam["step"][i], state["step"])
            assert same(adam["exp_avg_sq"][i], state["exp_avg_sq"])

    return results, errors, population, trainer, initial, check_equals_single_trainer


@pytest.mark.parametrize("loss_name", ["mse", "mle", "itervaml", "vagram"])
def test_population_model_training_equals_each_members_single_trainer(loss_name):
    """Two members with different data train their ensembles in one batched call, stopping early at
    different epochs (patience 2): each member's weights, Adam moments, scores, elites and records
    equal its own single ``ModelTrainer``'s, bitwise (one thread); a member left out is untouched."""
    members = [0, 2]  # member 1 is left out
    results, errors, population, trainer, initial, check = _train_model_population(
        loss_name, members, (0.01, 0.3, 0.1), 25)
    assert not errors and sorted(results) == members
    assert results[0].epochs != results[2].epochs and min(results[0].epochs, results[2].epochs) < 25  # stopping per member
    for k in members:
        check(k)
    assert all(torch.equal(v, initial[1][name]) for name, v in population.member_model(1).state_dict().items())
    assert trainer.optimizer.member_state(1)["step"][0] == 0


@pytest.mark.parametrize("loss_name", ["mse", "mle", "itervaml", "vagram"])
def test_population_model_training_equals_the_single_trainers_where_sizes_leave_scalar_tails(loss_name):
    """The sizes above give every member whole SIMD blocks; these do not (37 hidden units, minibatches of
    13, 113 transitions, 3 members): a member's elements would fall into an elementwise kernel's scalar
    tail in its single run and into the vectorised body of the population's stacked tensor, and the two
    round differently (docs/runner.md, "Determinism contract"). Each member must still equal its single
    trainer bitwise (one thread)."""
    members = [0, 1, 2]
    results, errors, *_, check = _train_model_population(loss_name, members, (0.01, 0.3, 0.1), 4, n=113,
                                                         hid_size=37, model_batch_size=13)
    assert not errors and sorted(results) == members
    for k in members:
        check(k)


@pytest.mark.parametrize("compute_stopped", [False, True], ids=["only-training-members", "every-member"])
@pytest.mark.parametrize("loss_name", ["mse", "mle", "itervaml", "vagram"])
def test_population_model_training_computes_only_the_members_still_training(loss_name, compute_stopped,
                                                                           monkeypatch):
    """Three members stop at three different epochs. Each epoch's minibatches and validation scoring
    compute only the members still training (the forward passes' member counts add up to each member's
    own epochs, not K times the slowest's), and every member still equals its single trainer bitwise;
    so does the old way (every member computed until the last stops, the benchmark's switch)."""
    from vagram_bench.models.population import EnsemblePopulation, PopulationModelTrainer

    monkeypatch.setattr(PopulationModelTrainer, "_compute_stopped_members", compute_stopped)
    computed = {True: 0, False: 0}  # member batches of the forward passes, with / without autograd (scoring)
    forward = EnsemblePopulation.forward

    def counting_forward(self, obs, action):
        computed[torch.is_grad_enabled()] += obs.shape[0]
        return forward(self, obs, action)

    monkeypatch.setattr(EnsemblePopulation, "forward", counting_forward)
    results, errors, _, _, _, check = _train_model_population(loss_name, [0, 1, 2], (0.0, 0.05, 0.5), 30)
    assert not errors
    epochs = [results[k].epochs for k in range(3)]
    assert len(set(epochs)) == 3  # the active set shrinks twice
    batches = 3  # 192 training transitions in minibatches of 64
    # after training: the restored models' MSE, and (value-aware losses, scored on their loss) their score
    after = 3 if loss_name in ("mse", "mle") else 6
    if compute_stopped:
        assert computed == {True: batches * 3 * max(epochs), False: 3 + 3 * max(epochs) + after}
    else:  # + the scores before training
        assert computed == {True: batches * sum(epochs), False: 3 + sum(epochs) + after}
    for k in range(3):
        check(k)
