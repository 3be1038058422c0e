"""MBPO (Janner et al. 2019) with the four dynamics-model losses of the VaGraM paper, for the K seeds of
a run as one batched computation.

:class:`MBPOPopulation` is the algorithm; the four agents (``mbpo_mse``, ``mbpo_mle``, ``mbpo_itervaml``,
``mbpo_vagram``, :mod:`vagram_bench.agents.mbpo.agent`) are its population of one behind the
single-agent API, and the runner trains every run (one seed or several) as a population, so there is
one code path. The loop of each member, top to bottom (upstream ``mbrl/algorithms/mbpo.py``,
pairlab/vagram@cc7e2e4; the runner owns the env loop and calls :meth:`MBPOPopulation.act` /
:meth:`~MBPOPopulation.observe` / :meth:`~MBPOPopulation.update` once per real step):

.. code-block:: text

    real env step k (1-based, counted by the runner, exploration included):
        a = SAC policy mean (deterministic_real_actions; the stochastic policy or uniform noise
            during the first initial_exploration_steps)
        real buffer ← (s, a, r, s', terminated, truncated)
        if k <= initial_exploration_steps: no learning
        t = k − initial_exploration_steps          (MBPO step, 1-based)
        epoch = (t − 1) // epoch_length
        if t % freq_train_model == 0:
            L = int(truncated_linear(*rollout_schedule, epoch + 1))
            model buffer capacity = L × rollouts_per_step × freq × ceil(epoch_length/freq) × retain
            train the ensemble on all real data (80/20 split, bootstrap, patience, elites)
                [VaGraM/IterVAML: value targets at every s' from the current SAC critic/actor, one
                 batched pass per training call, indexed per minibatch]
            rollouts: rollout_batch_size start states from the real buffer, L steps with the
                stochastic policy through a random elite per sample; each rollout stops at its
                first termination (termination_fn on the base dims); every transition of a live
                rollout (including the terminating one) goes to the model buffer
        if t % sac_updates_every_steps == 0 and len(model buffer) >= min_model_buffer_size:
            num_sac_updates_per_step times: with probability
                p = truncated_linear(*model_data_likelihood, epoch + 1) a SAC batch from the model
                buffer, else from the real buffer; one SAC update

Deviations from mbrl-lib and why are listed in ``docs/mbpo.md``.

Member ``k`` is the agent of ``seeds[k]``: its random streams are :func:`mbpo_streams` of its seed,
drawn in the same order whatever the other members are, so its numbers do not depend on them
(``tests/test_mbpo_population.py`` checks member ``k`` of a population against the population of one
of seed ``k``, and the batched model training against each member's own
:class:`~vagram_bench.models.trainer.ModelTrainer`).

What is batched:

* SAC: :class:`~vagram_bench.agents.sac.population.SACPopulationLearner`, one update of every member
  per gradient step, metrics accumulated on the device and read once per model training;
* the real and the model replay buffers: one storage with a member dimension each
  (:class:`~vagram_bench.agents.common.PopulationReplayBuffer`; the model buffer's capacity per
  member), each member sampling with its own generators what a TorchRL buffer with that generator
  samples; the mixed real/model SAC batches of a step gathered at once;
* model training: :class:`~vagram_bench.models.population.PopulationModelTrainer`, with per-member
  early stopping;
* the per-member schedules: members may be at different env steps after a resume; every call works
  on the members whose schedule is due.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from vagram_bench.agents.common import ActionScaler, PopulationReplayBuffer, stream_seeds, torch_generators
from vagram_bench.agents.sac.population import NONFINITE_LOSSES, SACPopulationLearner
from vagram_bench.envs import termination_fn
from vagram_bench.models.ensemble import EnsembleDynamicsModel
from vagram_bench.models.losses import VaGraMLoss, ValueTargets, compute_value_targets, make_model_loss
from vagram_bench.models.model_env import branched_rollout, model_step
from vagram_bench.models.population import EnsemblePopulation, PopulationModelTrainer, stack_value_targets
from vagram_bench.models.trainer import ModelDivergenceError
from vagram_bench.population import MemberMetrics, PopulationAgent, PopulationMetricWindow

from .config import MBPOConfig

__all__ = ["MBPOPopulation", "mbpo_streams"]


# ==================================================================================================
# the parts of a member
# ==================================================================================================
#: the agent's torch generators, one independent seeded stream per purpose, so that e.g. a longer
#: rollout does not shift the SAC sampling sequence
GENERATOR_NAMES = ("gen_sac", "gen_real", "gen_model_rb", "gen_model", "gen_rollout", "gen_mix")


def mbpo_streams(seed: int) -> dict[str, Any]:
    """The random streams of the MBPO agent of ``seed`` (a population member draws from its seed's
    streams, derived here and nowhere else): the torch generators of :data:`GENERATOR_NAMES` and
    ``np_rng`` (random initial exploration)."""
    streams: dict[str, Any] = dict(zip(GENERATOR_NAMES, torch_generators(seed, len(GENERATOR_NAMES))))
    streams["np_rng"] = np.random.default_rng(stream_seeds(seed, 7)[6])
    return streams


def make_dynamics_model(cfg: MBPOConfig, obs_dim: int, act_dim: int, model_loss, generator: torch.Generator,
                        device: torch.device) -> EnsembleDynamicsModel:
    """The agent's bootstrap ensemble, initialised from ``generator`` (``gen_model``)."""
    return EnsembleDynamicsModel(
        obs_dim,
        act_dim,
        ensemble_size=cfg.ensemble_size,
        num_elites=cfg.num_elites,
        num_layers=cfg.num_layers,
        hid_size=cfg.hid_size,
        gaussian=model_loss.gaussian,
        generator=generator,
        device=device,
    )


def model_trainer_options(cfg: MBPOConfig) -> dict[str, Any]:
    """The :class:`ModelTrainer` settings of ``cfg`` (a population's trainer takes the same)."""
    return dict(
        lr=cfg.model_lr,
        weight_decay=cfg.model_wd,
        decoupled_weight_decay=cfg.model_wd_decoupled,
        batch_size=cfg.model_batch_size,
        validation_ratio=cfg.validation_ratio,
        patience=cfg.patience,
        improvement_threshold=cfg.improvement_threshold,
        max_epochs=cfg.num_epochs_train_model,
        fixed_epochs=cfg.model_epochs,
        val_metric={"upstream": "auto", "loss": "loss", "mse": "mse"}[cfg.model_score],
        snapshot=cfg.model_snapshot,
    )


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def rollout_policy(cfg: MBPOConfig, obs: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The stochastic policy ``act`` on rollout states, ``rollout_chunk_size`` at a time (with
    ``rollout_bf16``: under bfloat16 autocast)."""
    with autocast(obs.device, cfg.rollout_bf16):
        actions = [act(o) for o in obs.split(cfg.rollout_chunk_size)]
    return torch.cat(actions, 0).float()


def value_targets_for(cfg: MBPOConfig, model_loss, value_fn, data: TensorDict,
                      timings: dict[str, float]) -> tuple[ValueTargets | None, dict[str, float]]:
    """The loss's value targets for every real transition of ``data`` from the current critic
    ``value_fn``, in one batched pass (the trainer indexes them per minibatch: the critic does not
    change during training), and the records of their gradient norms (value-aware losses only)."""
    next_obs = data["next", "observation"]
    # paper_compat: the published VaGraM code took the gradient at its delta target Δ = s' − s
    # (vaml_mlp.py L289-293, pairlab/vagram@fa539aa/caf9b92), the policy action μ(Δ) included.
    value_point = next_obs
    if cfg.paper_compat and isinstance(model_loss, VaGraMLoss):
        value_point = next_obs - data["observation"]
    t0 = time.perf_counter()
    value_targets = model_loss.targets(value_fn, value_point)
    metrics = {} if value_targets is None else value_gradient_norms(value_fn, value_targets, value_point)
    timings["value_grads"] += time.perf_counter() - t0
    return value_targets, metrics


def adds_mse(cfg: MBPOConfig, model_loss, epoch: int) -> bool:
    """Whether a model training in ``epoch`` adds the warm-up MSE term (value-aware losses, epoch 0)."""
    return cfg.add_mse_first_epoch and epoch == 0 and model_loss.needs_value_function


def model_records(cfg: MBPOConfig, result: Any) -> dict[str, float]:
    """The train.csv records of one model training (a :class:`TrainingResult`)."""
    metrics = dict(
        model_train_score=float(result.train_losses[-1]) if result.train_losses else math.nan,
        model_val_score=float(result.best_val_score),
        model_val_score_restored=float(result.restored_val_score),
        model_val_mse=float(result.best_val_mse),
        model_train_epochs=float(result.epochs),
    )
    # one 0/1 column per member: the runner averages metrics over a train.csv window, which turns
    # these into "fraction of the window's trainings in which member i was an elite"
    elites = {int(e) for e in result.elites}
    metrics.update({f"model_elite_{i}": float(i in elites) for i in range(cfg.ensemble_size)})
    return metrics


def check_model_divergence(val_mse: float, best_seen: float, ratio: float, num_trainings: int) -> float:
    """The divergence guard: raises :class:`ModelDivergenceError` when the elites' validation
    next-state MSE ``val_mse`` of model training ``#num_trainings`` is not finite or above ``ratio``
    times the lowest so far ``best_seen``; returns the new lowest. It watches the MSE, which means the
    same for every loss: the value-aware losses' own scores scale with ``|∂Q/∂s'|²`` (VaGraM) or
    ``Q²`` (IterVAML), which grow by orders of magnitude as the critic learns, so a ratio on them
    would stop healthy runs."""
    if not math.isfinite(val_mse) or val_mse > ratio * best_seen:
        raise ModelDivergenceError(
            f"model validation MSE blew up: model_val_mse={val_mse:.4g} at model training "
            f"#{num_trainings} (lowest so far {best_seen:.4g}, limit ratio max_model_mse_ratio={ratio:g})"
        )
    return min(best_seen, val_mse)


def value_gradient_norms(value_fn, value_targets: ValueTargets, next_obs: torch.Tensor) -> dict[str, float]:
    """Quantiles of the per-head value-gradient norms ``||∂Q_h/∂s'||`` over the real buffer: the
    scale the value-aware loss weights the model's errors with. IterVAML's targets hold values
    only; its gradients are computed here for the record."""
    grads = value_targets.grads
    if grads is None:
        grads = compute_value_targets(value_fn, next_obs).grads
    norms = grads.norm(dim=-1).reshape(-1)
    q = torch.quantile(norms.double(), torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
    return dict(value_grad_norm_q05=q[0].item(), value_grad_norm_q50=q[1].item(),
                value_grad_norm_q95=q[2].item())


#: the transition keys a SAC update and model training read (both buffers store these)
_KEYS = ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "terminated"))
#: the SAC metric keys, in train.csv's order (the single ``SACLearner.update``'s)
_SAC_METRICS = ("loss_qvalue", "loss_actor", "loss_alpha", "alpha", "q_mean", "entropy")
_SAC_ACTOR_METRICS = frozenset({"loss_actor", "loss_alpha", "entropy"})
_COUNTERS = ("num_observed", "num_model_trainings", "num_sac_updates", "num_sac_updates_on_model_data",
             "rollout_length", "best_model_mse_seen")


class MBPOPopulation(PopulationAgent):
    """``K`` MBPO agents of one config and model loss, one per seed, stepped together.

    Args:
        agent_cls: the agent's class (``MBPOVaGraMAgent``, ...): its config check, model loss name and
            SAC config.
        config, observation_space, action_space, env_id, device: as :class:`~vagram_bench.interfaces.Agent`.
        seeds: one member per seed.
    """

    def __init__(self, agent_cls: type, config: MBPOConfig, observation_space: gym.spaces.Box,
                 action_space: gym.spaces.Box, *, env_id: str, seeds: Sequence[int],
                 device: str | torch.device = "cpu") -> None:
        super().__init__(seeds)
        agent_cls.check_setup(config, observation_space, action_space)
        cfg = self.config = config
        self.device = torch.device(device)
        K = self.num_members
        self.obs_dim = int(observation_space.shape[0])
        self.act_dim = int(action_space.shape[0])
        self.actions = ActionScaler(action_space, "MBPO")

        streams = [mbpo_streams(s) for s in self.seeds]
        self.generators = {name: [st[name] for st in streams] for name in GENERATOR_NAMES}
        self.np_rngs = [st["np_rng"] for st in streams]

        self.learner = SACPopulationLearner(
            self.obs_dim, self.act_dim, agent_cls.sac_config(cfg), generators=self.generators["gen_sac"],
            device=self.device,
        )
        self.termination_fn = termination_fn(env_id)
        # member_dims: VaGraM's clipping quantile per member of the (K, E, B) minibatches
        self.model_loss = make_model_loss(
            cfg.model_loss, bounded=cfg.vagram_bounded, clip_quantile=cfg.value_grad_clip_quantile, member_dims=1
        )
        self.model = EnsemblePopulation(
            [make_dynamics_model(cfg, self.obs_dim, self.act_dim, self.model_loss, g, self.device)
             for g in self.generators["gen_model"]]
        )
        self.model_trainer = PopulationModelTrainer(self.model, self.model_loss, generators=self.generators["gen_model"],
                                                    **model_trainer_options(cfg))
        # each member's critic with its single learner's kernels (the value-aware losses' targets and IterVAML's
        # values at the prediction, computed member by member: vagram_bench/models/population.py)
        self.value_functions = [self.learner.member_value_function(k) for k in range(K)]
        self.real_buffer = PopulationReplayBuffer(K, cfg.dataset_size, cfg.sac_batch_size,
                                                  self.generators["gen_real"], device=self.device)
        # capacity 0 until a member's first model training sizes it
        self.model_buffer = PopulationReplayBuffer(K, 0, cfg.sac_batch_size, self.generators["gen_model_rb"],
                                                   device=self.device)

        # per-member counters
        self.num_observed = np.zeros(K, dtype=np.int64)
        self.num_model_trainings = np.zeros(K, dtype=np.int64)
        self.num_sac_updates = np.zeros(K, dtype=np.int64)
        self.num_sac_updates_on_model_data = np.zeros(K, dtype=np.int64)
        self.rollout_length = np.zeros(K, dtype=np.int64)
        self.best_model_mse_seen = np.full(K, math.inf)
        # SAC metrics since each member's last train.csv row (on the device), phase timings (seconds)
        self.sac_metrics = PopulationMetricWindow(K, device=self.device)
        self.timings = {"sac": 0.0, "model_train": 0.0, "rollout": 0.0, "value_grads": 0.0}
        self._failures: dict[int, str] = {}
        # the exception class of a host-recorded failure (ModelDivergenceError for the model)
        self._failure_types: dict[int, type] = {}

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, deterministic: bool, members: np.ndarray) -> np.ndarray:
        """Per member: the policy mean for evaluation; in training uniform
        noise or the stochastic policy during the initial exploration, then the policy mean
        (``deterministic_real_actions``) or a sample."""
        cfg, K = self.config, self.num_members
        unit = np.zeros((K, self.act_dim), dtype=np.float64)
        mean = members.copy()
        sample = np.zeros(K, dtype=bool)
        if not deterministic:
            exploring = self.num_observed < cfg.initial_exploration_steps
            uniform = members & exploring & cfg.random_initial_explore
            for k in np.flatnonzero(uniform):
                unit[k] = self.np_rngs[k].uniform(-1.0, 1.0, size=self.act_dim)
            mean = members & ~uniform & ~exploring & cfg.deterministic_real_actions
            sample = members & ~uniform & ~mean
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(K, 1, -1), device=self.device)
        for chosen, det in ((mean, True), (sample, False)):
            if chosen.any():
                action = self.learner.act(obs_t, deterministic=det, members=np.flatnonzero(chosen).tolist())
                unit[chosen] = action[:, 0].cpu().numpy()[chosen]
        return self.actions.to_env_batch(unit)

    def observe(self, obs, action, reward, next_obs, terminated, truncated, members) -> None:
        K = self.num_members
        f32 = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(K, -1))  # noqa: E731
        transitions = TensorDict(
            {
                "observation": f32(obs),
                "action": torch.as_tensor(self.actions.to_unit_batch(action), dtype=torch.float32),
                "next": {
                    "observation": f32(next_obs),
                    # float64 -> float32, as torch.tensor([[float(reward)]]) rounds it
                    "reward": torch.as_tensor(np.asarray(reward, dtype=np.float64).reshape(K, 1),
                                              dtype=torch.float32),
                    "terminated": torch.as_tensor(np.asarray(terminated, dtype=bool).reshape(K, 1)),
                },
            },
            batch_size=[K],
        )
        self.real_buffer.add(transitions, members)
        self.num_observed[members] += 1

    # ------------------------------------------------------------------ learning
    def update(self, env_steps: np.ndarray, members: np.ndarray) -> MemberMetrics:
        """One MBPO step (the module docstring's loop) of each of ``members`` at its own ``env_steps[k]``."""
        cfg, K = self.config, self.num_members
        live = members & ~self._failed_mask()
        learning = live & (env_steps > cfg.initial_exploration_steps)
        if not learning.any():
            return {}
        step = env_steps - cfg.initial_exploration_steps
        epoch = (step - 1) // cfg.epoch_length
        training = learning & (step % cfg.freq_train_model == 0)
        rows: dict[str, tuple[torch.Tensor, np.ndarray]] = {}
        if training.any():
            for k in np.flatnonzero(training):
                self.rollout_length[k] = cfg.rollout_length(int(epoch[k]))
                self.model_buffer.resize(k, cfg.model_buffer_capacity(int(self.rollout_length[k])))
            per_member = self._train_models(training, epoch, env_steps)
            training &= ~self._failed_mask()
            self._fill_model_buffers(training, per_member, env_steps)
            training &= ~self._failed_mask()
        min_size = cfg.rollout_batch_size if cfg.min_model_buffer_size is None else cfg.min_model_buffer_size
        sac_due = (learning & ~self._failed_mask() & (step % cfg.sac_updates_every_steps == 0)
                   & (self.model_buffer.member_capacity > 0) & (self.model_buffer.size >= min_size))
        if cfg.num_sac_updates_per_step > 0 and sac_due.any():
            p_model = np.array([cfg.model_data_likelihood_at(int(e)) for e in epoch])
            self._sac_updates(sac_due, p_model)
        if training.any():
            rows = self._training_rows(training, epoch, per_member, env_steps)
        return rows

    # ..................................................................... model training
    def _train_models(self, training: np.ndarray, epoch: np.ndarray, env_steps: np.ndarray) -> dict[int, dict]:
        """Retrain the ensembles of the training members on their real data, all in one batched
        training (members with different amounts of data, possible after a resume, train in one
        call per amount); their records by member."""
        cfg, K = self.config, self.num_members
        records: dict[int, dict[str, float]] = {}
        calls: dict[tuple[int, bool], list[int]] = {}
        for k in np.flatnonzero(training):
            key = (int(self.real_buffer.size[k]), adds_mse(cfg, self.model_loss, int(epoch[k])))
            calls.setdefault(key, []).append(int(k))
        for (n, add_mse), members in calls.items():
            data = self.real_buffer.storage[:, :n]
            # each member's value targets from its own critic, with the single learner's kernels (one
            # pass over its real data per training: a loop over members off the minibatch loop)
            targets, value_records = {}, {}
            for k in members:
                targets[k], value_records[k] = value_targets_for(
                    cfg, self.model_loss, self.value_functions[k], data[k], self.timings)
            value_targets = None
            if targets[members[0]] is not None:
                filler = targets[members[0]]
                value_targets = stack_value_targets([targets.get(k, filler) for k in range(K)])
            t0 = time.perf_counter()
            results, errors = self.model_trainer.train_members(
                (data["observation"], data["action"], data["next", "reward"].reshape(K, n), data["next", "observation"]),
                members, value_fns=self.value_functions, value_targets=value_targets, add_mse=add_mse,
            )
            self.timings["model_train"] += time.perf_counter() - t0
            for k, error in errors.items():
                self._fail(k, ModelDivergenceError(error), env_steps)
            for k, result in results.items():
                self.num_model_trainings[k] += 1
                try:
                    self.best_model_mse_seen[k] = check_model_divergence(
                        result.best_val_mse, float(self.best_model_mse_seen[k]), cfg.max_model_mse_ratio,
                        int(self.num_model_trainings[k]),
                    )
                except FloatingPointError as exc:  # this member stops, the others go on
                    self._fail(k, exc, env_steps)
                    continue
                records[k] = {**value_records[k], **model_records(cfg, result)}
        return records

    # ..................................................................... rollouts
    @torch.no_grad()
    def _fill_model_buffers(self, training: np.ndarray, records: dict[int, dict], env_steps: np.ndarray) -> None:
        """Branched rollouts of each training member from its real states into its model buffer."""
        t0 = time.perf_counter()
        cfg = self.config
        pieces, owners = [], []
        for k in np.flatnonzero(training):
            g = self.generators["gen_rollout"][k]
            start_idx = torch.randint(int(self.real_buffer.size[k]), (cfg.rollout_batch_size,), generator=g)
            start = self.real_buffer.storage[k][start_idx.to(self.device)]["observation"]
            step = functools.partial(
                model_step, self.model.member_model(k), termination_fn=self.termination_fn, generator=g,
                chunk_size=cfg.rollout_chunk_size, bf16=cfg.rollout_bf16,
                deterministic=cfg.rollout_sampling == "mean",
            )
            policy = functools.partial(rollout_policy, cfg, act=functools.partial(
                self.learner.member_act, k, deterministic=False))
            try:
                rollouts = branched_rollout(start, int(self.rollout_length[k]), policy, step)
            except FloatingPointError as exc:
                self._fail(k, exc, env_steps)
                continue
            pieces.append(rollouts.select(*_KEYS))
            owners.append(np.full(rollouts.shape[0], k))
            records[k]["rollout_transitions"] = float(rollouts.shape[0])
        if pieces:
            self.model_buffer.extend(torch.cat(pieces, 0), np.concatenate(owners))
        self.timings["rollout"] += time.perf_counter() - t0

    # ..................................................................... SAC
    def _sac_updates(self, due: np.ndarray, p_model: np.ndarray) -> None:
        """``num_sac_updates_per_step`` batched SAC updates of the members ``due``. Member ``k``'s
        ``i``-th batch: ``use_model = rand(n, gen_mix) < p_model``, one draw
        of ``n_model · B`` indices from its model buffer and one of ``n_real · B`` from its real
        buffer, split into batches in update order."""
        t0 = time.perf_counter()
        cfg, K = self.config, self.num_members
        n, bs = cfg.num_sac_updates_per_step, cfg.sac_batch_size
        learners = np.flatnonzero(due).tolist()
        use_model = torch.zeros(K, n, dtype=torch.bool)
        model_index = torch.zeros(K, n, bs, dtype=torch.long, device=self.device)
        real_index = torch.zeros(K, n, bs, dtype=torch.long, device=self.device)
        for k in learners:
            use_model[k] = torch.rand(n, generator=self.generators["gen_mix"][k]) < float(p_model[k])
            n_model = int(use_model[k].sum())
            if n_model:
                model_index[k, use_model[k]] = self.model_buffer.draw(k, n_model * bs).view(n_model, bs)
            if n - n_model:
                real_index[k, ~use_model[k]] = self.real_buffer.draw(k, (n - n_model) * bs).view(n - n_model, bs)
            self.num_sac_updates_on_model_data[k] += n_model
        self.num_sac_updates[learners] += n
        from_model = use_model.to(self.device).view(K, n, 1)
        model_data = self.model_buffer.gather(model_index)
        real_data = self.real_buffer.gather(real_index)
        batches = real_data.apply(
            lambda real, model: torch.where(from_model.view(K, n, *([1] * (real.dim() - 2))), model, real),
            model_data,
        )
        for i in range(n):
            with autocast(self.device, cfg.sac_bf16):
                metrics = self.learner.update(batches[:, i], learners)
            actor = np.zeros(K, dtype=bool)
            actor[self.learner.last_actor_members] = True
            self.sac_metrics.add({name: (metrics[name], actor if name in _SAC_ACTOR_METRICS else due)
                                  for name in _SAC_METRICS if name in metrics})
        self.timings["sac"] += time.perf_counter() - t0

    # ..................................................................... records
    def _training_rows(self, training: np.ndarray, epoch: np.ndarray, records: dict[int, dict],
                       env_steps: np.ndarray) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
        """The train.csv metrics of the members that trained their model at this step, in this
        order: model records, SAC means since the last row, counters."""
        cfg = self.config
        sac_means = self.sac_metrics.pop_means(np.flatnonzero(training))  # one host read
        for k, means in sac_means.items():
            for name, value in means.items():
                if not math.isfinite(value) and k not in self._failures:
                    self._failures[k] = f"non-finite SAC metric sac_{name}={value} (env step {int(env_steps[k])})"
        out: dict[str, tuple[torch.Tensor, np.ndarray]] = {}

        def put(k: int, name: str, value: float) -> None:
            if name not in out:
                out[name] = (torch.zeros(self.num_members, dtype=torch.float64), np.zeros(self.num_members, bool))
            out[name][0][k] = value
            out[name][1][k] = True

        for k in np.flatnonzero(training & ~self._failed_mask()):
            e = int(epoch[k])
            row = {**records[k], **{f"sac_{name}": v for name, v in sac_means[k].items()}}
            row.update(
                epoch=float(e),
                rollout_length=float(self.rollout_length[k]),
                model_data_probability=cfg.model_data_likelihood_at(e),
                model_buffer_size=float(self.model_buffer.size[k]),
                model_buffer_capacity=float(self.model_buffer.member_capacity[k]),
                real_buffer_size=float(self.real_buffer.size[k]),
                num_model_trainings=float(self.num_model_trainings[k]),
                num_sac_updates=float(self.num_sac_updates[k]),
            )
            for name, value in row.items():
                put(k, name, value)
        return out

    # ------------------------------------------------------------------ failures
    def _fail(self, member: int, exc: BaseException, env_steps: np.ndarray) -> None:
        if int(member) not in self._failures:
            self._failures[int(member)] = f"{exc} (env step {int(env_steps[member])})"
            self._failure_types[int(member)] = type(exc)

    def _failed_mask(self) -> np.ndarray:
        mask = np.zeros(self.num_members, dtype=bool)
        mask[list(self._failures)] = True
        return mask

    def failures(self) -> dict[int, str]:
        """Model divergence and non-finite SAC metrics recorded on the host, and non-finite SAC losses
        recorded on the device by the learner (one read)."""
        failures = dict(self._failures)
        steps = self.learner.first_nonfinite_update.cpu().numpy()
        if steps.any():
            which = self.learner.first_nonfinite_loss.cpu().numpy()
            for k in np.flatnonzero(steps):
                failures[int(k)] = f"non-finite SAC loss {NONFINITE_LOSSES[which[k]]} at gradient step {int(steps[k])}"
        return failures

    def member_error(self, member: int) -> FloatingPointError | None:
        """Member ``member``'s failure as the exception its agent's ``update`` raises
        (:class:`ModelDivergenceError` for the model, ``FloatingPointError`` for SAC), or ``None``."""
        message = self.failures().get(member)
        return None if message is None else self._failure_types.get(member, FloatingPointError)(message)

    # ------------------------------------------------------------------ checkpoints
    def member_state_dict(self, member: int) -> dict[str, Any]:
        k = member
        return {
            "learner": self.learner.member_state_dict(k),
            "model": self.model.member_model(k).state_dict(),
            "model_optimizer": self.model_trainer.optimizer.member_state(k),
            "real_buffer": self.real_buffer.member_state(k),
            "model_buffer": self.model_buffer.member_state(k),
            "generators": {name: gens[k].get_state() for name, gens in self.generators.items() if name != "gen_sac"},
            "np_rng": self.np_rngs[k].bit_generator.state,
            "counters": {name: getattr(self, name)[k].item() for name in _COUNTERS},
            "sac_metrics": self.sac_metrics.state(k),
            "timings": dict(self.timings),
        }

    def load_member_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        k = member
        self.learner.load_member_state_dict(k, state["learner"])
        self.model.member_model(k).load_state_dict(state["model"])
        self.model_trainer.optimizer.load_member_state(k, state["model_optimizer"])
        self.real_buffer.load_member_state(k, state["real_buffer"])
        self.model_buffer.load_member_state(k, state["model_buffer"])
        for name, gstate in state["generators"].items():
            self.generators[name][k].set_state(gstate)
        self.np_rngs[k].bit_generator.state = state["np_rng"]
        for name, value in state["counters"].items():
            getattr(self, name)[k] = value
        self.sac_metrics.load(k, state["sac_metrics"])
        self.timings = dict(state["timings"])

    def member_policy_state_dict(self, member: int) -> dict[str, Any]:
        # evaluation acts with the SAC policy mean alone (``act`` with deterministic=True)
        return {"actor": self.learner.member_actor_state(member)}

    def load_member_policy_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        self.learner.load_member_actor_state(member, state["actor"])
