"""Sweeps: grid planning, skipping complete cells, resuming partial ones, interruption, launchers.

Most tests run the sweep against a stand-in runner module with the runner's command-line
interface and run-record format (written below), which counts its own launches; the end-to-end
test at the bottom uses the real ``vagram_bench.run``.
"""

from __future__ import annotations

import csv
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
from vagram_bench.cli import kv_to_tyro
from vagram_bench.protocol import load_protocol
from vagram_bench.records import EVAL_COLUMNS

REPO = Path(__file__).resolve().parents[1]

FAKE_RUNNER = r'''
"""Stand-in for vagram_bench.run: same argv form, same run-record files; logs each launch."""
import csv, json, os, sys, time
from pathlib import Path
from vagram_bench.protocol import load_protocol

args = dict(a.split("=", 1) for a in sys.argv[1:])
p = load_protocol(args["protocol"], check_ids=False)
seed, env, agent = int(args["seed"]), args["env"], args["agent"]
run = Path(args["out"]) / env / agent / f"seed{seed}"
resumed = (run / "config.json").exists()
with open(Path(args["out"]) / "launches.txt", "a") as f:
    f.write(f"{agent},{env},{seed},{int(resumed)},{os.environ.get('OMP_NUM_THREADS')}\n")
if os.environ.get("FAKE_FAIL") == f"{agent},{env},{seed}":
    print(f"loading\rstep 1\rstep 2\nerror: fake failure of {agent} on {env} seed {seed}\nbye", file=sys.stderr)
    sys.exit(3)
run.mkdir(parents=True, exist_ok=True)
if not resumed:
    (run / "config.json").write_text(json.dumps({"agent": agent, "env": env, "seed": seed,
        "steps": p.steps_for(env), "protocol": p.record()}))
    (run / "eval.csv").write_text("env_step,return_mean,return_std,return_min,return_max,episode_length_mean,wall_seconds\n")
done = [int(r[0]) for r in list(csv.reader(open(run / "eval.csv")))[1:]]
for step in p.eval_steps_for(env):
    if step in done:
        continue
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    ret = 100.0 * (agent == "beta") + 10.0 * seed + step / 100.0
    with open(run / "eval.csv", "a") as f:
        f.write(f"{step},{ret},0,{ret},{ret},10,0\n")
(run / "summary.json").write_text(json.dumps({"final_return_mean": ret, "env_steps": step, "wall_seconds": 0.0}))
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
    path = out / "launches.txt"
    if not path.exists():
        return []
    return [(a, e, int(s), int(r), t) for a, e, s, r, t in
            (line.split(",") for line in path.read_text().split())]


def sweep_args(proto, out, *extra):
    return [f"protocol={proto}", f"out={out}", "runner_module=fake_vagram_runner", *extra]


def test_kv_arguments_become_tyro_arguments():
    assert kv_to_tyro(["protocol=quick", "agents=a,b", "launcher=local", "out=runs", "dry_run=true",
                       "ray.address=auto", "--seeds", "1"], sw.SweepConfig) == [
        "--protocol=quick", "--agents", "a", "b", "--launcher=local", "--out=runs",
        "--dry_run", "--ray.address=auto", "--seeds", "1"]
    both = [sw.tyro.cli(sw.SweepConfig, args=kv_to_tyro(a, sw.SweepConfig))
            for a in (["protocol=quick", "agents=sac,mbpo_mse", "local.workers=3", "dry_run=yes"],
                      ["--protocol", "quick", "--agents", "sac", "mbpo_mse", "--local.workers", "3", "--dry-run"])]
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
    # sac has no dynamics model: it cannot run a capacity-constrained id
    with pytest.raises(ValueError, match=r"\['sac'\] have no dynamics model"):
        sw.check_agents(["sac", "mbpo_mse"], ["HopperCapacity-3x64-v0"])
    assert launches(out) == []


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
    proto_path, out = fake
    env = {**os.environ, "FAKE_SLEEP": "0.4"}
    cmd = [sys.executable, "-m", "vagram_bench.sweep", *sweep_args(proto_path, out, "local.workers=2")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.time() + 60
    summaries = []
    while time.time() < deadline and len(summaries) < 2:
        summaries = list(out.rglob("summary.json"))
        time.sleep(0.05)
    assert len(summaries) >= 2, "the sweep never completed a cell"
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0].decode()
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
    assert 2 <= len(complete) < len(cells)
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
    assert sw.main(sweep_args(proto_path, out, "launcher=slurm", "slurm.cluster=local", "seeds=0")) == 0
    assert sorted((a, e, s) for a, e, s, _, _ in launches(out)) == sorted(
        (a, e, 0) for a in ("sac", "mbpo_mse") for e in ("HopperDistract-0-v0", "HopperDistract-5-v0"))
    assert {t for *_, t in launches(out)} == {"1"}
    assert list((out / ".sweep" / "submitit").iterdir())  # submitit's job folder
    assert sw.main(sweep_args(proto_path, out, "launcher=slurm", "slurm.cluster=local", "seeds=0")) == 0
    assert len(launches(out)) == 4  # complete cells are not resubmitted


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
    assert sorted((a, e, s) for a, e, s, _, _ in launches(out)) == sorted(
        (a, e, 1) for a in ("sac", "mbpo_mse") for e in ("HopperDistract-0-v0", "HopperDistract-5-v0"))
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
