"""The runner end to end: subprocess smoke run, SIGKILL + resume equivalence, records, and the
failure modes (non-finite loss, corrupt checkpoint, conflicting run dir, completed runs)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vagram_bench import run
from vagram_bench.records import EVAL_COLUMNS, read_csv
from vagram_bench.runner.rundir import capture_env_rngs, restore_env_rngs

ENV = "HopperDistract-5-v0"  # distraction env: its own RNG stream besides the MuJoCo env's
# Tiny nets/batches keep the runs short; evaluations every 150 steps, checkpoints every 100.
SMOKE_ARGS = [
    "agent=sac", f"env={ENV}", "seed=3", "steps=750", "eval_every=150", "eval_episodes=2",
    "checkpoint_every=100", "log_every=50", "agent.hidden_size=32", "agent.batch_size=32",
    "agent.learning_starts=150", "quiet=true",
]
TINY_ARGS = [
    "agent=sac", f"env={ENV}", "seed=1", "steps=300", "eval_every=100", "eval_episodes=1",
    "checkpoint_every=50", "log_every=50", "agent.hidden_size=16", "agent.batch_size=16",
    "agent.learning_starts=60", "quiet=true",
]


def _subprocess_env() -> dict[str, str]:
    """The runner subprocesses compute with this process's kernels (``kernels=native`` keeps the
    inherited environment): a run killed in one and resumed in the other is then bitwise the
    uninterrupted one, the same-machine-same-kernels case of docs/runner.md's determinism contract."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", VAGRAM_BENCH_KERNELS="native")
    return env


def _run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vagram_bench.run", *args],
        capture_output=True, text=True, timeout=timeout, env=_subprocess_env(),
    )


def _run_dir(out: Path, env: str = ENV, agent: str = "sac", seed: int = 3) -> Path:
    return out / env / agent / f"seed{seed}"


def read_csv_text(text: str) -> list[dict[str, str]]:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def _without_wall(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """An uninterrupted subprocess run (the smoke test and the resume reference)."""
    out = tmp_path_factory.mktemp("reference")
    # 750 steps take ~5 s of CPU; the timeout is a ceiling for loaded machines, not a benchmark.
    proc = _run_cli([*SMOKE_ARGS, f"out={out}"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _run_dir(out)


def test_smoke_run_writes_all_records(reference_run):
    d = reference_run
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "eval.csv", "policy.pt", "summary.json", "train.csv"]
    config = json.loads((d / "config.json").read_text())
    assert config["agent"] == "sac" and config["env"] == ENV and config["seed"] == 3 and config["steps"] == 750
    assert config["protocol"] is None
    assert config["agent_config"]["batch_size"] == 32 and config["agent_config"]["hidden_size"] == 32
    assert config["versions"]["torchrl"] == "0.14.1" and "git_revision" in config
    header = (d / "eval.csv").read_text().splitlines()[0]
    assert header == ",".join(EVAL_COLUMNS)
    evals = read_csv(d / "eval.csv")
    assert [int(r["env_step"]) for r in evals] == [150, 300, 450, 600, 750]
    for r in evals:
        assert float(r["return_min"]) <= float(r["return_mean"]) <= float(r["return_max"])
        assert float(r["episode_length_mean"]) >= 1
    train = read_csv(d / "train.csv")
    assert list(train[0])[0] == "env_step"
    steps = [int(r["env_step"]) for r in train]
    # one row per log_every window that has metrics: before learning starts (150) only windows in which
    # an episode ended (seed-dependent), from then on every window (the agent reports every update)
    assert all(st % 50 == 0 for st in steps) and steps == sorted(set(steps))
    assert [st for st in steps if st >= 150] == list(range(150, 751, 50))
    learned = [r for r in train if r["loss_qvalue"] != ""]
    assert learned and all(float(r["alpha"]) > 0 for r in learned)
    assert int(learned[0]["env_step"]) == 150  # learning starts after agent.learning_starts steps
    summary = json.loads((d / "summary.json").read_text())
    assert summary["env_steps"] == 750 and summary["num_evals"] == 5
    assert summary["final_return_mean"] == pytest.approx(float(evals[-1]["return_mean"]))


def test_sigkill_and_resume_reproduce_the_uninterrupted_run(reference_run, tmp_path):
    """Kill the process mid-run (after a checkpoint and at least two evaluations), re-run the same
    command: eval.csv (all columns but wall_seconds) and train.csv equal the uninterrupted run's."""
    out = tmp_path / "killed"
    d = _run_dir(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vagram_bench.run", *SMOKE_ARGS, f"out={out}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_subprocess_env(),
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (d / "checkpoint.pt").exists() and len(read_csv(d / "eval.csv")) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (d / "summary.json").exists()
    killed_rows = len(read_csv(d / "eval.csv"))
    assert 2 <= killed_rows < 5

    # the resume runs in this process: what is tested is that the killed one left resumable records
    assert run.main([*SMOKE_ARGS, f"out={out}"]) == 0
    assert (d / "summary.json").exists() and not (d / "checkpoint.pt").exists()
    assert _without_wall(read_csv(d / "eval.csv")) == _without_wall(read_csv(reference_run / "eval.csv"))
    assert read_csv(d / "train.csv") == read_csv(reference_run / "train.csv")
    # The summary of a resumed run counts the wall time of both processes.
    assert json.loads((d / "summary.json").read_text())["env_steps"] == 750


def test_ctrl_c_says_what_was_saved_and_the_printed_command_resumes_exactly(reference_run, tmp_path):
    """SIGINT (Ctrl-C) after the first evaluation and a checkpoint: exit 130 with one line naming the
    checkpoint and the command to resume, no traceback; that command (run as printed, ``overwrite``
    dropped) completes the run with the uninterrupted run's eval.csv and train.csv."""
    out = tmp_path / "interrupted"
    d = _run_dir(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vagram_bench.run", *SMOKE_ARGS, f"out={out}", "overwrite=true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_subprocess_env(),
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (d / "checkpoint.pt").exists() and len(read_csv(d / "eval.csv")) >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    [line] = [ln for ln in stderr.splitlines() if ln.startswith("interrupted")]
    assert f"checkpoint at env step " in line and str(d / "checkpoint.pt") in line
    assert not (d / "summary.json").exists() and (d / "checkpoint.pt").exists()
    command = line.split("Resume with: ", 1)[1]
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "vagram_bench.run"] and argv[3:] == [*SMOKE_ARGS, f"out={out}"]
    resumed = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=300,
                             env=_subprocess_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr
    assert _without_wall(read_csv(d / "eval.csv")) == _without_wall(read_csv(reference_run / "eval.csv"))
    assert read_csv(d / "train.csv") == read_csv(reference_run / "train.csv")


# ----------------------------------------------------------------------------------------------
# in-process failure modes


class _Crash(Exception):
    pass


def torch_load_step(path: Path) -> int:
    from vagram_bench.records import load_checkpoint

    return int(load_checkpoint(path)["env_step"])


def _interrupted_run(tmp_path, monkeypatch, crash_at: int = 250) -> Path:
    """A run that dies at env step ``crash_at`` (after checkpoints), leaving partial records."""
    from vagram_bench.agents.sac.agent import SACPopulation

    original = SACPopulation.update

    def crashing_update(self, env_steps, members):
        if env_steps.max() == crash_at:
            raise _Crash(crash_at)
        return original(self, env_steps, members)

    monkeypatch.setattr(SACPopulation, "update", crashing_update)
    with pytest.raises(_Crash):
        run.main([*TINY_ARGS, f"out={tmp_path}"])
    monkeypatch.setattr(SACPopulation, "update", original)
    d = _run_dir(tmp_path, seed=1)
    assert (d / "checkpoint.pt").exists() and not (d / "summary.json").exists()
    return d


def test_in_process_resume_after_crash_matches_uninterrupted(tmp_path, monkeypatch, capsys):
    d = _interrupted_run(tmp_path / "a", monkeypatch)
    checkpoint_step = torch_load_step(d / "checkpoint.pt")
    capsys.readouterr()
    assert run.main([*TINY_ARGS, f"out={tmp_path / 'a'}"]) == 0
    # quiet=true: the bar is silent; the resume line and the final line remain
    resumed, done = capsys.readouterr().err.splitlines()
    assert resumed == f"resuming {d} from env step {checkpoint_step} of 300 (checkpoint {d / 'checkpoint.pt'})"
    final = read_csv(d / "eval.csv")[-1]
    assert done.startswith(f"done: sac on {ENV} seed 1, final eval return {float(final['return_mean']):.1f} "
                           f"at env step 300, wall time ")
    assert done.endswith(f"; records in {d}")
    assert run.main([*TINY_ARGS, f"out={tmp_path / 'b'}"]) == 0
    ref = _run_dir(tmp_path / "b", seed=1)
    assert _without_wall(read_csv(d / "eval.csv")) == _without_wall(read_csv(ref / "eval.csv"))
    assert read_csv(d / "train.csv") == read_csv(ref / "train.csv")


def test_the_summary_counts_the_cpu_time_of_every_process_that_ran_the_run(tmp_path, monkeypatch):
    """summary.json's cpu_seconds is the CPU time of the process that crashed (carried by its checkpoint)
    plus the resuming one's; a checkpoint from before CPU time was recorded gives ``None`` (unknown), not
    an undercount. The sweep's published cost (publish.json) is built from these."""
    from vagram_bench.records import load_checkpoint, save_checkpoint

    import time

    d = _interrupted_run(tmp_path / "a", monkeypatch)
    carried = load_checkpoint(d / "checkpoint.pt")["cpu_seconds"]
    assert carried > 0
    monkeypatch.undo()
    # the resuming process's own CPU time is what its clock says: a stopped clock adds exactly nothing, so
    # the summary is the carried time, neither dropped nor counted twice
    monkeypatch.setattr(time, "process_time", lambda: 1234.5)
    assert run.main([*TINY_ARGS, f"out={tmp_path / 'a'}"]) == 0
    summary = json.loads((d / "summary.json").read_text())
    assert summary["cpu_seconds"] == round(carried, 3)
    host, pid, started = summary["cpu_process"].rsplit(":", 2)  # the process that finished it
    assert int(pid) == os.getpid() and int(started) > 0 and host
    monkeypatch.undo()

    old = _interrupted_run(tmp_path / "b", monkeypatch)
    checkpoint = load_checkpoint(old / "checkpoint.pt")
    del checkpoint["cpu_seconds"]
    save_checkpoint(old / "checkpoint.pt", checkpoint)
    monkeypatch.undo()
    assert run.main([*TINY_ARGS, f"out={tmp_path / 'b'}"]) == 0
    assert json.loads((old / "summary.json").read_text())["cpu_seconds"] is None


def test_corrupt_checkpoint_is_an_error_and_keeps_the_files(tmp_path, monkeypatch, capsys):
    d = _interrupted_run(tmp_path, monkeypatch)
    (d / "checkpoint.pt").write_bytes(b"\x80\x02 this is not a checkpoint")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    assert run.main([*TINY_ARGS, f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint" in err and str(d / "checkpoint.pt") in err and "untouched" in err
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # nothing deleted or restarted


def test_truncated_checkpoint_is_an_error(tmp_path, monkeypatch, capsys):
    d = _interrupted_run(tmp_path, monkeypatch)
    data = (d / "checkpoint.pt").read_bytes()
    (d / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert run.main([*TINY_ARGS, f"out={tmp_path}"]) == 1
    assert "cannot be read" in capsys.readouterr().err
    assert (d / "checkpoint.pt").stat().st_size == len(data) // 2


def test_run_dir_with_a_different_config_is_refused(tmp_path, monkeypatch, capsys):
    d = _interrupted_run(tmp_path, monkeypatch)
    args = [a for a in TINY_ARGS if not a.startswith(("agent.batch_size", "steps"))]
    code = run.main([*args, "agent.batch_size=8", "steps=400", f"out={tmp_path}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "agent.batch_size: 16 (run dir) vs 8 (this command)" in err
    assert "steps: 300 (run dir) vs 400 (this command)" in err
    assert "overwrite=true" in err
    # Operational fields (quiet, checkpoint_every) may change: the run resumes and completes.
    args = [a for a in TINY_ARGS if not a.startswith(("quiet", "checkpoint_every"))]
    assert run.main([*args, "quiet=true", "checkpoint_every=70", f"out={tmp_path}"]) == 0
    assert (d / "summary.json").exists()


def test_completed_run_is_not_overwritten_unless_asked(tmp_path, capsys):
    assert run.main([*TINY_ARGS, f"out={tmp_path}"]) == 0
    d = _run_dir(tmp_path, seed=1)
    summary = (d / "summary.json").read_text()
    eval_csv = (d / "eval.csv").read_text()
    (d / "eval.csv").write_text(eval_csv + "999,0,0,0,0,0,0\n")  # marker: must survive a re-run
    assert run.main([*TINY_ARGS, f"out={tmp_path}"]) == 0
    assert "already complete" in capsys.readouterr().err
    assert (d / "summary.json").read_text() == summary and (d / "eval.csv").read_text().endswith("999,0,0,0,0,0,0\n")
    assert run.main([*TINY_ARGS, "overwrite=true", f"out={tmp_path}"]) == 0
    rerun = read_csv(d / "eval.csv")
    assert [int(r["env_step"]) for r in rerun] == [100, 200, 300]  # re-run from scratch, marker gone
    assert _without_wall(rerun) == _without_wall(read_csv_text(eval_csv))


def test_nan_loss_stops_the_run_naming_step_and_loss(tmp_path, monkeypatch, capsys):
    """A transition with a NaN reward makes the critic loss NaN as soon as it is sampled."""
    from vagram_bench.agents.sac.agent import SACPopulation

    original = SACPopulation.observe

    def nan_reward(self, obs, action, reward, next_obs, terminated, truncated, members):
        reward = np.where(self.env_steps >= 100, np.nan, reward)
        return original(self, obs, action, reward, next_obs, terminated, truncated, members)

    monkeypatch.setattr(SACPopulation, "observe", nan_reward)
    assert run.main([*TINY_ARGS, f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "run stopped at env step" in err and "loss_qvalue" in err
    d = _run_dir(tmp_path, seed=1)
    step = int(err.split("run stopped at env step ")[1].split(":")[0])
    assert step > 100
    assert not (d / "summary.json").exists()
    evals = read_csv(d / "eval.csv")
    assert [int(r["env_step"]) for r in evals] == [s for s in (100, 200, 300) if s < step]
    assert json.loads((d / "config.json").read_text())["agent"] == "sac"


def test_progress_bar_shows_step_rate_and_eval_and_quiet_silences_it(tmp_path, capsys):
    args = [a for a in TINY_ARGS if not a.startswith("quiet")]
    assert run.main([*args, f"out={tmp_path / 'loud'}"]) == 0
    err = capsys.readouterr().err
    final = err.split("\r")[-1]  # the bar's last state (then the closing "done:" line)
    assert "sac HopperDistract-5-v0 s1" in final and "300/300" in final, final
    assert "learning" in final and ("step/s" in final or "s/step" in final) and "ETA" in final, final
    assert "eval " in final and " @300]" in final, final  # the last eval with the step it was measured at
    assert run.main([*args, "quiet=true", f"out={tmp_path / 'quiet'}"]) == 0
    err = capsys.readouterr().err  # quiet silences the bar only: the final line remains
    assert err.count("\n") == 1 and err.startswith("done: sac on HopperDistract-5-v0 seed 1, final eval return ")


@pytest.mark.parametrize("env_id", [ENV, "Walker2d-v5", "DMCHopperHopDistract-5-v0"])
def test_env_rng_capture_restores_the_next_episode_exactly(env_id):
    """The train env's state at an episode end is its RNGs (MuJoCo reset noise, the distractor
    stream, dm-control's task RandomState, a sampled action space): a fresh env given the captured
    states resets to the same observation and samples the same actions."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    env.reset(seed=5)
    for _ in range(3):
        env.step(env.action_space.sample())
    states = capture_env_rngs(env)
    expected_obs, expected_action = env.reset()[0], env.action_space.sample()
    fresh = gym.make(env_id)
    fresh.reset(seed=123)
    restore_env_rngs(fresh, states)
    assert np.array_equal(fresh.reset()[0], expected_obs)
    assert np.array_equal(fresh.action_space.sample(), expected_action)


# ----------------------------------------------------------------------------------------------
# one process per run directory


def test_a_second_process_on_the_same_run_directory_exits_2_naming_the_holder(tmp_path, capsys):
    """Two processes given the same command: the second exits 2 naming the first's pid and host
    and writes nothing; once the first is killed, the directory can be taken at once (the OS
    released the lock; the stale lock file does not block). The second runs in this process (the
    lock is taken per open file, so this process is refused as another would be; see
    ``test_the_lock_is_held_per_process_and_released_on_exit``): one process start less."""
    import socket

    from vagram_bench.records import RunPaths
    from vagram_bench.runner.rundir import RunDirLock

    args = [*TINY_ARGS, "steps=100000", f"out={tmp_path}"]  # long enough to still run when checked
    d = _run_dir(tmp_path, seed=1)
    first = subprocess.Popen([sys.executable, "-m", "vagram_bench.run", *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_subprocess_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None and not read_csv(d / "eval.csv"):
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        before = {name: (d / name).read_bytes() for name in ("config.json", "run.lock")}  # the rest grows
        capsys.readouterr()
        assert run.main(args) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert f"process {first.pid} on host {socket.gethostname()}" in err
        assert {name: (d / name).read_bytes() for name in before} == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (d / "run.lock").exists()  # left by the killed process
    with RunDirLock(RunPaths(d)):
        assert (d / "run.lock").read_text() == f"process {os.getpid()} on host {socket.gethostname()}\n"
    assert not (d / "run.lock").exists()  # removed by its holder on exit


def test_the_lock_is_held_per_process_and_released_on_exit(tmp_path):
    from vagram_bench.records import RunPaths
    from vagram_bench.runner.rundir import RunDirLock, RunError

    paths = RunPaths(tmp_path / "run")
    with RunDirLock(paths):
        with pytest.raises(RunError, match=f"in use by process {os.getpid()}") as info:
            RunDirLock(paths).__enter__()
        assert info.value.usage
    with RunDirLock(paths):  # released: can be taken again
        pass


# ----------------------------------------------------------------------------------------------
# file-system errors: one line naming the path and the OS error; earlier records intact


def read_only(monkeypatch, directory: Path) -> None:
    """Make ``directory`` read-only. root ignores permission bits, so for root ``mkdir`` and
    ``open`` below it fail with EROFS, as on a read-only mount."""
    import builtins
    import errno

    directory.chmod(0o555)
    if os.geteuid() != 0:
        return
    real_mkdir, real_open = Path.mkdir, builtins.open

    def refuse(path) -> None:
        if Path(path).resolve().is_relative_to(directory.resolve()) and Path(path).resolve() != directory.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def mkdir(self, *args, **kwargs):
        refuse(self)
        return real_mkdir(self, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(builtins, "open", open_)


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_an_out_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    assert run.main([*TINY_ARGS, f"out={path}"]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert f"cannot use run directory {path}/" in err and "Not a directory" in err and "check out=" in err
    assert path.read_text() == "mine"


def test_a_read_only_out_is_one_line_and_exit_2_and_keeps_its_runs(tmp_path, monkeypatch, capsys):
    """A fresh run under a read-only out fails to create its directory; an interrupted one in it
    fails to take its lock; both exit 2 without touching what is there."""
    out = tmp_path / "runs"
    d = _interrupted_run(out, monkeypatch)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    read_only(monkeypatch, out)
    try:
        assert run.main([*TINY_ARGS, "seed=2", f"out={out}"]) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert f"cannot use run directory {_run_dir(out, seed=2)}" in err
        assert "Read-only file system" in err or "Permission denied" in err
        assert run.main([*TINY_ARGS, f"out={out}"]) == 2
        err = _one_error_line(capsys.readouterr().err)
        assert f"cannot use run directory {d}" in err
    finally:
        monkeypatch.undo()
        out.chmod(0o755)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_a_full_disk_during_a_checkpoint_stops_with_one_line_and_the_run_resumes_exactly(tmp_path, monkeypatch, capsys):
    """ENOSPC while the second checkpoint is written (simulated at fsync, below the atomic write):
    exit 1 with one line naming the checkpoint and the error; the first checkpoint and the log rows
    stay; the same command, with space again, completes the run exactly as an uninterrupted one."""
    import errno

    from vagram_bench import records

    real_fsync = records.os.fsync
    checkpoints: list[bytes] = []
    d = _run_dir(tmp_path / "full", seed=1)

    def fsync(fd):
        if ".tmp-" in os.readlink(f"/proc/self/fd/{fd}") and "checkpoint.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            checkpoints.append((d / "checkpoint.pt").read_bytes() if checkpoints else b"")
            if len(checkpoints) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(records.os, "fsync", fsync)
    assert run.main([*TINY_ARGS, f"out={tmp_path / 'full'}"]) == 1
    monkeypatch.undo()
    err = _one_error_line(capsys.readouterr().err)
    assert f"{d / 'checkpoint.pt'}: No space left on device" in err and "run stopped at env step" in err
    assert (d / "checkpoint.pt").read_bytes() == checkpoints[1]  # the first checkpoint, unchanged
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint.pt", "config.json", "eval.csv", "train.csv"]

    assert run.main([*TINY_ARGS, f"out={tmp_path / 'full'}"]) == 0
    assert run.main([*TINY_ARGS, f"out={tmp_path / 'ref'}"]) == 0
    ref = _run_dir(tmp_path / "ref", seed=1)
    assert _without_wall(read_csv(d / "eval.csv")) == _without_wall(read_csv(ref / "eval.csv"))
    assert read_csv(d / "train.csv") == read_csv(ref / "train.csv")


def test_env_kwargs_reach_train_and_eval_envs_and_resume_refuses_others(tmp_path, monkeypatch, capsys):
    import gymnasium as gym

    made = []
    real_make = gym.make

    def recording_make(env_id, **kwargs):
        env = real_make(env_id, **kwargs)
        made.append((env_id, kwargs, env.observation_space.shape))
        return env

    monkeypatch.setattr(gym, "make", recording_make)
    out = tmp_path / "runs"
    args = ["agent=sac", "env=HopperDistract-v0", "seed=1", "steps=200", "eval_every=100", "eval_episodes=1",
            f"out={out}", "quiet=true"]
    assert run.main([*args, "env.distraction_dims=3"]) == 0
    # the check at parse time, then the train and the eval env: Hopper's 11 dims + 3 distractors
    # (the distraction env makes its base Hopper-v5 itself)
    ours = [m for m in made if m[0] == "HopperDistract-v0"]
    assert ours == [("HopperDistract-v0", {"distraction_dims": 3}, (14,))] * 3
    d = out / "HopperDistract-v0" / "sac" / "seed1"
    assert json.loads((d / "config.json").read_text())["env_kwargs"] == {"distraction_dims": 3}
    capsys.readouterr()
    # another kwarg value is another run: refused like any other config difference
    assert run.main([*args, "env.distraction_dims=4"]) == 2
    err = capsys.readouterr().err
    assert "env_kwargs.distraction_dims: 3 (run dir) vs 4 (this command)" in err
    assert run.main(args) == 2  # and no kwarg (d=10) too
    assert "env_kwargs.distraction_dims: 3 (run dir) vs '<absent>' (this command)" in capsys.readouterr().err


def test_a_config_recorded_before_env_kwargs_existed_means_none():
    from vagram_bench.runner.rundir import config_differences

    old = {"agent": "sac", "env": "Hopper-v5", "seed": 0}
    assert config_differences(old, {**old, "env_kwargs": {}}) == []
    assert config_differences(old, {**old, "env_kwargs": {"frame_skip": 2}}) == [
        "env_kwargs.frame_skip: '<absent>' (run dir) vs 2 (this command)"]


def test_ctrl_c_is_deferred_to_the_step_boundary_and_a_second_one_stops_at_once(capsys):
    """``StepInterrupts``: the first SIGINT only notes (the loop raises at its next step boundary, so a
    step's records and checkpoint are never cut in two), a second one raises at once, and after
    ``finishing`` (the closing writes) every SIGINT is only noted; the default handler is back after
    ``restore``; an embedding program's own handler is left alone."""
    from vagram_bench.runner.rundir import StepInterrupts

    interrupts = StepInterrupts()
    interrupts.install()
    try:
        interrupts.check()  # nothing noted yet
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between bytecodes of this thread: nothing is raised here
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        interrupts.finishing()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # noted only: the closing writes complete
    finally:
        interrupts.restore()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert capsys.readouterr().err.count("stopping after this env step") == 1

    def own_handler(signum, frame):
        own_handler.calls += 1

    own_handler.calls = 0
    previous = signal.signal(signal.SIGINT, own_handler)
    try:
        interrupts = StepInterrupts()
        interrupts.install()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        interrupts.check()  # the embedding program's handler got the signal, not ours
        interrupts.restore()
        assert own_handler.calls == 1 and signal.getsignal(signal.SIGINT) is own_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_during_an_update_lets_that_step_finish_its_records(tmp_path, monkeypatch, capsys):
    """SIGINT raised inside the agent's update at env step 200 (a ``log_every`` multiple): the runner
    finishes the step, so train.csv ends with the row of step 200, and stops at the next step boundary
    with exit 130 (an immediate KeyboardInterrupt would end train.csv at step 150)."""
    from vagram_bench.agents.sac.agent import SACPopulation

    original = SACPopulation.update

    def update_then_ctrl_c(self, env_steps, members):
        metrics = original(self, env_steps, members)
        if env_steps.max() == 200:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        return metrics

    monkeypatch.setattr(SACPopulation, "update", update_then_ctrl_c)
    assert run.main([*TINY_ARGS, f"out={tmp_path}"]) == 130
    d = _run_dir(tmp_path, seed=1)
    assert [int(r["env_step"]) for r in read_csv(d / "train.csv")][-1] == 200
    err = capsys.readouterr().err
    assert "stopping after this env step" in err and "interrupted (Ctrl-C): at env step 200" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
