"""Per-env-step wall clock of the SVG agents, split by phase, against the same work in plain torch.

Phases of one env step (upstream ``train.py``/``SACSVGAgent.update``, upstream sizes by default):

* ``model``   — ``model_update_repeat`` (4) dynamics updates on ``seq_batch_size`` windows;
* ``critic``  — minibatch sampling + normalisation, SAC double-Q update, Polyak target update;
* ``actor``   — H-step value-expansion rollout through GRU, policy, reward, done, critic + backprop,
  and the temperature step;
* ``rew_done``— reward-model and done-classifier updates.

``ours`` calls the agent's own update methods (window sampler with episode checks, running
normaliser, pluggable ``ModelLoss``, metric bookkeeping); ``plain`` is a straight-line plain-torch
implementation of the same work on copies of the same networks (indices drawn from a precomputed
table of valid window starts, inline MSE, no bookkeeping). Both are timed interleaved in one process,
so the ratio ours/plain is meaningful on a shared machine; absolute times are not.

Then the full ``agent.update`` of each of the four agents (``svg_mse``, ``svg_mle``,
``svg_itervaml``, ``svg_vagram``) is timed and reported as update steps per second.

    OMP_NUM_THREADS=2 python benchmarks/bench_svg.py              # upstream sizes (512 wide)
    OMP_NUM_THREADS=2 python benchmarks/bench_svg.py --small      # 128 wide, batches 256/128
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from vagram_bench.agents.svg import (
    SVGConfig,
    SVGIterVAMLAgent,
    SVGMLEAgent,
    SVGMSEAgent,
    SVGVaGraMAgent,
)


def make_agent(cls, cfg_kwargs, obs_dim, act_dim, n_fill, seed=0):
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
    act_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    cfg = SVGConfig(model_loss=cls.model_loss_name, **cfg_kwargs)
    agent = cls(cfg, obs_space, act_space, env_id="HopperDistract-15-v0", seed=seed)
    # Synthetic episodes of length 100 (ends every 100 steps) with smooth random dynamics.
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n_fill + 1, obs_dim)).cumsum(0) * 0.05
    act = rng.uniform(-1, 1, (n_fill, act_dim)).astype(np.float32)
    rew = rng.standard_normal(n_fill)
    for i in range(n_fill):
        end = (i + 1) % 100 == 0
        agent.observe(obs[i], act[i], rew[i], obs[i + 1], end and i % 300 == 299, end)
    return agent


class PlainSVGStep:
    """The same per-step work in straight-line plain torch, on deep copies of ``agent``'s nets."""

    def __init__(self, agent):
        cfg = self.cfg = agent.config
        self.actor = copy.deepcopy(agent.actor)
        self.critic = copy.deepcopy(agent.critic)
        self.critic_target = copy.deepcopy(agent.critic_target)
        self.dyn = copy.deepcopy(agent.dynamics)
        self.rew = copy.deepcopy(agent.reward_model)
        self.done = copy.deepcopy(agent.done_model)
        self.log_alpha = agent.log_alpha.detach().clone().requires_grad_(True)
        self.opt = {
            "actor": torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr),
            "dyn": torch.optim.Adam(self.dyn.parameters(), lr=cfg.model_lr),
            "rew": torch.optim.Adam(self.rew.parameters(), lr=cfg.rew_lr),
            "done": torch.optim.Adam(self.done.parameters(), lr=cfg.done_lr),
            "alpha": torch.optim.Adam([self.log_alpha], lr=cfg.temp_lr),
        }
        rb = agent.replay
        n = rb.size
        self.obs, self.act, self.r = rb.obs[:n].clone(), rb.action[:n].clone(), rb.reward[:n].clone()
        self.next_obs, self.term = rb.next_obs[:n].clone(), rb.terminated[:n].clone()
        self.L = agent.seq_len - 1
        self.starts = rb.valid_window_starts(self.L)  # precomputed: no per-draw episode checks
        self.mean, self.std = agent.normalizer.mean.clone(), agent.normalizer.std.clone()
        self.g = torch.Generator().manual_seed(1)

    def sample_action(self, x):
        out = self.actor.trunk(x)
        mu, raw = out.chunk(2, -1)
        log_std = -5 + 3.5 * (torch.tanh(raw) + 1)
        eps = torch.randn(mu.shape, generator=self.g)
        pre = mu + log_std.exp() * eps
        logp = (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)
                - 2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return torch.tanh(pre), logp

    def model(self):
        cfg = self.cfg
        for _ in range(cfg.model_update_repeat):
            s = self.starts[torch.randint(len(self.starts), (cfg.seq_batch_size,), generator=self.g)]
            idx = s[None] + torch.arange(self.L)[:, None]
            x = (self.obs[idx] - self.mean) / self.std
            y = (self.next_obs[idx] - self.mean) / self.std
            h = torch.zeros(cfg.rec_num_layers, cfg.seq_batch_size, cfg.rec_latent_dim)
            xt, preds = x[0], []
            for t in range(self.L):
                e = self.dyn.enc(torch.cat([xt.detach(), self.act[idx[t]]], -1))
                o, h = self.dyn.rnn(e[None], h)
                xt = xt.detach() + self.dyn.dec(o[0])
                preds.append(xt)
            loss = F.mse_loss(torch.stack(preds), y)
            self.opt["dyn"].zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.dyn.parameters(), cfg.model_grad_clip)
            self.opt["dyn"].step()

    def critic_step(self):
        cfg = self.cfg
        i = torch.randint(len(self.obs), (cfg.step_batch_size,), generator=self.g)
        self.x = (self.obs[i] - self.mean) / self.std
        xn = (self.next_obs[i] - self.mean) / self.std
        self.u, self.rb, self.tb = self.act[i], self.r[i], self.term[i]
        with torch.no_grad():
            un, lpn = self.sample_action(xn)
            xun = torch.cat([xn, un], -1)
            v = torch.min(self.critic_target.q1(xun), self.critic_target.q2(xun)).squeeze(-1)
            y = self.rb + (~self.tb).float() * cfg.discount * (v - self.log_alpha.exp() * lpn)
        xu = torch.cat([self.x, self.u], -1)
        loss = F.mse_loss(self.critic.q1(xu).squeeze(-1), y) + F.mse_loss(self.critic.q2(xu).squeeze(-1), y)
        self.opt["critic"].zero_grad()
        loss.backward()
        self.opt["critic"].step()
        with torch.no_grad():
            for pt, p in zip(self.critic_target.parameters(), self.critic.parameters()):
                pt.mul_(1 - cfg.critic_tau).add_(cfg.critic_tau * p)

    def actor_step(self):
        cfg = self.cfg
        alpha = self.log_alpha.exp().detach()
        x, h = self.x, torch.zeros(cfg.rec_num_layers, len(self.x), cfg.rec_latent_dim)
        alive, total = torch.ones(len(x)), 0.0
        for t in range(cfg.horizon):
            u, lp = self.sample_action(x)
            if t == 0:
                lp0 = lp
            xu = torch.cat([x, u], -1)
            total = total - alpha * cfg.discount**t * lp
            if t == cfg.horizon - 1:
                q = torch.min(self.critic.q1(xu), self.critic.q2(xu)).squeeze(-1)
                total = total + cfg.discount**t * alive * q
            else:
                total = total + cfg.discount**t * alive * self.rew(xu).squeeze(-1)
                alive = alive * torch.sigmoid(-self.done(xu).squeeze(-1))
                o, h = self.dyn.rnn(self.dyn.enc(xu)[None], h)
                x = x + self.dyn.dec(o[0])
        loss = -total.mean() / cfg.horizon
        self.opt["actor"].zero_grad()
        loss.backward(inputs=list(self.actor.parameters()))
        self.opt["actor"].step()
        a_loss = (self.log_alpha.exp() * (-lp0 - (-2.0)).detach()).mean()
        self.opt["alpha"].zero_grad()
        a_loss.backward()
        self.opt["alpha"].step()

    def rew_done_step(self):
        xu = torch.cat([self.x, self.u], -1)
        loss = F.mse_loss(self.rew(xu).squeeze(-1), self.rb)
        self.opt["rew"].zero_grad()
        loss.backward()
        self.opt["rew"].step()
        n_done = self.tb.sum()
        pw = (len(self.tb) - n_done) / n_done if n_done > 0 else torch.tensor(1.0)
        loss = F.binary_cross_entropy_with_logits(self.done(xu).squeeze(-1), self.tb.float(), pos_weight=pw)
        self.opt["done"].zero_grad()
        loss.backward()
        self.opt["done"].step()


class OursSVGStep:
    """The agent's own methods, phase by phase."""

    def __init__(self, agent, step):
        self.agent, self.step = agent, step

    def model(self):
        for _ in range(self.agent.config.model_update_repeat):
            self.agent._update_dynamics(self.step)

    def critic_step(self):
        a = self.agent
        b = a.replay.sample_transitions(a.config.step_batch_size, a.generator)
        self.x = a.normalizer.normalize(b["obs"])
        xn = a.normalizer.normalize(b["next_obs"])
        self.u, self.r, self.t = b["action"], b["reward"], b["terminated"]
        a._update_critic(self.x, self.u, self.r, xn, self.t)
        a._soft_update_target()

    def actor_step(self):
        self.agent._update_actor_and_alpha(self.x, self.step)

    def rew_done_step(self):
        self.agent._update_reward_and_done(self.x, self.u, self.r, self.t)


PHASES = ("model", "critic_step", "actor_step", "rew_done_step")


def time_phases(runners, n_iter, n_warm):
    times = {name: {p: [] for p in PHASES} for name in runners}
    for it in range(n_warm + n_iter):
        for name, runner in runners.items():  # interleaved: both see the same machine load
            for phase in PHASES:
                t0 = time.perf_counter()
                getattr(runner, phase)()
                if it >= n_warm:
                    times[name][phase].append(time.perf_counter() - t0)
    return {n: {p: statistics.median(v) for p, v in d.items()} for n, d in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="128-wide nets, batches 256/128")
    parser.add_argument("--iters", type=int, default=10, help="timed env steps per measurement")
    parser.add_argument("--obs-dim", type=int, default=26, help="Hopper (11) + 15 distractors")
    parser.add_argument("--act-dim", type=int, default=3)
    args = parser.parse_args()
    cfg_kwargs = dict(num_seed_steps=100, warmup_steps=0, log_every=10**9, num_train_steps=10**6,
                      replay_capacity=20_000)
    if args.small:
        cfg_kwargs.update(model_free_hidden_dim=128, xu_enc_hidden_dim=128, rec_latent_dim=128,
                          rew_hidden_dim=128, done_hidden_dim=128, step_batch_size=256, seq_batch_size=128)
    n_fill = 5000
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, obs {args.obs_dim}, "
          f"act {args.act_dim}, {'small' if args.small else 'upstream'} sizes")

    agent = make_agent(SVGMSEAgent, cfg_kwargs, args.obs_dim, args.act_dim, n_fill)
    step = n_fill
    med = time_phases({"ours": OursSVGStep(agent, step), "plain": PlainSVGStep(agent)},
                      args.iters, n_warm=2)
    print(f"\nsvg_mse, per env step (median of {args.iters}), ms:")
    print(f"{'phase':<14}{'ours':>10}{'plain':>10}{'ours/plain':>12}")
    for phase in PHASES:
        o, p = med["ours"][phase] * 1e3, med["plain"][phase] * 1e3
        print(f"{phase:<14}{o:>10.2f}{p:>10.2f}{o / p:>12.3f}")
    tot_o, tot_p = (sum(med[n].values()) * 1e3 for n in ("ours", "plain"))
    print(f"{'total':<14}{tot_o:>10.2f}{tot_p:>10.2f}{tot_o / tot_p:>12.3f}")

    print(f"\nfull agent.update per env step (median of {args.iters}):")
    print(f"{'agent':<16}{'ms/step':>10}{'steps/s':>10}")
    for cls in (SVGMSEAgent, SVGMLEAgent, SVGIterVAMLAgent, SVGVaGraMAgent):
        ag = make_agent(cls, cfg_kwargs, args.obs_dim, args.act_dim, n_fill)
        samples = []
        for i in range(args.iters + 2):
            t0 = time.perf_counter()
            ag.update(n_fill + i)
            if i >= 2:
                samples.append(time.perf_counter() - t0)
        ms = statistics.median(samples) * 1e3
        name = "svg_" + cls.model_loss_name
        print(f"{name:<16}{ms:>10.2f}{1e3 / ms:>10.2f}")


if __name__ == "__main__":
    main()
