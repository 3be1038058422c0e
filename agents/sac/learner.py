"""The SAC networks of one learner: the actor trunk, the two Q-networks and their initialisation.

:class:`~vagram_bench.agents.sac.population.SACPopulationLearner` builds each member's networks with
:func:`build_member_networks` (from the member's generator, in the order of the draws) and stacks
them; :func:`q_ensemble` evaluates both Q-networks of one member as one batched matmul ensemble (one
``addmm`` for the first layer of both nets, ``baddbmm`` after that). The parameter layout is TorchRL
``SACLoss``'s (``qvalue_network_params["module", <layer>, "weight"]``, batch ``(2,)``), so a member
can be checked against ``SACLoss.forward`` itself: ``tests/reference/sac_learner.py`` is that
independent single-seed learner and ``tests/test_sac_learner.py`` / ``tests/test_sac_population.py``
compare the population with it (same parameters and noise => same losses and gradients).
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.modules import MLP

from vagram_bench.agents.sac.config import SACConfig

__all__ = ["TanhGaussianActorNet", "build_member_networks", "q_ensemble"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class TanhGaussianActorNet(nn.Module):
    """Actor trunk: ``obs -> (loc, scale)`` of the pre-tanh Gaussian.

    The log standard deviation is squashed into ``[log_std_min, log_std_max]`` with a tanh
    (as in pranz24's / mbrl-lib's SAC), which keeps the policy from collapsing early.

    Args:
        obs_dim: observation dimensions.
        act_dim: action dimensions.
        num_layers: hidden layers.
        hidden_size: width of each hidden layer.
        log_std_min: lower bound of the log standard deviation.
        log_std_max: upper bound of the log standard deviation.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_layers: int,
        hidden_size: int,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.trunk = MLP(
            in_features=obs_dim,
            out_features=2 * act_dim,
            num_cells=[hidden_size] * num_layers,
            activation_class=nn.ReLU,
        )
        self.act_dim = act_dim
        self.log_std_min = float(log_std_min)
        self.log_std_half_range = 0.5 * (float(log_std_max) - float(log_std_min))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_log_std = self.trunk(obs).chunk(2, dim=-1)
        log_std = self.log_std_min + self.log_std_half_range * (torch.tanh(raw_log_std) + 1.0)
        return loc, log_std.exp()


def _init_linear_layers_(module: nn.Module, generator: torch.Generator, scheme: str = "torch_default") -> None:
    """Initialise every ``nn.Linear`` of ``module`` from ``generator`` (not the global RNG).

    ``"torch_default"``: PyTorch's default ``nn.Linear`` init (weights ``kaiming_uniform_(a=√5)``,
    i.e. ``U(±1/√fan_in)``, biases ``U(±1/√fan_in)``). ``"orthogonal"``: orthogonal weights (gain 1)
    and zero biases, pytorch_sac's ``weight_init`` (``mbrl/third_party/pytorch_sac/utils.py``,
    pairlab/vagram@caf9b92), which the VaGraM paper's MBPO applies to its actor and critic.
    """
    for layer in module.modules():
        if not isinstance(layer, nn.Linear):
            continue
        if scheme == "orthogonal":
            nn.init.orthogonal_(layer.weight, gain=1.0, generator=generator)
            nn.init.zeros_(layer.bias)
        elif scheme == "torch_default":
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        else:
            raise ValueError(f"unknown init scheme {scheme!r}; valid choices: torch_default, orthogonal")


def _tanh_gaussian_log_prob(
    noise: torch.Tensor, scale: torch.Tensor, pre_tanh: torch.Tensor
) -> torch.Tensor:
    """``log pi(tanh(u))`` for ``u = loc + scale * noise``, summed over the action dims.

    Normal log-density of ``u`` minus ``log |d tanh(u) / du| = 2 (log 2 - u - softplus(-2u))``
    (the numerically stable form torch's ``TanhTransform`` uses).
    """
    log_normal = -0.5 * noise.square() - scale.log() - _HALF_LOG_2PI
    log_det = 2.0 * (_LOG_2 - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))
    return (log_normal - log_det).sum(-1)


def build_member_networks(
    obs_dim: int, act_dim: int, config: SACConfig, generator: torch.Generator, device: str | torch.device = "cpu"
) -> tuple[TanhGaussianActorNet, TensorDict, nn.Module]:
    """One learner's networks, initialised from ``generator`` only: the actor trunk first, then the
    two Q-networks (two independent initialisations, in that order).

    Returns the actor, the Q-networks' parameters stacked as TorchRL ``SACLoss`` stacks them (batch
    ``(2,)``, keys ``("module", <layer>, "weight" | "bias")``, detached) and the first Q-network (a
    template of the architecture).
    """
    # Module construction draws from the global RNG (default init); fork it so the global state is
    # untouched, then re-initialise every layer from the generator.
    with torch.random.fork_rng(devices=[]):
        actor_net = TanhGaussianActorNet(
            obs_dim, act_dim, config.num_layers, config.hidden_size, config.log_std_min, config.log_std_max,
        )
        q_mlps = [
            MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=[config.hidden_size] * config.num_layers,
                activation_class=nn.ReLU)
            for _ in range(2)
        ]
    # Initialise on the device of the generator (a CUDA generator draws CUDA tensors).
    actor_net.to(device)
    for q_mlp in q_mlps:
        q_mlp.to(device)
    _init_linear_layers_(actor_net, generator, config.init)
    for q_mlp in q_mlps:
        _init_linear_layers_(q_mlp, generator, config.init)
    q_modules = [TensorDictModule(q, in_keys=["observation", "action"], out_keys=["state_action_value"])
                 for q in q_mlps]
    q_params = TensorDict.from_modules(*q_modules).data
    return actor_net, q_params, q_mlps[0]


def q_ensemble(
    layers: list[tuple[torch.Tensor, torch.Tensor]],
    obs: torch.Tensor,
    action: torch.Tensor,
    detach_params: bool = False,
) -> torch.Tensor:
    """Both Q-networks at once: ``(B, obs_dim), (B, act_dim) -> (2, B)``.

    The first layer of both nets is one ``addmm`` against the stacked weights viewed as
    ``(2 * H, in)``; deeper layers are ``baddbmm`` over the ensemble dimension.
    """
    x = torch.cat([obs, action], dim=-1)
    weight, bias = layers[0]
    if detach_params:
        weight, bias = weight.detach(), bias.detach()
    n_nets, width = weight.shape[0], weight.shape[1]
    h = torch.addmm(bias.reshape(-1), x, weight.reshape(n_nets * width, -1).t())
    h = h.view(x.shape[0], n_nets, width).transpose(0, 1)
    for weight, bias in layers[1:]:
        if detach_params:
            weight, bias = weight.detach(), bias.detach()
        h = torch.baddbmm(bias.unsqueeze(1), torch.relu(h), weight.transpose(1, 2))
    return h.squeeze(-1)
