"""GPU-readiness of the hot loop, checked on CPU: a population's ``update`` reads nothing back to the
host per SAC update or per model minibatch.

On a GPU every host read (``.item()``, ``bool(t)``, ``.cpu()``, ``.tolist()``, a data-dependent shape)
waits for the device to drain its queue. The populations keep metrics and non-finite flags on the
device and read them once per log window (``failures``) or, for MBPO, a bounded number of times per
model training (early stopping reads one score vector per epoch). A ``TorchFunctionMode`` records every
such call made inside ``update``: the count must not grow with the number of SAC updates per env step.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from vagram_bench import registry

HOST_READS = {"item", "cpu", "numpy", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero"}


class HostReads(TorchFunctionMode):
    """Counts tensor operations that force a device-to-host read."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        boolean_mask = name == "__getitem__" and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in _flat(args[1:]))
        if name in HOST_READS or name in ("masked_select", "unique") or boolean_mask:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def _flat(xs):
    for x in xs:
        if isinstance(x, (tuple, list)):
            yield from _flat(x)
        else:
            yield x


def _population(agent: str, env_id: str, overrides: dict, seeds=(0, 1)):
    cls = registry.load_agent(agent)
    config = dataclasses.replace(cls.default_config(env_id), **overrides)
    env = gym.make(env_id)
    pop = cls.make_population(config, env.observation_space, env.action_space, env_id=env_id, seeds=list(seeds))
    return pop, env


def _fill(pop, env, steps: int, start: int = 0) -> int:
    """Feed ``steps`` random transitions to every member and call ``update`` after each (the warm-up);
    returns the env step reached."""
    K = pop.num_members
    members = np.ones(K, dtype=bool)
    rng = np.random.default_rng(0)
    obs = np.stack([env.observation_space.sample() for _ in range(K)]).astype(np.float64)
    for t in range(start + 1, start + steps + 1):
        action = rng.uniform(-1, 1, size=(K, *env.action_space.shape)).astype(np.float32)
        next_obs = obs + 0.01 * rng.standard_normal(obs.shape)
        pop.observe(obs, action, rng.standard_normal(K), next_obs, np.zeros(K, bool), np.zeros(K, bool), members)
        pop.update(np.full(K, t), members)
        obs = next_obs
    return start + steps


def _reads_per_update(pop, env, step: int, n: int) -> list[int]:
    K = pop.num_members
    members = np.ones(K, dtype=bool)
    counts = []
    for t in range(step + 1, step + n + 1):
        obs = np.stack([env.observation_space.sample() for _ in range(K)]).astype(np.float64)
        pop.observe(obs, np.zeros((K, *env.action_space.shape), np.float32), np.zeros(K), obs,
                    np.zeros(K, bool), np.zeros(K, bool), members)
        with HostReads() as spy:
            pop.update(np.full(K, t), members)
        counts.append(len(spy.calls))
    return counts


def test_the_spy_sees_the_reads_it_must_catch():
    x = torch.randn(4)
    with HostReads() as spy:
        x.sum().item()
        bool(x[0] > 0)
        x.tolist()
        x[x > 0]
    assert spy.calls == ["item", "__bool__", "tolist", "__getitem__"]


def test_sac_population_updates_read_nothing_back():
    pop, env = _population("sac", "InvertedPendulum-v5", dict(learning_starts=8, batch_size=8, hidden_size=16))
    step = _fill(pop, env, 10)
    assert _reads_per_update(pop, env, step, 5) == [0] * 5
    assert pop.failures() == {}  # the once-per-window read still works


def test_mbpo_sac_updates_between_model_trainings_read_nothing_back():
    """Env steps that train no model: only SAC updates (1 or 8 of them) and the rollout-free schedule."""
    counts = {}
    for updates in (1, 8):
        overrides = dict(initial_exploration_steps=20, freq_train_model=10, epoch_length=100,
                         effective_model_rollouts_per_step=4, num_sac_updates_per_step=updates,
                         sac_hidden_size=16, hid_size=16, num_layers=2, ensemble_size=3, num_elites=2,
                         num_epochs_train_model=2, model_batch_size=16, sac_batch_size=8)
        pop, env = _population("mbpo_mse", "InvertedPendulum-v5", overrides)
        step = _fill(pop, env, 30)  # 20 exploration steps; the first model training at step 30
        assert (pop.num_model_trainings == 1).all()
        before = pop.num_sac_updates.copy()
        counts[updates] = _reads_per_update(pop, env, step, 5)  # steps 31..35: SAC updates only
        assert (pop.num_sac_updates - before == 5 * updates).all()  # the updates did happen
    # Per env step, each member reads back how many of its SAC batches come from the model buffer:
    # a draw from its own CPU generator (the sampling generators live on the host, as in the single
    # agent), so on a GPU it is no device read. Nothing grows with the number of SAC updates.
    assert counts[1] == counts[8] == [pop.num_members] * 5, counts
