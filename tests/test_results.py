"""Committed reference results (``results/<protocol>/``): each matches its shipped protocol, covers the whole
grid and reproduces its tables; and on a real `smoke` publication, the check catches what it must."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vagram_bench import leaderboard as lb
from vagram_bench import run as runner
from vagram_bench.protocol import load_protocol, protocol_names
from vagram_bench.publish import check_published

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(d for d in (REPO / "results").glob("*") if d.is_dir() and d.name in protocol_names())


@pytest.mark.parametrize("results", PUBLISHED, ids=[d.name for d in PUBLISHED])
def test_committed_results_match_their_protocol(results):
    assert check_published(results) == []


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A real smoke sweep's records (the runner in-process, one population per agent) and their
    publication with few bootstrap resamples."""
    root = tmp_path_factory.mktemp("smoke")
    runs, out = root / "runs", root / "results" / "smoke"
    p = load_protocol("smoke")
    for agent in p.agents:
        assert runner.main([f"agent={agent}", f"env={p.tasks[0]}", f"seed={','.join(map(str, p.seeds))}",
                            "protocol=smoke", f"out={runs}", "quiet=true"]) == 0
    # a left-over checkpoint must not be published
    (runs / p.tasks[0] / "sac" / "seed0" / "checkpoint.pt").write_bytes(b"not published")
    assert lb.main(["publish", "protocol=smoke", f"runs={runs}", f"out={out}", "n_resamples=200"]) == 0
    return runs, out


def copy_of(out: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "smoke"
    shutil.copytree(out, dst)
    return dst


def test_a_publication_holds_the_records_and_passes_the_check(smoke):
    runs, out = smoke
    p = load_protocol("smoke")
    published = sorted(f.relative_to(out / "runs").as_posix() for f in (out / "runs").rglob("*") if f.is_file())
    assert published == sorted(f"{p.tasks[0]}/{a}/seed{s}/{name}" for a in p.agents for s in p.seeds
                               for name in ("config.json", "eval.csv", "summary.json", "train.csv"))
    for f in (out / "runs").rglob("*.*"):
        assert f.read_bytes() == (runs / f.relative_to(out / "runs")).read_bytes()
    readme = (out / "README.md").read_text()
    assert p.content_hash in readme and "python -m vagram_bench.sweep protocol=smoke" in readme
    assert "publish protocol=smoke" in readme
    assert check_published(out) == []


def test_the_compute_counts_each_population_process_once(smoke):
    # the smoke sweep ran each agent's seeds as one population: its members record the same process time
    import json

    runs, out = smoke
    meta = json.loads((out / "publish.json").read_text())
    walls = {}
    for summary in runs.rglob("summary.json"):
        agent = summary.parent.parent.name
        walls.setdefault(agent, []).append(json.loads(summary.read_text())["wall_seconds"])
    assert all(len(w) == 2 for w in walls.values())
    assert meta["wall_seconds_total"] == pytest.approx(sum(sum(w) for w in walls.values()), abs=1e-3)
    assert meta["cell_wall_seconds_total"] == pytest.approx(sum(max(w) for w in walls.values()), abs=1e-3)
    assert meta["cell_wall_seconds_total"] < meta["wall_seconds_total"]
    assert "summed over the (agent, task) cells' longest run" in (out / "README.md").read_text()
    # the CPU cost: per cell the process's CPU time (every member records it), summed over the cells
    cpus = {}
    for summary in runs.rglob("summary.json"):
        record = json.loads(summary.read_text())
        cpus.setdefault(f"{record['agent']} / {record['env']}", []).append(record["cpu_seconds"])
    assert meta["cell_cpu_seconds"] == {cell: pytest.approx(max(c), abs=1e-3) for cell, c in cpus.items()}
    assert meta["cpu_seconds_total"] == pytest.approx(sum(max(c) for c in cpus.values()), abs=1e-3)
    assert "- CPU time: " in (out / "README.md").read_text()


def test_the_cpu_cost_counts_each_process_once_and_only_known_costs():
    """publish.cpu_cost: a population's runs count once, with their largest time, also when a later process
    resumed some of its members after a kill (they carry the shared history: adding the processes up would
    count it twice); a cell whose runs each had a process of their own (population=false) adds them up;
    records without cpu_process (older) count as one process per cell; one run without cpu_seconds makes the
    cost unknown (no figure rather than an undercount)."""
    from types import SimpleNamespace as R

    from vagram_bench.publish import cpu_cost

    pop = [R(agent="a", env="T", summary={"cpu_seconds": 100.0 + k, "cpu_process": "h:1:9"}) for k in range(3)]
    # two members killed before their end and finished by a second process: 90 s of carried history + 50 own
    resumed = [R(agent="a", env="T", summary={"cpu_seconds": 140.0 + k, "cpu_process": "h:2:9"}) for k in (0, 1)]
    alone = [R(agent="c", env="T", summary={"cpu_seconds": 40.0 + k, "cpu_process": f"h:{k}:9"}) for k in (3, 4, 5)]
    old = [R(agent="b", env="T", summary={"cpu_seconds": s}) for s in (7.0, 8.0)]
    assert cpu_cost(pop) == {("a", "T"): 102.0}
    assert cpu_cost(pop + resumed + alone + old) == {("a", "T"): 141.0, ("b", "T"): 8.0, ("c", "T"): 132.0}
    assert cpu_cost(old + [R(agent="b", env="T", summary={"wall_seconds": 1.0})]) is None
    assert cpu_cost([]) is None


def test_the_grid_cost_tool_agrees_with_the_publication_and_reads_checkpoints(smoke, tmp_path, capsys):
    """tools/grid_cost.py (docs/cpu2.md rule (b)): on complete runs the same per-cell CPU time as publish.json;
    an unfinished run counts with its checkpoint's time; a bad directory is exit 2."""
    import importlib.util
    import json
    import shutil

    from vagram_bench.records import save_checkpoint

    spec = importlib.util.spec_from_file_location("grid_cost", REPO / "tools" / "grid_cost.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs, out = smoke
    meta = json.loads((out / "publish.json").read_text())
    cells, unknown = tool.measured([str(runs)])
    assert {f"{a} / {t}": round(c, 3) for (a, t), c in cells.items()} == meta["cell_cpu_seconds"] and unknown == []
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    task = load_protocol("smoke").tasks[0]
    for seed in (0, 1):  # sac's population stopped at a checkpoint with 12.5 CPU-s
        run = copy / task / "sac" / f"seed{seed}"
        (run / "summary.json").unlink()
        save_checkpoint(run / "checkpoint.pt", {"format": 1, "cpu_seconds": 12.5})
    cells, _ = tool.measured([str(copy)])
    assert cells[("sac", task)] == 12.5
    assert tool.main([str(copy)]) == 0 and "total: " in capsys.readouterr().out
    assert tool.main([str(tmp_path / "nope")]) == 2 and "not a runs directory" in capsys.readouterr().err


def test_the_grid_records_tool_keeps_whole_cells_their_times_and_never_overwrites(smoke, tmp_path, capsys):
    """tools/grid_records.py: save copies only whole cells' record files; restore puts them back with the
    summary.json times publish's sweep span reads, so publishing from the restored runs gives the same
    publish.json; a different run at the destination is exit 2 and is left as it was."""
    import importlib.util
    import json
    import shutil

    spec = importlib.util.spec_from_file_location("grid_records", REPO / "tools" / "grid_records.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs, out = smoke
    copy, records, back = tmp_path / "runs", tmp_path / "records", tmp_path / "back"
    shutil.copytree(runs, copy)
    task = load_protocol("smoke").tasks[0]
    (copy / task / "sac" / "seed1" / "summary.json").unlink()  # sac's population still running
    (copy / task / "sac" / "seed1" / "checkpoint.pt").write_bytes(b"state")
    assert tool.main(["save", str(copy), str(records)]) == 0
    saved = sorted(p.relative_to(records).as_posix() for p in records.rglob("*") if p.is_file())
    assert not any(p.startswith(f"{task}/sac/") for p in saved) and not any(p.endswith(".pt") for p in saved)
    whole = [c.relative_to(copy) for c in tool.complete_cells(copy)]
    assert whole and [c.relative_to(records) for c in tool.complete_cells(records)] == whole
    assert tool.main(["save", str(copy), str(records)]) == 0 and "0 runs copied" in capsys.readouterr().out
    assert tool.main(["restore", str(records), str(back)]) == 0
    for cell in whole:
        for run in (copy / cell).glob("seed*"):
            restored = back / cell / run.name
            assert (restored / "summary.json").stat().st_mtime == (run / "summary.json").stat().st_mtime
            assert all((restored / f).read_bytes() == (run / f).read_bytes() for f in tool.RECORD_FILES)
    # the sweep span publish computes from the restored copy is the original's
    from vagram_bench.publish import sweep_span
    def span(root):
        dirs = sorted(p for c in whole for p in (root / c).glob("seed*"))
        return sweep_span(dirs, [json.loads((d / "summary.json").read_text())["wall_seconds"] for d in dirs])
    assert span(back) == span(copy)
    victim = back / whole[0] / "seed0" / "eval.csv"
    victim.write_text(victim.read_text() + "tampered\n")
    assert tool.main(["restore", str(records), str(back)]) == 2 and "never overwritten" in capsys.readouterr().err
    assert victim.read_text().endswith("tampered\n")
    assert tool.main(["push", str(copy), str(records)]) == 2 and "got push" in capsys.readouterr().err


def test_publishing_again_from_the_publication_rewrites_it_byte_for_byte(smoke, tmp_path):
    out = copy_of(smoke[1], tmp_path)
    before = {f: f.read_bytes() for f in out.rglob("*") if f.is_file() and f.suffix != ".png" and f.name != "report.html"}
    assert lb.main(["publish", "protocol=smoke", f"runs={out}", f"out={out}"]) == 0
    after = {f: f.read_bytes() for f in before}
    assert after == before  # tables, README.md and publish.json (the PNGs depend on matplotlib's version)


def _git_repo_with(tmp_path, text: str, date: str) -> tuple[Path, str]:
    """A git repository holding ``protocols/smoke.toml`` = ``text``, committed at ``date``; (file, commit)."""
    import os
    import subprocess

    repo = tmp_path / "repo"
    (repo / "protocols").mkdir(parents=True)
    path = repo / "protocols" / "smoke.toml"
    path.write_text(text)
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "preregister"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    return path, commit


def test_the_preregistration_commit_is_checked_recorded_and_survives_regeneration(smoke, tmp_path):
    """publish preregistration=<commit> (docs/cpu2.md): the commit must hold the protocol with this content
    hash and predate the grid's first run; it goes into publish.json, README.md and the publish command,
    and a regeneration from the publication keeps it (without asking git again)."""
    import json

    runs, _ = smoke
    path, commit = _git_repo_with(tmp_path, load_protocol("smoke").path.read_text(), "2020-01-01T00:00:00Z")
    out = tmp_path / "pub"
    assert lb.main(["publish", f"protocol={path}", f"runs={runs}", f"out={out}", "n_resamples=200",
                    f"preregistration={commit}"]) == 0
    meta = json.loads((out / "publish.json").read_text())
    assert meta["preregistration"] == commit and meta["publish_command"].endswith(f"preregistration={commit}")
    line = f"- Preregistered: the protocol and its design were committed at `{commit}`, before the grid's first run"
    assert line in (out / "README.md").read_text()
    assert lb.main(["publish", f"protocol={path}", f"runs={out}", f"out={out}"]) == 0
    assert json.loads((out / "publish.json").read_text())["preregistration"] == commit
    assert line in (out / "README.md").read_text()


@pytest.mark.parametrize("case", ["other content", "after the first run", "unknown commit"])
def test_a_preregistration_that_does_not_hold_is_one_error_line_and_writes_nothing(smoke, tmp_path, capsys, case):
    runs, _ = smoke
    text = load_protocol("smoke").path.read_text()
    if case == "other content":  # the commit holds another version of the file
        path, commit = _git_repo_with(tmp_path, text.replace("eval_episodes = 2", "eval_episodes = 3"),
                                      "2020-01-01T00:00:00Z")
        path.write_text(text)
        expected = "at that commit has content hash"
    elif case == "after the first run":
        path, commit = _git_repo_with(tmp_path, text, "2099-01-01T00:00:00Z")
        expected = "committed at 2099-01-01 00:00 UTC, after the grid's first run started"
    else:
        path, commit = _git_repo_with(tmp_path, text, "2020-01-01T00:00:00Z")
        commit = "0123abc"
        expected = "failed"
    out = tmp_path / "pub"
    capsys.readouterr()
    assert lb.main(["publish", f"protocol={path}", f"runs={runs}", f"out={out}", f"preregistration={commit}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: preregistration={commit}: ") and expected in err and "\n" not in err
    assert not out.exists()


def test_the_check_catches_a_changed_protocol_hash(smoke, tmp_path):
    out = copy_of(smoke[1], tmp_path)
    changed = tmp_path / "smoke.toml"
    changed.write_text(load_protocol("smoke").path.read_text().replace("eval_episodes = 2", "eval_episodes = 3"))
    problems = check_published(out, protocol=str(changed))
    assert any(pr.startswith("publish.json records protocol") for pr in problems), problems
    assert any(pr.startswith("README.md does not state") for pr in problems), problems


def test_the_check_catches_a_missing_or_short_seed(smoke, tmp_path):
    out = copy_of(smoke[1], tmp_path)
    task = load_protocol("smoke").tasks[0]
    shutil.rmtree(out / "runs" / task / "mbpo_mse" / "seed1")
    eval_csv = out / "runs" / task / "sac" / "seed0" / "eval.csv"
    eval_csv.write_text("".join(eval_csv.read_text().splitlines(keepends=True)[:-1]))  # the last evaluation lost
    problems = check_published(out)
    assert f"mbpo_mse / {task} / seed 1: no summary.json" in problems
    assert any(pr.startswith(f"sac / {task} / seed 0: eval.csv reaches env step 150,") for pr in problems), problems
    assert "leaderboard.md differs from the leaderboard regenerated from the published runs" in problems


@pytest.mark.parametrize("table", ["leaderboard.md", "leaderboard.csv"])
def test_the_check_catches_a_tampered_table(smoke, tmp_path, table):
    out = copy_of(smoke[1], tmp_path)
    text = (out / table).read_text()
    cell = next(line for line in text.splitlines() if "sac" in line)
    (out / table).write_text(text.replace(cell, cell.replace("1", "2", 1), 1))
    assert check_published(out) == [f"{table} differs from the leaderboard regenerated from the published runs"]


def test_an_incomplete_grid_is_not_published_and_nothing_is_written(smoke, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(smoke[0], runs)
    task = load_protocol("smoke").tasks[0]
    (runs / task / "sac" / "seed1" / "summary.json").unlink()
    out = tmp_path / "results" / "smoke"
    assert lb.main(["publish", "protocol=smoke", f"runs={runs}", f"out={out}", "n_resamples=50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the grid of protocol 'smoke' is incomplete") and f"sac/{task} 1/2" in err
    assert not out.exists()


def test_an_incomplete_publication_names_what_is_missing_and_its_commands_work_as_recorded(smoke, tmp_path):
    """allow_incomplete=true (a setting the run-order rules did not run, docs/cpu2.md): publish.json and the
    README name the incomplete cells, and the recorded publish and regenerate commands carry the flag, so the
    regenerate command run as written rewrites the same tables."""
    import json
    import shlex

    runs = tmp_path / "runs"
    shutil.copytree(smoke[0], runs)
    task = load_protocol("smoke").tasks[0]
    shutil.rmtree(runs / task / "sac" / "seed1")
    out = tmp_path / "results" / "smoke"
    note, sweep = "seed 1 of sac was not run: a rule's reason", f"python -m vagram_bench.sweep protocol=smoke out={runs}"
    assert lb.main(["publish", "protocol=smoke", f"runs={runs}", f"out={out}", "n_resamples=50",
                    "allow_incomplete=true", f"note={note}", f"sweep_command={sweep}", "machine=a test machine",
                    f"agents={','.join(load_protocol('smoke').agents)}"]) == 0
    meta = json.loads((out / "publish.json").read_text())
    assert meta["complete"] is False and meta["missing_cells"] == [f"sac / {task}: 1/2 seeds"]
    readme = (out / "README.md").read_text()
    assert f"- Incomplete cells (completed / expected seeds): sac / {task}: 1/2 seeds" in readme
    assert f"- Note: {note}\n" in readme and meta["note"] == note and f"```bash\n{sweep}\n```" in readme
    assert [c.endswith(" allow_incomplete=true") for c in (meta["publish_command"], meta["regenerate_command"])] \
        == [True, True]
    before = {name: (out / name).read_bytes() for name in ("leaderboard.md", "leaderboard.csv", "README.md",
                                                          "publish.json")}
    for recorded in ("regenerate_command", "publish_command"):  # each, run as written, rewrites the same files
        argv = shlex.split(meta[recorded])
        assert argv[:3] == ["python", "-m", "vagram_bench.leaderboard"] and lb.main(argv[3:]) == 0
        assert {name: (out / name).read_bytes() for name in before} == before, recorded
    # a regeneration that corrects the note: the record and the recorded publish command take it, and the
    # next regeneration rewrites that record byte for byte
    assert lb.main(["publish", "protocol=smoke", f"runs={out}", f"out={out}", "allow_incomplete=true",
                    "note=a corrected note"]) == 0
    corrected = json.loads((out / "publish.json").read_text())
    assert corrected["note"] == "a corrected note" and "'note=a corrected note'" in corrected["publish_command"]
    assert list(corrected)[-1] == "note" and note not in corrected["publish_command"]
    again = (out / "publish.json").read_bytes()
    assert lb.main(shlex.split(corrected["regenerate_command"])[3:]) == 0
    assert (out / "publish.json").read_bytes() == again
    assert [p for p in check_published(out) if task not in p or "sac / " not in p] == []


@pytest.mark.parametrize("note", ["", "   ", "two\nlines"])
def test_a_note_is_one_line_of_text(smoke, tmp_path, capsys, note):
    out = tmp_path / "out"
    assert lb.main(["publish", "protocol=smoke", f"runs={smoke[0]}", f"out={out}", f"note={note}"]) == 2
    assert capsys.readouterr().err.startswith(f"error: note={note!r}: a note is one line of text")
    assert not out.exists()


def test_the_cpu_results_table_is_the_published_cpu_leaderboard():
    # docs/results.md's table is written by hand from results/cpu/leaderboard.csv; a re-publication that
    # changes a number must change the page too
    import csv

    rows = list(csv.DictReader((REPO / "results" / "cpu" / "leaderboard.csv").open()))
    tasks = load_protocol("cpu").tasks
    readme = (REPO / "docs" / "results.md").read_text().splitlines()

    def interval(point, low, high, fmt):
        return f"{fmt(point)} [{fmt(low)}, {fmt(high)}]"

    def ret(x):
        return f"{float(x):,.0f}"

    def prob(x):
        return f"{float(x):.2f}"

    final = {(r["agent"], r["task"]): r for r in rows if r["table"] == "final" and r["statistic"] == "iqm"}
    for agent in load_protocol("cpu").agents:
        cells = [interval(final[agent, t]["point"], final[agent, t]["ci_low"], final[agent, t]["ci_high"], ret)
                 for t in tasks]
        assert f"| `{agent}` | " + " | ".join(cells) + " |" in readme, agent
    per_task = {(r["agent"], r["task"], r["statistic"]): r for r in rows if r["table"] == "improvement_task"}

    def probability(row):  # a complete separation has no interval: its exact p-value instead
        if row["interval"] == "separation":
            return f"{prob(row['point'])}, complete separation, p = {float(row['p_value']):.3f}"
        return interval(row["point"], row["ci_low"], row["ci_high"], prob)

    for other in ("mbpo_mse", "mbpo_mle"):
        cells = [probability(per_task["mbpo_vagram", t, f"P(X>{other})"]) for t in tasks]
        assert f"| P(`mbpo_vagram` > `{other}`) | " + " | ".join(cells) + " |" in readme, other


def test_the_readme_cpu_cost_is_the_published_one():
    """README's `cpu` v1 paragraph quotes the grid's cost: its cells' population processes, one thread on a
    core each (so wall time is CPU time), summed in results/cpu/publish.json (v1 predates cpu_seconds)."""
    import json

    hours = json.loads((REPO / "results" / "cpu" / "publish.json").read_text())["cell_wall_seconds_total"] / 3600
    assert f"({hours:.1f} CPU-hours)" in (REPO / "README.md").read_text()


PEER_PARITY = REPO / "results" / "peer_parity"


@pytest.mark.skipif(not (PEER_PARITY / "runs").is_dir(), reason="results/peer_parity/ not published yet")
def test_peer_parity_regenerates_byte_for_byte_from_its_records(tmp_path):
    """``results/peer_parity/`` (benchmarks/peer_parity.py) comes out of its own ``runs/`` unchanged: the same
    files, the same bytes (the report checks both sides' settings against each other before writing), with
    five complete seeds a side and the commands that made it."""
    import subprocess
    import sys

    out = tmp_path / "peer_parity"
    shutil.copytree(PEER_PARITY / "runs", out / "runs")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "peer_parity.py"), "report", "--runs",
                           str(out / "runs"), "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    committed = sorted(f.relative_to(PEER_PARITY).as_posix() for f in PEER_PARITY.rglob("*") if f.is_file())
    regenerated = sorted(f.relative_to(out).as_posix() for f in out.rglob("*") if f.is_file())
    assert committed == regenerated
    for name in committed:
        assert (out / name).read_bytes() == (PEER_PARITY / name).read_bytes(), name
    for side in ("InvertedDoublePendulum-v4/mbrl_lib_mbpo", "InvertedDoublePendulum-v5/mbpo_mle"):
        assert sorted(p.parent.name for p in (PEER_PARITY / "runs" / side).glob("seed*/summary.json")) \
            == [f"seed{k}" for k in range(5)], side
    readme = (PEER_PARITY / "README.md").read_text()
    assert "python benchmarks/peer_parity.py run --task idp" in readme and "P(ours > peer)" in readme


@pytest.mark.skipif(not (PEER_PARITY / "runs").is_dir(), reason="results/peer_parity/ not published yet")
def test_the_readme_quotes_the_published_peer_parity():
    """The README's parity line is the published one: P(ours > peer) with its interval and both IQMs."""
    import re

    published = (PEER_PARITY / "README.md").read_text()
    readme = (REPO / "README.md").read_text()
    p_line = re.search(r"\*\*P\(ours > peer\)\*\* = ([0-9.]+ \[[0-9.]+, [0-9.]+\])", published).group(1)
    assert f"**P(ours > peer) = {p_line}**" in readme
    iqm = dict(re.findall(r"\| (mbrl-lib 0.2 MBPO|ours `mbpo_mle`) \|[^|]*\|[^|]*\|[^|]*\| ([0-9,]+ \[[0-9,]+, [0-9,]+\]) \|",
                          published))
    assert f"IQM {iqm['ours `mbpo_mle`']}" in readme.replace("\n", " ")
    assert f"against {iqm['mbrl-lib 0.2 MBPO']} the peer" in readme.replace("\n", " ")


ABLATIONS = REPO / "results" / "ablations"


@pytest.mark.skipif(not (ABLATIONS / "publish.json").is_file(), reason="results/ablations/ not published yet")
def test_the_ablation_matches_its_protocol_and_regenerates():
    """``results/ablations/`` is protocol ``ablation-idp``'s publication (a directory named for what it
    holds rather than for the protocol): the same check as every published result set."""
    assert check_published(ABLATIONS, protocol="ablation-idp") == []


@pytest.mark.skipif(not (ABLATIONS / "publish.json").is_file(), reason="results/ablations/ not published yet")
def test_the_readme_ablation_numbers_are_the_published_records():
    """README "Is it the loss?" and its full reading in docs/results.md: every number quoted, recomputed from
    the committed eval.csv of results/ablations and results/cpu (final return = the mean of the last two
    evaluations, both protocols' rule): the ranges of final returns, the exact p of the complete separations,
    P(52 epochs > v1 MSE)."""
    import csv

    import numpy as np
    import scipy.stats

    from vagram_bench.stats import probability_of_improvement

    task = "InvertedDoublePendulumDistract-0-v0"
    assert load_protocol("ablation-idp").final_evals == load_protocol("cpu").final_evals == 2

    def finals(root: Path, agent: str) -> np.ndarray:
        runs = sorted((root / "runs" / task / agent).glob("seed*"))
        assert len(runs) == 5
        return np.array([np.mean([float(r["return_mean"]) for r in list(csv.DictReader(run.joinpath(
            "eval.csv").open()))[-2:]]) for run in runs])

    def span(x: np.ndarray) -> str:
        return f"{x.min():,.0f}–{x.max():,.0f}"

    mle_ablated, mse_ablated = finals(ABLATIONS, "mbpo_mle"), finals(ABLATIONS, "mbpo_mse")
    mle, mse, vagram = (finals(REPO / "results" / "cpu", a) for a in ("mbpo_mle", "mbpo_mse", "mbpo_vagram"))
    readme = " ".join((REPO / "docs" / "results.md").read_text().split())  # the README links its summary there
    summary = " ".join((REPO / "README.md").read_text().split())
    assert "ends below every upstream MLE run" in summary and "docs/results.md#is-it-the-loss-ablation-idp" in summary
    p = scipy.stats.mannwhitneyu(mle, mle_ablated, alternative="greater", method="exact").pvalue
    assert mle_ablated.max() < mle.min() and f"{p:.3f}" == "0.004"
    assert (f"per-member snapshots {span(mle_ablated)} against upstream MLE's {span(mle)} (complete separation, "
            f"exact one-sided p = {p:.3f}") in readme
    point, low, high = probability_of_improvement([mse_ablated], [mse], n_resamples=10_000, seed=0)
    assert f"(VaGraM's median) {span(mse_ablated)} against {span(mse)}: P = {point:.2f} [{low:.2f}, {high:.2f}]" \
        in readme
    assert vagram.min() > max(mle_ablated.max(), mse_ablated.max()) and "VaGraM beats both (complete separation)" \
        in readme


CPU2, CPU2_SVG = REPO / "results" / "cpu2", REPO / "results" / "cpu2_svg"


def _regenerate(published: Path, tmp_path: Path) -> None:
    """Run the ``regenerate_command`` that ``publish.json`` records on a copy of ``published``: the record and
    its README come back byte for byte (the leaderboard itself is ``check_published``'s business), and so do
    the figures and the HTML report wherever the installed matplotlib is the one that drew them (a PNG names
    its matplotlib version; another version draws other bytes, so elsewhere only their presence is checked)."""
    import json
    import shlex

    import matplotlib
    from PIL import Image

    copy = tmp_path / published.name
    shutil.copytree(published, copy)
    drawn = [f.name for f in published.glob("*.png")] + ["report.html"]
    for name in drawn:
        (copy / name).unlink()
    argv = shlex.split(json.loads((published / "publish.json").read_text())["regenerate_command"])
    assert argv[:4] == ["python", "-m", "vagram_bench.leaderboard", "publish"], argv
    where = {"runs": f"runs={copy}", "out": f"out={copy}"}
    assert lb.main(["publish", *(where.get(a.split("=", 1)[0], a) for a in argv[4:])]) == 0
    for name in ("publish.json", "README.md"):
        assert (copy / name).read_bytes() == (published / name).read_bytes(), name
    made_with = {Image.open(f).info.get("Software") for f in published.glob("*.png")}
    same_matplotlib = made_with == {f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"}
    for name in drawn:
        assert (copy / name).is_file(), name
        if same_matplotlib:
            assert (copy / name).read_bytes() == (published / name).read_bytes(), name


def _claims_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("claims", REPO / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    return claims


def _claim_lines(published: Path) -> list[str]:
    return _claims_tool().claim_lines(published)


@pytest.mark.skipif(not (CPU2 / "publish.json").is_file(), reason="cpu2's MBPO half not published yet (docs/cpu2.md)")
def test_cpu2_mbpo_half_is_published_as_preregistered_and_the_readme_quotes_its_claims(tmp_path):
    """docs/cpu2.md: the MBPO half is complete but for the three `mbpo_itervaml` cells its cost amendment drops
    (every seed of every other cell present and checked), regenerates (with publish.json and README.md, byte for
    byte), records its preregistration commit and its CPU cost, and the README holds both claim lines
    tools/claims.py reads off the committed CSV (the numbers and verdicts the README quotes)."""
    import json

    cpu2 = load_protocol("cpu2")
    dropped = {"InvertedPendulumDistract-5-v0", "InvertedPendulumDistract-10-v0", "InvertedPendulumCapacity-2x16-v0"}
    missing = {(a, t) for a in cpu2.agents for t in cpu2.tasks if not any((CPU2 / "runs" / t / a).glob("seed*"))}
    assert missing == {("mbpo_itervaml", t) for t in dropped}
    problems = check_published(CPU2, protocol="cpu2")
    assert problems and all(pr.startswith("mbpo_itervaml / ") and pr.split(" / ")[1] in dropped for pr in problems)
    meta = json.loads((CPU2 / "publish.json").read_text())
    assert meta["preregistration"] == "d0f3f84" and meta["cpu_seconds_total"] > 0 and not meta["complete"]
    assert meta["regenerate_command"].endswith(" allow_incomplete=true") and "mbpo_itervaml" in meta["note"]
    _regenerate(CPU2, tmp_path)
    lines = _claim_lines(CPU2)
    assert len(lines) == 2 and all(line in (REPO / "README.md").read_text() for line in lines)
    # the README's table of the grid: every agent's final return on every task, the primary pair's drops
    readme = (REPO / "README.md").read_text().splitlines()
    assert all(line in readme for line in _claims_tool().table_lines(CPU2))
    # the measured cost of both halves against the 30-hour budget (issue 24), in the README and the protocol
    mbpo = meta["cpu_seconds_total"] / 3600
    svg = json.loads((CPU2_SVG / "publish.json").read_text())["cpu_seconds_total"] / 3600
    flat = " ".join(" ".join(readme).split())
    assert mbpo + svg <= 30
    assert f"{mbpo:.1f} CPU-hours (MBPO half) + {svg:.2f} (SVG half) = {mbpo + svg:.1f} of the 30-hour budget" in flat
    protocol_text = " ".join((REPO / "protocols" / "cpu2.toml").read_text().replace("#", " ").split())
    assert "results/cpu2/publish.json" in protocol_text and f"{mbpo:.2f} CPU-hours" in protocol_text
    # nothing says the half is still running
    assert not any(s in flat for s in ("MBPO half running", "MBPO half is still running", "no MBPO result"))


@pytest.mark.skipif(not (CPU2_SVG / "publish.json").is_file(), reason="cpu2's SVG half not published yet (docs/cpu2.md)")
def test_cpu2_svg_half_is_published_as_preregistered_and_the_readme_quotes_its_claims(tmp_path):
    """docs/cpu2.md: the SVG half regenerates and lacks only whole settings that the run-order rules did not
    run (never the anchor), records its preregistration commit and CPU cost, and the README holds both of its
    claim lines; a setting not run reads *not measurable* or *not measured at this budget*, never a verdict
    on data."""
    import json

    svg = load_protocol("cpu2-svg")
    missing = {t for t in svg.tasks if not any((CPU2_SVG / "runs" / t).glob("*/seed*/summary.json"))}
    assert svg.interaction[0].anchor not in missing
    assert all(any(t in pr for t in missing) for pr in check_published(CPU2_SVG, protocol="cpu2-svg"))
    meta = json.loads((CPU2_SVG / "publish.json").read_text())
    assert meta["preregistration"] == "491982e" and meta["cpu_seconds_total"] > 0
    # the measured cost, as the protocol file's comment and docs/cpu2.md quote it
    cells = {k.split(" / ")[0]: v for k, v in meta["cell_cpu_seconds"].items()}
    assert sum(cells.values()) == pytest.approx(meta["cpu_seconds_total"])
    hours = meta["cpu_seconds_total"] / 3600
    protocol_text = " ".join((REPO / "protocols" / "cpu2-svg.toml").read_text().replace("#", " ").split())
    assert (f"took {cells['svg_mle']:,.0f} CPU-s (svg_mle) and {cells['svg_vagram']:,.0f} (svg_vagram), "
            f"{hours:.2f} CPU-hours in all") in protocol_text
    assert f"It cost {hours:.2f} CPU-hours" in " ".join((REPO / "docs" / "cpu2.md").read_text().split())
    assert meta["regenerate_command"].endswith(" allow_incomplete=true") and meta["note"]
    _regenerate(CPU2_SVG, tmp_path)
    lines = _claim_lines(CPU2_SVG)
    assert len(lines) == 2 and all(line in (REPO / "README.md").read_text() for line in lines)
    for line in lines:
        if "setting not run" in line:
            assert line.endswith(("**not measurable**", "**not measured at this budget**")), line


def test_the_cpu2_svg_rule_tool_waits_refuses_and_allows_as_docs_cpu2_says(tmp_path, capsys):
    """tools/cpu2_next_svg.py, docs/cpu2.md step 4: wait while the SVG anchor runs; no further SVG setting
    when fewer than 5 of 8 anchor runs of either agent reached 950, or when the CPU budget would be passed;
    otherwise the sweep command of d=20, then of 2x8."""
    import importlib.util
    import json

    from test_leaderboard import write_run

    spec = importlib.util.spec_from_file_location("next_svg", REPO / "tools" / "cpu2_next_svg.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    p = load_protocol("cpu2-svg")
    mbpo, svg = tmp_path / "cpu2", tmp_path / "cpu2-svg"
    mbpo.mkdir()

    def grid(solved_mle: int, cpu: float, complete: bool = True, task: str = tool.ANCHOR) -> None:
        for agent in tool.AGENTS:
            for k, seed in enumerate(p.seeds):
                top = 1000.0 if agent == "svg_vagram" or k < solved_mle else 400.0
                d = write_run(svg, p, agent, task, seed, [50.0] * 14 + [top, top], complete=complete)
                if complete:
                    summary = json.loads((d / "summary.json").read_text())
                    (d / "summary.json").write_text(json.dumps({**summary, "cpu_seconds": cpu}))

    grid(8, 100.0, complete=False)
    ok, lines = tool.decide(str(mbpo), str(svg))
    assert not ok and lines[-1] == "wait: the SVG anchor cells are not complete yet"
    grid(4, 100.0)  # 4 of 8 svg_mle runs reached 950: not measurable
    ok, lines = tool.decide(str(mbpo), str(svg))
    assert not ok and "svg_mle on the anchor: 8/8 runs complete, 4 reached 950: NOT measurable" in lines[0]
    grid(5, 100.0)
    ok, lines = tool.decide(str(mbpo), str(svg))
    assert ok and lines[-1].startswith("run: python -m vagram_bench.sweep protocol=cpu2-svg "
                                       "tasks=InvertedPendulumDistract-20-v0 ")
    grid(5, 100.0, task="InvertedPendulumDistract-20-v0")
    assert tool.decide(str(mbpo), str(svg))[1][-1].split()[5] == "tasks=InvertedPendulumCapacity-2x8-v0"
    grid(5, 40_000.0)  # 2 x 40,000 s used by the anchor (+ d=20) and 80,000 s more: past 30 h
    ok, lines = tool.decide(str(mbpo), str(svg))
    assert not ok and "does NOT fit" in lines[2]
    assert tool.main([str(mbpo)]) == 2


def test_the_cpu2_itervaml_rule_tool_waits_projects_and_decides_as_docs_cpu2_says(tmp_path, capsys):
    """tools/cpu2_next_itervaml.py, rule (c) of docs/cpu2.md "Amendments": wait until mbpo_itervaml's anchor
    cell is complete; then each cell's CPU (the largest its runs record: one population, whose resumed members
    carry the history) + each unfinished cell's rest (the larger of the projection from its slowest unfinished
    member and its agent's anchor cost minus its CPU so far), MBPO's and SVG's alike, + the anchor cell's cost
    (the 2x8 estimate) against 30 CPU-hours; never once the 2x8 cell has started."""
    import importlib.util
    import json

    from test_leaderboard import write_run
    from vagram_bench.records import save_checkpoint

    spec = importlib.util.spec_from_file_location("next_itervaml", REPO / "tools" / "cpu2_next_itervaml.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    mbpo, svg = tmp_path / "cpu2", tmp_path / "cpu2-svg"
    svg.mkdir()

    def run(root, protocol, agent, task, seed, cpu, evals=16, process="p1"):
        d = write_run(root, protocol, agent, task, seed, [50.0] * evals, complete=evals == 16)
        if evals == 16:
            summary = json.loads((d / "summary.json").read_text())
            (d / "summary.json").write_text(json.dumps({**summary, "cpu_seconds": cpu, "cpu_process": process}))
        else:
            save_checkpoint(d / "checkpoint.pt", {"format": 1, "cpu_seconds": cpu})

    p, p_svg = load_protocol("cpu2"), load_protocol("cpu2-svg")
    for seed in p.seeds:
        run(mbpo, p, tool.AGENT, tool.ANCHOR, seed, 3_000.0, evals=8)
    ok, lines = tool.decide(str(mbpo), str(svg))
    assert not ok and lines == ["wait: mbpo_itervaml on the anchor has 0/8 runs complete"]
    # the anchor finished by two processes of one population (a kill between): 10,000 s, not 16,000
    for k, seed in enumerate(p.seeds):
        run(mbpo, p, tool.AGENT, tool.ANCHOR, seed, 6_000.0 if k < 4 else 10_000.0, process=f"p{k // 4}")
    for seed in p.seeds:
        run(mbpo, p, "mbpo_mse", tool.ANCHOR, seed, 50_000.0)
    d20 = "InvertedPendulumDistract-20-v0"
    for k, seed in enumerate(p.seeds):  # members at 1,000 and 2,000 steps after a resume, one finished
        run(mbpo, p, tool.AGENT, d20, seed, 3_000.0 if k in (5, 7) else 2_500.0, evals=16 if k == 7 else 4 + 4 * (k > 3))
    for seed in p_svg.seeds:  # an unfinished SVG cell at 2,000 of 4,000 steps
        run(svg, p_svg, "svg_mle", d20, seed, 1_000.0, evals=8)
    ok, lines = tool.decide(str(mbpo), str(svg))
    assert lines[:2] == [
        "running: mbpo_itervaml on InvertedPendulumDistract-20-v0, slowest member at 1,000 of 4,000 env steps, "
        "3,000 CPU-s so far, 9,000 to go (linear 9,000, anchor-cell floor 7,000)",
        "running: svg_mle on InvertedPendulumDistract-20-v0, slowest member at 2,000 of 4,000 env steps, "
        "1,000 CPU-s so far, 1,000 to go (linear 1,000, anchor-cell floor 0)"]
    # 64,000 s used + 10,000 to go + 10,000 for 2x8 = 84,000 s
    assert ok and lines[2] == ("(c) CPU time so far 17.78 h + the unfinished cells' rest 2.78 h + "
                               "mbpo_itervaml on 2x8 (its anchor cell's cost) 2.78 h = 23.33 h of 30 h: fits")
    assert lines[3] == (f"run: python -m vagram_bench.sweep protocol=cpu2 agents=mbpo_itervaml "
                        f"tasks=InvertedPendulumCapacity-2x8-v0 out={mbpo} local.workers=1")
    for seed in p.seeds[:7]:  # every unfinished member at 3,000: the anchor cell's cost is the larger rest
        run(mbpo, p, tool.AGENT, d20, seed, 3_000.0, evals=12)
    assert tool.decide(str(mbpo), str(svg))[1][0].endswith("3,000 CPU-s so far, 7,000 to go (linear 1,000, "
                                                           "anchor-cell floor 7,000)")
    for seed in p.seeds:
        run(mbpo, p, "mbpo_mse", tool.ANCHOR, seed, 80_000.0)  # 94,000 + 8,000 + 10,000 = 112,000 s: past 30 h
    ok, lines = tool.decide(str(mbpo), str(svg))
    assert not ok and lines[2].endswith("= 31.11 h of 30 h: does NOT fit") and lines[3].startswith("do not run")
    assert tool.main([str(mbpo), str(svg)]) == 1 and "does NOT fit" in capsys.readouterr().out
    run(mbpo, p, tool.AGENT, tool.SETTING, p.seeds[0], 100.0, evals=1)
    assert tool.decide(str(mbpo), str(svg)) == (
        False, ["mbpo_itervaml on InvertedPendulumCapacity-2x8-v0 has already started: resume it with its sweep"])
    assert tool.main([str(mbpo)]) == 2 and capsys.readouterr().err.startswith("error: usage:")
    assert tool.main([str(mbpo), str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith(f"error: not a runs directory: '{tmp_path / 'nope'}'")


def test_the_readme_cpu2_design_numbers_are_the_protocols_and_the_pilots():
    """README `cpu2`: the design it quotes is the committed protocols' (distractor counts, model sizes, seeds,
    budget, the solved threshold, SVG's widths) and the pilot claim is the committed pilot records' (every
    `mbpo_mse` and `mbpo_mle` run of results/pilots/ip_anchor returns >= 950 at some evaluation by 3k steps)."""
    import csv
    import re

    readme = " ".join((REPO / "README.md").read_text().split())
    cpu2, svg = load_protocol("cpu2"), load_protocol("cpu2-svg")
    (spec,) = cpu2.interaction
    assert spec.anchor == svg.interaction[0].anchor == "InvertedPendulumDistract-0-v0"
    assert spec.solved_threshold == svg.interaction[0].solved_threshold == 950
    assert cpu2.steps == svg.steps == 4000 and len(cpu2.seeds) == len(svg.seeds) == 8
    # fresh: no other shipped or pilot protocol, and no other committed record, uses the grid's seeds
    others = [load_protocol(n) for n in protocol_names() if n not in ("cpu2", "cpu2-svg")]
    others += [load_protocol(f) for f in sorted((REPO / "protocols" / "pilots").glob("*.toml"))]
    assert len(others) > 10 and all(set(cpu2.seeds).isdisjoint(o.seeds) for o in others)
    assert set(cpu2.seeds) == set(svg.seeds)
    used = {int(d.name[4:]) for d in (REPO / "results").glob("**/seed[0-9]*") if d.is_dir()
            and not d.relative_to(REPO / "results").parts[0].startswith("cpu2")}
    assert used and used.isdisjoint(cpu2.seeds)
    dims = sorted(int(re.fullmatch(r"InvertedPendulumDistract-(\d+)-v0", t).group(1)) for t in cpu2.tasks
                  if "Distract" in t and t != spec.anchor)
    sizes = sorted((t.split("-")[1] for t in cpu2.tasks if "Capacity" in t), key=lambda s: -int(s.split("x")[1]))
    assert (f"against {'/'.join(map(str, dims))} distractor dims and "
            f"{'/'.join(s.replace('x', '×') for s in sizes)} models") in readme
    assert "8 fresh seeds" in readme and '"Solved" is a return ≥ 950 within the 4k steps' in readme
    assert _claims_tool().MIN_SOLVED == 5 and "the rule needs 5 of 8 anchor runs of each agent" in readme
    widths = {v for o in svg.agent_overrides for k, v in o.values.items() if k.endswith("_dim")}
    assert widths == {128} and "(128-wide networks)" in readme
    pilot = REPO / "results" / "pilots" / "ip_anchor" / spec.anchor
    runs = sorted(pilot.glob("mbpo_m[sl]e/seed*/eval.csv"))
    assert len(runs) == 4 and "`mbpo_mse` and `mbpo_mle` solved by 3k steps in a 4-run pilot" in readme
    for run in runs:
        rows = list(csv.DictReader(run.open()))
        assert min(int(r["env_step"]) for r in rows if float(r["return_mean"]) >= 950) <= 3000, run
