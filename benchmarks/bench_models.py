"""Speed of the dynamics-model code paths, measured as ratios inside one process.

1. Ensemble training step (forward + backward + Adam, E members, batch B per member):
   batched ``(E, in, out)`` weights vs a Python loop over E independent ``nn.Sequential`` members,
   fp32 and bf16 autocast.
2. Rollout step for N = 100,000 states (MBPO's rollout batch):
   full-ensemble forward on all N (then pick one member per state) vs a per-elite Python loop vs
   ``sample_step`` (states split over the elites, batched), with chunking and bf16 autocast.
3. One model-training epoch: VaGraM (value targets computed) vs MSE (target ≤ 1.3×).
4. A multi-step rollout through the TorchRL :class:`EnsembleModelEnv` vs :func:`branched_rollout`.

Usage::

    python benchmarks/bench_models.py                 # Hopper + 15 distractors, MBPO sizes
    python benchmarks/bench_models.py --threads 2 --rollout-states 100000 --epoch-transitions 20000

Prints a table per section and the ratios (> 1 means the first-named path is faster unless stated).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

# the single-seed model code it times is a test reference, no part of the package (tests/reference/)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference.model_trainer import ModelTrainer  # noqa: E402
from vagram_bench.models import EnsembleDynamicsModel, make_model_loss  # noqa: E402


def timeit(fn, repeats: int, warmup: int = 1) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_train_step(args, d, a):
    g = torch.Generator().manual_seed(0)
    E, B = args.ensemble_size, args.batch_size
    model = EnsembleDynamicsModel(d, a, ensemble_size=E, num_elites=args.num_elites, num_layers=args.num_layers,
                                  hid_size=args.hid_size, generator=g)
    mods = model.member_modules()
    opt_b = torch.optim.Adam(model.parameters(), lr=1e-3)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in mods]
    x = torch.randn(E, B, d + a, generator=g)
    y = torch.randn(E, B, d + 1, generator=g)

    def batched(bf16=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out, _ = model.forward_normalized(x)
        loss = (out.float() - y).pow(2).mean(-1).mean(1).sum()
        opt_b.zero_grad(set_to_none=True)
        loss.backward()
        opt_b.step()

    def loop():
        for e, (m, o) in enumerate(zip(mods, opts)):
            loss = (m(x[e]) - y[e]).pow(2).mean()
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

    t_b = timeit(batched, args.repeats * 5)
    t_l = timeit(loop, args.repeats * 5)
    t_h = timeit(lambda: batched(True), args.repeats * 5)
    print(f"\n[1] ensemble training step  E={E} B={B} {args.num_layers}x{args.hid_size} in={d + a}")
    print(f"    batched fp32        {t_b * 1e3:8.2f} ms")
    print(f"    per-member loop     {t_l * 1e3:8.2f} ms   loop / batched = {t_l / t_b:5.2f}x")
    print(f"    batched bf16 autoc. {t_h * 1e3:8.2f} ms   fp32 / bf16    = {t_b / t_h:5.2f}x  (training stays fp32)")
    return {"train_loop_over_batched": t_l / t_b, "train_fp32_over_bf16": t_b / t_h}


def bench_rollout(args, d, a):
    g = torch.Generator().manual_seed(1)
    N = args.rollout_states
    model = EnsembleDynamicsModel(d, a, ensemble_size=args.ensemble_size, num_elites=args.num_elites,
                                  num_layers=args.num_layers, hid_size=args.hid_size, generator=g)
    obs, act = torch.randn(N, d, generator=g), torch.rand(N, a, generator=g) * 2 - 1
    model.fit_normalizer(obs, act)
    mods = model.member_modules()
    elites = model.elite_idx.tolist()

    @torch.no_grad()
    def full_ensemble():
        # every member on every state, then one random elite's output per state
        mean, _ = model(obs, act)
        pick = model.elite_idx[torch.randint(0, len(elites), (N,), generator=g)]
        return mean[pick, torch.arange(N)]

    @torch.no_grad()
    def elite_loop():
        perm = torch.randperm(N, generator=g)
        x = model.normalize_input(obs, act)
        out = torch.empty(N, d + 1)
        for k, idx in enumerate(perm.chunk(len(elites))):
            out[idx] = mods[elites[k]](x[idx])
        return out

    res = {}
    rows = [("full ensemble forward (E x N)", full_ensemble), ("per-elite Python loop (split)", elite_loop)]
    for chunk in (None, 50_000, 25_000, 10_000, 5_000):
        for bf16 in (False, True):
            name = f"sample_step chunk={chunk} {'bf16' if bf16 else 'fp32'}"
            rows.append((name, lambda c=chunk, b=bf16: model.sample_step(obs, act, generator=g, chunk_size=c, bf16=b)))
    print(f"\n[2] rollout step  N={N} states, E={args.ensemble_size}, elites={len(elites)}")
    times = {}
    for name, fn in rows:
        times[name] = timeit(fn, args.repeats)
    base = times["full ensemble forward (E x N)"]
    for name, t in times.items():
        print(f"    {name:36s} {t * 1e3:9.1f} ms   full-ensemble / this = {base / t:5.2f}x")
    best = min((t, n) for n, t in times.items() if n.startswith("sample_step"))
    best_fp32 = min((t, n) for n, t in times.items() if n.startswith("sample_step") and "fp32" in n)
    print(f"    fastest sample_step: {best[1]} ({base / best[0]:.2f}x vs full ensemble; "
          f"{times['per-elite Python loop (split)'] / best[0]:.2f}x vs per-elite loop)")
    print(f"    fastest fp32:        {best_fp32[1]} (bf16 gain over it: {best_fp32[0] / best[0]:.2f}x)")
    # accuracy of bf16 relative to the model's own step size
    ref, _ = model.sample_step(obs, act, generator=torch.Generator().manual_seed(0), chunk_size=25_000)
    low, _ = model.sample_step(obs, act, generator=torch.Generator().manual_seed(0), chunk_size=25_000, bf16=True)
    rel = ((low - ref).norm(dim=-1) / (ref - obs).norm(dim=-1).clamp_min(1e-8)).median().item()
    print(f"    bf16 vs fp32 next-state error, median relative to |Δ|: {rel:.2e}")
    res.update(rollout_full_over_best=base / best[0], rollout_fp32best_over_best=best_fp32[0] / best[0],
               bf16_rel_err=rel)
    return res


def bench_epoch(args, d, a):
    from reference.sac_learner import SACLearner  # the single-seed test reference (tests/reference/)
    from vagram_bench.agents.sac import SACConfig

    g = torch.Generator().manual_seed(2)
    n = args.epoch_transitions
    obs, act = torch.randn(n, d, generator=g), torch.rand(n, a, generator=g) * 2 - 1
    nxt = obs + 0.1 * torch.randn(n, d, generator=g)
    rew = torch.randn(n, generator=g)
    learner = SACLearner(d, a, SACConfig(), generator=torch.Generator().manual_seed(0))
    member_idx = torch.randint(0, int(0.8 * n), (args.ensemble_size, int(0.8 * n)), generator=g)
    runs = {}
    for name in ("mse", "vagram"):
        model = EnsembleDynamicsModel(d, a, ensemble_size=args.ensemble_size, num_elites=args.num_elites,
                                      num_layers=args.num_layers, hid_size=args.hid_size,
                                      generator=torch.Generator().manual_seed(0))
        model.fit_normalizer(obs, act)
        loss = make_model_loss(name, clip_quantile=0.95 if name == "vagram" else None)
        tr = ModelTrainer(model, loss, generator=torch.Generator().manual_seed(0), batch_size=args.batch_size)
        t0 = time.perf_counter()
        targets = loss.targets(learner, nxt)  # once per training call, as MBPO does
        if targets is not None:
            fill = time.perf_counter() - t0
        ctx = dict(value_targets=targets, value_fn=learner)
        runs[name] = (lambda tr=tr, ctx=ctx: tr._train_epoch((obs, act, rew, nxt), member_idx, **ctx))
    # interleave the two so that load changes on a shared machine hit both alike
    times = {"mse": [], "vagram": []}
    for _ in range(args.repeats):
        for name in ("mse", "vagram"):
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [v / m for m, v in zip(times["mse"], times["vagram"])]
    print(f"\n[3] one model-training epoch  n={n} (80% train), batch={args.batch_size}, E={args.ensemble_size}")
    print(f"    mse     {med['mse']:8.3f} s/epoch")
    print(f"    vagram  {med['vagram']:8.3f} s/epoch   (clip q=0.95)")
    print(f"    VaGraM / MSE = {statistics.median(ratios):.2f}x median of paired runs "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}; target <= 1.3x); one-off value targets for {n} "
          f"transitions: {fill:.2f} s")
    return {"epoch_vagram_over_mse": statistics.median(ratios)}


def bench_env_vs_fast(args, d, a):
    from tensordict import TensorDict

    import functools

    from reference.model_env import EnsembleModelEnv
    from vagram_bench.models import branched_rollout, model_step

    g = torch.Generator().manual_seed(4)
    N, H = args.env_states, args.horizon
    model = EnsembleDynamicsModel(d, a, ensemble_size=args.ensemble_size, num_elites=args.num_elites,
                                  num_layers=args.num_layers, hid_size=args.hid_size, generator=g)
    obs = torch.randn(N, d, generator=g)
    model.fit_normalizer(obs, torch.rand(N, a, generator=g))
    W = torch.randn(d, a, generator=g) * 0.1
    policy = lambda s: torch.tanh(s @ W)  # noqa: E731
    term = lambda s: s[..., 0].abs() > 1e6  # noqa: E731  (no auto-resets: same work on both paths)

    def td_policy(td):
        td["action"] = policy(td["observation"])
        return td

    env = EnsembleModelEnv(model, term, generator=torch.Generator().manual_seed(0))

    def via_env():
        start = env.reset(TensorDict({"observation": obs}, batch_size=[N]))
        with torch.no_grad():
            return env.rollout(H, policy=td_policy, auto_reset=False, tensordict=start, break_when_any_done=False)

    def fast():
        step = functools.partial(model_step, model, termination_fn=term, generator=torch.Generator().manual_seed(0))
        return branched_rollout(obs, H, policy, step)

    t_env = timeit(via_env, args.repeats)
    t_fast = timeit(fast, args.repeats)
    print(f"\n[4] rollout of {N} states x {H} steps (fp32): TorchRL EnsembleModelEnv vs branched_rollout()")
    print(f"    EnsembleModelEnv.rollout {t_env * 1e3:9.1f} ms")
    print(f"    branched_rollout()       {t_fast * 1e3:9.1f} ms   env / fast = {t_env / t_fast:5.2f}x")
    return {"rollout_env_over_fast": t_env / t_fast}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--obs-dim", type=int, default=26, help="state dim (Hopper 11 + 15 distractors)")
    p.add_argument("--act-dim", type=int, default=3)
    p.add_argument("--ensemble-size", type=int, default=7)
    p.add_argument("--num-elites", type=int, default=5)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--hid-size", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--rollout-states", type=int, default=100_000)
    p.add_argument("--epoch-transitions", type=int, default=10_000)
    p.add_argument("--env-states", type=int, default=10_000, help="states for the env-vs-fast rollout")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", choices=("train", "rollout", "epoch", "env"), default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"bf16 CPU support: {torch.backends.mkldnn.is_available()}")
    d, a = args.obs_dim, args.act_dim
    res = {}
    if args.only in (None, "train"):
        res.update(bench_train_step(args, d, a))
    if args.only in (None, "rollout"):
        res.update(bench_rollout(args, d, a))
    if args.only in (None, "epoch"):
        res.update(bench_epoch(args, d, a))
    if args.only in (None, "env"):
        res.update(bench_env_vs_fast(args, d, a))
    print("\nratios:", {k: round(v, 3) for k, v in res.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
