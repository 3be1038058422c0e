"""Configuration of the SVG agents (SAC-SVG(H), Amos et al., L4DC 2021).

Field names follow the upstream ``facebookresearch/svg`` configs (``config/train.yaml``,
``config/env/mbpo_*.yaml``) so that numbers from the paper's configs can be typed in unchanged.
Per-env defaults (upstream ``config/env/mbpo_*.yaml``, facebookresearch/svg@9fdf03a) are selected from the
env id through
:func:`vagram_bench.envs.env_family`; every field stays overridable
(``python -m vagram_bench.run agent=svg_mse env=Hopper-v5 agent.horizon=4``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from vagram_bench.agents.common import apply_model_capacity, check_model_loss
from vagram_bench.interfaces import AgentConfigError

__all__ = [
    "SVGConfig",
    "ENV_FAMILY_DEFAULTS",
    "CAPACITY_FIELDS",
    "svg_default_config",
]


@dataclass
class SVGConfig:
    """Hyperparameters of SAC-SVG(H). Defaults are upstream's global ``config/train.yaml`` values;
    the per-env values of upstream's ``config/env/mbpo_*.yaml`` are filled in by
    :func:`svg_default_config`."""

    # ------------------------------------------------------------------ model loss
    model_loss: str = "mse"
    """Dynamics-model loss, a key of :data:`vagram_bench.models.losses.MODEL_LOSSES`: ``mse``
    (upstream), ``mle`` (Gaussian NLL head), ``itervaml``, ``vagram`` (value-aware; weights from the
    current critic). Fixed by the agent name
    (``svg_mse`` ... ``svg_vagram``); overriding it to another value is an error."""
    vagram_bounded: bool = True
    """VaGraM only: the bounded (diagonal, the paper's) objective; ``False`` = unbounded Taylor form."""
    value_grad_clip_quantile: float | None = None
    """VaGraM only: clip per-sample value-gradient norms at this batch quantile (e.g. 0.95);
    ``None`` = no clipping (the upstream HEAD behaviour)."""

    # ------------------------------------------------------------------ schedule
    num_train_steps: int = 1_000_000
    """Length of the target-entropy schedule, in env steps (upstream ``num_train_steps``). Set it to
    the run's ``steps`` to make the schedule end with the run; it does not stop training."""
    num_seed_steps: int = 1000
    """Env steps with uniform random actions; updates start once this many transitions are stored."""
    warmup_steps: int = 0
    """Env steps during which the actor uses the plain (model-free) SAC loss; the dynamics, reward
    and done models train from the first update regardless."""
    horizon: int = 3
    """Config horizon H of the value expansion: H actions, H-1 model transitions, terminal min-Q.
    The paper's SAC-SVG(H-1); ``horizon <= 1`` is plain SAC (the model is then not trained)."""
    discount: float = 0.99
    """Discount factor gamma."""

    # ------------------------------------------------------------------ batches and repeats
    seq_batch_size: int = 512
    """Number of multi-step windows per dynamics-model update."""
    seq_train_length: int | None = None
    """Window length in states for dynamics training (upstream: ``= horizon``); the model unrolls
    ``seq_train_length - 1`` transitions open loop. ``None`` = ``horizon``."""
    step_batch_size: int = 1024
    """Single-step minibatch for critic, actor, temperature, reward and done updates."""
    model_update_freq: int = 1
    """Train the dynamics model every this many env steps."""
    model_update_repeat: int = 4
    """Dynamics-model updates (independent minibatches) per model-training env step."""
    model_free_update_repeat: int = 1
    """Critic/actor/reward/done update rounds per env step."""
    actor_update_freq: int = 1
    """Update the actor and temperature every this many env steps."""
    critic_target_update_freq: int = 1
    """Polyak-update the target critic every this many env steps."""

    # ------------------------------------------------------------------ optimisation
    actor_lr: float = 1e-4
    """Adam learning rate of the actor (betas 0.9, 0.999)."""
    critic_lr: float = 1e-4
    """Adam learning rate of the double-Q critic."""
    critic_tau: float = 0.005
    """Polyak coefficient of the target critic."""
    model_lr: float = 1e-3
    """Adam learning rate of the dynamics model."""
    model_grad_clip: float = 1.0
    """Gradient-norm clip of the dynamics-model update (``<= 0`` disables)."""
    rew_lr: float = 1e-3
    """Adam learning rate of the reward model."""
    done_lr: float = 1e-3
    """Adam learning rate of the done classifier."""
    init_temp: float = 0.1
    """Initial entropy temperature alpha."""
    temp_lr: float = 1e-4
    """Adam learning rate of log(alpha)."""
    init_targ_entr: float | None = None
    """Target entropy at step 0; ``None`` = ``-|A|``."""
    final_targ_entr: float | None = None
    """Target entropy at ``num_train_steps``; ``None`` = ``-|A|``."""
    entr_decay_factor: float = 1.0
    """Exponent p of the schedule ``(init-final)*(1-step/N)^p + final``."""

    # ------------------------------------------------------------------ networks
    model_free_hidden_dim: int = 512
    """Width of the actor and critic MLPs."""
    model_free_hidden_depth: int = 4
    """Hidden layers of the actor and critic MLPs."""
    log_std_min: float = -5.0
    """Lower bound of the actor's log standard deviation (tanh-squashed)."""
    log_std_max: float = 2.0
    """Upper bound of the actor's log standard deviation (tanh-squashed)."""
    xu_enc_hidden_dim: int = 512
    """Width of the dynamics encoder MLP on [x, u] (capacity ids set it, see docs/svg.md)."""
    xu_enc_hidden_depth: int = 2
    """Hidden layers of the dynamics encoder MLP (capacity ids set it)."""
    rec_latent_dim: int = 512
    """Encoder output size = GRU input and hidden size (capacity ids set it to their width)."""
    rec_num_layers: int = 2
    """Stacked GRU layers of the dynamics model."""
    x_dec_hidden_depth: int = 0
    """Hidden layers of the decoder from the GRU output to the state delta (0 = one Linear)."""
    rew_hidden_dim: int = 512
    """Width of the reward MLP."""
    rew_hidden_depth: int = 2
    """Hidden layers of the reward MLP."""
    done_hidden_dim: int = 512
    """Width of the done-classifier MLP."""
    done_hidden_depth: int = 2
    """Hidden layers of the done-classifier MLP."""
    mle_min_logvar: float = -10.0
    """``mle`` only: soft lower bound of the predicted log-variance (mbrl-lib's constant)."""
    mle_max_logvar: float = 0.5
    """``mle`` only: soft upper bound of the predicted log-variance (mbrl-lib's constant)."""

    # ------------------------------------------------------------------ data
    replay_capacity: int = 1_000_000
    """Replay-buffer capacity in transitions (circular)."""
    normalize_obs: bool = True
    """Normalise observations with running statistics of every observation seen (applied at sample
    and act time; all networks work in normalised space)."""
    obs_std_min: float = 0.1
    """Lower clip of the running observation std."""
    obs_std_max: float = 10.0
    """Upper clip of the running observation std."""

    # ------------------------------------------------------------------ compatibility, logging
    paper_compat: bool = False
    """Reproduce upstream quirks (facebookresearch/svg@9fdf03a, see docs/svg.md): the ``accum_prod``
    survival weights
    ``[c0, c0^2, c0^2 c1, ...]`` and dynamics windows that may not touch an episode end at all."""
    log_every: int = 1
    """Return metrics every this many updates, as means over them (the runner averages them again
    over its own ``log_every`` env-step window for ``train.csv``)."""

    def __post_init__(self) -> None:
        """Validate every field on construction (the agents' one convention, see
        :mod:`vagram_bench.agents.common`)."""
        check_model_loss(self.model_loss)
        positive = ("seq_batch_size", "step_batch_size", "model_update_freq", "model_update_repeat",
                    "model_free_update_repeat", "actor_update_freq", "critic_target_update_freq",
                    "replay_capacity", "num_train_steps", "log_every", "model_free_hidden_dim",
                    "xu_enc_hidden_dim", "rec_latent_dim", "rec_num_layers", "rew_hidden_dim",
                    "done_hidden_dim")
        for name in positive:
            if getattr(self, name) < 1:
                raise AgentConfigError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("num_seed_steps", "warmup_steps", "horizon", "model_free_hidden_depth",
                     "xu_enc_hidden_depth", "x_dec_hidden_depth", "rew_hidden_depth", "done_hidden_depth"):
            if getattr(self, name) < 0:
                raise AgentConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if self.seq_train_length is not None and self.seq_train_length < 2:
            raise AgentConfigError(
                f"seq_train_length={self.seq_train_length} must be >= 2 (a window of 2 states is one "
                "model transition) or None (= horizon)"
            )
        if not 0.0 <= self.discount <= 1.0:
            raise AgentConfigError(f"discount={self.discount} must lie in [0, 1]")
        if not 0.0 < self.critic_tau <= 1.0:
            raise AgentConfigError(f"critic_tau={self.critic_tau} must lie in (0, 1]")
        if not self.log_std_min < self.log_std_max:
            raise AgentConfigError(
                f"log_std_min={self.log_std_min} must be < log_std_max={self.log_std_max}"
            )
        if not 0.0 < self.obs_std_min <= self.obs_std_max:
            raise AgentConfigError(
                f"need 0 < obs_std_min ({self.obs_std_min}) <= obs_std_max ({self.obs_std_max})"
            )
        if self.entr_decay_factor < 0:
            raise AgentConfigError(f"entr_decay_factor={self.entr_decay_factor} must be >= 0")
        if self.value_grad_clip_quantile is not None and not 0.0 < self.value_grad_clip_quantile <= 1.0:
            raise AgentConfigError(
                f"value_grad_clip_quantile={self.value_grad_clip_quantile} must lie in (0, 1] or be None"
            )


# Per-env overrides of upstream's config/env/mbpo_*.yaml (facebookresearch/svg@9fdf03a) (the "final"
# settings).
ENV_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "hopper": dict(num_train_steps=1_000_000, horizon=3, warmup_steps=10_000,
                   init_targ_entr=0.0, final_targ_entr=-2.0, entr_decay_factor=2.0**-5),
    "walker2d": dict(num_train_steps=2_000_000, horizon=3, warmup_steps=10_000,
                     init_targ_entr=-2.0, final_targ_entr=-8.0, entr_decay_factor=2.0**-4),
    "halfcheetah": dict(num_train_steps=2_000_000, horizon=3, warmup_steps=10_000,
                        init_targ_entr=-2.0, final_targ_entr=-3.0, entr_decay_factor=1.0),
    "ant": dict(num_train_steps=2_000_000, horizon=3, warmup_steps=10_000,
                init_targ_entr=0.0, final_targ_entr=-2.0, entr_decay_factor=4.0),
    "humanoid": dict(num_train_steps=5_000_000, horizon=3, warmup_steps=10_000,
                     init_targ_entr=-2.0, final_targ_entr=-2.0, entr_decay_factor=1.0),
}

# Capacity ids (`HopperCapacity-3x64-v0`) constrain the dynamics model: num_layers -> encoder depth,
# hid_size -> encoder width and GRU (latent) width. The GRU holds most of SeqDx's parameters
# (3.15M of 3.73M), so constraining only the encoder would leave the capacity nearly unchanged.
CAPACITY_FIELDS: dict[str, tuple[str, ...]] = {
    "num_layers": ("xu_enc_hidden_depth",),
    "hid_size": ("xu_enc_hidden_dim", "rec_latent_dim"),
}


def _env_family(env_id: str) -> str:
    from vagram_bench.envs import env_family

    return env_family(env_id)


def _model_capacity(env_id: str) -> Mapping[str, int] | None:
    from vagram_bench.envs import model_capacity

    return model_capacity(env_id)


def svg_default_config(env_id: str, model_loss: str = "mse") -> SVGConfig:
    """The SVG config for ``env_id``: upstream globals, the env family's overrides, and the
    capacity constraint of capacity ids.

    Examples:
        >>> cfg = svg_default_config("HopperDistract-15-v0", "vagram")
        >>> cfg.init_targ_entr, cfg.final_targ_entr, cfg.warmup_steps, cfg.model_loss
        (0.0, -2.0, 10000, 'vagram')
    """
    family = _env_family(env_id)
    cfg = dataclasses.replace(SVGConfig(), model_loss=model_loss, **ENV_FAMILY_DEFAULTS.get(family, {}))
    capacity = _model_capacity(env_id)
    if capacity is not None:
        cfg = apply_model_capacity(cfg, capacity, set(), CAPACITY_FIELDS)
    return cfg
