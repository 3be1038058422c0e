"""Populations through the runner: ``seed=0,1`` trains the seeds in one process and writes each
seed's single-run records; members are independent, resume exactly, fail alone; bad seed lists exit 2.
Also the population replay buffer against TorchRL's, the learner's member masks, the metric window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vagram_bench import run
from vagram_bench.records import read_csv

ENV = "HopperDistract-5-v0"
ARGS = [
    "agent=sac", f"env={ENV}", "steps=300", "eval_every=100", "eval_episodes=2", "checkpoint_every=50",
    "log_every=50", "agent.hidden_size=32", "agent.batch_size=16", "agent.learning_starts=60", "quiet=true",
]


def _dir(out: Path, seed: int, agent: str = "sac") -> Path:
    return out / ENV / agent / f"seed{seed}"


def _records(d: Path) -> tuple[list, list]:
    evals = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in read_csv(d / "eval.csv")]
    return evals, read_csv(d / "train.csv")


@pytest.fixture(scope="module")
def population_01(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pop01")
    assert run.main([*ARGS, "seed=0,1", f"out={out}"]) == 0
    return out


def test_a_population_writes_one_single_run_directory_per_seed(population_01, tmp_path):
    for seed in (0, 1):
        d = _dir(population_01, seed)
        assert {p.name for p in d.iterdir()} == {"config.json", "eval.csv", "train.csv", "summary.json", "policy.pt"}
        assert json.loads((d / "config.json").read_text())["seed"] == seed
        assert json.loads((d / "summary.json").read_text())["seed"] == seed
        assert [int(r["env_step"]) for r in read_csv(d / "eval.csv")] == [100, 200, 300]
    assert _records(_dir(population_01, 0)) != _records(_dir(population_01, 1))
    # seed 1 alone (the population of one) writes what it wrote as a member, config included
    assert run.main([*ARGS, "seed=1", f"out={tmp_path}"]) == 0
    assert _records(_dir(tmp_path, 1)) == _records(_dir(population_01, 1))
    strip = lambda d: {k: v for k, v in json.loads((d / "config.json").read_text()).items() if k != "out"}
    assert strip(_dir(tmp_path, 1)) == strip(_dir(population_01, 1))


def test_a_member_does_not_depend_on_the_other_seeds(population_01, tmp_path):
    """Member 0 of {0, 1} and of {2, 0} (tyro form, another order): identical records."""
    assert run.main([*ARGS, "--seed", "2", "0", f"out={tmp_path}"]) == 0
    assert _records(_dir(tmp_path, 0)) == _records(_dir(population_01, 0))


def test_the_population_equals_the_single_learner_agent_it_replaced(population_01, tmp_path, monkeypatch):
    """Reference: the sac agent as it was before populations -- a single ``SACLearner`` fed by
    TorchRL's ``TensorDictReplayBuffer`` -- run by the runner as a plugin: the same records."""
    from vagram_bench import registry
    from vagram_bench.agents.sac import SACAgent

    monkeypatch.setattr(registry, "load_agent", lambda name: _ReferenceSAC)
    assert run.main([*ARGS, "seed=1", f"out={tmp_path}"]) == 0
    assert _records(_dir(tmp_path, 1)) == _records(_dir(population_01, 1))
    assert SACAgent.make_population is not _ReferenceSAC.make_population  # the reference is a separate agent


def _crash_at(monkeypatch, step: int, population_cls: type | None = None) -> None:
    """Kill the run (``KeyboardInterrupt``) when a member's update reaches env step ``step``."""
    if population_cls is None:
        from vagram_bench.agents.sac.agent import SACPopulation as population_cls

    original = population_cls.update

    def update(self, env_steps, members):
        if env_steps.max() == step:
            raise KeyboardInterrupt  # a kill: nothing after it runs
        return original(self, env_steps, members)

    monkeypatch.setattr(population_cls, "update", update)


def test_a_killed_population_resumes_exactly(population_01, tmp_path, monkeypatch, capsys):
    _crash_at(monkeypatch, 250)
    # run.main turns the interrupt into exit code 130 and one line naming each seed's checkpoint
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 130
    monkeypatch.undo()
    from vagram_bench.records import load_checkpoint

    steps = [int(load_checkpoint(_dir(tmp_path, s) / "checkpoint.pt")["env_step"]) for s in (0, 1)]
    assert all(100 <= s < 250 for s in steps)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    for seed, step in zip((0, 1), steps):
        assert f"seed {seed}: at env step " in line
        assert f"checkpoint at env step {step} in {_dir(tmp_path, seed) / 'checkpoint.pt'}" in line
    assert line.startswith("interrupted (Ctrl-C): ") and line.endswith(f"Resume with: python -m vagram_bench.run "
                                                                       f"{' '.join(ARGS)} seed=0,1 out={tmp_path}")
    capsys.readouterr()
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 0
    err = capsys.readouterr().err
    for seed, step in zip((0, 1), steps):
        assert f"resuming {_dir(tmp_path, seed)} from env step {step} of 300" in err
        assert _records(_dir(tmp_path, seed)) == _records(_dir(population_01, seed))


def test_a_resumed_population_steps_its_laggard_alone_until_the_members_are_in_step(population_01, tmp_path,
                                                                                    monkeypatch):
    """Members resume from checkpoints at different env steps (each at its own episode end). Only the members
    furthest behind step until they reach the others: from then on every call is for all members at once (one
    batched update, not one per env step the members stand at), and the records are still the uninterrupted
    run's."""
    from vagram_bench.agents.sac.agent import SACPopulation
    from vagram_bench.records import load_checkpoint

    _crash_at(monkeypatch, 250)
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 130
    monkeypatch.undo()
    steps = [int(load_checkpoint(_dir(tmp_path, s) / "checkpoint.pt")["env_step"]) for s in (0, 1)]
    assert steps[0] != steps[1]  # the case this test is for
    calls = []
    original = SACPopulation.update

    def update(self, env_steps, members):
        calls.append((env_steps.copy(), members.copy()))
        return original(self, env_steps, members)

    monkeypatch.setattr(SACPopulation, "update", update)
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 0
    behind, ahead = int(np.argmin(steps)), int(np.argmax(steps))
    catch_up = max(steps) - min(steps)
    # the laggard alone, one step at a time, up to the leader's checkpoint step; then both, in step, to the end
    assert [(int(e[behind]), m.tolist()) for e, m in calls[:catch_up]] == [
        (min(steps) + i, [k == behind for k in (0, 1)]) for i in range(1, catch_up + 1)]
    assert all(e[ahead] == max(steps) for e, _ in calls[:catch_up])  # the leader waits where it resumed
    together = calls[catch_up:]
    assert len(together) == 300 - max(steps)
    assert all(m.all() and e[0] == e[1] == max(steps) + i for i, (e, m) in enumerate(together, 1))
    for seed in (0, 1):
        assert _records(_dir(tmp_path, seed)) == _records(_dir(population_01, seed))


def test_a_corrupt_member_checkpoint_fails_that_member_only(population_01, tmp_path, monkeypatch, capsys):
    _crash_at(monkeypatch, 250)
    # run.main turns the interrupt into exit code 130 and one line naming each seed's checkpoint
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 130
    monkeypatch.undo()
    bad = _dir(tmp_path, 1) / "checkpoint.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint")
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert f"seed 1: checkpoint {bad}" in err and "1 of 2 seeds stopped" in err
    assert bad.read_bytes() == b"\x80\x02 not a checkpoint"  # untouched
    assert _records(_dir(tmp_path, 0)) == _records(_dir(population_01, 0))
    assert not (_dir(tmp_path, 1) / "summary.json").exists()


def test_a_failing_member_stops_alone_and_records_its_error(population_01, tmp_path, monkeypatch, capsys):
    """Seed 1 gets NaN rewards from its 100th transition on: its critic loss turns NaN when one is
    sampled; seed 0 finishes with the records it has in any population."""
    from vagram_bench.agents.sac.agent import SACPopulation

    original = SACPopulation.observe

    def nan_reward(self, obs, action, reward, next_obs, terminated, truncated, members):
        poisoned = (np.array(self.seeds) == 1) & (self.env_steps >= 100)
        return original(self, obs, action, np.where(poisoned, np.nan, reward), next_obs, terminated,
                        truncated, members)

    monkeypatch.setattr(SACPopulation, "observe", nan_reward)
    assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 seeds stopped" in err and "seed 1: run stopped at env step" in err and "loss_qvalue" in err
    assert _records(_dir(tmp_path, 0)) == _records(_dir(population_01, 0))
    failed = _dir(tmp_path, 1)
    error = json.loads((failed / "error.json").read_text())
    assert "non-finite SAC loss loss_qvalue" in error["error"] and error["env_step"] > 100
    assert not (failed / "summary.json").exists()
    assert [int(r["env_step"]) for r in read_csv(failed / "eval.csv")] == [
        s for s in (100, 200, 300) if s < error["env_step"]]


@pytest.mark.parametrize("seeds, message", [("0,1,0", "seed lists 0 more than once"),
                                            ("-1", "seed must be >= 0, got -1"),
                                            ("2,-3", "seed must be >= 0, got -3")])
def test_bad_seed_lists_exit_2_before_anything_is_written(tmp_path, capsys, seeds, message):
    assert run.main([*ARGS, f"seed={seeds}", f"out={tmp_path}"]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_lock_holds_every_member_directory(tmp_path, capsys):
    from vagram_bench.records import RunPaths
    from vagram_bench.runner.rundir import RunDirLock

    with RunDirLock(RunPaths(_dir(tmp_path, 1))):  # another process would hold seed 1
        assert run.main([*ARGS, "seed=0,1", f"out={tmp_path}"]) == 2
    assert "is in use by" in capsys.readouterr().err
    assert not (_dir(tmp_path, 0) / "config.json").exists()


# --------------------------------------------------------------------------------------------------
# parts


def test_population_replay_buffer_samples_what_torchrl_samples():
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, RandomSampler, TensorDictReplayBuffer

    from vagram_bench.agents.common import PopulationReplayBuffer

    K, capacity, batch = 3, 7, 5
    pop = PopulationReplayBuffer(K, capacity, batch, [torch.Generator().manual_seed(s) for s in range(K)])
    singles = [TensorDictReplayBuffer(storage=LazyTensorStorage(capacity), sampler=RandomSampler(),
                                      batch_size=batch, generator=torch.Generator().manual_seed(s))
               for s in range(K)]
    data = torch.randn(K, 20, 4)
    writes = np.zeros(K, dtype=int)
    for t in range(20):
        members = np.array([True, t % 2 == 0, t < 4])  # members write at their own pace
        pop.add(TensorDict({"x": data[:, t]}, batch_size=[K]), members)
        for k in np.flatnonzero(members):
            singles[k].add(TensorDict({"x": data[k, t]}, batch_size=[]))
            writes[k] += 1
        if t >= 3:
            drawing = [k for k in range(K) if t % (k + 1) == 0]
            sample = pop.sample(drawing)
            for k in drawing:
                assert torch.equal(sample["x"][k], singles[k].sample()["x"])
    assert list(pop.size) == [min(w, capacity) for w in writes]
    state = pop.member_state(1)
    other = PopulationReplayBuffer(2, capacity, batch, [torch.Generator().manual_seed(1)] * 2)
    other.load_member_state(0, state)
    assert torch.equal(other.storage["x"][0, : state["size"]], pop.storage["x"][1, : state["size"]])


def test_a_left_out_member_is_untouched_and_the_others_equal_their_single_learner():
    from tensordict import TensorDict

    from reference.sac_learner import SACLearner
    from vagram_bench.agents.sac import SACConfig
    from vagram_bench.agents.sac.population import SACPopulationLearner

    torch.set_num_threads(1)
    cfg = SACConfig(hidden_size=32, actor_update_interval=2)
    pop = SACPopulationLearner(5, 2, cfg, generators=[torch.Generator().manual_seed(s) for s in (0, 1)])
    single = SACLearner(5, 2, cfg, generator=torch.Generator().manual_seed(0))
    data = torch.Generator().manual_seed(9)

    def batch(K):
        return TensorDict({
            "observation": torch.randn(K, 16, 5, generator=data), "action": torch.rand(K, 16, 2, generator=data) * 2 - 1,
            "next": {"observation": torch.randn(K, 16, 5, generator=data), "reward": torch.randn(K, 16, 1, generator=data),
                     "terminated": torch.zeros(K, 16, 1, dtype=torch.bool)}}, batch_size=[K, 16])

    frozen = pop.member_state_dict(1)
    for _ in range(3):  # member 1 left out: member 0 steps as its single learner
        b = batch(2)
        pop.update(b, members=[0])
        single.update(b[0])
    after = pop.member_state_dict(1)
    assert torch.equal(frozen["generator"], after["generator"]) and after["num_updates"] == 0
    for name in ("actor", "qvalue", "target_qvalue"):
        assert all(torch.equal(frozen[name][k], after[name][k]) for k in frozen[name])
    assert frozen["critic_optimizer"]["step"] == after["critic_optimizer"]["step"] == [0] * len(pop.critic_optimizer.params)
    # member 0 after 3 updates (actor on update 2 only) equals the single learner
    assert torch.equal(pop.log_alpha.detach()[0], single.loss_module.log_alpha.detach())
    single_actor = dict(single.actor_net.named_parameters())
    assert all(torch.equal(v, single_actor[k]) for k, v in pop.member_state_dict(0)["actor"].items())
    # a member's state moves between populations
    fresh = SACPopulationLearner(5, 2, cfg, generators=[torch.Generator().manual_seed(5)])
    fresh.load_member_state_dict(0, pop.member_state_dict(0))
    b = batch(2)
    m_pop = pop.update(b, members=[0, 1])
    m_fresh = fresh.update(b[:1])
    assert torch.equal(m_pop["loss_qvalue"][0], m_fresh["loss_qvalue"][0])


def test_population_metric_window_equals_a_metric_window_per_member():
    """Member k of the window equals a single run's window of Python floats fed member k's values
    (the agents' float32 losses, the runner's float64 returns and int64 lengths), state included: the
    checkpoint field runs wrote before, so their checkpoints resume."""
    from reference.metric_window import MetricWindow
    from vagram_bench.population import PopulationMetricWindow

    rng = np.random.default_rng(0)
    draw = {"a": lambda: torch.tensor(rng.normal(size=3), dtype=torch.float32),
            "b": lambda: torch.tensor(rng.normal(size=3) * 1e3, dtype=torch.float64),
            "length": lambda: torch.from_numpy(rng.integers(1, 1000, size=3))}
    window, singles = PopulationMetricWindow(3), [MetricWindow() for _ in range(3)]
    for t in range(10):
        metrics = {}
        for name in ("a", "b", "length") if t % 3 else ("length", "b", "a"):
            values, mask = draw[name](), rng.random(3) < 0.6
            metrics[name] = (values, mask)
            for k in np.flatnonzero(mask):
                singles[k].add({name: values[k].item()})
        window.add(metrics)
        if t == 6:
            assert window.state(2) == singles[2].state()
            assert all(list(window.state(2)[f]) == list(singles[2].state()[f]) for f in ("sums", "counts"))
            restored = PopulationMetricWindow(3)
            restored.load(2, singles[2].state())  # a checkpoint written by the single run's window
            assert restored.state(2) == singles[2].state()
    means = window.pop_means([0, 1, 2])
    for k in range(3):
        expected = singles[k].pop_means()
        assert expected and means[k] == expected and list(means[k]) == list(expected)
    assert window.pop_means([0, 1, 2]) == {0: {}, 1: {}, 2: {}}


# --------------------------------------------------------------------------------------------------
# the reference single-seed sac agent (the implementation populations replaced)


def _reference_sac_class():
    import gymnasium as gym
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, RandomSampler, TensorDictReplayBuffer

    from reference.replay import replay_buffer_state
    from vagram_bench.agents.common import ActionScaler, torch_generators
    from reference.sac_learner import SACLearner
    from vagram_bench.agents.sac import SACAgent
    from vagram_bench.interfaces import Agent

    class ReferenceSAC(Agent):
        Config = SACAgent.Config
        default_config = SACAgent.default_config

        def __init__(self, config, observation_space, action_space, *, env_id, seed, device="cpu"):
            super().__init__(config, observation_space, action_space, env_id=env_id, seed=seed, device=device)
            self.act_dim = int(np.prod(action_space.shape))
            self.actions = ActionScaler(action_space)
            self.learner_generator, self.generator = torch_generators(seed, 2)
            self.learner = SACLearner(int(np.prod(observation_space.shape)), self.act_dim, config,
                                      generator=self.learner_generator)
            self.buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(config.replay_size),
                                                 sampler=RandomSampler(), batch_size=config.batch_size,
                                                 generator=self.generator)
            self.env_steps = 0

        def act(self, obs, deterministic):
            if not deterministic and self.env_steps < self.config.learning_starts:
                return self.actions.to_env(torch.rand(self.act_dim, generator=self.generator, dtype=torch.float64) * 2 - 1)
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1))
            return self.actions.to_env(self.learner.act(obs_t, deterministic=deterministic)[0])

        def observe(self, obs, action, reward, next_obs, terminated, truncated):
            f32 = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1))
            self.buffer.add(TensorDict({
                "observation": f32(obs), "action": torch.as_tensor(self.actions.to_unit(action), dtype=torch.float32),
                "next": {"observation": f32(next_obs), "reward": torch.tensor([float(reward)]),
                         "terminated": torch.tensor([bool(terminated)])}}, batch_size=[]))
            self.env_steps += 1

        def update(self, env_step):
            if env_step < self.config.learning_starts:
                return {}
            metrics = {}
            for _ in range(self.config.updates_per_step):
                batch = self.buffer.sample()
                metrics = self.learner.update(batch)
            metrics["batch_reward"] = float(batch.get(("next", "reward")).mean())
            return metrics

        def state_dict(self):
            return {"learner": self.learner.state_dict(), "replay": replay_buffer_state(self.buffer)}

        def load_state_dict(self, state):
            raise NotImplementedError  # never resumed here

    assert gym  # imported for the spaces' types
    return ReferenceSAC


_ReferenceSAC = _reference_sac_class()


def test_evaluation_resets_a_member_that_ends_an_episode_while_idle():
    """Member 1 (5-step episodes) is through its episodes long before member 0 (50-step episodes)
    and keeps stepping idle; its episodes keep ending and its env must be reset each time. Each
    member's returns equal its own episodes run directly on a single env."""
    import gymnasium as gym

    from vagram_bench.runner.loop import evaluate

    limits = (50, 5)
    envs = gym.vector.SyncVectorEnv(
        [lambda n=n: gym.make("Pendulum-v1", max_episode_steps=n) for n in limits],
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )

    class ZeroAgent:
        def act(self, obs, deterministic, members):
            return np.zeros((len(obs), 1), dtype=np.float32)

    returns, lengths = evaluate(ZeroAgent(), envs, np.array([True, True]), episodes=2, eval_seed=7)
    for k, limit in enumerate(limits):
        env = gym.make("Pendulum-v1", max_episode_steps=limit)
        for i in range(2):
            env.reset(seed=7 + i)
            expected, done = 0.0, False
            while not done:
                _, r, term, trunc, _ = env.step(np.zeros(1, dtype=np.float32))
                expected, done = expected + r, term or trunc
            assert lengths[k, i] == limit
            assert returns[k, i] == pytest.approx(expected, rel=1e-12)
