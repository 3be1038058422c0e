"""SAC-SVG(H): the model-based stochastic value gradient agent (Amos et al., L4DC 2021).

Reference behaviour: upstream ``facebookresearch/svg`` at ``9fdf03a`` (``svg/agent.py``, ``svg/dx.py``,
``train.py``).
This file reads top to bottom:

1. network building blocks (actor, double-Q critic, recurrent residual dynamics model ``SeqDx``);
2. the critic view the value-aware model losses use (:class:`SVGValueFunction`);
3. the pieces with closed-form tests: survival weights, value expansion, done-model class
   balancing, target-entropy schedule;
4. the agent (:class:`SVGAgent`): acting, storing, the update schedule of upstream ``train.py``, checkpoints;
5. the four registered agents ``svg_mse``, ``svg_mle``, ``svg_itervaml``, ``svg_vagram``.

Every network works in *normalised* observation space (running statistics of all observations,
applied at sample and act time, as upstream's ``svg/utils.py: Welford``). The value-aware losses are
applied in that space too,
with the critic that lives there: for VaGraM and IterVAML this is the same loss as in raw units
(``g_raw·e_raw = (g_norm/σ)·(e_norm·σ)``), for MSE it is upstream's normalised-space MSE.

Deviations from upstream (all documented in ``docs/svg.md``):

* survival weights are ``[1, c0, c0·c1, …]``; upstream's ``accum_prod`` gives ``[c0, c0², c0²·c1, …]``
  (only with ``paper_compat=True``);
* dynamics windows never cross the buffer's write position after wrap-around (upstream does not
  treat it as a boundary); the last transition of an episode is a valid model target (upstream drops
  it; restored by ``paper_compat=True``);
* the target-entropy schedule is held at its final value after ``num_train_steps`` (upstream would
  take a fractional power of a negative number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vagram_bench.agents.common import (
    ActionScaler,
    LossVariants,
    apply_model_capacity,
    check_model_loss,
    seeded_init,
    stream_seeds,
)
from vagram_bench.agents.svg.config import CAPACITY_FIELDS, SVGConfig, svg_default_config
from vagram_bench.agents.svg.replay import RunningObsNormalizer, SVGReplayBuffer
from vagram_bench.interfaces import Agent, AgentConfigError
from vagram_bench.models.losses import ModelLoss, make_model_loss
from vagram_bench.population import PopulationMetricWindow

__all__ = [
    "SVGAgent", "SVGMSEAgent", "SVGMLEAgent", "SVGIterVAMLAgent", "SVGVaGraMAgent",
    "SVGDivergenceError", "SquashedGaussianActor", "DoubleQCritic", "SeqDynamics",
    "SVGValueFunction", "ValueExpansion", "expand_value", "survival_weights", "done_pos_weight",
    "target_entropy_at", "mlp",
]


# ==================================================================================================
# 1. Networks
# ==================================================================================================
def mlp(in_dim: int, hidden_dim: int, out_dim: int, depth: int) -> nn.Sequential:
    """``Linear(in,h), ReLU, [Linear(h,h), ReLU] x (depth-1), Linear(h,out)``; ``depth=0`` is one
    ``Linear(in,out)`` (upstream ``utils.mlp``)."""
    if depth == 0:
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


def _orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights, zero biases for every Linear (upstream ``utils.weight_init``)."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        nn.init.zeros_(module.bias)


class SquashedGaussianActor(nn.Module):
    """``u = tanh(mu + sigma*eps)``, log sigma squashed into ``[log_std_min, log_std_max]``.

    Examples:
        >>> actor = SquashedGaussianActor(3, 2, hidden_dim=16, depth=2)
        >>> u, logp = actor.sample(torch.zeros(5, 3), torch.Generator().manual_seed(0))
        >>> u.shape, logp.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, depth: int,
                 log_std_min: float = -5.0, log_std_max: float = 2.0) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_dim, 2 * act_dim, depth)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.apply(_orthogonal_init)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.trunk(obs).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(raw) + 1)
        return mu, log_std

    def sample(self, obs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action and its log-probability (summed over action dims)."""
        mu, log_std = self(obs)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        pre = mu + log_std.exp() * eps
        # log N(pre; mu, sigma) - log|d tanh/d pre|, with the stable 2(log2 - x - softplus(-2x)).
        log_prob = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        log_prob = log_prob - 2.0 * (math.log(2.0) - pre - F.softplus(-2.0 * pre))
        return torch.tanh(pre), log_prob.sum(-1)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])


class DoubleQCritic(nn.Module):
    """Two independent Q MLPs; ``forward`` returns ``(2, *batch)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, depth: int) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden_dim, 1, depth)
        self.q2 = mlp(obs_dim + act_dim, hidden_dim, 1, depth)
        self.apply(_orthogonal_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        xu = torch.cat([obs, action], dim=-1)
        return torch.stack([self.q1(xu).squeeze(-1), self.q2(xu).squeeze(-1)])


class SeqDynamics(nn.Module):
    """Deterministic residual recurrent dynamics model (upstream ``SeqDx``, ``svg/dx.py``).

    One step: ``e = enc([x, u])``, ``o, h' = GRU(e, h)``, ``x' = x + dec(o)``; ``h`` starts at zero
    for every rollout. With ``gaussian=True`` (the ``mle`` loss) the decoder also outputs a
    soft-bounded log-variance of the state delta (mbrl-lib's bounds); rollouts use the mean.

    Args:
        obs_dim, act_dim: sizes.
        enc_hidden_dim, enc_depth: encoder MLP on ``[x, u]``.
        latent_dim: encoder output size = GRU input/hidden size.
        rec_layers: GRU layers.
        dec_depth: decoder hidden layers (0 = one Linear).
        gaussian: add the log-variance head.
        min_logvar, max_logvar: soft bounds of the log-variance.
    """

    def __init__(self, obs_dim: int, act_dim: int, enc_hidden_dim: int, enc_depth: int,
                 latent_dim: int, rec_layers: int, dec_depth: int = 0, *, gaussian: bool = False,
                 min_logvar: float = -10.0, max_logvar: float = 0.5) -> None:
        super().__init__()
        self.obs_dim, self.latent_dim, self.rec_layers = obs_dim, latent_dim, rec_layers
        self.gaussian = gaussian
        self.enc = mlp(obs_dim + act_dim, enc_hidden_dim, latent_dim, enc_depth)
        self.dec = mlp(latent_dim, latent_dim, obs_dim * (2 if gaussian else 1), dec_depth)
        self.apply(_orthogonal_init)
        # Created after the orthogonal init on purpose: upstream keeps PyTorch's default GRU init.
        self.rnn = nn.GRU(latent_dim, latent_dim, num_layers=rec_layers)
        self.min_logvar, self.max_logvar = min_logvar, max_logvar

    def initial_state(self, batch_size: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(self.rec_layers, batch_size, self.latent_dim, device=device)

    def step(self, x: torch.Tensor, u: torch.Tensor, h: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(x (B,d), u (B,A), h) -> (x' (B,d), logvar (B,d) | None, h')``."""
        e = self.enc(torch.cat([x, u], dim=-1))
        out, h = self.rnn(e.unsqueeze(0), h)
        dec = self.dec(out.squeeze(0))
        if not self.gaussian:
            return x + dec, None, h
        delta, raw_logvar = dec.chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw_logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return x + delta, logvar, h

    def unroll(self, x0: torch.Tensor, actions: torch.Tensor, *, detach_xt: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Open-loop prediction of ``len(actions)`` next states from ``x0`` (model training).

        With ``detach_xt`` the fed-back prediction is detached (encoder input and residual base),
        so back-propagation through time runs only through the GRU state (upstream default).
        Returns ``pred (L, B, d)`` and ``logvar (L, B, d) | None``.
        """
        h = self.initial_state(x0.shape[0], x0.device)
        x, preds, logvars = x0, [], []
        for u in actions:
            x_in = x.detach() if detach_xt else x
            x, logvar, h = self.step(x_in, u, h)
            preds.append(x)
            logvars.append(logvar)
        return torch.stack(preds), (torch.stack(logvars) if self.gaussian else None)


# ==================================================================================================
# 2. The critic view for the value-aware model losses
# ==================================================================================================
class SVGValueFunction:
    """:class:`~vagram_bench.interfaces.ValueFunction` over the SVG actor and critics, in
    normalised observation space.

    ``q_heads`` stacks the online ``Q1, Q2`` and the target ``Q̄1, Q̄2``; ``critic_version`` is
    bumped by the agent after every critic step and every target update.
    """

    def __init__(self, actor: SquashedGaussianActor, critic: DoubleQCritic,
                 critic_target: DoubleQCritic) -> None:
        self.actor, self.critic, self.critic_target = actor, critic, critic_target
        self._version = 0

    def q_heads(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.critic(obs, action), self.critic_target(obs, action)])

    def policy_mean(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.mean_action(obs)

    @property
    def critic_version(self) -> int:
        return self._version

    def bump(self) -> None:
        self._version += 1


# ==================================================================================================
# 3. Value expansion, survival weights, done balancing, target entropy
# ==================================================================================================
def survival_weights(cont: torch.Tensor, paper_compat: bool = False) -> torch.Tensor:
    """Probability of still being alive at rollout step t, from per-step continuation
    probabilities ``c_t = 1 - P(done | x_t, u_t)`` of shape ``(H, *batch)``.

    Correct: ``w = [1, c0, c0·c1, …, c0···c_{H-2}]``. ``paper_compat=True`` reproduces upstream's
    ``accum_prod`` quirk ``[c0, c0², c0²·c1, …]`` (= ``c0 · w``).

    Examples:
        >>> c = torch.tensor([[0.5], [0.8], [0.9]])
        >>> survival_weights(c).squeeze(-1).tolist()
        [1.0, 0.5, 0.4000000059604645]
        >>> survival_weights(c, paper_compat=True).squeeze(-1).tolist()
        [0.5, 0.25, 0.20000000298023224]
    """
    w = torch.cumprod(torch.cat([torch.ones_like(cont[:1]), cont[:-1]]), dim=0)
    return cont[:1] * w if paper_compat else w


@dataclass
class ValueExpansion:
    """Result of :func:`expand_value`, each ``(B,)``.

    Attributes:
        value: ``V̂(x0) = Σ_t γ^t (w_t R_t − α ℓ_t)`` with ``R_{H-1} = min Q``.
        reward_term: ``Σ_{t<H-1} γ^t w_t r_t``.
        terminal_term: ``γ^{H-1} w_{H-1} min Q(x_{H-1}, u_{H-1})``.
        entropy_term: ``-α Σ_t γ^t ℓ_t``.
        survival: ``w_{H-1}``.
        first_log_prob: ``ℓ_0`` (for the temperature loss).
    """

    value: torch.Tensor
    reward_term: torch.Tensor
    terminal_term: torch.Tensor
    entropy_term: torch.Tensor
    survival: torch.Tensor
    first_log_prob: torch.Tensor


def expand_value(
    x0: torch.Tensor,
    horizon: int,
    *,
    policy: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    model_step: Callable[[torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Any]],
    model_state: Any,
    reward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    done_logit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    min_q: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    alpha: torch.Tensor | float,
    discount: float,
    paper_compat: bool = False,
) -> ValueExpansion:
    """SVG value expansion through the model (upstream ``expand_Q`` in ``svg/agent.py``), differentiable
    end to end.

    ``horizon`` actions ``u_t ~ π(x_t)`` (reparameterised), ``horizon - 1`` model transitions, the
    terminal online min-Q at ``(x_{H-1}, u_{H-1})``; rewards and the terminal Q are weighted by the
    survival weights, the entropy terms are not (upstream)::

        V̂(x0) = Σ_{t<H-1} γ^t w_t r(x_t,u_t) + γ^{H-1} w_{H-1} minQ(x_{H-1},u_{H-1}) - α Σ_t γ^t ℓ_t

    Args:
        x0: ``(B, d)`` start states.
        horizon: ``H >= 1`` (``H = 1``: the model-free SAC objective).
        policy: ``x -> (u, log π(u|x))``.
        model_step: ``(x, u, state) -> (x', state')``.
        model_state: initial recurrent state.
        reward, done_logit, min_q: ``(x, u) -> (B,)``.
        alpha: temperature (treated as a constant).
        discount: γ.
        paper_compat: upstream's survival-weight quirk (:func:`survival_weights`).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 for a value expansion, got {horizon}")
    xs, us, logps = [x0], [], []
    state = model_state
    for t in range(horizon):
        u, logp = policy(xs[t])
        us.append(u)
        logps.append(logp)
        if t < horizon - 1:
            x_next, state = model_step(xs[t], u, state)
            xs.append(x_next)
    # c_{H-1} never enters a weight, so the done model is evaluated on the first H-1 steps only;
    # a dummy 1 keeps survival_weights' (H, B) shape.
    cont = torch.stack([torch.sigmoid(-done_logit(x, u)) for x, u in zip(xs[:-1], us[:-1])]
                       + [torch.ones_like(x0[:, 0])])
    w = survival_weights(cont, paper_compat)
    disc = discount ** torch.arange(horizon, device=x0.device, dtype=x0.dtype)
    if horizon > 1:
        rewards = torch.stack([reward(x, u) for x, u in zip(xs[:-1], us[:-1])])
        reward_term = (disc[:-1, None] * w[:-1] * rewards).sum(0)
    else:
        reward_term = torch.zeros_like(x0[:, 0])
    terminal_term = disc[-1] * w[-1] * min_q(xs[-1], us[-1])
    entropy_term = -alpha * (disc[:, None] * torch.stack(logps)).sum(0)
    return ValueExpansion(
        value=reward_term + terminal_term + entropy_term, reward_term=reward_term,
        terminal_term=terminal_term, entropy_term=entropy_term, survival=w[-1],
        first_log_prob=logps[0],
    )


def done_pos_weight(terminated: torch.Tensor) -> torch.Tensor:
    """Class balance of the done classifier: ``(B - n_done) / n_done``, or 1 without any done.

    Examples:
        >>> done_pos_weight(torch.tensor([True, False, False, False])).item()
        3.0
    """
    n = terminated.numel()
    n_done = terminated.sum().to(torch.float32)
    return torch.where(n_done > 0, (n - n_done) / n_done.clamp_min(1.0), torch.ones_like(n_done))


def target_entropy_at(step: int, init: float, final: float, decay: float, num_train_steps: int) -> float:
    """``(init - final) * (1 - step/N)^decay + final``, held at ``final`` after ``N`` (upstream
    ``svg/temp.py``; see docs/svg.md).

    Examples:
        >>> target_entropy_at(500, init=0.0, final=-2.0, decay=1.0, num_train_steps=1000)
        -1.0
    """
    frac = min(max(step / num_train_steps, 0.0), 1.0)
    return (init - final) * (1.0 - frac) ** decay + final


class SVGDivergenceError(FloatingPointError):
    """A non-finite loss or model prediction (the run has diverged).

    Attributes:
        what: the quantity, e.g. ``"model_obs_loss"``.
        step: the env step of the update.
    """

    def __init__(self, what: str, step: int, value: float | None = None) -> None:
        self.what, self.step = what, step
        shown = "" if value is None else f" ({value})"
        super().__init__(f"SVG diverged at env step {step}: {what} is not finite{shown}")


# ==================================================================================================
# 4. The agent
# ==================================================================================================
class SVGAgent(LossVariants, Agent):
    """SAC-SVG(H) with a pluggable dynamics-model loss (docs/svg.md).

    Per env step after ``num_seed_steps`` (upstream ``train.py``, ``SACSVGAgent.update``):
    ``model_update_repeat`` dynamics updates on
    ``seq_batch_size`` windows; then on one ``step_batch_size`` minibatch: critic (SAC, double Q,
    target net), actor + temperature (value expansion through the model; the SAC loss before
    ``warmup_steps``), reward model, done model, Polyak target update.

    Args:
        config: an :class:`SVGConfig` (see :meth:`default_config`).
        observation_space, action_space: ``Box`` spaces; actions are produced in ``[-1, 1]`` and
            mapped linearly onto finite action bounds.
        env_id: the training env id.
        seed: the run seed; network init and the agent's ``torch.Generator`` get independent
            streams from it (:func:`vagram_bench.agents.common.stream_seeds`).
        device: torch device.

    Examples:
        >>> import gymnasium as gym
        >>> from vagram_bench.agents.svg import SVGMSEAgent
        >>> env = gym.make("InvertedPendulum-v5")
        >>> cfg = SVGMSEAgent.default_config("InvertedPendulum-v5")
        >>> agent = SVGMSEAgent(cfg, env.observation_space, env.action_space,
        ...                     env_id="InvertedPendulum-v5", seed=0)
        >>> agent.act(env.reset(seed=0)[0], deterministic=True).shape
        (1,)
    """

    Config: ClassVar[type] = SVGConfig
    description: ClassVar[str] = "SAC-SVG(H) with an MSE-trained recurrent dynamics model"
    uses_dynamics_model: ClassVar[bool] = True
    loss_family: ClassVar[str] = "svg"

    # ------------------------------------------------------------------ configuration
    @classmethod
    def default_config(cls, env_id: str) -> SVGConfig:
        return cls.config_for_loss(svg_default_config(env_id, cls.model_loss_name))

    @classmethod
    def apply_model_capacity(cls, config: SVGConfig, capacity: Mapping[str, int],
                             explicit_fields: set[str]) -> SVGConfig:
        return apply_model_capacity(config, capacity, explicit_fields, CAPACITY_FIELDS)

    def __init__(self, config: SVGConfig, observation_space: gym.spaces.Box,
                 action_space: gym.spaces.Box, *, env_id: str, seed: int,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(config, observation_space, action_space, env_id=env_id, seed=seed,
                         device=device)
        if not isinstance(config, SVGConfig):
            raise AgentConfigError(f"expected an SVGConfig, got {type(config).__name__}")
        check_model_loss(config.model_loss, self.model_loss_name, self.loss_family)
        cfg = config
        if len(observation_space.shape) != 1 or len(action_space.shape) != 1:
            raise AgentConfigError(
                f"SVG needs flat Box spaces; got observation shape {observation_space.shape}, "
                f"action shape {action_space.shape}"
            )
        obs_dim, act_dim = observation_space.shape[0], action_space.shape[0]
        self.obs_dim, self.act_dim = obs_dim, act_dim
        dev = self.device
        self.actions = ActionScaler(action_space, "SVG")

        self.model_loss: ModelLoss = make_model_loss(
            cfg.model_loss, bounded=cfg.vagram_bounded, clip_quantile=cfg.value_grad_clip_quantile
        )
        # two streams from the run seed: network init, and every draw while acting and learning
        init_seed, sample_seed = stream_seeds(seed, 2)
        self.generator = torch.Generator(device=dev).manual_seed(sample_seed)
        with seeded_init(init_seed):  # PyTorch's default layer inits draw from the global RNG
            self._build_networks(obs_dim, act_dim)

        self.value_fn = SVGValueFunction(self.actor, self.critic, self.critic_target)
        self.normalizer = RunningObsNormalizer(obs_dim, cfg.obs_std_min, cfg.obs_std_max,
                                               enabled=cfg.normalize_obs, device=dev)
        self.replay = SVGReplayBuffer(cfg.replay_capacity, obs_dim, act_dim, device=dev)
        self.seq_len = cfg.seq_train_length if cfg.seq_train_length is not None else cfg.horizon
        self.target_entropy_init = cfg.init_targ_entr if cfg.init_targ_entr is not None else -act_dim
        self.target_entropy_final = (
            cfg.final_targ_entr if cfg.final_targ_entr is not None else -act_dim
        )
        self.num_observed = 0
        self.num_updates = 0
        self.metric_window = PopulationMetricWindow(1)  # one member, on the host: _record reads the losses anyway
        self._one = np.ones(1, dtype=bool)

    def _build_networks(self, obs_dim: int, act_dim: int) -> None:
        cfg, dev = self.config, self.device
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.model_free_hidden_dim,
                                           cfg.model_free_hidden_depth, cfg.log_std_min,
                                           cfg.log_std_max).to(dev)
        self.critic = DoubleQCritic(obs_dim, act_dim, cfg.model_free_hidden_dim,
                                    cfg.model_free_hidden_depth).to(dev)
        self.critic_target = DoubleQCritic(obs_dim, act_dim, cfg.model_free_hidden_dim,
                                           cfg.model_free_hidden_depth).to(dev)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.dynamics = SeqDynamics(obs_dim, act_dim, cfg.xu_enc_hidden_dim, cfg.xu_enc_hidden_depth,
                                    cfg.rec_latent_dim, cfg.rec_num_layers, cfg.x_dec_hidden_depth,
                                    gaussian=self.model_loss.gaussian, min_logvar=cfg.mle_min_logvar,
                                    max_logvar=cfg.mle_max_logvar).to(dev)
        # Reward and done MLPs keep PyTorch's default init (upstream never applies weight_init).
        self.reward_model = mlp(obs_dim + act_dim, cfg.rew_hidden_dim, 1, cfg.rew_hidden_depth).to(dev)
        self.done_model = mlp(obs_dim + act_dim, cfg.done_hidden_dim, 1, cfg.done_hidden_depth).to(dev)
        self.log_alpha = torch.tensor(math.log(cfg.init_temp), device=dev, requires_grad=True)

        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, betas=(0.9, 0.999),
                                          foreach=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, foreach=True)
        self.model_opt = torch.optim.Adam(self.dynamics.parameters(), lr=cfg.model_lr, foreach=True)
        self.reward_opt = torch.optim.Adam(self.reward_model.parameters(), lr=cfg.rew_lr, foreach=True)
        self.done_opt = torch.optim.Adam(self.done_model.parameters(), lr=cfg.done_lr, foreach=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.temp_lr, foreach=True)

    # ------------------------------------------------------------------ acting and storing
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        if not deterministic and self.num_observed < self.config.num_seed_steps:
            u = torch.rand(self.act_dim, generator=self.generator, device=self.device) * 2 - 1
        else:
            x = self.normalizer.normalize(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
            with torch.no_grad():
                if deterministic:
                    u = self.actor.mean_action(x[None])[0]
                else:
                    u = self.actor.sample(x[None], self.generator)[0][0]
        return self.actions.to_env(u.clamp(-1.0, 1.0))

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                terminated: bool, truncated: bool) -> None:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        act_t = torch.as_tensor(self.actions.to_unit(action), dtype=torch.float32, device=self.device)
        next_t = torch.as_tensor(next_obs, dtype=torch.float32, device=self.device)
        self.normalizer.update(obs_t)  # statistics over every observation seen (upstream: obs only)
        self.replay.add(obs_t, act_t, reward, next_t, terminated, truncated)
        self.num_observed += 1

    # ------------------------------------------------------------------ learning
    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def target_entropy(self, step: int) -> float:
        cfg = self.config
        return target_entropy_at(step, self.target_entropy_init, self.target_entropy_final,
                                 cfg.entr_decay_factor, cfg.num_train_steps)

    @classmethod
    def phase(cls, cfg: SVGConfig, env_step: int) -> str:
        if env_step < cfg.num_seed_steps:
            return "exploring"
        # During warm-up the model learns while the actor still takes the model-free SAC loss.
        return "training the model" if cfg.horizon > 1 and env_step < cfg.warmup_steps else "learning"

    def update(self, env_step: int) -> dict[str, float]:
        cfg = self.config
        if self.replay.size < max(cfg.num_seed_steps, 1):
            return {}
        metrics: dict[str, torch.Tensor] = {}
        if cfg.horizon > 1 and env_step % cfg.model_update_freq == 0:
            for _ in range(cfg.model_update_repeat):
                _accumulate(metrics, self._update_dynamics(env_step), 1.0 / cfg.model_update_repeat)
        for _ in range(cfg.model_free_update_repeat):
            batch = self.replay.sample_transitions(cfg.step_batch_size, self.generator)
            obs = self.normalizer.normalize(batch["obs"])
            next_obs = self.normalizer.normalize(batch["next_obs"])
            action, reward, terminated = batch["action"], batch["reward"], batch["terminated"]
            out = self._update_critic(obs, action, reward, next_obs, terminated)
            if env_step % cfg.actor_update_freq == 0:
                out.update(self._update_actor_and_alpha(obs, env_step))
            out.update(self._update_reward_and_done(obs, action, reward, terminated))
            if env_step % cfg.critic_target_update_freq == 0:
                self._soft_update_target()
            _accumulate(metrics, out, 1.0 / cfg.model_free_update_repeat)
        return self._record(metrics, env_step)

    def _update_dynamics(self, step: int) -> dict[str, torch.Tensor]:
        """One multi-step dynamics update on ``seq_batch_size`` windows (upstream ``svg/dx.py``)."""
        cfg = self.config
        win = self.replay.sample_windows(cfg.seq_batch_size, self.seq_len - 1, self.generator,
                                         allow_final_end=not cfg.paper_compat)
        obs = self.normalizer.normalize(win["obs"])  # (L, B, d)
        true_next = self.normalizer.normalize(win["next_obs"])
        pred, logvar = self.dynamics.unroll(obs[0], win["action"], detach_xt=True)
        if not torch.isfinite(pred).all():
            raise SVGDivergenceError("dynamics prediction", step)
        # The critic changes every env step, so the targets are computed fresh per update.
        value_targets = self.model_loss.targets(self.value_fn, true_next)
        loss = self.model_loss.per_sample(
            pred, true_next, value_targets, pred_logvar=logvar, value_fn=self.value_fn,
        ).mean()
        if not torch.isfinite(loss):
            raise SVGDivergenceError("model_obs_loss", step, loss.item())
        self.model_opt.zero_grad(set_to_none=True)
        # inputs=: IterVAML's graph runs through the critic, whose .grad must stay untouched.
        loss.backward(inputs=list(self.dynamics.parameters()))
        if cfg.model_grad_clip > 0:
            nn.utils.clip_grad_norm_(self.dynamics.parameters(), cfg.model_grad_clip)
        self.model_opt.step()
        return {"model_obs_loss": loss.detach(),
                "model_obs_mse": (pred.detach() - true_next).pow(2).mean()}

    def _update_critic(self, obs, action, reward, next_obs, terminated) -> dict[str, torch.Tensor]:
        """SAC clipped double-Q regression onto ``r + γ(1-term)(min Q̄(x',u') - α ℓ')`` (upstream
        ``update_critic``)."""
        with torch.no_grad():
            next_action, next_logp = self.actor.sample(next_obs, self.generator)
            target_v = self.critic_target(next_obs, next_action).min(0).values - self.alpha * next_logp
            target_q = reward + (~terminated).float() * self.config.discount * target_v
        q = self.critic(obs, action)
        loss = (q - target_q).pow(2).mean(1).sum()  # MSE(Q1, y) + MSE(Q2, y)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        self.value_fn.bump()
        return {"critic_loss": loss.detach(), "critic_q": q.detach().mean()}

    def _update_actor_and_alpha(self, obs: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Value-expansion actor loss (SAC loss during warm-up) and the temperature (upstream
        ``update_actor_and_alpha``)."""
        cfg = self.config
        alpha = self.alpha.detach()
        model_free = step < cfg.warmup_steps or cfg.horizon <= 1
        out: dict[str, torch.Tensor] = {}
        if model_free:
            u, logp = self.actor.sample(obs, self.generator)
            min_q = self.critic(obs, u).min(0).values
            actor_loss = (alpha * logp - min_q).mean()
            first_logp = logp
        else:
            ve = expand_value(
                obs, cfg.horizon,
                policy=lambda x: self.actor.sample(x, self.generator),
                model_step=lambda x, u, h: _drop_logvar(self.dynamics.step(x, u, h)),
                model_state=self.dynamics.initial_state(obs.shape[0], obs.device),
                reward=lambda x, u: self.reward_model(torch.cat([x, u], -1)).squeeze(-1),
                done_logit=lambda x, u: self.done_model(torch.cat([x, u], -1)).squeeze(-1),
                min_q=lambda x, u: self.critic(x, u).min(0).values,
                alpha=alpha, discount=cfg.discount, paper_compat=cfg.paper_compat,
            )
            actor_loss = -ve.value.mean() / cfg.horizon
            first_logp = ve.first_log_prob
            out.update(actor_ve_reward=ve.reward_term.detach().mean(),
                       actor_ve_terminal_q=ve.terminal_term.detach().mean(),
                       actor_ve_entropy=ve.entropy_term.detach().mean(),
                       actor_ve_survival=ve.survival.detach().mean())
        self.actor_opt.zero_grad(set_to_none=True)
        # Gradients flow through dynamics, reward, done and critic, but only the actor learns here.
        actor_loss.backward(inputs=list(self.actor.parameters()))
        self.actor_opt.step()

        target_entropy = self.target_entropy(step)
        alpha_loss = (self.alpha * (-first_logp - target_entropy).detach()).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        out.update(actor_loss=actor_loss.detach(), actor_entropy=-first_logp.detach().mean(),
                   actor_model_free=torch.tensor(float(model_free), device=obs.device),
                   alpha_loss=alpha_loss.detach(), alpha=alpha,
                   target_entropy=torch.tensor(target_entropy, device=obs.device))
        return out

    def _update_reward_and_done(self, obs, action, reward, terminated) -> dict[str, torch.Tensor]:
        """Reward MSE and class-balanced done BCE on the critic's minibatch (upstream ``update_rew_step``,
        ``update_done_step``); the done labels
        are true terminations only (time-limit ends are not terminal)."""
        xu = torch.cat([obs, action], dim=-1)
        rew_loss = F.mse_loss(self.reward_model(xu).squeeze(-1), reward)
        self.reward_opt.zero_grad(set_to_none=True)
        rew_loss.backward()
        self.reward_opt.step()

        pos_weight = done_pos_weight(terminated)
        done_loss = F.binary_cross_entropy_with_logits(
            self.done_model(xu).squeeze(-1), terminated.float(), pos_weight=pos_weight
        )
        self.done_opt.zero_grad(set_to_none=True)
        done_loss.backward()
        self.done_opt.step()
        return {"model_reward_loss": rew_loss.detach(), "model_done_loss": done_loss.detach(),
                "done_pos_weight": pos_weight}

    def _soft_update_target(self) -> None:
        with torch.no_grad():
            for p_targ, p in zip(self.critic_target.parameters(), self.critic.parameters()):
                p_targ.lerp_(p, self.config.critic_tau)
        self.value_fn.bump()

    def _record(self, metrics: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """Check every loss for finiteness (one host sync) and return the mean metrics every
        ``log_every`` updates."""
        names = list(metrics)
        values = torch.stack([metrics[k].float().reshape(()) for k in names]).tolist()
        for name, value in zip(names, values):
            if not math.isfinite(value):
                raise SVGDivergenceError(name, step, value)
        host = torch.tensor(values, dtype=torch.float64)  # float32 values, exactly
        self.metric_window.add({name: (host[i:i + 1], self._one) for i, name in enumerate(names)})
        self.num_updates += 1
        if self.num_updates % self.config.log_every != 0:
            return {}
        return self.metric_window.pop_means([0])[0]

    # ------------------------------------------------------------------ checkpoints
    def _modules_and_optimizers(self) -> dict[str, Any]:
        return {
            "actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
            "dynamics": self.dynamics, "reward_model": self.reward_model, "done_model": self.done_model,
            "actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "model_opt": self.model_opt,
            "reward_opt": self.reward_opt, "done_opt": self.done_opt, "alpha_opt": self.alpha_opt,
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {k: v.state_dict() for k, v in self._modules_and_optimizers().items()}
        state.update(
            log_alpha=self.log_alpha.detach().clone(),
            normalizer=self.normalizer.state_dict(),
            replay=self.replay.state_dict(),
            generator=self.generator.get_state(),
            num_observed=self.num_observed,
            num_updates=self.num_updates,
            critic_version=self.value_fn.critic_version,
            metric_window=self.metric_window.state(0),
            model_loss=self.config.model_loss,
        )
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("model_loss") != self.config.model_loss:
            raise ValueError(
                f"checkpoint was written by an SVG agent with model_loss={state.get('model_loss')!r}, "
                f"this agent uses {self.config.model_loss!r}"
            )
        for key, obj in self._modules_and_optimizers().items():
            obj.load_state_dict(state[key])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.replay.load_state_dict(state["replay"])
        self.generator.set_state(state["generator"])
        self.num_observed = int(state["num_observed"])
        self.num_updates = int(state["num_updates"])
        self.value_fn._version = int(state["critic_version"])
        self.metric_window.load(0, state["metric_window"])

    def policy_state_dict(self) -> dict[str, Any]:
        # act(deterministic=True): the actor's mean on normalised observations
        return {"actor": self.actor.state_dict(), "normalizer": self.normalizer.state_dict()}

    def load_policy_state_dict(self, state: Mapping[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.normalizer.load_state_dict(state["normalizer"])


def _drop_logvar(step_out: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    x_next, _logvar, h = step_out
    return x_next, h


def _accumulate(into: dict[str, torch.Tensor], new: Mapping[str, torch.Tensor], weight: float) -> None:
    for k, v in new.items():
        into[k] = into[k] + weight * v if k in into else weight * v


# ==================================================================================================
# 5. The registered agents
# ==================================================================================================
# The registered agents (pyproject.toml's entry points name these attributes): the one place that
# says which loss each trains its model with.
SVGMSEAgent = SVGAgent.with_loss(
    "mse", "SVGMSEAgent", "SAC-SVG(H), recurrent dynamics model trained with MSE (upstream)")
SVGMLEAgent = SVGAgent.with_loss(
    "mle", "SVGMLEAgent", "SAC-SVG(H), recurrent dynamics model with a Gaussian head trained by NLL")
SVGIterVAMLAgent = SVGAgent.with_loss(
    "itervaml", "SVGIterVAMLAgent", "SAC-SVG(H), recurrent dynamics model trained with IterVAML")
SVGVaGraMAgent = SVGAgent.with_loss(
    "vagram", "SVGVaGraMAgent", "SAC-SVG(H), recurrent dynamics model trained with VaGraM")
