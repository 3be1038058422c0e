"""MBPO (Janner et al. 2019) with the four dynamics-model losses of the VaGraM paper.

The algorithm, top to bottom (spec ``vagram_mbpo.md`` §4.1; the runner owns the env loop and calls
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
                [VaGraM/IterVAML: value targets at s' from the current SAC critic/actor, cached by
                 real-buffer index and invalidated when the critic changes]
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
import math
import time
from typing import Any, Callable, ClassVar, Mapping

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

from vagram_bench.agents.sac import SACConfig, SACLearner, load_replay_buffer_state, replay_buffer_state
from vagram_bench.envs import env_family, env_variant, termination_fn
from vagram_bench.interfaces import Agent, AgentConfigError
from vagram_bench.models.ensemble import EnsembleDynamicsModel
from vagram_bench.models.losses import make_model_loss
from vagram_bench.models.trainer import ModelDivergenceError, ModelTrainer
from vagram_bench.models.value_cache import ValueGradientCache

from .config import MBPOConfig, mbpo_default_config

__all__ = [
    "MBPOAgent",
    "MBPOMSEAgent",
    "MBPOMLEAgent",
    "MBPOIterVAMLAgent",
    "MBPOVaGraMAgent",
    "ModelDivergenceError",
    "branched_rollout",
]

_TRANSITION_KEYS = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "terminated"),
    ("next", "done"),
)


# ==================================================================================================
# branched model rollouts
# ==================================================================================================
@torch.no_grad()
def branched_rollout(
    start_obs: torch.Tensor,
    horizon: int,
    policy: Callable[[torch.Tensor], torch.Tensor],
    model_step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    termination_fn: Callable[[torch.Tensor], torch.Tensor],
) -> TensorDict:
    """Roll ``horizon`` model steps out from every start state, each rollout stopping at its first
    termination.

    Only live rollouts are propagated (the batch shrinks as rollouts terminate), so the returned
    transitions are exactly those of not-yet-terminated rollouts, the terminating step included
    (mbrl-lib's ``rollout_model_and_populate_sac_buffer``).

    Args:
        start_obs: ``(N, obs_dim)`` start states (real states from the replay buffer).
        horizon: rollout length ``L >= 1``.
        policy: ``obs (n, obs_dim) -> action (n, act_dim)``; MBPO passes the stochastic SAC policy.
        model_step: ``(obs, action) -> (next_obs (n, obs_dim), reward (n,))``.
        termination_fn: ``next_obs (n, obs_dim) -> bool (n,)``.

    Returns:
        A flat :class:`~tensordict.TensorDict` of the kept transitions with keys ``observation``,
        ``action``, ``("next", "observation")``, ``("next", "reward")`` ``(n, 1)``,
        ``("next", "terminated")`` and ``("next", "done")`` (bool ``(n, 1)``), in step order.

    Raises:
        ModelDivergenceError: a prediction of a live rollout is not finite.

    Examples:
        >>> step = lambda s, a: (s + 1.0, s[:, 0])                    # known dynamics
        >>> term = lambda s: s[:, 0] >= 2.0                           # terminate at 2
        >>> td = branched_rollout(torch.tensor([[0.0], [1.0]]), 3, lambda s: torch.zeros(len(s), 1),
        ...                       step, term)
        >>> td["observation"].squeeze(-1).tolist(), td["next", "terminated"].squeeze(-1).tolist()
        ([0.0, 1.0, 1.0], [False, True, True])
    """
    if horizon < 1:
        raise ValueError(f"rollout horizon must be >= 1, got {horizon}")
    obs = start_obs
    pieces: list[TensorDict] = []
    for t in range(horizon):
        action = policy(obs)
        next_obs, reward = model_step(obs, action)
        if not (torch.isfinite(next_obs).all() and torch.isfinite(reward).all()):
            bad = (~torch.isfinite(next_obs).all(-1) | ~torch.isfinite(reward)).sum().item()
            raise ModelDivergenceError(
                f"dynamics model produced non-finite predictions for {bad} of {obs.shape[0]} live "
                f"rollouts at rollout step {t}; refusing to fill the SAC buffer with them"
            )
        terminated = termination_fn(next_obs).reshape(-1).to(torch.bool)
        n = obs.shape[0]
        pieces.append(
            TensorDict(
                {
                    "observation": obs,
                    "action": action,
                    "next": {
                        "observation": next_obs,
                        "reward": reward.reshape(n, 1),
                        "terminated": terminated.reshape(n, 1),
                        "done": terminated.reshape(n, 1),
                    },
                },
                batch_size=[n],
            )
        )
        alive = ~terminated
        if not bool(alive.any()):
            break
        obs = next_obs[alive]
    return torch.cat(pieces, 0)


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
        updates = {}
        for name in ("num_layers", "hid_size"):
            if name not in capacity:
                continue
            want = int(capacity[name])
            have = getattr(config, name)
            if name in explicit_fields and have != want:
                raise AgentConfigError(
                    f"agent.{name}={have} conflicts with the env's model-capacity constraint "
                    f"{name}={want} ({dict(capacity)}); drop the override or use an env id without "
                    "a capacity constraint"
                )
            updates[name] = want
        return dataclasses.replace(config, **updates)

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
        if not isinstance(cfg, MBPOConfig):
            raise AgentConfigError(f"{type(self).__name__} needs an MBPOConfig, got {type(cfg).__name__}")
        if cfg.model_loss != self.model_loss_name:
            raise AgentConfigError(
                f"agent.model_loss={cfg.model_loss!r} conflicts with agent {type(self).__name__} "
                f"(model loss {self.model_loss_name!r}); choose the agent "
                f"mbpo_{cfg.model_loss} instead of overriding model_loss"
            )
        if len(observation_space.shape) != 1 or len(action_space.shape) != 1:
            raise AgentConfigError(
                f"MBPO needs flat Box spaces; got observation {observation_space.shape}, "
                f"action {action_space.shape}"
            )
        self.obs_dim = int(observation_space.shape[0])
        self.act_dim = int(action_space.shape[0])
        low = np.asarray(action_space.low, dtype=np.float64)
        high = np.asarray(action_space.high, dtype=np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise AgentConfigError(f"MBPO needs a bounded action space; got low={low}, high={high}")
        self._act_scale = (high - low) / 2.0
        self._act_center = (high + low) / 2.0

        # One independent, seeded stream per purpose, so that e.g. a longer rollout does not shift
        # the SAC sampling sequence.
        seeds = np.random.SeedSequence(int(seed)).generate_state(7, dtype=np.uint64)
        self.gen_sac = torch.Generator().manual_seed(int(seeds[0] >> 1))
        self.gen_real = torch.Generator().manual_seed(int(seeds[1] >> 1))
        self.gen_model_rb = torch.Generator().manual_seed(int(seeds[2] >> 1))
        self.gen_model = torch.Generator().manual_seed(int(seeds[3] >> 1))
        self.gen_rollout = torch.Generator().manual_seed(int(seeds[4] >> 1))
        self.gen_mix = torch.Generator().manual_seed(int(seeds[5] >> 1))
        self.np_rng = np.random.default_rng(int(seeds[6] >> 1))

        self.learner = SACLearner(
            self.obs_dim, self.act_dim, self.sac_config(cfg), generator=self.gen_sac, device=self.device
        )
        self.termination_fn = termination_fn(env_id)
        self.model_loss = make_model_loss(
            cfg.model_loss, bounded=cfg.vagram_bounded, clip_quantile=cfg.value_grad_clip_quantile
        )
        self.model = EnsembleDynamicsModel(
            self.obs_dim,
            self.act_dim,
            ensemble_size=cfg.ensemble_size,
            num_elites=cfg.num_elites,
            num_layers=cfg.num_layers,
            hid_size=cfg.hid_size,
            gaussian=self.model_loss.gaussian,
            generator=self.gen_model,
            device=self.device,
        )
        self.model_trainer = self._make_model_trainer()
        self.value_cache = (
            ValueGradientCache(cfg.dataset_size, device=self.device)
            if self.model_loss.needs_value_function
            else None
        )
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
        self.best_model_score_seen = math.inf
        # SAC metrics accumulated since the last train.csv row, and phase timings (seconds)
        self._sac_sums: dict[str, float] = {}
        self._sac_counts: dict[str, int] = {}
        self.timings = {"sac": 0.0, "model_train": 0.0, "rollout": 0.0, "value_grads": 0.0}

    # ------------------------------------------------------------------ components
    @staticmethod
    def sac_config(cfg: MBPOConfig) -> SACConfig:
        """The :class:`~vagram_bench.agents.sac.SACConfig` of the agent's SAC learner."""
        return SACConfig(
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

    def _make_model_trainer(self) -> ModelTrainer:
        cfg = self.config
        return ModelTrainer(
            self.model,
            self.model_loss,
            generator=self.gen_model,
            lr=cfg.model_lr,
            weight_decay=cfg.model_wd,
            batch_size=cfg.model_batch_size,
            validation_ratio=cfg.validation_ratio,
            patience=cfg.patience,
            improvement_threshold=cfg.improvement_threshold,
            max_epochs=cfg.num_epochs_train_model,
        )

    # ------------------------------------------------------------------ acting
    def _to_env_action(self, action: torch.Tensor) -> np.ndarray:
        a = action.detach().cpu().numpy().astype(np.float64).reshape(self.act_dim)
        return (self._act_center + self._act_scale * a).astype(self.action_space.dtype)

    def _to_policy_action(self, action: np.ndarray) -> np.ndarray:
        a = (np.asarray(action, dtype=np.float64).reshape(self.act_dim) - self._act_center) / self._act_scale
        return np.clip(a, -1.0, 1.0)

    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """Evaluation: the policy mean. Training: uniform noise or the stochastic policy during the
        initial exploration, then the policy mean (``deterministic_real_actions``) or a sample."""
        cfg = self.config
        if not deterministic:
            exploring = self.num_observed < cfg.initial_exploration_steps
            if exploring and cfg.random_initial_explore:
                a = self.np_rng.uniform(-1.0, 1.0, size=self.act_dim)
                return self._to_env_action(torch.as_tensor(a))
            deterministic = (not exploring) and cfg.deterministic_real_actions
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(1, -1)
        with torch.no_grad():
            action = self.learner.act(obs_t, deterministic=deterministic)
        return self._to_env_action(action[0])

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        f32 = dict(dtype=torch.float32, device=self.device)
        td = TensorDict(
            {
                "observation": torch.as_tensor(np.asarray(obs), **f32).reshape(1, self.obs_dim),
                "action": torch.as_tensor(self._to_policy_action(action), **f32).reshape(1, self.act_dim),
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
            self._sac_updates(cfg.num_sac_updates_per_step, cfg.model_data_probability(epoch))
        if step % cfg.freq_train_model == 0:
            metrics.update(self._sac_metrics_row())
            metrics.update(
                epoch=float(epoch),
                rollout_length=float(self.rollout_length),
                model_data_probability=cfg.model_data_probability(epoch),
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
        cfg = self.config
        data = self._real_data()
        n = data.shape[0]
        indices = torch.arange(n, device=self.device)  # storage slot = replay-buffer index
        metrics: dict[str, float] = {}
        value_fn = None
        if self.value_cache is not None:
            # Fill the cache for every real transition in one batched pass with the current critic
            # (spec §1.8); the trainer's lookups are then hits.
            t0 = time.perf_counter()
            self.value_cache.reset_stats()
            vt = self.value_cache.get(indices, data["next", "observation"], self.learner)
            norms = vt.grads.norm(dim=-1).reshape(-1)
            q = torch.quantile(norms.double(), torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
            metrics.update(value_grad_norm_q05=q[0].item(), value_grad_norm_q50=q[1].item(),
                           value_grad_norm_q95=q[2].item())
            self.timings["value_grads"] += time.perf_counter() - t0
            value_fn = self.learner
        t0 = time.perf_counter()
        add_mse = cfg.add_mse_first_epoch and epoch == 0 and self.model_loss.needs_value_function
        result = self.model_trainer.train(
            data["observation"],
            data["action"],
            data["next", "reward"].reshape(-1),
            data["next", "observation"],
            indices=indices,
            value_fn=value_fn,
            cache=self.value_cache,
            add_mse=add_mse,
        )
        self.timings["model_train"] += time.perf_counter() - t0
        self.num_model_trainings += 1
        val = float(result.best_val_score)
        if not math.isfinite(val) or val > cfg.max_model_score_ratio * self.best_model_score_seen:
            raise ModelDivergenceError(
                f"model validation score blew up: {val:.4g} at model training #{self.num_model_trainings} "
                f"(lowest so far {self.best_model_score_seen:.4g}, limit ratio "
                f"max_model_score_ratio={cfg.max_model_score_ratio:g})"
            )
        self.best_model_score_seen = min(self.best_model_score_seen, val)
        metrics.update(
            model_train_score=float(result.train_losses[-1]) if result.train_losses else math.nan,
            model_val_score=val,
            model_train_epochs=float(result.epochs),
        )
        # one 0/1 column per member: the runner averages metrics over a train.csv window, which turns
        # these into "fraction of the window's trainings in which member i was an elite"
        elites = {int(e) for e in result.elites}
        metrics.update({f"model_elite_{i}": float(i in elites) for i in range(cfg.ensemble_size)})
        if self.value_cache is not None:
            # over this call: the one batched fill (misses) plus the trainer's lookups (hits)
            metrics["value_cache_hit_rate"] = self.value_cache.hit_rate
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
        if n == self.model_buffer_capacity:  # full ring: the write cursor marks the oldest entry
            cursor = int(self.model_buffer._writer._cursor) % n
            data = torch.cat([data[cursor:], data[:cursor]], 0)
        return data

    def _model_step(self, obs: torch.Tensor, action: torch.Tensor):
        return self.model.sample_step(
            obs, action, generator=self.gen_rollout, chunk_size=self.config.rollout_chunk_size,
            bf16=self.config.rollout_bf16,
        )

    def _rollout_policy(self, obs: torch.Tensor) -> torch.Tensor:
        chunk = self.config.rollout_chunk_size
        with self._autocast(self.config.rollout_bf16):
            actions = [self.learner.act(o, deterministic=False) for o in obs.split(chunk)]
        return torch.cat(actions, 0).float()

    def _autocast(self, enabled: bool):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.no_grad()
    def _fill_model_buffer(self, horizon: int) -> dict[str, float]:
        t0 = time.perf_counter()
        cfg = self.config
        n_real = len(self.real_buffer)
        start_idx = torch.randint(n_real, (cfg.rollout_batch_size,), generator=self.gen_rollout)
        start = self.real_buffer.storage[start_idx]["observation"]
        rollouts = branched_rollout(
            start, horizon, self._rollout_policy, self._model_step, self.termination_fn
        )
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
            for k, v in out.items():
                self._sac_sums[k] = self._sac_sums.get(k, 0.0) + float(v)
                self._sac_counts[k] = self._sac_counts.get(k, 0) + 1
        self.num_sac_updates += n_updates
        self.num_sac_updates_on_model_data += n_model
        self.timings["sac"] += time.perf_counter() - t0

    def _sac_metrics_row(self) -> dict[str, float]:
        """SAC metrics averaged over the updates since the last row (each key over the updates
        that reported it: actor/temperature entries only exist on actor-update steps)."""
        row = {f"sac_{k}": v / self._sac_counts[k] for k, v in self._sac_sums.items()}
        for k, v in row.items():
            if not math.isfinite(v):
                raise FloatingPointError(f"non-finite SAC metric {k}={v}")
        self._sac_sums, self._sac_counts = {}, {}
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
                "best_model_score_seen": self.best_model_score_seen,
            },
            "sac_sums": dict(self._sac_sums),
            "sac_counts": dict(self._sac_counts),
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
            setattr(self, k, v)
        self._sac_sums = dict(state["sac_sums"])
        self._sac_counts = dict(state["sac_counts"])
        self.timings = dict(state["timings"])
        if self.value_cache is not None:
            self.value_cache.clear()


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
    """MBPO with an ensemble trained by bounded VaGraM with a value-gradient cache (``mbpo_vagram``)."""

    model_loss_name = "vagram"
    description = "MBPO, deterministic ensemble, VaGraM (bounded, gradient cache) model loss"
