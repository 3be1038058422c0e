"""Sweeps: grid planning, skipping complete cells, resuming partial ones, interruption, launchers.

Most tests run the sweep against a stand-in runner module with the runner's command-line
interface and run-record format (written below), which counts its own launches; the end-to-end
test at the bottom uses the real ``vagram_bench.run``.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vagram_bench import leaderboard as lb
from vagram_bench import sweep as sw
from vagram_bench.cli import kv_to_tyro, parse_config
from vagram_bench.envs import IDP_CAPACITY_SIZES
from vagram_bench.protocol import load_protocol
from vagram_bench.records import EVAL_COLUMNS

REPO = Path(__file__).resolve().parents[1]

FAKE_RUNNER = r'''
"""Stand-in for vagram_bench.run: same argv form (seed=s0,s1,... trains a population: complete
seeds are left out, the others step in lockstep), same run-record files; logs each seed's launch."""
import csv, json, os, sys, time
from pathlib import Path
from vagram_bench.protocol import load_protocol

args = dict(a.split("=", 1) for a in sys.argv[1:])
p = load_protocol(args["protocol"], check_ids=False)
seeds, env, agent = [int(s) for s in args["seed"].split(",")], args["env"], args["agent"]
runs = {s: Path(args["out"]) / env / agent / f"seed{s}" for s in seeds}
runs = {s: run for s, run in runs.items() if not (run / "summary.json").exists()}
failed = []
for seed, run in list(runs.items()):
    resumed = (run / "config.json").exists()
    with open(Path(args["out"]) / "launches.txt", "a") as f:
        f.write(f"{agent},{env},{seed},{int(resumed)},{os.environ.get('OMP_NUM_THREADS')},{os.getpid()}\n")
    if os.environ.get("FAKE_FAIL") == f"{agent},{env},{seed}":
        msg = f"fake failure of {agent} on {env} seed {seed}"
        print(f"loading\rstep 1\rstep 2\nerror: " + (f"seed {seed}: " if len(seeds) > 1 else "") + msg, file=sys.stderr)
        failed.append(seed)
        del runs[seed]
        continue
    run.mkdir(parents=True, exist_ok=True)
    if not resumed:
        (run / "config.json").write_text(json.dumps({"agent": agent, "env": env, "seed": seed,
            "steps": p.steps_for(env), "protocol": p.record()}))
        (run / "eval.csv").write_text("env_step,return_mean,return_std,return_min,return_max,episode_length_mean,wall_seconds\n")
for step in p.eval_steps_for(env):
    for seed, run in runs.items():
        if step in [int(r[0]) for r in list(csv.reader(open(run / "eval.csv")))[1:]]:
            continue
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
        ret = 100.0 * (agent == "beta") + 10.0 * seed + step / 100.0
        with open(run / "eval.csv", "a") as f:
            f.write(f"{step},{ret},0,{ret},{ret},10,0\n")
    if os.environ.get("FAKE_HOLD") == f"{agent},{env}":  # stay partial until a signal ends this process
        held_until = time.monotonic() + 300  # or end on its own: a failed test must not leave it behind
        while time.monotonic() < held_until:
            time.sleep(0.05)
        sys.exit("held run: no signal came")
for seed, run in runs.items():
    ret = 10.0 * seed + p.eval_steps_for(env)[-1] / 100.0
    (run / "summary.json").write_text(json.dumps({"final_return_mean": ret, "env_steps": step, "wall_seconds": 0.0}))
if failed:
    print(f"error: {len(failed)} of {len(seeds)} seeds stopped" if len(seeds) > 1 else "bye", file=sys.stderr)
    sys.exit(3)
'''

PROTOCOL = '''name = "sweeptest"
version = 1
description = "sweep test grid"
tasks = ["HopperDistract-0-v0", "HopperDistract-5-v0"]
seeds = [0, 1]
steps = 300
eval_every = 100
eval_episodes = 1
eval_seed = 1000
metric = "mean"
agents = ["sac", "mbpo_mse"]
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "fake_vagram_runner.py").write_text(FAKE_RUNNER)
    proto = tmp_path / "sweeptest.toml"
    proto.write_text(PROTOCOL)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mod), os.environ.get("PYTHONPATH", "")]))
    return proto, tmp_path / "runs"


def launches(out: Path) -> list[tuple[str, str, int, int, str]]:
    """(agent, task, seed, resumed, OMP_NUM_THREADS) of every seed a runner process started."""
    return [launch[:5] for launch in launches_with_process(out)]


def launches_with_process(out: Path) -> list[tuple[str, str, int, int, str, int]]:
    """:func:`launches` with the runner process's pid last (seeds of one population share it)."""
    path = out / "launches.txt"
    if not path.exists():
        return []
    return [(a, e, int(s), int(r), t, int(pid)) for a, e, s, r, t, pid in
            (line.split(",") for line in path.read_text().split())]


def processes(out: Path, since: int = 0) -> list[tuple[str, str, tuple[int, ...]]]:
    """(agent, task, seeds) of each runner process, in launch order, from launch ``since`` on."""
    seeds: dict[int, tuple[str, str, list[int]]] = {}
    for a, e, s, _, _, pid in launches_with_process(out)[since:]:
        seeds.setdefault(pid, (a, e, []))[2].append(s)
    return [(a, e, tuple(ss)) for a, e, ss in seeds.values()]


def sweep_args(proto, out, *extra):
    return [f"protocol={proto}", f"out={out}", "runner_module=fake_vagram_runner", *extra]


def test_kv_arguments_become_tyro_arguments():
    assert kv_to_tyro(["protocol=cpu", "agents=a,b", "launcher=local", "out=runs", "dry_run=true",
                       "ray.address=auto", "--seeds", "1"], sw.SweepConfig) == [
        "--protocol=cpu", "--agents", "a", "b", "--launcher=local", "--out=runs",
        "--dry_run", "--ray.address=auto", "--seeds", "1"]
    both = [parse_config(sw.SweepConfig, a, prog="sweep")
            for a in (["protocol=cpu", "agents=sac,mbpo_mse", "local.workers=3", "dry_run=yes"],
                      ["--protocol", "cpu", "--agents", "sac", "mbpo_mse", "--local.workers", "3", "--dry-run"])]
    assert both[0] == both[1] and both[0].agents == ("sac", "mbpo_mse") and both[0].local.workers == 3
    assert both[0].dry_run is True


def test_plan_cells_and_commands(fake):
    proto_path, out = fake
    cfg = sw.SweepConfig(protocol=str(proto_path), out=str(out))
    p = load_protocol(proto_path)
    cells = sw.plan_cells(cfg, p)
    assert [(c.agent, c.task, c.seed) for c in cells] == p.cells()
    c = cells[0]
    assert c.run_dir == out.resolve() / "HopperDistract-0-v0" / "sac" / "seed0"
    assert c.argv == ("agent=sac", "env=HopperDistract-0-v0", "seed=0",
                      f"protocol={proto_path.resolve()}", f"out={out.resolve()}", "quiet=true")
    shipped = sw.plan_cells(sw.SweepConfig(protocol="smoke", out=str(out)), load_protocol("smoke"))
    assert "protocol=smoke" in shipped[0].argv  # shipped protocols are named, not pathed
    sub = sw.plan_cells(sw.SweepConfig(protocol=str(proto_path), agents=("mbpo_mse",), seeds=(1,)), p)
    assert [(c.agent, c.seed) for c in sub] == [("mbpo_mse", 1), ("mbpo_mse", 1)]
    with pytest.raises(ValueError, match=r"seeds \[7\] are not in protocol"):
        sw.plan_cells(sw.SweepConfig(protocol=str(proto_path), seeds=(7,)), p)
    with pytest.raises(ValueError, match=r"tasks \['Hopper-v5'\] are not in protocol"):
        sw.plan_cells(sw.SweepConfig(protocol=str(proto_path), tasks=("Hopper-v5",)), p)


def test_bad_agents_fail_before_anything_runs(fake):
    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "agents=sac,nope")) == 2
    # sac has no dynamics model to constrain: it runs capacity ids as they are
    idp_capacity_id = "InvertedDoublePendulumCapacity-{}x{}-v0".format(*IDP_CAPACITY_SIZES[0])
    sw.check_agents(["sac", "mbpo_mse"], ["HopperCapacity-3x64-v0", idp_capacity_id])
    assert launches(out) == []


def test_a_model_based_agent_that_cannot_honour_a_capacity_id_is_refused(monkeypatch):
    from vagram_bench import registry
    from vagram_bench.agents.sac import SACAgent

    class ModelBasedWithoutHook(SACAgent):
        uses_dynamics_model = True

    load = registry.load_agent
    monkeypatch.setattr(registry, "load_agent", lambda name: ModelBasedWithoutHook if name == "hookless" else load(name))
    monkeypatch.setattr(registry, "agent_problems", lambda names: {})
    with pytest.raises(ValueError, match=r"hookless on HopperCapacity-3x64-v0: agent ModelBasedWithoutHook has a dynamics model"):
        sw.check_agents(["sac", "hookless"], ["Hopper-v5", "HopperCapacity-3x64-v0"])
    sw.check_agents(["sac", "hookless"], ["Hopper-v5"])


def test_last_error_line_of_a_cell_log(tmp_path):
    log = tmp_path / "cell.log"
    assert sw.last_error_line(log) is None  # no log yet
    log.write_text("$ python -m vagram_bench.run agent=sac\n")
    assert sw.last_error_line(log) == "$ python -m vagram_bench.run agent=sac"  # no error line: the last line
    log.write_text("$ cmd\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
                   "torch.OutOfMemoryError: CUDA out of memory\n\nsac  10%|#  | 100/1000\r sac  20%|## | 200/1000\n")
    assert sw.last_error_line(log) == "torch.OutOfMemoryError: CUDA out of memory"
    assert sw.failure_reason(1, log) == f"exit status 1: torch.OutOfMemoryError: CUDA out of memory (log {log})"
    log.write_text("error: first\nerror: run stopped at env step 7: loss is nan\nsac 1%\r")
    assert sw.last_error_line(log) == "error: run stopped at env step 7: loss is nan"


def test_local_sweep_runs_missing_cells_only(fake, monkeypatch):
    proto_path, out = fake
    # first sweep: one seed only
    assert sw.main(sweep_args(proto_path, out, "seeds=0", "local.workers=2")) == 0
    first = launches(out)
    assert sorted((a, e, s) for a, e, s, _, _ in first) == sorted(
        (a, e, 0) for a in ("sac", "mbpo_mse") for e in ("HopperDistract-0-v0", "HopperDistract-5-v0"))
    assert {t for *_, t in first} == {"1"}  # one torch/BLAS thread per cell
    # make one seed-1 cell partial (a run that died after its first evaluation)
    part = out / "HopperDistract-5-v0" / "sac" / "seed1"
    part.mkdir(parents=True)
    p = load_protocol(proto_path)
    (part / "config.json").write_text(json.dumps({"agent": "sac", "env": "HopperDistract-5-v0", "seed": 1,
                                                  "steps": 300, "protocol": p.record()}))
    (part / "eval.csv").write_text(",".join(EVAL_COLUMNS) + "\n100,11.0,0,11,11,10,0\n")
    # a failing cell is reported, the others still run
    monkeypatch.setenv("FAKE_FAIL", "mbpo_mse,HopperDistract-0-v0,1")
    result = sw.run_sweep(sw.SweepConfig(protocol=str(proto_path), out=str(out),
                                         runner_module="fake_vagram_runner"))
    assert len(result.already_complete) == 4 and len(result.launched) == 4
    assert [(c.agent, c.task, c.seed) for c, _ in result.failed] == [("mbpo_mse", "HopperDistract-0-v0", 1)]
    # the summary names the cell's last error line, not only its exit status
    log = out.resolve() / ".sweep" / "logs" / "HopperDistract-0-v0__mbpo_mse__seed1.log"
    assert result.failed[0][1] == (f"exit status 3: error: fake failure of mbpo_mse on HopperDistract-0-v0 "
                                   f"seed 1 (log {log})")
    second = launches(out)[len(first):]
    assert sorted((a, e, s, r) for a, e, s, r, _ in second) == sorted([
        ("sac", "HopperDistract-0-v0", 1, 0), ("sac", "HopperDistract-5-v0", 1, 1),  # resumed
        ("mbpo_mse", "HopperDistract-0-v0", 1, 0), ("mbpo_mse", "HopperDistract-5-v0", 1, 0)])
    steps = [int(r[0]) for r in list(csv.reader((part / "eval.csv").open()))[1:]]
    assert steps == [100, 200, 300]  # resumed, not restarted
    monkeypatch.delenv("FAKE_FAIL")
    assert sw.main(sweep_args(proto_path, out)) == 0
    assert [(a, e, s) for a, e, s, _, _ in launches(out)[len(first) + 4:]] == [("mbpo_mse", "HopperDistract-0-v0", 1)]
    assert sw.main(sweep_args(proto_path, out)) == 0  # nothing left: launches nothing
    assert len(launches(out)) == len(first) + 5
    board = lb.build_leaderboard(lb.scan_runs(out), p, n_resamples=100)
    assert board.complete
    # mean over seeds 0, 1 of the final return 10*seed + 3 (+100 for beta, absent here)
    assert board.final[("sac", "HopperDistract-0-v0")].point == pytest.approx(8.0)


def test_interrupted_sweep_resumes_only_missing_cells(fake):
    """Ctrl-C while one job is mid-run: exit 130; the next sweep runs only what is missing and
    resumes the interrupted cells. The held job (``FAKE_HOLD``: it writes its first evaluation, then
    waits for the signal) makes the interruption land mid-job by construction, not by timing."""
    proto_path, out = fake
    held = ("mbpo_mse", "HopperDistract-5-v0")
    env = {**os.environ, "FAKE_HOLD": ",".join(held)}
    cmd = [sys.executable, "-m", "vagram_bench.sweep", *sweep_args(proto_path, out, "local.workers=2")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)

    def held_evaluated() -> bool:
        path = out / held[1] / held[0] / "seed1" / "eval.csv"
        return path.exists() and len(path.read_text().splitlines()) >= 2

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (
            held_evaluated() and len(list(out.rglob("summary.json"))) == 6):  # the 3 other jobs done
        time.sleep(0.05)
    assert proc.poll() is None and held_evaluated(), "the held job never reached its first evaluation"
    proc.send_signal(signal.SIGINT)
    try:
        output = proc.communicate(timeout=60)[0].decode()
    except subprocess.TimeoutExpired:
        proc.kill()  # the held run child ends itself (FAKE_HOLD's time limit)
        raise
    assert proc.returncode == 130, output
    assert "interrupted" in output
    # piped output: one message per line, no source locations appended, no wrap at 80 columns
    interrupted = next(line for line in output.splitlines() if line.startswith("interrupted:"))
    assert interrupted.endswith("re-run the same command to finish the rest (partial runs resume)"), output
    assert "sweep.py:" not in output, output
    p = load_protocol(proto_path)
    cells = sw.plan_cells(sw.SweepConfig(protocol=str(proto_path), out=str(out)), p)
    status = {(c.agent, c.task, c.seed): c.status(p) for c in cells}
    complete = {k for k, v in status.items() if v == "complete"}
    partial = {k for k, v in status.items() if v == "partial"}
    assert len(complete) == 6 and partial == {(*held, 0), (*held, 1)}
    n_before = len(launches(out))
    mtimes = {k: (out / k[1] / k[0] / f"seed{k[2]}" / "summary.json").stat().st_mtime_ns for k in complete}
    assert sw.main(sweep_args(proto_path, out, "local.workers=2")) == 0
    relaunched = {(a, e, s): r for a, e, s, r, _ in launches(out)[n_before:]}
    assert set(relaunched) == set(status) - complete  # only the missing cells ran again
    assert {k for k, r in relaunched.items() if r} == partial  # interrupted cells were resumed
    for k, m in mtimes.items():  # the complete ones were not touched
        assert (out / k[1] / k[0] / f"seed{k[2]}" / "summary.json").stat().st_mtime_ns == m
    for c in cells:
        steps = [int(r[0]) for r in list(csv.reader((c.run_dir / "eval.csv").open()))[1:]]
        assert steps == [100, 200, 300]


def test_cells_running_in_another_sweep_are_left_alone(fake):
    import fcntl

    proto_path, out = fake
    lock_path = out / ".sweep" / "locks" / "HopperDistract-5-v0__sac__seed0.lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another sweep" holds this cell
        result = sw.run_sweep(sw.SweepConfig(protocol=str(proto_path), out=str(out), seeds=(0,),
                                             runner_module="fake_vagram_runner"))
    assert [(c.agent, c.task, c.seed) for c in result.busy] == [("sac", "HopperDistract-5-v0", 0)]
    assert not result.ok and len(launches(out)) == 3
    assert ("sac", "HopperDistract-5-v0", 0) not in {(a, e, s) for a, e, s, _, _ in launches(out)}
    result = sw.run_sweep(sw.SweepConfig(protocol=str(proto_path), out=str(out), seeds=(0,),
                                         runner_module="fake_vagram_runner"))
    assert result.ok and [(c.agent, c.task) for c in result.launched] == [("sac", "HopperDistract-5-v0")]
    # a population job runs the seeds it can lock, and reports the others as busy
    (out / "HopperDistract-0-v0" / "sac" / "seed0" / "summary.json").unlink()  # partial again: job seed=0,1
    lock_path = out / ".sweep" / "locks" / "HopperDistract-0-v0__sac__seed1.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = sw.run_sweep(sw.SweepConfig(protocol=str(proto_path), out=str(out), agents=("sac",),
                                             runner_module="fake_vagram_runner"))
    assert [(c.task, c.seed) for c in result.busy] == [("HopperDistract-0-v0", 1)]
    assert sorted(j.argv[1:3] for j in result.jobs) == [("env=HopperDistract-0-v0", "seed=0"),
                                                        ("env=HopperDistract-5-v0", "seed=1")]


def make_partial(out: Path, proto_path: Path, agent: str, task: str, seed: int) -> Path:
    """A run of the cell that died after its first evaluation (step 100)."""
    run = out / task / agent / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"agent": agent, "env": task, "seed": seed, "steps": 300,
                                                 "protocol": load_protocol(proto_path).record()}))
    (run / "eval.csv").write_text(",".join(EVAL_COLUMNS) + "\n100,11.0,0,11,11,10,0\n")
    return run


def test_plan_jobs_groups_a_cells_seeds_into_one_population_command(fake):
    proto_path, out = fake
    p = load_protocol(proto_path)
    cfg = sw.SweepConfig(protocol=str(proto_path), out=str(out))
    cells = sw.plan_cells(cfg, p)
    jobs = sw.plan_jobs(cfg, p, cells)
    assert [(j.agent, j.task, j.seeds) for j in jobs] == [
        (a, t, (0, 1)) for a in ("sac", "mbpo_mse") for t in ("HopperDistract-0-v0", "HopperDistract-5-v0")]
    assert jobs[0].argv == ("agent=sac", "env=HopperDistract-0-v0", "seed=0,1",
                            f"protocol={proto_path.resolve()}", f"out={out.resolve()}", "quiet=true")
    assert jobs[0].cells == (cells[0], cells[1]) and jobs[0].log_name == "HopperDistract-0-v0__sac__seed0_1"
    # only the cells passed (the incomplete ones) are in the jobs; seeds in increasing order
    some = [cells[3], cells[1], cells[2]]  # sac/5/seed1, sac/0/seed1, sac/5/seed0
    assert [j.argv[1:3] for j in sw.plan_jobs(cfg, p, some)] == [
        ("env=HopperDistract-5-v0", "seed=0,1"), ("env=HopperDistract-0-v0", "seed=1")]
    # population=false: one job per cell, each with the cell's own single-seed command
    single = sw.plan_jobs(dataclasses.replace(cfg, population=False), p, cells)
    assert [j.cells for j in single] == [(c,) for c in cells]
    assert [j.argv for j in single] == [c.argv for c in cells]
    assert single[1].log_name == "HopperDistract-0-v0__sac__seed1"
    # a repeated seed is one cell
    assert [c.seed for c in sw.plan_cells(dataclasses.replace(cfg, seeds=(1, 1, 0)), p)][:2] == [1, 0]


def test_jobs_with_the_most_env_steps_start_first(fake, tmp_path):
    # HopperDistract-5 gets 3x the budget: its jobs go first; ties keep the agent-major order
    proto = tmp_path / "longest.toml"
    proto.write_text(PROTOCOL + '\n[task_steps]\n"HopperDistract-5-v0" = 900\n')
    p = load_protocol(proto)
    cfg = sw.SweepConfig(protocol=str(proto), out=str(tmp_path / "runs"))
    cells = sw.plan_cells(cfg, p)
    jobs = sw.plan_jobs(cfg, p, cells)
    assert [(j.agent, j.task) for j in jobs] == [
        ("sac", "HopperDistract-5-v0"), ("mbpo_mse", "HopperDistract-5-v0"),
        ("sac", "HopperDistract-0-v0"), ("mbpo_mse", "HopperDistract-0-v0")]
    # seeds count too: two seeds of the short task (600 steps) before one seed of it (300)
    assert [(j.task, j.seeds) for j in sw.plan_jobs(cfg, p, [cells[0], cells[4], cells[5]])] == [
        ("HopperDistract-0-v0", (0, 1)), ("HopperDistract-0-v0", (0,))]
    single = sw.plan_jobs(dataclasses.replace(cfg, population=False), p, cells)
    assert [j.cells[0].task for j in single] == ["HopperDistract-5-v0"] * 4 + ["HopperDistract-0-v0"] * 4


def test_a_local_sweep_runs_one_process_per_agent_and_task(fake):
    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "local.workers=2")) == 0
    assert sorted(processes(out)) == sorted(
        (a, t, (0, 1)) for a in ("sac", "mbpo_mse") for t in ("HopperDistract-0-v0", "HopperDistract-5-v0"))
    assert {t for *_, t in launches(out)} == {"1"}
    assert (out / ".sweep" / "logs" / "HopperDistract-5-v0__mbpo_mse__seed0_1.log").exists()
    p = load_protocol(proto_path)
    board = lb.build_leaderboard(lb.scan_runs(out), p, n_resamples=100)
    assert board.complete and board.final[("sac", "HopperDistract-0-v0")].point == pytest.approx(8.0)


def test_population_false_runs_one_process_per_seed(fake):
    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "population=false", "agents=sac", "tasks=HopperDistract-0-v0")) == 0
    assert sorted(processes(out)) == [("sac", "HopperDistract-0-v0", (0,)), ("sac", "HopperDistract-0-v0", (1,))]
    assert (out / ".sweep" / "logs" / "HopperDistract-0-v0__sac__seed1.log").exists()


def test_a_partly_complete_cell_runs_its_incomplete_seeds_only(fake):
    proto_path, out = fake
    only = ("agents=sac", "tasks=HopperDistract-0-v0")
    # seed 0 partial, seed 1 pending: one process, seed 0 resumed, seed 1 fresh
    run0 = make_partial(out, proto_path, "sac", "HopperDistract-0-v0", 0)
    assert sw.main(sweep_args(proto_path, out, *only)) == 0
    assert launches(out) == [("sac", "HopperDistract-0-v0", 0, 1, "1"), ("sac", "HopperDistract-0-v0", 1, 0, "1")]
    assert processes(out) == [("sac", "HopperDistract-0-v0", (0, 1))]
    assert [int(r[0]) for r in list(csv.reader((run0 / "eval.csv").open()))[1:]] == [100, 200, 300]
    # seed 0 complete, seed 1 partial: the job is seed=1 alone (the complete seed is not locked or touched)
    (out / "HopperDistract-0-v0" / "sac" / "seed1" / "summary.json").unlink()
    mtime = (run0 / "summary.json").stat().st_mtime_ns
    result = sw.run_sweep(sw.SweepConfig(protocol=str(proto_path), out=str(out), agents=("sac",),
                                         tasks=("HopperDistract-0-v0",), runner_module="fake_vagram_runner"))
    assert result.ok and [j.argv[2] for j in result.jobs] == ["seed=1"]
    assert [c.seed for c in result.already_complete] == [0] and [c.seed for c in result.launched] == [1]
    assert processes(out, since=2) == [("sac", "HopperDistract-0-v0", (1,))]
    assert launches(out)[2][3] == 1  # resumed
    assert (run0 / "summary.json").stat().st_mtime_ns == mtime
    assert sw.main(sweep_args(proto_path, out, *only)) == 0 and len(launches(out)) == 3  # nothing left


def test_a_failing_seed_of_a_population_job_is_reported_alone(fake, monkeypatch):
    proto_path, out = fake
    monkeypatch.setenv("FAKE_FAIL", "sac,HopperDistract-5-v0,1")
    result = sw.run_sweep(sw.SweepConfig(protocol=str(proto_path), out=str(out), agents=("sac",),
                                         runner_module="fake_vagram_runner"))
    log = out.resolve() / ".sweep" / "logs" / "HopperDistract-5-v0__sac__seed0_1.log"
    assert [(c.task, c.seed, reason) for c, reason in result.failed] == [
        ("HopperDistract-5-v0", 1,
         f"exit status 3: error: seed 1: fake failure of sac on HopperDistract-5-v0 seed 1 (log {log})")]
    assert len(result.launched) == 4 and len(result.jobs) == 2
    assert (out / "HopperDistract-5-v0" / "sac" / "seed0" / "summary.json").exists()  # its peer completed
    # the re-run's job is the failed seed alone; its log names the new attempt's error only
    monkeypatch.delenv("FAKE_FAIL")
    result = sw.run_sweep(sw.SweepConfig(protocol=str(proto_path), out=str(out), agents=("sac",),
                                         runner_module="fake_vagram_runner"))
    assert result.ok and [(j.task, j.seeds) for j in result.jobs] == [("HopperDistract-5-v0", (1,))]


def test_last_error_line_reads_the_last_attempt_and_prefers_the_seeds_line(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("$ run seed=0,1\nerror: seed 1: old failure\nerror: 1 of 2 seeds stopped:\nseed 1: old failure\n"
                   "$ run seed=0,1\nerror: seed 0: nan loss\nerror: seed 1: corrupt checkpoint\n"
                   "error: 2 of 2 seeds stopped:\nseed 0: nan loss\nseed 1: corrupt checkpoint\n")
    assert sw.last_error_line(log, seed=1) == "error: seed 1: corrupt checkpoint"
    assert sw.last_error_line(log, seed=0) == "error: seed 0: nan loss"
    assert sw.last_error_line(log) == "error: 2 of 2 seeds stopped:"
    log.write_text("$ run seed=0\nerror: seed 0: old\n$ run seed=0\nTraceback\nKeyError: 'x'\n")
    assert sw.last_error_line(log, seed=0) == "KeyError: 'x'"  # not the previous attempt's line


def test_bad_population_value_exits_2_naming_the_choices(fake, capsys):
    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "population=maybe")) == 2
    err = capsys.readouterr().err
    assert "population" in err and "'maybe'" in err and "true/false" in err
    assert launches(out) == [] and not out.exists()


def test_dry_run_lists_the_grouped_commands(fake, capsys):
    proto_path, out = fake
    make_partial(out, proto_path, "mbpo_mse", "HopperDistract-5-v0", 1)
    assert sw.main(sweep_args(proto_path, out, "dry_run=true", "agents=mbpo_mse")) == 0
    err = capsys.readouterr().err
    assert "4 cells, 0 complete, 1 partial (resumed), 3 pending; 2 jobs (one per agent and task" in err
    commands = [line.strip() for line in err.splitlines() if line.strip().startswith("python -m")]
    assert commands == [f"python -m fake_vagram_runner agent=mbpo_mse env={t} seed=0,1 "
                        f"protocol={proto_path.resolve()} out={out.resolve()} quiet=true"
                        for t in ("HopperDistract-0-v0", "HopperDistract-5-v0")]
    assert sw.main(sweep_args(proto_path, out, "dry_run=true", "agents=mbpo_mse", "population=false")) == 0
    err = capsys.readouterr().err
    assert "4 jobs (one per seed: population=false)" in err
    assert [line.split()[5] for line in err.splitlines() if line.strip().startswith("python -m")] == [
        "seed=0", "seed=1", "seed=0", "seed=1"]
    assert launches(out) == []


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="needs submitit (the [slurm] extra)")
def test_slurm_job_array_script_and_tasks_carry_the_grouped_commands(fake, tmp_path, monkeypatch):
    """Submission to a real Slurm front end (submitit's SlurmExecutor), with `sbatch` and `srun`
    stand-ins on PATH: the sbatch script submitit writes, and the pickled task of each array index,
    which is then run here as the node would run it."""
    proto_path, out = fake
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = sw.SweepConfig(protocol=str(proto_path), out=str(out), launcher="slurm", runner_module="fake_vagram_runner",
                         slurm=sw.SlurmConfig(partition="cpu", mem_gb=16, time_min=90, array_parallelism=3))
    p = load_protocol(proto_path)
    jobs = sw.plan_jobs(cfg, p, sw.plan_cells(cfg, p))
    submitted = sw.submit_slurm(jobs, cfg, out.resolve())
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --array=0-3%3", "#SBATCH --partition=cpu", "#SBATCH --time=90",
                 "#SBATCH --cpus-per-task=1", "export OMP_NUM_THREADS=1", "export MKL_NUM_THREADS=1"):
        assert line in script.splitlines(), (line, script)
    assert [s.job_id for s in submitted] == [f"4242_{i}" for i in range(4)]
    for s, job in zip(submitted, jobs):
        task = s.submission()
        assert task.function is sw.run_job_process
        assert task.args[0] == [sys.executable, "-m", "fake_vagram_runner", *job.argv]
        assert task.args[0][5] == "seed=0,1"
        assert task.args[1] == str(out.resolve() / ".sweep" / "logs" / f"{job.log_name}.log")
        assert task.result() == 0  # what the array task runs on its node
    assert sorted(processes(out)) == sorted((j.agent, j.task, (0, 1)) for j in jobs)


class FakeRay:
    """The calls of Ray's API the ray launcher makes, without a cluster: a task runs, in this
    process, when its result is asked for."""

    def __init__(self) -> None:
        self.initialized, self.tasks = False, []

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs) -> None:
        self.initialized, self.init_kwargs = True, kwargs

    def remote(self, **options):
        ray = self

        class Remote:
            def __init__(self, fn) -> None:
                self.fn = fn

            def remote(self, *args) -> int:
                ray.tasks.append((options, self.fn, args))
                return len(ray.tasks) - 1

        return Remote

    def wait(self, refs, num_returns, timeout):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: int):
        _, fn, args = self.tasks[ref]
        return fn(*args)

    def cancel(self, ref: int) -> None:
        pass


def test_ray_tasks_carry_the_grouped_commands_without_a_cluster(fake, monkeypatch):
    proto_path, out = fake
    ray = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    make_partial(out, proto_path, "sac", "HopperDistract-5-v0", 0)
    assert sw.main(sweep_args(proto_path, out, "launcher=ray", "ray.address=auto", "ray.num_cpus=2")) == 0
    assert ray.init_kwargs["address"] == "auto"
    assert [(options, fn) for options, fn, _ in ray.tasks] == [({"num_cpus": 2.0, "max_retries": 0},
                                                                 sw.run_job_process)] * 4
    commands = [args[0] for _, _, args in ray.tasks]
    assert [c[:3] for c in commands] == [[sys.executable, "-m", "fake_vagram_runner"]] * 4
    assert [tuple(c[3:6]) for c in commands] == [(f"agent={a}", f"env={t}", "seed=0,1")
                                                 for a in ("sac", "mbpo_mse")
                                                 for t in ("HopperDistract-0-v0", "HopperDistract-5-v0")]
    assert sorted(processes(out)) == sorted(
        (a, t, (0, 1)) for a in ("sac", "mbpo_mse") for t in ("HopperDistract-0-v0", "HopperDistract-5-v0"))
    assert ("sac", "HopperDistract-5-v0", 0, 1, "1") in launches(out)  # the partial seed resumed
    ray.tasks.clear()
    assert sw.main(sweep_args(proto_path, out, "launcher=ray", "population=false", "seeds=0")) == 0
    assert ray.tasks == []  # complete: nothing submitted


def test_dry_run_and_foreign_runs(fake, capsys):
    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "dry_run=true")) == 0
    assert launches(out) == []
    # a run of another protocol version in a cell directory is never overwritten
    d = out / "HopperDistract-0-v0" / "sac" / "seed0"
    d.mkdir(parents=True)
    rec = dict(load_protocol(proto_path).record(), version=0)
    (d / "config.json").write_text(json.dumps({"agent": "sac", "env": "HopperDistract-0-v0", "seed": 0,
                                               "protocol": rec}))
    assert sw.main(sweep_args(proto_path, out)) == 2
    assert "never overwrites it" in capsys.readouterr().err
    assert launches(out) == []


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="needs submitit (the [slurm] extra)")
def test_slurm_launcher_through_submitit_local_executor(fake):
    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "launcher=slurm", "slurm.cluster=local")) == 0
    assert sorted(processes(out)) == sorted(  # one array task per (agent, task), both seeds
        (a, e, (0, 1)) for a in ("sac", "mbpo_mse") for e in ("HopperDistract-0-v0", "HopperDistract-5-v0"))
    assert {t for *_, t in launches(out)} == {"1"}
    assert list((out / ".sweep" / "submitit").iterdir())  # submitit's job folder
    assert sw.main(sweep_args(proto_path, out, "launcher=slurm", "slurm.cluster=local")) == 0
    assert len(launches(out)) == 8  # complete cells are not resubmitted


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray (the [ray] extra)")
def test_ray_launcher_on_a_local_ray_instance(fake):
    import ray

    proto_path, out = fake
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    try:
        assert sw.main(sweep_args(proto_path, out, "launcher=ray", "seeds=1")) == 0
    finally:
        ray.shutdown()
    assert sorted(processes(out)) == sorted(
        (a, e, (1,)) for a in ("sac", "mbpo_mse") for e in ("HopperDistract-0-v0", "HopperDistract-5-v0"))
    assert {t for *_, t in launches(out)} == {"1"}


def test_a_leaderboard_out_that_cannot_be_written_is_one_line_and_exit_2(fake, monkeypatch, capsys):
    from test_runner import read_only

    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "seeds=0")) == 0
    records_before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    not_a_dir = out.parent / "board.txt"
    not_a_dir.write_text("mine")
    capsys.readouterr()
    assert lb.main([str(out), f"protocol={proto_path}", f"out={not_a_dir}", "n_resamples=50"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: cannot write the leaderboard to {not_a_dir}" in err
    assert not_a_dir.read_text() == "mine"
    locked = out.parent / "locked"
    locked.mkdir()
    read_only(monkeypatch, locked)
    assert lb.main([str(out), f"protocol={proto_path}", f"out={locked / 'board'}", "n_resamples=50"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: cannot write the leaderboard to {locked / 'board'}" in err
    monkeypatch.undo()
    locked.chmod(0o755)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == records_before


def test_smoke_sweep_end_to_end_then_leaderboard(tmp_path):
    """The real runner: the whole `smoke` grid with two agents and two seeds, then the board."""
    out, board_dir = tmp_path / "runs", tmp_path / "board"
    assert sw.main(["protocol=smoke", "agents=sac,mbpo_mse", f"out={out}", "launcher=local"]) == 0
    p = load_protocol("smoke")
    runs = lb.scan_runs(out)
    assert len(runs) == 2 * len(p.tasks) * len(p.seeds) and all(r.complete for r in runs)
    for r in runs:
        assert r.protocol == p.record()
        assert r.eval_steps.tolist() == list(p.eval_steps_for(r.env))
    assert lb.main([str(out), "protocol=smoke", f"out={board_dir}", "n_resamples=500"]) == 0
    board = lb.build_leaderboard(runs, p, n_resamples=500)
    assert board.complete and board.agents == ["sac", "mbpo_mse"]
    for (agent, task), cell in board.final.items():
        finals = [float(list(csv.reader((out / task / agent / f"seed{s}" / "eval.csv").open()))[-1][1])
                  for s in p.seeds]
        assert cell.n == len(p.seeds)
        assert cell.point == pytest.approx(lb.aggregate(finals, p.metric))
    md = (board_dir / "leaderboard.md").read_text()
    rows = [l for l in md.splitlines() if l.startswith("| sac |") or l.startswith("| mbpo_mse |")]
    # final, AUC, probability of improvement, run time: complete
    assert len(rows) == 8 and not any("⚠" in r for r in rows)
    assert (board_dir / "report.html").stat().st_size > 10_000


# --------------------------------------------------------------------------------------------------
# issue 25: one completeness rule with the leaderboard, live runs adopted, the right seeds named, the bar


def test_a_truncated_complete_run_is_damaged_for_the_sweep_and_the_leaderboard_alike(fake, capsys):
    proto_path, out = fake
    assert sw.main(sweep_args(proto_path, out, "agents=sac", "tasks=HopperDistract-0-v0")) == 0
    n = len(launches(out))
    run_dir = out / "HopperDistract-0-v0" / "sac" / "seed1"
    rows = (run_dir / "eval.csv").read_text().splitlines(keepends=True)
    (run_dir / "eval.csv").write_text("".join(rows[:-1]))  # summary.json stays: the last evaluation is lost
    capsys.readouterr()
    assert sw.main(sweep_args(proto_path, out, "agents=sac", "tasks=HopperDistract-0-v0")) == 1
    err = " ".join(capsys.readouterr().err.split())
    problem = load_protocol(proto_path).schedule_problem("HopperDistract-0-v0", [100, 200])
    redo = (f"python -m vagram_bench.run agent=sac env=HopperDistract-0-v0 seed=1 protocol={proto_path.resolve()} "
            f"out={out.resolve()} overwrite=true")
    assert f"damaged sac / HopperDistract-0-v0 / seed 1: {problem}; redo it: {redo}" in err, err
    assert len(launches(out)) == n  # neither skipped as complete nor overwritten
    # the leaderboard applies the same rule and gives the same command
    with pytest.warns(UserWarning) as caught:
        board = lb.build_leaderboard(lb.scan_runs(out), load_protocol(proto_path, check_ids=False), agents=["sac"],
                                     n_resamples=50)
    assert board.final[("sac", "HopperDistract-0-v0")].n == 1
    assert any(problem in str(w.message) and "redo it: python -m vagram_bench.run agent=sac" in str(w.message)
               for w in caught)


ORPHAN = r'''
"""A runner left behind by a killed sweep: holds the run directories' locks like vagram_bench.run, then
finishes seed 0's run (and leaves seed 1 partial) and exits."""
import fcntl, json, os, socket, sys, time
from pathlib import Path
from vagram_bench.protocol import load_protocol

proto, out, seconds = load_protocol(sys.argv[1], check_ids=False), Path(sys.argv[2]), float(sys.argv[3])
env, locks = "HopperDistract-0-v0", []
for seed in (0, 1):
    run = out / env / "sac" / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"agent": "sac", "env": env, "seed": seed, "steps": 300,
                                                 "protocol": proto.record()}))
    f = open(run / "run.lock", "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.write(f"process {os.getpid()} on host {socket.gethostname()}\n")
    f.flush()
    locks.append(f)
    steps = proto.eval_steps_for(env) if seed == 0 else proto.eval_steps_for(env)[:1]
    (run / "eval.csv").write_text("env_step,return_mean,return_std,return_min,return_max,episode_length_mean,"
                                  "wall_seconds\n" + "".join(f"{s},1.0,0,1,1,10,0\n" for s in steps))
print("locked", flush=True)
time.sleep(seconds)
(out / env / "sac" / "seed0" / "summary.json").write_text(json.dumps({"wall_seconds": 0.0}))
'''


def test_a_live_run_left_by_a_killed_sweep_is_adopted_not_failed(fake, tmp_path, capsys):
    proto_path, out = fake
    (tmp_path / "orphan.py").write_text(ORPHAN)
    orphan = subprocess.Popen([sys.executable, str(tmp_path / "orphan.py"), str(proto_path), str(out), "3"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "locked"
        cell = sw.Cell("sac", "HopperDistract-0-v0", 1, out / "HopperDistract-0-v0" / "sac" / "seed1", (), 300)
        assert cell.live_holder().startswith(f"process {orphan.pid} on host ")
        assert sw.main(sweep_args(proto_path, out, "agents=sac", "tasks=HopperDistract-0-v0")) == 0
    finally:
        orphan.kill()
        orphan.wait()
    err = " ".join(capsys.readouterr().err.split())
    assert "FAILED" not in err and "in use by" not in err, err
    assert f"done (adopted the run of process {orphan.pid} on host" in err
    # seed 0 was finished by the orphan; seed 1, which it left partial, was resumed after it ended
    assert [(a, e, s, r) for a, e, s, r, _ in launches(out)] == [("sac", "HopperDistract-0-v0", 1, 1)]
    assert cell.live_holder() is None and cell.status(load_protocol(proto_path, check_ids=False)) == "complete"


def test_a_population_stopped_on_one_seeds_lock_names_each_seed_rightly(tmp_path):
    log = tmp_path / "job.log"
    locked = f"{tmp_path}/runs/HopperDistract-0-v0/sac/seed0"
    log.write_text(f"$ python -m vagram_bench.run seed=0,1,2\nerror: run directory {locked} is in use by process "
                   "123 on host h; wait for that run to end or stop it (a killed run releases the directory at once)\n")
    assert sw.failure_reason(2, log, seed=0).startswith(f"exit status 2: error: run directory {locked} is in use")
    for seed in (1, 2):
        assert sw.failure_reason(2, log, seed=seed).startswith(
            f"exit status 2: not run, the job stopped on seed 0: error: run directory {locked} is in use"), seed


def test_the_progress_bars_estimate_the_time_left_and_give_way_to_the_log():
    from rich.console import Console
    from rich.progress import TimeRemainingColumn

    cells = [sw.Cell("sac", "T", s, Path(f"/nonexistent/seed{s}"), (), 1000 * (s + 1)) for s in range(3)]
    view = sw._ProgressView(cells, cells[:1], Console(file=open(os.devnull, "w")))
    assert any(isinstance(c, TimeRemainingColumn) for c in view.progress.columns)
    overall = view.progress.tasks[0]
    assert (overall.total, overall.completed) == (6000, 1000)  # env steps of the grid: an ETA for the sweep
    assert view.progress.live.transient  # the last "done:" line is not followed by a stale 100 % bar


def test_no_job_process_starts_after_ctrl_c_terminated_the_running_ones(tmp_path):
    """Once Ctrl-C's terminate pass has run (``_STOPPING``), a job thread that reaches
    ``run_job_process`` afterwards starts nothing (returns 130): no child escapes the pass."""
    marker = tmp_path / "started"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    try:
        sw._terminate_children()  # nothing running: sets the stop
        assert sw.run_job_process(cmd, str(tmp_path / "job.log")) == 130
        assert not marker.exists()
    finally:
        sw._STOPPING.clear()
    assert sw.run_job_process(cmd, str(tmp_path / "job.log")) == 0 and marker.exists()
