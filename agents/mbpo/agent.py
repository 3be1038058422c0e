"""MBPO (Janner et al. 2019) with the four dynamics-model losses of the VaGraM paper.

The algorithm, top to bottom (upstream ``mbrl/algorithms/mbpo.py``, pairlab/vagram@cc7e2e4; the runner owns
the env loop and calls
:meth:`MBPOAgent.act` / :meth:`~MBPOAgent.observe` / :meth:`~MBPOAgent.update` once per real step):

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
                buffer, else from the real buffer; one SACLearner.update

Deviations from mbrl-lib and why are listed in ``docs/mbpo.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, ClassVar, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

from vagram_bench.agents.common import (
    ActionScaler,
    MetricWindow,
    apply_model_capacity,
    check_model_loss,
    load_replay_buffer_state,
    replay_buffer_state,
    stream_seeds,
    torch_generators,
)
from vagram_bench.agents.sac import SACConfig, SACLearner
from vagram_bench.envs import env_family, env_variant, termination_fn
from vagram_bench.interfaces import Agent, AgentConfigError
from vagram_bench.models.ensemble import EnsembleDynamicsModel
from vagram_bench.models.losses import VaGraMLoss, ValueTargets, compute_value_targets, make_model_loss
from vagram_bench.models.model_env import branched_rollout, model_step
from vagram_bench.models.trainer import ModelDivergenceError, ModelTrainer

from .config import MBPOConfig, mbpo_default_config

__all__ = [
    "MBPOAgent",
    "MBPOMSEAgent",
    "MBPOMLEAgent",
    "MBPOIterVAMLAgent",
    "MBPOVaGraMAgent",
    "ModelDivergenceError",
]


# ==================================================================================================
# the parts a single agent and a population build alike
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
    )


def make_model_trainer(cfg: MBPOConfig, model: EnsembleDynamicsModel, model_loss, generator: torch.Generator
                       ) -> ModelTrainer:
    return ModelTrainer(model, model_loss, generator=generator, **model_trainer_options(cfg))


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
        model_val_mse=float(result.best_val_mse),
        model_train_epochs=float(result.epochs),
    )
    # one 0/1 column per member: the runner averages metrics over a train.csv window, which turns
    # these into "fraction of the window's trainings in which member i was an elite"
    elites = {int(e) for e in result.elites}
    metrics.update({f"model_elite_{i}": float(i in elites) for i in range(cfg.ensemble_size)})
    return metrics


def train_dynamics_model(cfg: MBPOConfig, model_loss, trainer: ModelTrainer, value_fn, data: TensorDict,
                         epoch: int, timings: dict[str, float]) -> tuple[dict[str, float], Any]:
    """Retrain the ensemble on all real data ``data``; returns the model records and the trainer's
    result. ``value_fn``: the critic the value-aware losses read."""
    value_targets, metrics = value_targets_for(cfg, model_loss, value_fn, data, timings)
    t0 = time.perf_counter()
    result = trainer.train(
        data["observation"],
        data["action"],
        data["next", "reward"].reshape(-1),
        data["next", "observation"],
        value_fn=value_fn,
        value_targets=value_targets,
        add_mse=adds_mse(cfg, model_loss, epoch),
    )
    timings["model_train"] += time.perf_counter() - t0
    metrics.update(model_records(cfg, result))
    return metrics, result


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


# ==================================================================================================
# the agent
# ==================================================================================================
class MBPOAgent(Agent):
    """MBPO with a bootstrap ensemble trained by one of the four model losses.

    Subclasses only set :attr:`model_loss_name` (``mbpo_mse``, ``mbpo_mle``, ``mbpo_itervaml``,
    ``mbpo_vagram``). See the module docstring for the loop and :class:`MBPOConfig` for the fields.

    Args:
        config: a resolved :class:`MBPOConfig` whose ``model_loss`` equals the agent's.
        observation_space: the env's observation ``Box``.
        action_space: the env's action ``Box`` (any bounds; the policy acts in ``[-1, 1]`` and is
            rescaled affinely).
        env_id: registered env id (termination function, per-family defaults).
        seed: seeds every generator of the agent.
        device: torch device.

    Examples:
        >>> import gymnasium as gym, vagram_bench
        >>> from vagram_bench.agents.mbpo import MBPOVaGraMAgent
        >>> env = gym.make("InvertedPendulum-v5")
        >>> cfg = MBPOVaGraMAgent.default_config("InvertedPendulum-v5")
        >>> agent = MBPOVaGraMAgent(cfg, env.observation_space, env.action_space,
        ...                         env_id="InvertedPendulum-v5", seed=0)
    """

    Config: ClassVar[type] = MBPOConfig
    uses_dynamics_model: ClassVar[bool] = True
    model_loss_name: ClassVar[str] = ""
    description: ClassVar[str] = "MBPO"

    # ------------------------------------------------------------------ configuration
    @classmethod
    def default_config(cls, env_id: str) -> MBPOConfig:
        """Per-env-family and variant defaults (``vagram_bench.envs.env_family`` / ``env_variant``) for this
        agent's loss."""
        return mbpo_default_config(env_family(env_id), cls.model_loss_name, env_variant(env_id))

    @classmethod
    def apply_model_capacity(
        cls, config: MBPOConfig, capacity: Mapping[str, int], explicit_fields: set[str]
    ) -> MBPOConfig:
        """Set ``num_layers``/``hid_size`` from a capacity id; an explicit conflicting override is
        an :class:`AgentConfigError`."""
        fields = {"num_layers": ("num_layers",), "hid_size": ("hid_size",)}
        return apply_model_capacity(config, capacity, explicit_fields, fields)

    # ------------------------------------------------------------------ construction
    def __init__(
        self,
        config: MBPOConfig,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        *,
        env_id: str,
        seed: int,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(config, observation_space, action_space, env_id=env_id, seed=seed, device=device)
        cfg = config
        self.check_setup(cfg, observation_space, action_space)
        self.obs_dim = int(observation_space.shape[0])
        self.act_dim = int(action_space.shape[0])
        self.actions = ActionScaler(action_space, "MBPO")

        streams = mbpo_streams(seed)
        for name in GENERATOR_NAMES:
            setattr(self, name, streams[name])
        self.np_rng = streams["np_rng"]

        self.learner = SACLearner(
            self.obs_dim, self.act_dim, self.sac_config(cfg), generator=self.gen_sac, device=self.device
        )
        self.termination_fn = termination_fn(env_id)
        self.model_loss = make_model_loss(
            cfg.model_loss, bounded=cfg.vagram_bounded, clip_quantile=cfg.value_grad_clip_quantile
        )
        self.model = make_dynamics_model(cfg, self.obs_dim, self.act_dim, self.model_loss, self.gen_model, self.device)
        self.model_trainer = make_model_trainer(cfg, self.model, self.model_loss, self.gen_model)
        self.real_buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(cfg.dataset_size, device=self.device),
            generator=self.gen_real,
        )
        self.model_buffer: TensorDictReplayBuffer | None = None
        self.model_buffer_capacity = 0

        # counters
        self.num_observed = 0
        self.num_model_trainings = 0
        self.num_sac_updates = 0
        self.num_sac_updates_on_model_data = 0
        self.rollout_length = 0
        self.best_model_mse_seen = math.inf
        # SAC metrics accumulated since the last train.csv row, and phase timings (seconds)
        self.sac_metrics = MetricWindow()
        self.timings = {"sac": 0.0, "model_train": 0.0, "rollout": 0.0, "value_grads": 0.0}

    @classmethod
    def check_setup(cls, config: MBPOConfig, observation_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
        """Raise :class:`AgentConfigError` unless ``config`` is this agent's and the spaces are flat."""
        if not isinstance(config, MBPOConfig):
            raise AgentConfigError(f"{cls.__name__} needs an MBPOConfig, got {type(config).__name__}")
        check_model_loss(config.model_loss, cls.model_loss_name, "mbpo")
        if len(observation_space.shape) != 1 or len(action_space.shape) != 1:
            raise AgentConfigError(
                f"MBPO needs flat Box spaces; got observation {observation_space.shape}, "
                f"action {action_space.shape}"
            )

    @classmethod
    def make_population(cls, config: MBPOConfig, observation_space: gym.spaces.Box, action_space: gym.spaces.Box,
                        *, env_id: str, seeds: Sequence[int], device: str | torch.device = "cpu"):
        """The seeds' agents as one :class:`~vagram_bench.agents.mbpo.population.MBPOPopulation`
        (batched SAC, buffers, ensembles and rollouts; member ``k`` is ``cls(..., seed=seeds[k])``)."""
        from .population import MBPOPopulation

        return MBPOPopulation(cls, config, observation_space, action_space, env_id=env_id, seeds=seeds,
                              device=device)

    # ------------------------------------------------------------------ components
    @staticmethod
    def sac_config(cfg: MBPOConfig) -> SACConfig:
        """The :class:`~vagram_bench.agents.sac.SACConfig` of the agent's SAC learner: the VaGraM
        paper's MBPO uses pytorch_sac (``conf/algorithm/mbpo.yaml``, pairlab/vagram@caf9b92), whose
        layers are initialised orthogonally with zero biases."""
        return SACConfig(
            init="orthogonal",
            num_layers=cfg.sac_num_layers,
            hidden_size=cfg.sac_hidden_size,
            batch_size=cfg.sac_batch_size,
            actor_lr=cfg.sac_actor_lr,
            critic_lr=cfg.sac_critic_lr,
            alpha_lr=cfg.sac_alpha_lr,
            gamma=cfg.sac_gamma,
            tau=cfg.sac_tau,
            target_update_interval=cfg.sac_target_update_interval,
            actor_update_interval=cfg.sac_actor_update_interval,
            init_alpha=cfg.sac_init_alpha,
            learn_alpha=cfg.sac_learnable_alpha,
            target_entropy=cfg.sac_target_entropy,
        )

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """Evaluation: the policy mean. Training: uniform noise or the stochastic policy during the
        initial exploration, then the policy mean (``deterministic_real_actions``) or a sample."""
        cfg = self.config
        if not deterministic:
            exploring = self.num_observed < cfg.initial_exploration_steps
            if exploring and cfg.random_initial_explore:
                a = self.np_rng.uniform(-1.0, 1.0, size=self.act_dim)
                return self.actions.to_env(a)
            deterministic = (not exploring) and cfg.deterministic_real_actions
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(1, -1)
        with torch.no_grad():
            action = self.learner.act(obs_t, deterministic=deterministic)
        return self.actions.to_env(action[0])

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        f32 = dict(dtype=torch.float32, device=self.device)
        td = TensorDict(
            {
                "observation": torch.as_tensor(np.asarray(obs), **f32).reshape(1, self.obs_dim),
                "action": torch.as_tensor(self.actions.to_unit(action), **f32).reshape(1, self.act_dim),
                "next": {
                    "observation": torch.as_tensor(np.asarray(next_obs), **f32).reshape(1, self.obs_dim),
                    "reward": torch.tensor([[float(reward)]], **f32),
                    "terminated": torch.tensor([[bool(terminated)]], device=self.device),
                    "truncated": torch.tensor([[bool(truncated)]], device=self.device),
                    "done": torch.tensor([[bool(terminated or truncated)]], device=self.device),
                },
            },
            batch_size=[1],
        )
        self.real_buffer.extend(td)
        self.num_observed += 1

    # ------------------------------------------------------------------ learning
    @classmethod
    def phase(cls, config: MBPOConfig, env_step: int) -> str:
        # Nothing is learned before the first model training (SAC needs model rollouts).
        step = env_step - config.initial_exploration_steps
        if step < config.freq_train_model:
            return "exploring"
        return "training the model" if step % config.freq_train_model == 0 else "learning"

    def update(self, env_step: int) -> dict[str, float]:
        cfg = self.config
        if env_step <= cfg.initial_exploration_steps:
            return {}
        step = env_step - cfg.initial_exploration_steps
        epoch = (step - 1) // cfg.epoch_length
        metrics: dict[str, float] = {}
        if step % cfg.freq_train_model == 0:
            self.rollout_length = cfg.rollout_length(epoch)
            self._resize_model_buffer(cfg.model_buffer_capacity(self.rollout_length))
            metrics.update(self._train_model(epoch))
            metrics.update(self._fill_model_buffer(self.rollout_length))
        min_size = cfg.rollout_batch_size if cfg.min_model_buffer_size is None else cfg.min_model_buffer_size
        if (
            cfg.num_sac_updates_per_step > 0
            and step % cfg.sac_updates_every_steps == 0
            and self.model_buffer is not None
            and len(self.model_buffer) >= min_size
        ):
            self._sac_updates(cfg.num_sac_updates_per_step, cfg.model_data_likelihood_at(epoch))
        if step % cfg.freq_train_model == 0:
            metrics.update(self._sac_metrics_row())
            metrics.update(
                epoch=float(epoch),
                rollout_length=float(self.rollout_length),
                model_data_probability=cfg.model_data_likelihood_at(epoch),
                model_buffer_size=float(len(self.model_buffer)),
                model_buffer_capacity=float(self.model_buffer_capacity),
                real_buffer_size=float(len(self.real_buffer)),
                num_model_trainings=float(self.num_model_trainings),
                num_sac_updates=float(self.num_sac_updates),
            )
        return metrics

    # ..................................................................... model training
    def _real_data(self) -> TensorDict:
        n = len(self.real_buffer)
        return self.real_buffer.storage[:n]

    def _train_model(self, epoch: int) -> dict[str, float]:
        """Retrain the ensemble on all real data; returns the model records."""
        metrics, result = train_dynamics_model(
            self.config, self.model_loss, self.model_trainer, self.learner, self._real_data(), epoch, self.timings
        )
        self.num_model_trainings += 1
        self.best_model_mse_seen = check_model_divergence(
            result.best_val_mse, self.best_model_mse_seen, self.config.max_model_mse_ratio, self.num_model_trainings
        )
        return metrics

    # ..................................................................... rollouts
    def _resize_model_buffer(self, capacity: int) -> None:
        """(Re)create the model buffer with ``capacity``, keeping its newest contents."""
        if self.model_buffer is not None and capacity == self.model_buffer_capacity:
            return
        old = self._model_buffer_contents()
        self.model_buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(capacity, device=self.device),
            generator=self.gen_model_rb,
        )
        self.model_buffer_capacity = capacity
        if old is not None and old.shape[0]:
            self.model_buffer.extend(old[-capacity:])

    def _model_buffer_contents(self) -> TensorDict | None:
        """The model buffer's transitions, oldest first."""
        if self.model_buffer is None or len(self.model_buffer) == 0:
            return None
        n = len(self.model_buffer)
        data = self.model_buffer.storage[:n]
        if n == self.model_buffer_capacity:  # full ring: the next write position holds the oldest entry
            cursor = self.model_buffer.write_count % n
            data = torch.cat([data[cursor:], data[:cursor]], 0)
        return data

    def _rollout_policy(self, obs: torch.Tensor) -> torch.Tensor:
        return rollout_policy(self.config, obs, functools.partial(self.learner.act, deterministic=False))

    def _autocast(self, enabled: bool):
        return autocast(self.device, enabled)

    @torch.no_grad()
    def _fill_model_buffer(self, horizon: int) -> dict[str, float]:
        t0 = time.perf_counter()
        cfg = self.config
        n_real = len(self.real_buffer)
        start_idx = torch.randint(n_real, (cfg.rollout_batch_size,), generator=self.gen_rollout)
        start = self.real_buffer.storage[start_idx]["observation"]
        step = functools.partial(
            model_step, self.model, termination_fn=self.termination_fn, generator=self.gen_rollout,
            chunk_size=cfg.rollout_chunk_size, bf16=cfg.rollout_bf16,
        )
        rollouts = branched_rollout(start, horizon, self._rollout_policy, step)
        self.model_buffer.extend(rollouts)
        self.timings["rollout"] += time.perf_counter() - t0
        return {"rollout_transitions": float(rollouts.shape[0])}

    # ..................................................................... SAC
    def _sac_updates(self, n_updates: int, p_model: float) -> None:
        t0 = time.perf_counter()
        use_model = torch.rand(n_updates, generator=self.gen_mix) < p_model
        n_model = int(use_model.sum())
        # one gather per buffer for all of this step's batches (fewer replay-buffer calls)
        bs = self.config.sac_batch_size
        model_batches = iter(self.model_buffer.sample(n_model * bs).split(bs)) if n_model else iter(())
        n_real = n_updates - n_model
        real_batches = iter(self.real_buffer.sample(n_real * bs).split(bs)) if n_real else iter(())
        for from_model in use_model.tolist():
            batch = next(model_batches) if from_model else next(real_batches)
            with self._autocast(self.config.sac_bf16):
                out = self.learner.update(batch)
            self.sac_metrics.add(out)
        self.num_sac_updates += n_updates
        self.num_sac_updates_on_model_data += n_model
        self.timings["sac"] += time.perf_counter() - t0

    def _sac_metrics_row(self) -> dict[str, float]:
        """SAC metrics averaged over the updates since the last row (each key over the updates
        that reported it: actor/temperature entries only exist on actor-update steps)."""
        row = {f"sac_{k}": v for k, v in self.sac_metrics.pop_means().items()}
        for k, v in row.items():
            if not math.isfinite(v):
                raise FloatingPointError(f"non-finite SAC metric {k}={v}")
        return row

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "learner": self.learner.state_dict(),
            "model": self.model.state_dict(),
            "model_optimizer": self.model_trainer.optimizer.state_dict(),
            # filled rows only: the preallocated storages would make every checkpoint ~120 MB
            "real_buffer": replay_buffer_state(self.real_buffer),
            "model_buffer": None if self.model_buffer is None else replay_buffer_state(self.model_buffer),
            "model_buffer_capacity": self.model_buffer_capacity,
            "generators": {
                name: getattr(self, name).get_state()
                for name in ("gen_sac", "gen_real", "gen_model_rb", "gen_model", "gen_rollout", "gen_mix")
            },
            "np_rng": self.np_rng.bit_generator.state,
            "counters": {
                "num_observed": self.num_observed,
                "num_model_trainings": self.num_model_trainings,
                "num_sac_updates": self.num_sac_updates,
                "num_sac_updates_on_model_data": self.num_sac_updates_on_model_data,
                "rollout_length": self.rollout_length,
                "best_model_mse_seen": self.best_model_mse_seen,
            },
            "sac_metrics": self.sac_metrics.state(),
            "timings": dict(self.timings),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.model.load_state_dict(state["model"])
        self.model_trainer.optimizer.load_state_dict(state["model_optimizer"])
        load_replay_buffer_state(self.real_buffer, state["real_buffer"], device=self.device)
        self.model_buffer = None
        self.model_buffer_capacity = 0
        if state["model_buffer"] is not None:
            self._resize_model_buffer(int(state["model_buffer_capacity"]))
            load_replay_buffer_state(self.model_buffer, state["model_buffer"], device=self.device)
        for name, gstate in state["generators"].items():
            getattr(self, name).set_state(gstate)
        # ReplayBuffer.load_state_dict installs a generator of its own; re-bind ours (same state)
        self.real_buffer.set_rng(self.gen_real)
        if self.model_buffer is not None:
            self.model_buffer.set_rng(self.gen_model_rb)
        self.np_rng.bit_generator.state = state["np_rng"]
        for k, v in state["counters"].items():
            if k == "best_model_score_seen":  # checkpoints from before the guard used the MSE
                continue
            setattr(self, k, v)
        self.sac_metrics.load(state["sac_metrics"])
        self.timings = dict(state["timings"])


class MBPOMSEAgent(MBPOAgent):
    """MBPO with a deterministic ensemble trained by MSE (``mbpo_mse``)."""

    model_loss_name = "mse"
    description = "MBPO, deterministic ensemble, MSE model loss"


class MBPOMLEAgent(MBPOAgent):
    """MBPO with a Gaussian ensemble trained by maximum likelihood, sampled rollouts (``mbpo_mle``)."""

    model_loss_name = "mle"
    description = "MBPO, Gaussian ensemble, maximum-likelihood model loss"


class MBPOIterVAMLAgent(MBPOAgent):
    """MBPO with an ensemble trained by IterVAML over the 4 SAC Q heads (``mbpo_itervaml``)."""

    model_loss_name = "itervaml"
    description = "MBPO, deterministic ensemble, IterVAML value-difference model loss"


class MBPOVaGraMAgent(MBPOAgent):
    """MBPO with an ensemble trained by bounded VaGraM, value gradients from the current critic (``mbpo_vagram``)."""

    model_loss_name = "vagram"
    description = "MBPO, deterministic ensemble, VaGraM (bounded) model loss"
