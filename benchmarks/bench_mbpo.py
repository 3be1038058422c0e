"""Per-env-step wall clock of the MBPO agents, split by phase, against the same work in plain torch.

A short Hopper run with the hyperparameters of the issue's reference measurement (mbrl-lib 0.2's
Hopper config: 40 SAC updates per env step, 2x512 SAC nets, SAC batch 256, a 7-member 4x200
ensemble, 100,000 rollouts every 250 env steps), for each of ``mbpo_mse``, ``mbpo_mle``,
``mbpo_itervaml`` and ``mbpo_vagram``:

1. ``--fill`` real Hopper-v5 steps through ``agent.act/observe`` (the initial exploration): the
   ``env`` phase per step (policy forward + MuJoCo step + replay insert).
2. One model-training call (the population of one's ``_train_models``), capped at ``--model-epochs`` epochs, split into
   ``value_grads`` (VaGraM/IterVAML: the batched cache fill over the whole buffer) and
   ``model_train``; one rollout call (``_fill_model_buffers``) of ``--rollout-length`` steps.
   Both happen once per ``freq_train_model`` (250) env steps, so they are amortised over 250.
3. ``--steps`` env steps' worth of SAC updates (``_sac_updates``: 40 updates on the real/model
   mix, p = 0.5).

``plain`` does the same work in straight-line plain torch on copies of the same networks and data:
the textbook SAC update of ``benchmarks/bench_sac.py`` (two ``nn.Sequential`` critics, three Adam
steps, a Polyak loop) on batches drawn by raw tensor indexing; an ensemble trainer with the same
bootstrap/epoch/validation structure and batch size, the loss written inline; per-head
``autograd.grad`` loops for the value gradients; a rollout loop with per-elite forwards. Ours and
plain alternate in one process, so the ratios are meaningful on a shared machine; absolute times are
not.

    OMP_NUM_THREADS=2 python benchmarks/bench_mbpo.py                       # all four agents
    OMP_NUM_THREADS=2 python benchmarks/bench_mbpo.py --agents mbpo_vagram --steps 5
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import vagram_bench  # noqa: F401
from vagram_bench.agents.mbpo import (
    MBPOIterVAMLAgent,
    MBPOMLEAgent,
    MBPOMSEAgent,
    MBPOVaGraMAgent,
)

AGENTS = {
    "mbpo_mse": MBPOMSEAgent,
    "mbpo_mle": MBPOMLEAgent,
    "mbpo_itervaml": MBPOIterVAMLAgent,
    "mbpo_vagram": MBPOVaGraMAgent,
}
ENV_ID = "Hopper-v5"


def _load_plain_sac():
    """``PlainSAC`` (the textbook update) from ``benchmarks/bench_sac.py``, with the reference
    ``SACLearner`` it starts from as ``PlainSAC.Learner``."""
    path = Path(__file__).with_name("bench_sac.py")
    spec = importlib.util.spec_from_file_location("bench_sac", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.PlainSAC.Learner = mod.SACLearner
    return mod.PlainSAC


class PlainMBPOWork:
    """The model-side work of one MBPO training call in plain torch, on copies of the agent's
    ensemble weights and data."""

    def __init__(self, agent, plain_sac):
        pop = agent.population  # the agent's population of one
        m = pop.model.member_model(0)
        self.E, self.d, self.gaussian = m.ensemble_size, m.obs_dim, m.gaussian
        self.weights = [
            (layer.weight.detach().clone().requires_grad_(True), layer.bias.detach().clone().requires_grad_(True))
            for layer in list(m.hidden) + [m.head]
        ]
        self.opt = torch.optim.Adam([p for wb in self.weights for p in wb], lr=1e-3, weight_decay=5e-5)
        data = pop.real_buffer.storage[0][: int(pop.real_buffer.size[0])]
        self.obs, self.act = data["observation"].clone(), data["action"].clone()
        self.next_obs, self.rew = data["next", "observation"].clone(), data["next", "reward"].view(-1).clone()
        self.sac = plain_sac
        self.loss_name = pop.model_loss.name
        self.batch_size = agent.config.model_batch_size
        self.elites = m.elite_idx.clone()
        self.g = torch.Generator().manual_seed(0)
        self.term = pop.termination_fn

    def forward(self, x, members=None):
        h = x
        for i, (w, b) in enumerate(self.weights):
            if members is not None:
                w, b = w[members], b[members]
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = F.silu(h)
        return h

    def _norm_input(self):
        x = torch.cat([self.obs, self.act], -1)
        return (x - x.mean(0)) / x.std(0).clamp_min(1e-8)

    def value_grads(self):
        """Per-head loop: four autograd.grad calls over all next states (the textbook way)."""
        s = self.next_obs.clone().requires_grad_(True)
        with torch.no_grad():
            a = torch.tanh(self.sac.actor(self.next_obs).chunk(2, -1)[0])
        grads = []
        for q in list(self.sac.q) + list(self.sac.q_target):
            (g,) = torch.autograd.grad(q(torch.cat([s, a], -1)).sum(), s)
            grads.append(g)
        return torch.stack(grads)

    def loss(self, xb, idx, vgrads):
        out = self.forward(xb)
        mean = out[..., : self.d + 1]
        err_s = self.obs[idx] + mean[..., : self.d] - self.next_obs[idx]
        err_r = mean[..., self.d] - self.rew[idx]
        if self.loss_name == "vagram":
            g = vgrads[:, idx]  # (4, E, B, d)
            state = (g * err_s).pow(2).mean(-1).mean(0)
        elif self.loss_name == "itervaml":
            pred = self.obs[idx] + mean[..., : self.d]
            a = torch.tanh(self.sac.actor(pred).chunk(2, -1)[0]).detach()
            x = torch.cat([pred, a], -1)
            vp = torch.stack([q(x).squeeze(-1) for q in list(self.sac.q) + list(self.sac.q_target)])
            xt = torch.cat([self.next_obs[idx], torch.tanh(self.sac.actor(self.next_obs[idx]).chunk(2, -1)[0])], -1)
            with torch.no_grad():
                vt = torch.stack([q(xt).squeeze(-1) for q in list(self.sac.q) + list(self.sac.q_target)])
            state = (vp - vt).pow(2).mean(0)
        elif self.gaussian:
            lv = out[..., self.d + 1 : 2 * self.d + 1].clamp(-10, 0.5)
            state = (err_s.pow(2) * torch.exp(-lv) + lv).mean(-1)
        else:
            state = err_s.pow(2).mean(-1)
        return (state + err_r.pow(2)).mean(1).sum()

    def train(self, epochs):
        x = self._norm_input()
        n = x.shape[0]
        perm = torch.randperm(n, generator=self.g)
        n_val = int(0.2 * n)
        val, tr = perm[:n_val], perm[n_val:]
        members = tr[torch.randint(len(tr), (self.E, len(tr)), generator=self.g)]
        vgrads = self.value_grads() if self.loss_name == "vagram" else None
        params = [p for wb in self.weights for p in wb]
        for _ in range(epochs):
            order = torch.randperm(len(tr), generator=self.g)
            for s in range(0, len(tr), self.batch_size):
                idx = members[:, order[s : s + self.batch_size]]
                loss = self.loss(x[idx], idx, vgrads)
                self.opt.zero_grad()
                loss.backward(inputs=params)
                self.opt.step()
            with torch.no_grad():
                for s in range(0, n_val, 4096):
                    vi = val[s : s + 4096]
                    self.forward(x[vi].unsqueeze(0).expand(self.E, -1, -1))

    @torch.no_grad()
    def rollout(self, n, horizon):
        x_mean = torch.cat([self.obs, self.act], -1).mean(0)
        x_std = torch.cat([self.obs, self.act], -1).std(0)
        obs = self.obs[torch.randint(len(self.obs), (n,), generator=self.g)]
        kept = []
        for _ in range(horizon):
            a = torch.tanh(self.sac.actor(obs).chunk(2, -1)[0])
            x = (torch.cat([obs, a], -1) - x_mean) / x_std
            k = len(self.elites)
            per = -(-len(obs) // k)
            perm = torch.randperm(len(obs), generator=self.g)
            perm = torch.cat([perm, perm[: per * k - len(obs)]])
            out = self.forward(x[perm].view(k, per, -1), self.elites).reshape(k * per, -1)
            nxt = torch.empty(len(obs), out.shape[-1])
            nxt[perm] = out
            next_obs = obs + nxt[:, : self.d]
            done = self.term(next_obs)
            kept.append((obs, a, next_obs, nxt[:, self.d], done))
            obs = next_obs[~done]


def bench_agent(name, args, PlainSAC):
    cls = AGENTS[name]
    cfg = dataclasses.replace(
        cls.default_config(ENV_ID),
        num_sac_updates_per_step=40, sac_hidden_size=512, sac_num_layers=2, sac_batch_size=256,
        ensemble_size=7, num_elites=5, num_layers=4, hid_size=200,
        initial_exploration_steps=args.fill, num_epochs_train_model=args.model_epochs,
        freq_train_model=args.freq, effective_model_rollouts_per_step=400,
        dataset_size=max(args.fill, 1000), sac_bf16=args.bf16, rollout_bf16=args.bf16,
    )
    env = gym.make(ENV_ID)
    agent = cls(cfg, env.observation_space, env.action_space, env_id=ENV_ID, seed=0)
    t = {}
    # 1. env phase (exploration with the untrained stochastic policy)
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(args.fill):
        a = agent.act(obs, deterministic=False)
        nobs, r, term, trunc, _ = env.step(a)
        agent.observe(obs, a, r, nobs, term, trunc)
        obs = env.reset()[0] if (term or trunc) else nobs
    t["env"] = (time.perf_counter() - t0) / args.fill

    # 2. model phases (ours: the agent's population of one), then the plain-torch equivalent on copies
    pop = agent.population
    one, step = np.array([True]), np.array([args.fill])
    # the plain SAC's nets start as a single learner of the agent's config (the same sizes)
    plain_sac = PlainSAC(PlainSAC.Learner(pop.obs_dim, pop.act_dim, cls.sac_config(cfg),
                                          generator=torch.Generator().manual_seed(0)), cls.sac_config(cfg))
    plain = PlainMBPOWork(agent, plain_sac)
    pop.timings = dict.fromkeys(pop.timings, 0.0)
    metrics = pop._train_models(one, np.array([1]), step)[0]
    epochs = int(metrics["model_train_epochs"])
    t["value_grads"] = pop.timings["value_grads"]
    t["model_train"] = pop.timings["model_train"]
    pop.rollout_length[0] = args.rollout_length
    pop.model_buffer.resize(0, cfg.model_buffer_capacity(args.rollout_length))
    t0 = time.perf_counter()
    pop._fill_model_buffers(one, {0: {}}, step)
    t["rollout"] = time.perf_counter() - t0

    p = {}
    t0 = time.perf_counter()
    if pop.model_loss.needs_value_function:
        plain.value_grads()
    p["value_grads"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain.train(epochs)
    p["model_train"] = time.perf_counter() - t0 - (p["value_grads"] if plain.loss_name == "vagram" else 0.0)
    t0 = time.perf_counter()
    plain.rollout(cfg.rollout_batch_size, args.rollout_length)
    p["rollout"] = time.perf_counter() - t0

    # 3. SAC updates: ours (the population's _sac_updates) and plain, interleaved per env step
    real = pop.real_buffer.storage[0][: int(pop.real_buffer.size[0])]
    model = pop.model_buffer.storage[0][: int(pop.model_buffer.size[0])]
    pools = [
        tuple(td[k].clone() for k in ("observation", "action", ("next", "reward"), ("next", "observation")))
        + (td["next", "terminated"].view(-1).float(),)
        for td in (real, model)
    ]
    g = torch.Generator().manual_seed(0)

    def plain_step():
        for _ in range(cfg.num_sac_updates_per_step):
            o, a, r, no, d = pools[int(torch.rand(1, generator=g) < 0.5)]
            i = torch.randint(len(o), (cfg.sac_batch_size,), generator=g)
            plain_sac.update(o[i], a[i], r[i].view(-1), no[i], d[i])

    ours_sac, plain_sac_t = [], []
    half = np.array([0.5])
    pop._sac_updates(one, half), plain_step()  # warm-up
    for _ in range(args.steps):
        t0 = time.perf_counter()
        pop._sac_updates(one, half)
        ours_sac.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain_step()
        plain_sac_t.append(time.perf_counter() - t0)
    t["sac"] = statistics.median(ours_sac)
    p["sac"] = statistics.median(plain_sac_t)
    p["env"] = t["env"]
    return t, p, epochs, cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--fill", type=int, default=10_000, help="real transitions before timing (upstream: 10k)")
    parser.add_argument("--steps", type=int, default=5, help="env steps of SAC updates timed (median)")
    parser.add_argument("--model-epochs", type=int, default=10, help="cap on model epochs per training call")
    parser.add_argument("--rollout-length", type=int, default=1, help="model rollout length")
    parser.add_argument("--freq", type=int, default=250, help="env steps per model training call")
    parser.add_argument("--bf16", action="store_true", help="agent.sac_bf16 and agent.rollout_bf16 (plain stays fp32)")
    args = parser.parse_args()
    PlainSAC = _load_plain_sac()
    print(
        f"MBPO on {ENV_ID}: 40 SAC updates/step, 2x512 SAC, batch 256, 7x(4x200) ensemble, "
        f"{400 * args.freq} rollouts of length {args.rollout_length} every {args.freq} steps, "
        f"{args.fill} real transitions; torch threads {torch.get_num_threads()}; ours bf16={args.bf16}"
    )
    phases = ("env", "sac", "model_train", "rollout", "value_grads")
    summary = {}
    for name in args.agents:
        t, p, epochs, cfg = bench_agent(name, args, PlainSAC)
        amort = {k: (v if k in ("env", "sac") else v / args.freq) for k, v in t.items()}
        amort_p = {k: (v if k in ("env", "sac") else v / args.freq) for k, v in p.items()}
        total, total_p = sum(amort.values()), sum(amort_p.values())
        print(f"\n{name}  (model: {epochs} epochs, batch {cfg.model_batch_size}; per env step, ms)")
        print(f"  {'phase':12s} {'ours':>10s} {'plain':>10s} {'ratio':>7s}   per call (ours/plain, s)")
        for k in phases:
            ratio = amort[k] / amort_p[k] if amort_p.get(k) else math.nan
            per_call = "" if k in ("env", "sac") else f"   {t[k]:.2f} / {p[k]:.2f}"
            print(f"  {k:12s} {amort[k] * 1e3:10.2f} {amort_p[k] * 1e3:10.2f} {ratio:7.2f}{per_call}")
        print(f"  {'total':12s} {total * 1e3:10.2f} {total_p * 1e3:10.2f} {total / total_p:7.2f}")
        summary[name] = (total, total_p)
    print("\nsummary (target: <= 0.5 s per env step, ratio <= 1.2; against mbrl-lib: benchmarks/bench_peer.py)")
    for name, (total, total_p) in summary.items():
        print(f"  {name:14s} {total:.3f} s/step  {1 / total:6.2f} env-steps/s  ours/plain {total / total_p:.2f}")


if __name__ == "__main__":
    main()
