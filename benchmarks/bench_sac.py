"""Time one SAC update of ``SACLearner`` against a plain-torch SAC update (same nets, same batch).

The plain-torch update is the textbook (CleanRL-style) implementation: two separate ``nn.Sequential``
Q-networks and their targets, a critic backward/step, an actor backward/step, a temperature
backward/step and a Polyak loop over the target parameters; it is given the same weights as our
learner and the same optimiser as ours (``torch.optim.Adam(fused=True)``), so the ratio isolates the
cost of the loss computation; ``--plain-adam default`` gives it torch's default Adam instead.

Both are timed interleaved in one process (the machine is shared; only ratios are meaningful)::

    OMP_NUM_THREADS=1 python benchmarks/bench_sac.py                # 256-wide, batch 256
    OMP_NUM_THREADS=1 python benchmarks/bench_sac.py --hidden 512   # issue 5's 512-wide SAC

Times are process CPU times (robust to other load on a shared machine; with ``--threads 1``
they equal the compute time of the update). Prints the median time per update of ``fused`` (our default), ``torchrl`` (``SACLoss.forward``) and
plain torch, and the ratios ours / plain (target <= 1.1).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from tensordict import TensorDict
from torch import nn

from vagram_bench.agents.sac import SACConfig

# the single-seed TorchRL SAC learner is a test reference, no part of the package (tests/reference/)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference.sac_learner import SACLearner  # noqa: E402


class PlainSAC:
    """Textbook SAC update in plain torch, initialised from a :class:`SACLearner`'s weights."""

    def __init__(self, learner: SACLearner, cfg: SACConfig, adam: dict | None = None) -> None:
        self.cfg = cfg
        self.actor = _copy_sequential(learner.actor_net.trunk)
        q_nets = learner.loss_module.qvalue_network_params
        target = learner.loss_module.target_qvalue_network_params
        self.q = [_sequential_from_stacked(q_nets, i, learner) for i in range(2)]
        self.q_target = [_sequential_from_stacked(target, i, learner) for i in range(2)]
        for net in self.q_target:
            net.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=True)
        self.target_entropy = learner.target_entropy
        self.log_std_min = cfg.log_std_min
        self.log_std_half_range = 0.5 * (cfg.log_std_max - cfg.log_std_min)
        adam = {"fused": True} if adam is None else adam
        q_params = [p for net in self.q for p in net.parameters()]
        self.q_opt = torch.optim.Adam(q_params, lr=cfg.critic_lr, **adam)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, **adam)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, **adam)
        self.generator = torch.Generator().manual_seed(0)

    def _sample(self, obs):
        loc, raw = self.actor(obs).chunk(2, -1)
        log_std = self.log_std_min + self.log_std_half_range * (torch.tanh(raw) + 1)
        std = log_std.exp()
        eps = torch.randn(loc.shape, generator=self.generator)
        u = loc + std * eps
        action = torch.tanh(u)
        log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return action, log_prob

    def update(self, obs, action, reward, next_obs, terminated):
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_log_prob = self._sample(next_obs)
            x_next = torch.cat([next_obs, next_action], -1)
            q_next = torch.min(self.q_target[0](x_next), self.q_target[1](x_next)).view(-1)
            y = reward + self.cfg.gamma * (1 - terminated) * (q_next - alpha * next_log_prob)
        x = torch.cat([obs, action], -1)
        q_loss = sum(nn.functional.mse_loss(q(x).view(-1), y) for q in self.q)
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()

        pi, log_prob = self._sample(obs)
        x_pi = torch.cat([obs, pi], -1)
        q_pi = torch.min(self.q[0](x_pi), self.q[1](x_pi)).view(-1)
        actor_loss = (alpha * log_prob - q_pi).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = (-self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()

        with torch.no_grad():
            for q, q_target in zip(self.q, self.q_target):
                for p, tp in zip(q.parameters(), q_target.parameters()):
                    tp.mul_(1 - self.cfg.tau).add_(p, alpha=self.cfg.tau)
        return q_loss.item(), actor_loss.item(), alpha_loss.item()


def _copy_sequential(mlp: nn.Sequential) -> nn.Sequential:
    layers = []
    for m in mlp:
        if isinstance(m, nn.Linear):
            new = nn.Linear(m.in_features, m.out_features)
            with torch.no_grad():
                new.weight.copy_(m.weight)
                new.bias.copy_(m.bias)
            layers.append(new)
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _sequential_from_stacked(params, index: int, learner: SACLearner) -> nn.Sequential:
    q_mlp = learner.loss_module.qvalue_network.module
    layers = []
    for name, m in q_mlp.named_children():
        if isinstance(m, nn.Linear):
            new = nn.Linear(m.in_features, m.out_features)
            with torch.no_grad():
                new.weight.copy_(params.get(("module", name, "weight"))[index])
                new.bias.copy_(params.get(("module", name, "bias"))[index])
            layers.append(new)
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256, help="hidden width (2 hidden layers)")
    parser.add_argument("--layers", type=int, default=2, help="hidden layers")
    parser.add_argument("--batch", type=int, default=256, help="batch size")
    parser.add_argument("--obs-dim", type=int, default=26, help="obs dims (HopperDistract-15: 26)")
    parser.add_argument("--act-dim", type=int, default=3, help="action dims")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (median reported)")
    parser.add_argument("--updates", type=int, default=20, help="updates per timed round")
    parser.add_argument(
        "--plain-adam", choices=["fused", "default"], default="fused",
        help="optimiser of the plain-torch baseline: fused Adam (same as ours) or torch's default",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time is measured)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    B, O, A = args.batch, args.obs_dim, args.act_dim
    batch = TensorDict(
        {
            "observation": torch.randn(B, O, generator=gen),
            "action": torch.rand(B, A, generator=gen) * 2 - 1,
            "next": {
                "observation": torch.randn(B, O, generator=gen),
                "reward": torch.randn(B, 1, generator=gen),
                "terminated": torch.rand(B, 1, generator=gen) < 0.05,
            },
        },
        batch_size=[B],
    )
    learners = {}
    for impl in ("fused", "torchrl"):
        cfg = SACConfig(num_layers=args.layers, hidden_size=args.hidden)
        learners[impl] = SACLearner(O, A, cfg, generator=torch.Generator().manual_seed(1), loss_impl=impl)
    plain = PlainSAC(
        learners["fused"], learners["fused"].config, adam={"fused": True} if args.plain_adam == "fused" else {}
    )
    tensors = (
        batch["observation"], batch["action"], batch["next", "reward"].view(-1),
        batch["next", "observation"], batch["next", "terminated"].view(-1).float(),
    )

    runners = {
        "fused": lambda: learners["fused"].update(batch),
        "torchrl": lambda: learners["torchrl"].update(batch),
        "plain": lambda: plain.update(*tensors),
    }
    for fn in runners.values():  # warm-up
        for _ in range(5):
            fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):
        for name, fn in runners.items():  # interleaved: load changes hit all three alike
            t0 = time.process_time()
            for _ in range(args.updates):
                fn()
            times[name].append((time.process_time() - t0) / args.updates)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"SAC update, {args.layers}x{args.hidden} MLPs, batch {B}, obs {O}, act {A}, "
        f"torch threads {torch.get_num_threads()}, plain-torch Adam: {args.plain_adam}"
    )
    for name in ("fused", "torchrl", "plain"):
        print(f"  {name:8s} {med[name] * 1e3:8.3f} ms/update")
    print(f"ratio fused/plain   = {med['fused'] / med['plain']:.3f}  (target <= 1.1)")
    print(f"ratio torchrl/plain = {med['torchrl'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
