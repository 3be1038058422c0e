"""benchmarks/bench_population.py without running it: arguments, the worker commands and the FLOP
count, checked against hand computations on tiny nets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_population")


def test_arguments(bench, capsys):
    args = bench.parse_args([])
    assert args.part == "e2e" and args.configs == ["a", "b", "c"] and args.k == [1, 2, 5, 10]
    assert (args.rounds, args.explore) == (3, 1000)
    args = bench.parse_args(["--quick", "--k", "1,2,5", "--configs", "a,b"])
    assert args.k == [1, 2, 5] and args.configs == ["a", "b"] and (args.rounds, args.explore) == (1, 300)
    assert [bench.window(c, args) for c in "abc"] == [100, 8, 3]
    assert bench.window("b", bench.parse_args(["--window", "12"])) == 12
    for bad, message in ((["--configs", "a,z"], "unknown configuration(s) ['z']; valid: a, b, c"),
                         (["--k", "1,0"], "expected positive integers"), (["--k", "two"], "comma-separated integers"),
                         (["--window", "1"], "--window >= 2")):
        with pytest.raises(SystemExit) as exc:
            bench.parse_args(bad)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_worker_commands(bench, monkeypatch):
    args = bench.parse_args(["--quick"])
    script = str(REPO / "benchmarks" / "bench_population.py")
    assert bench.worker_command("b", range(3), 2, args, bf16=True) == [
        sys.executable, script, "--worker", "--config", "b", "--seeds", "0,1,2", "--threads", "2",
        "--explore", "300", "--window", "8", "--device", "cpu", "--bf16"]
    worker = bench.parse_args(bench.worker_command("a", [4], 1, args)[2:] + ["--barrier", "/tmp/x"])
    assert worker.worker and worker.config == "a" and worker.seeds == "4" and worker.barrier == "/tmp/x"
    assert not worker.bf16 and worker.device == "cpu"
    # the device reaches the timed process, and off the CPU the population is timed alone
    cuda = bench.parse_args(["--device", "cuda", "--configs", "c", "--k", "1,5,10"])
    assert bench.worker_command("c", range(5), 1, cuda)[-2:] == ["--device", "cuda"]
    calls = []
    for name in ("run_pop_only", "run_e2e", "run_learner"):
        monkeypatch.setattr(bench, name, lambda a, name=name: calls.append(name))
    bench.main(["--device", "cuda", "--configs", "c"])
    bench.main(["--pop-only", "--configs", "a"])
    bench.main(["--configs", "a"])
    assert calls == ["run_pop_only", "run_pop_only", "run_e2e"]
    # a bf16 row only where the agent has the switch (MBPO, not sac) and it was not skipped
    assert [bench.measures_bf16(c, args) for c in "abc"] == [False, True, True]
    assert not bench.measures_bf16("b", bench.parse_args(["--skip-bf16"]))
    # every configuration is a valid runner command line
    from vagram_bench.runner.config import parse_args as parse_run_args

    b = parse_run_args(list(bench.CONFIGS["b"].argv)).agent_config
    assert (b.sac_hidden_size, b.num_sac_updates_per_step) == (256, 10)
    assert parse_run_args(list(bench.CONFIGS["a"].argv)).agent_config.hidden_size == 256


def test_sac_update_flops_of_a_tiny_net_by_hand(bench):
    # obs 2, act 1, one hidden layer of 3, batch 1. Actor 2 -> 3 -> 2 (mean, log-std), critic 3 -> 3 -> 1.
    actor_fwd = 2 * (2 * 3 + 3 * 2)                     # 24
    actor_bwd = 2 * (2 * 3 + 3 * 2) + 2 * (3 * 2)       # weight grads 24 + input grad of layer 2: 12 -> 36
    critic_fwd = 2 * (3 * 3 + 3 * 1)                    # 24
    critic_bwd = 2 * (3 * 3 + 3 * 1) + 2 * (3 * 1)      # weight grads 24 + input grad of layer 2: 6 -> 30
    critic_input_grad = 2 * (3 * 3 + 3 * 1)             # dQ/d(s, a) through both layers: 24
    critic_loss = actor_fwd + 2 * critic_fwd + 2 * (critic_fwd + critic_bwd)              # 180
    actor_loss = actor_fwd + actor_bwd + 2 * (critic_fwd + critic_input_grad)           # 156
    assert critic_loss + actor_loss == 336
    assert bench.sac_update_flops(2, 1, 3, 1, batch=1) == 336
    assert bench.sac_update_flops(2, 1, 3, 1, batch=4) == 4 * 336
    assert bench.mlp_flops([2, 3, 3, 2], 5) == 5 * 2 * (6 + 9 + 6)


def test_env_step_flops_by_hand(bench):
    from vagram_bench.agents.mbpo.config import MBPOConfig
    from vagram_bench.agents.sac import SACConfig

    sac = SACConfig(hidden_size=3, num_layers=1, batch_size=4, updates_per_step=2)
    assert bench.env_step_flops(sac, 2, 1) == 24 + 2 * 4 * 336  # acting (actor on one row) + 2 updates

    mbpo = MBPOConfig(model_loss="mse", sac_hidden_size=3, sac_num_layers=1, sac_batch_size=1,
                      num_sac_updates_per_step=1, hid_size=2, num_layers=1, ensemble_size=2, num_elites=1,
                      freq_train_model=10, effective_model_rollouts_per_step=1, validation_ratio=0.2)
    member_fwd = 2 * (3 * 2 + 2 * 3)                    # (s, a) 3 -> 2 -> 3 (delta + reward): 24
    member_fwd_bwd = member_fwd + 2 * (3 * 2 + 2 * 3) + 2 * (2 * 3)   # + weight grads 24 + input grad layer 2: 12
    training = 2 * 2 * (8 * member_fwd_bwd + 2 * member_fwd)   # 2 epochs x 2 members x (8 train + 2 val rows)
    rollouts = 10 * 1 * (24 + member_fwd)               # 10 rollouts of length 1: actor + one elite
    expected = 24 + 336 + (training + rollouts) / 10
    assert expected == pytest.approx(619.2)
    assert bench.env_step_flops(mbpo, 2, 1, {"epochs": 2, "n": 10, "rollout_length": 1}) == pytest.approx(expected)
    gaussian = MBPOConfig(**{**mbpo.__dict__, "model_loss": "mle"})  # head 2 x (d + 1): more FLOPs
    assert bench.env_step_flops(gaussian, 2, 1, {"epochs": 2, "n": 10, "rollout_length": 1}) > expected


def test_split_layout(bench):
    assert bench.split_seeds(5, 2) == [[0, 1, 2], [3, 4]]
    assert bench.split_seeds(2, 2) == [[0], [1]]       # K <= C: one seed per process, the sep layout
    assert bench.split_seeds(1, 2) == [[0]]
    assert bench.split_seeds(10, 4) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    # per-seed rate: the mean over all seeds, a process counted once per seed it trains
    results = [{"seeds": [0, 1, 2], "steps_per_second": 10.0}, {"seeds": [3, 4], "steps_per_second": 20.0}]
    assert bench.per_seed_rate(results) == pytest.approx((3 * 10 + 2 * 20) / 5)
    assert bench.parse_args(["--split-processes", "3"]).split_processes == 3
    with pytest.raises(SystemExit):
        bench.parse_args(["--split-processes", "-1"])


def test_profile_timer_charges_the_innermost_part(monkeypatch):
    """PartTimer on a fake clock that advances 1 s per reading: each part gets the seconds between
    the readings that enter and leave it, minus those of the parts nested in it."""
    profile = load_benchmark("profile_population")
    clock = iter(range(1000))
    monkeypatch.setattr(profile.time, "process_time", lambda: float(next(clock)))

    class Work:
        def outer(self):
            return self.inner() + 1

        def inner(self):
            return 1

    work = Work()
    timer = profile.PartTimer()
    timer.wrap(work, "outer", "outer part")
    timer.wrap(work, "inner", lambda enclosing: enclosing + "/inner")
    timer.start()                       # reading 1 (the constructor took reading 0)
    assert work.outer() == 2            # enter outer 2, enter inner 3, leave inner 4, leave outer 5
    totals = timer.stop()               # reading 6
    assert totals == {"other": 2.0, "outer part": 2.0, "outer part/inner": 1.0}
    assert work.outer() == 2 and timer.totals == totals  # not active: nothing charged, clock not read
    args = profile.parse_args(["--configs", "a", "--k", "1,3"])
    assert args.configs == ["a"] and args.k == [1, 3] and args.rounds == 3
