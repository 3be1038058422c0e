"""The run's progress bar: its redraw policy and its phase-aware ETA under an injected clock, and the
agents' ``phase`` hooks against what their ``update`` actually does."""

from __future__ import annotations

import io
import time

import pytest

from vagram_bench.runner.progress import BAR_FORMAT, RunProgress, format_seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeBar:
    """Records every redraw as (n, postfix)."""

    disable = False

    def __init__(self) -> None:
        self.n, self.postfix, self.draws, self.closed = 0, "", [], False

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s

    def refresh(self) -> None:
        self.draws.append((self.n, self.postfix))

    def close(self) -> None:
        self.closed = True


def _progress(total=10_000, initial=0, interval=0.5):
    clock, bar = FakeClock(), FakeBar()
    return RunProgress(bar, total, initial, interval=interval, clock=clock), clock, bar


def test_redraws_follow_wall_time_not_env_steps():
    p, clock, bar = _progress()
    p.step(0, "exploring")
    assert len(bar.draws) == 1  # the first report draws at once
    for k in range(1, 1000):  # a thousand fast steps within 0.1 s: no redraw
        clock.now += 0.0001
        p.step(k, "exploring")
    assert len(bar.draws) == 1
    clock.now += 0.5  # the interval has passed: the next step redraws, with the current count
    p.step(1000, "exploring")
    assert len(bar.draws) == 2 and bar.draws[-1][0] == 1000
    # a step that takes long (an update running for seconds): the ticker redraws without new steps
    assert p.refresh_if_due() is False  # just drawn
    for i in range(1, 4):
        clock.now += 0.5
        assert p.refresh_if_due() is True and len(bar.draws) == 2 + i
    assert bar.draws[-1][0] == 1000


def _run_phase(p, clock, steps, phase, seconds_per_step):
    """Report ``steps`` (a range) in ``phase``, each taking ``seconds_per_step`` on the fake clock."""
    for k in steps:
        p.step(k, phase)
        clock.now += seconds_per_step
    p.step(steps.stop, phase)


def test_eta_comes_from_the_current_phase_rate():
    p, clock, bar = _progress(total=10_000)
    _run_phase(p, clock, range(0, 1000), "exploring", 0.001)  # exploration at 1000 steps/s
    assert p.rate(clock.now) == pytest.approx(1000.0)
    assert p.eta(clock.now) == pytest.approx((10_000 - 1000) / 1000.0)
    _run_phase(p, clock, range(1000, 1021), "learning", 0.1)  # learning at 10 steps/s
    # 21 learning steps in 2.1 s, measured from the first learning step: the fast exploration is not in it
    assert p.rate(clock.now) == pytest.approx(10.0)
    assert p.eta(clock.now) == pytest.approx((10_000 - 1021) / 10.0)
    assert p.postfix(clock.now) == f"learning 10 step/s, ETA {format_seconds(897.9)}"  # 8979 steps at 10 step/s


def test_a_recurring_one_step_phase_counts_in_the_stretch_it_recurs_in():
    # MBPO: explore, then every 10th step trains the model (3 s), the other steps learn (0.1 s each)
    p, clock, bar = _progress(total=1000)
    _run_phase(p, clock, range(0, 50), "exploring", 0.001)
    for k in range(50, 150):
        phase = "training the model" if k % 10 == 0 else "learning"
        p.step(k, phase)
        clock.now += 3.0 if phase == "training the model" else 0.1
    p.step(150, "training the model")
    # 100 steps in 10 model trainings (30 s) and 90 learning steps (9 s), exploration excluded
    assert p.rate(clock.now) == pytest.approx(100 / 39.0)
    assert p.eta(clock.now) == pytest.approx((1000 - 150) * 39.0 / 100)


def test_the_last_eval_is_shown_with_its_step_and_at_once():
    p, clock, bar = _progress()
    p.step(0, "")
    assert bar.draws[-1][1] == "? step/s, ETA ?"  # an agent without phases, nothing measured yet
    clock.now += 0.01
    p.step(1500, "learning")
    p.evaluated(1500, 40.24)
    assert len(bar.draws) == 2 and bar.draws[-1][1].endswith(", eval 40.2 @1500")
    clock.now += 1.0
    p.step(1700, "learning")
    assert bar.draws[-1] == (1700, bar.draws[-1][1]) and "eval 40.2 @1500" in bar.draws[-1][1]


def test_a_quiet_run_draws_nothing_and_a_real_tqdm_line_reads_well():
    bar = FakeBar()
    bar.disable = True
    p = RunProgress(bar, 100, 0, clock=FakeClock())
    p.step(1, "learning")
    p.evaluated(1, 2.0)
    p.start_ticker()
    p.close()
    assert bar.draws == [] and p._ticker is None and bar.closed

    from tqdm import tqdm

    out = io.StringIO()
    clock = FakeClock()
    p = RunProgress(tqdm(total=2000, desc="sac Hopper-v5 s0", file=out, bar_format=BAR_FORMAT, ncols=140),
                    2000, 1000, clock=clock)
    p.step(1000, "learning")
    clock.now += 4.0
    p.step(1002, "learning")
    p.evaluated(1000, 12.345)
    line = out.getvalue().rsplit("\r", 1)[-1]
    assert "1002/2000 [" in line and line.rstrip().endswith(
        ", 2 s/step, ETA 33:16, eval 12.3 @1000]".replace("2 s/step", "learning 2 s/step")), line


def test_the_ticker_redraws_while_the_loop_is_busy():
    p, clock, bar = _progress(interval=0.01)
    p.step(5, "training the model")
    p.start_ticker()
    try:
        n = len(bar.draws)
        clock.now += 1.0
        deadline = time.monotonic() + 10
        while len(bar.draws) == n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(bar.draws) > n and bar.draws[-1] == (5, bar.draws[-1][1])
        assert bar.draws[-1][1].startswith("training the model")
    finally:
        p.close()
    assert bar.closed and not p._ticker.is_alive()


# ------------------------------------------------------------------------------------------------
# the agents' phase hooks, checked against what update() does


def test_sac_phase_matches_when_it_learns():
    import gymnasium as gym

    from vagram_bench.agents.sac import SACAgent, SACConfig

    env = gym.make("InvertedPendulum-v5")
    agent = SACAgent(SACConfig(learning_starts=20, batch_size=8, hidden_size=16), env.observation_space,
                     env.action_space, env_id="InvertedPendulum-v5", seed=0)
    obs, _ = env.reset(seed=0)
    for k in range(1, 31):
        a = agent.act(obs, deterministic=False)
        nobs, r, term, trunc, _ = env.step(a)
        agent.observe(obs, a, r, nobs, term, trunc)
        phase = type(agent).phase(agent.config, k)
        learned = bool(agent.update(k))
        assert phase == ("learning" if learned else "exploring"), k
        obs = env.reset()[0] if term or trunc else nobs


def test_mbpo_phase_matches_model_trainings_and_sac_updates():
    from test_mbpo_agent import AGENTS, make_agent, tiny_config

    cls = AGENTS["mse"]
    env, agent = make_agent(cls, tiny_config(cls))  # 40 exploration steps, a model training every 10
    obs, _ = env.reset(seed=0)
    seen = {}
    for k in range(1, 81):
        a = agent.act(obs, deterministic=False)
        nobs, r, term, trunc, _ = env.step(a)
        agent.observe(obs, a, r, nobs, term, trunc)
        pop = agent.population
        trainings, sac_updates = int(pop.num_model_trainings[0]), int(pop.num_sac_updates[0])
        phase = type(agent).phase(agent.config, k)
        agent.update(k)
        trained = pop.num_model_trainings[0] > trainings
        learned = trained or pop.num_sac_updates[0] > sac_updates
        expected = "training the model" if trained else ("learning" if learned else "exploring")
        assert phase == expected, (k, phase, expected)
        seen[phase] = seen.get(phase, 0) + 1
        obs = env.reset()[0] if term or trunc else nobs
    assert seen == {"exploring": 49, "training the model": 4, "learning": 27}


def test_svg_phase_matches_learning_and_the_model_free_warm_up():
    from test_svg import LinearToyEnv, make_agent

    from vagram_bench.agents.svg import SVGMSEAgent

    agent = make_agent(SVGMSEAgent, num_seed_steps=64, warmup_steps=80, horizon=3)
    env = LinearToyEnv()
    obs = env.reset()
    phases = []
    for k in range(1, 101):
        a = agent.act(obs, deterministic=False)
        nxt, r, term, trunc = env.step(a)
        agent.observe(obs, a, r, nxt, term, trunc)
        phase = type(agent).phase(agent.config, k)
        metrics = agent.update(k)
        if not metrics:
            expected = "exploring"
        else:
            expected = "training the model" if metrics["actor_model_free"] == 1.0 else "learning"
            assert "model_obs_loss" in metrics
        assert phase == expected, (k, phase, metrics)
        phases.append(phase)
        obs = env.reset() if term or trunc else nxt
    assert phases.count("exploring") == 63 and phases.count("training the model") == 16


def test_a_bar_written_to_a_file_redraws_once_a_minute_and_at_each_evaluation(monkeypatch):
    """stderr redirected to a file (or a pipe): a redraw every LOG_INTERVAL seconds plus one per
    evaluation, instead of the terminal's two per second."""
    import sys

    from vagram_bench.runner import loop
    from vagram_bench.runner.config import RunConfig
    from vagram_bench.runner.progress import LOG_INTERVAL, TTY_INTERVAL, redraw_interval

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert (redraw_interval(io.StringIO()), redraw_interval(Terminal())) == (LOG_INTERVAL, TTY_INTERVAL)
    assert LOG_INTERVAL >= 30
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    progress = loop._progress(RunConfig(steps=10_000), 0)
    assert progress.interval == LOG_INTERVAL
    progress.bar.close()
    # an hour of steps at 10 per second with an evaluation every 1000 (100 s): each evaluation draws,
    # and at most one more per minute; at the terminal's interval it would be 7,200
    p, clock, bar = _progress(total=36_000, interval=LOG_INTERVAL)
    for k in range(36_000):
        p.step(k, "learning")
        clock.now += 0.1
        if (k + 1) % 1000 == 0:
            p.evaluated(k + 1, 1.0)
    assert 36 < len(bar.draws) <= 1 + 36 + 60
