"""Leaderboard on synthetic run records with known values.

Every expected number is computed a second, independent way: IQM with
``scipy.stats.trim_mean(x, 0.25)``, means with ``numpy``, CIs with a separate
``scipy.stats.bootstrap`` call, AUC with explicit trapezoid sums, ranks by hand.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from vagram_bench import leaderboard as lb
from vagram_bench.protocol import load_protocol, parse_protocol
from vagram_bench.records import EVAL_COLUMNS

TASKS = ["HopperDistract-0-v0", "HopperDistract-15-v0"]


def make_protocol(seeds=(0, 1, 2, 3, 4), metric="iqm", version=1, refs=True, final_evals=1):
    content = {
        "name": "synthetic",
        "version": version,
        "description": "synthetic grid for tests",
        "tasks": list(TASKS),
        "seeds": list(seeds),
        "steps": 300,
        "eval_every": 100,
        "eval_episodes": 2,
        "eval_seed": 1_000_000,
        "metric": metric,
        "final_evals": final_evals,
        "agents": ["alpha", "beta"],
    }
    if refs:
        content["reference_source"] = "made up for the test"
        content["reference_scores"] = {
            TASKS[0]: {"random": 0.0, "reference": 100.0},
            TASKS[1]: {"random": 10.0, "reference": 110.0},
        }
    return parse_protocol(content, "<synthetic>", check_ids=False)


def write_run(root: Path, protocol, agent, env, seed, returns, *, complete=True, record=None, agent_config=None):
    """A run record exactly in the format the runner writes (preamble: run records); ``record=False``: a run
    made without ``protocol=``."""
    d = root / env / agent / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    config = {"agent": agent, "env": env, "seed": seed, "steps": protocol.steps_for(env),
              "protocol": protocol.record() if record is None else (record or None)}
    if agent_config is not None:
        config["agent_config"] = agent_config
    (d / "config.json").write_text(json.dumps(config))
    steps = protocol.eval_steps_for(env)[: len(returns)]
    with (d / "eval.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EVAL_COLUMNS)
        for s, r in zip(steps, returns):
            w.writerow([s, r, 1.0, r - 1, r + 1, 100.0, 0.5])
    if complete:
        (d / "summary.json").write_text(json.dumps(
            {"final_return_mean": returns[-1], "env_steps": steps[-1], "wall_seconds": 1.0}))
    return d


def curves_for(rng, n_seeds, base):
    """Per-seed 3-point curves with distinct final values."""
    return [[base + rng.normal(0, 5), base + 10 + rng.normal(0, 5), base + 20 + rng.normal(0, 10)]
            for _ in range(n_seeds)]


@pytest.fixture
def grid(tmp_path):
    proto = make_protocol()
    rng = np.random.default_rng(123)
    truth = {}
    for agent, base in (("alpha", 50.0), ("beta", 80.0)):
        for k, task in enumerate(TASKS):
            curves = curves_for(rng, 5, base + 5 * k)
            truth[(agent, task)] = np.asarray(curves)
            for seed, c in enumerate(curves):
                write_run(tmp_path / "runs", proto, agent, task, seed, c)
    return proto, tmp_path / "runs", truth


@pytest.mark.parametrize("metric", ["iqm", "mean"])
def test_cells_equal_independent_computation(tmp_path, metric):
    proto = make_protocol(metric=metric)
    rng = np.random.default_rng(7)
    truth = {}
    for agent, base in (("alpha", 50.0), ("beta", 80.0)):
        for task in TASKS:
            curves = curves_for(rng, 5, base)
            truth[(agent, task)] = np.asarray(curves)
            for seed, c in enumerate(curves):
                write_run(tmp_path, proto, agent, task, seed, c)
    board = lb.build_leaderboard(lb.scan_runs(tmp_path), proto, n_resamples=2000, seed=3)
    for (agent, task), curves in truth.items():
        finals = curves[:, -1]
        expected = scipy.stats.trim_mean(finals, 0.25) if metric == "iqm" else finals.mean()
        cell = board.final[(agent, task)]
        assert cell.n == 5 and cell.complete
        assert cell.point == pytest.approx(expected, rel=1e-12)
        # the CI: a second, independent scipy.stats.bootstrap call with the same generator seed
        stat = (lambda x, axis: scipy.stats.trim_mean(x, 0.25, axis=axis)) if metric == "iqm" else np.mean
        ref = scipy.stats.bootstrap((finals,), stat, n_resamples=2000, method="percentile",
                                    rng=np.random.default_rng(3))
        assert cell.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-12)
        assert cell.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-12)
        assert cell.ci_low <= cell.point <= cell.ci_high
        # AUC: trapezoid by hand over eval steps 100, 200, 300, divided by the span (200)
        aucs = [(100 * (c[0] + c[1]) / 2 + 100 * (c[1] + c[2]) / 2) / 200 for c in curves]
        exp_auc = scipy.stats.trim_mean(aucs, 0.25) if metric == "iqm" else np.mean(aucs)
        assert board.auc[(agent, task)].point == pytest.approx(exp_auc, rel=1e-12)


def test_iqm_trims_outliers_unlike_mean(tmp_path):
    # 8 seeds: trim_mean(.., 0.25) drops the 2 lowest and 2 highest -> IQM of the middle four
    finals = [0.0, 1.0, 10.0, 11.0, 12.0, 13.0, 1000.0, 5000.0]
    for metric, expected in (("iqm", 11.5), ("mean", sum(finals) / 8)):
        proto = make_protocol(seeds=range(8), metric=metric)
        root = tmp_path / metric
        for seed, f in enumerate(finals):
            for agent in ("alpha", "beta"):
                for task in TASKS:
                    write_run(root, proto, agent, task, seed, [0.0, 0.0, f])
        board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=500)
        assert board.final[("alpha", TASKS[0])].point == pytest.approx(expected)


def test_degenerate_ci_cases(tmp_path):
    proto = make_protocol(seeds=(0, 1, 2, 3))
    for agent in ("alpha", "beta"):
        for task in TASKS:
            for seed in range(4):
                write_run(tmp_path, proto, agent, task, seed, [5.0, 6.0, 42.0])
    board = lb.build_leaderboard(lb.scan_runs(tmp_path), proto, n_resamples=500)
    cell = board.final[("alpha", TASKS[0])]
    # identical values across seeds: every resample has the same IQM
    assert (cell.point, cell.ci_low, cell.ci_high) == (42.0, 42.0, 42.0)
    # a single seed has no spread to resample: no CI is claimed
    assert all(math.isnan(v) for v in lb.bootstrap_ci([np.array([3.0])], "iqm"))


def test_ci_shrinks_with_more_seeds(tmp_path):
    # The same N(100, 20) population at 5, 20 and 80 seeds, as its evenly spaced quantiles (no
    # sampling noise): the CI width must shrink roughly like 1/sqrt(n), i.e. halve per 4x seeds.
    widths = {}
    for n in (5, 20, 80):
        proto = make_protocol(seeds=range(n))
        root = tmp_path / f"n{n}"
        finals = scipy.stats.norm.ppf((np.arange(n) + 0.5) / n, loc=100.0, scale=20.0)
        for agent in ("alpha", "beta"):
            for task in TASKS:
                for seed in range(n):
                    write_run(root, proto, agent, task, seed, [0.0, 0.0, finals[seed]])
        board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=2000)
        cell = board.final[("alpha", TASKS[0])]
        widths[n] = cell.ci_high - cell.ci_low
        agg = board.final_aggregate["alpha"]
        widths[("agg", n)] = agg.ci_high - agg.ci_low
    assert widths[5] > widths[20] > widths[80] > 0
    assert widths[("agg", 5)] > widths[("agg", 20)] > widths[("agg", 80)] > 0
    assert 1.4 < widths[20] / widths[80] < 2.8


def test_aggregate_is_stratified_bootstrap_of_normalised_scores(grid):
    proto, root, truth = grid
    board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=1000, seed=5)
    for agent in ("alpha", "beta"):
        norm = [(truth[(agent, TASKS[0])][:, -1] - 0.0) / 100.0,
                (truth[(agent, TASKS[1])][:, -1] - 10.0) / 100.0]
        pooled = np.concatenate(norm)
        agg = board.final_aggregate[agent]
        assert agg.point == pytest.approx(scipy.stats.trim_mean(pooled, 0.25))
        # stratified: one sample per task, resampled independently (paired=False)
        ref = scipy.stats.bootstrap(
            tuple(norm),
            lambda a, b, axis: scipy.stats.trim_mean(np.concatenate([a, b], axis=axis), 0.25, axis=axis),
            n_resamples=1000, method="percentile", paired=False, rng=np.random.default_rng(5))
        assert agg.ci_low == pytest.approx(ref.confidence_interval.low)
        assert agg.ci_high == pytest.approx(ref.confidence_interval.high)
    # beta's curves sit 30 above alpha's on every task: rank 1 on both
    assert board.final_rank == {"beta": 1.0, "alpha": 2.0}


def test_incomplete_grid_is_reported_not_averaged(grid, tmp_path):
    proto, root, truth = grid
    # beta, task 1: seed 4 still running (no summary.json), seed 3 never started
    shutil.rmtree(root / TASKS[1] / "beta" / "seed3")
    (root / TASKS[1] / "beta" / "seed4" / "summary.json").unlink()
    board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=500)
    cell = board.final[("beta", TASKS[1])]
    assert (cell.n, cell.expected, cell.complete) == (3, 5, False)
    assert cell.point == pytest.approx(scipy.stats.trim_mean(truth[("beta", TASKS[1])][:3, -1], 0.25))
    assert board.in_progress[("beta", TASKS[1])] == 1
    assert board.final_aggregate["beta"] is None
    assert board.final_aggregate["alpha"] is not None  # alpha's row is complete
    # ranks compare agents: with beta incomplete, alpha would be "first" on task 1 by default
    assert board.final_rank == {"alpha": None, "beta": None}
    assert board.incomplete_cells() == [("beta", TASKS[1], 3, 5)]
    md = lb.to_markdown(board)
    beta_row = next(l for l in md.splitlines() if l.startswith("| beta"))
    assert "⚠ incomplete 3/5, 1 running" in beta_row
    assert beta_row.count("⚠ incomplete") == 3  # the cell, the aggregate and the rank
    alpha_row = next(l for l in md.splitlines() if l.startswith("| alpha"))
    assert alpha_row.split(" | ")[2] == "⚠ incomplete grid"  # the headline columns come first
    # an agent with no runs at all is a row of missing cells
    board2 = lb.build_leaderboard(lb.scan_runs(root), proto, agents=["alpha", "gamma"], n_resamples=200)
    assert board2.final[("gamma", TASKS[0])].n == 0
    assert "⚠ missing (0/5)" in lb.to_markdown(board2)


def test_mixed_protocol_versions_are_not_mixed(grid):
    proto, root, truth = grid
    v2 = make_protocol(version=2)
    assert v2.content_hash != proto.content_hash
    # a v2 run of alpha/task0/seed0 with an absurd value lives next to the v1 runs
    write_run(root / "v2", v2, "alpha", TASKS[0], 0, [1e9, 1e9, 1e9])
    with pytest.warns(UserWarning, match=r"another version/hash"):
        board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=200)
    assert board.final[("alpha", TASKS[0])].point == pytest.approx(
        scipy.stats.trim_mean(truth[("alpha", TASKS[0])][:, -1], 0.25))
    assert any("another version/hash" in e for e in board.excluded)
    # and the v2 table holds only the v2 run: an incomplete 1/5 cell
    with pytest.warns(UserWarning):
        board_v2 = lb.build_leaderboard(lb.scan_runs(root), v2, n_resamples=200)
    assert board_v2.final[("alpha", TASKS[0])].n == 1
    assert board_v2.final[("alpha", TASKS[0])].point == 1e9
    # a run recorded with the right name/version but a tampered hash is excluded too
    tampered = dict(proto.record(), hash="0" * 64)
    write_run(root / "tampered", proto, "beta", TASKS[0], 0, [1e9] * 3, record=tampered)
    with pytest.warns(UserWarning, match="another version/hash"):
        board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=200)
    assert board.final[("beta", TASKS[0])].values.max() < 1e6


def test_final_evals_averages_last_evaluations(tmp_path):
    proto = make_protocol(final_evals=2, metric="mean")
    for agent in ("alpha", "beta"):
        for task in TASKS:
            for seed in range(5):
                write_run(tmp_path, proto, agent, task, seed, [0.0, 10.0 * seed, 20.0 * seed])
    board = lb.build_leaderboard(lb.scan_runs(tmp_path), proto, n_resamples=200)
    assert board.final[("alpha", TASKS[0])].point == pytest.approx(np.mean([15.0 * s for s in range(5)]))


def test_complete_run_off_schedule_is_excluded(grid):
    proto, root, _ = grid
    d = root / TASKS[0] / "alpha" / "seed0"
    rows = (d / "eval.csv").read_text().splitlines()
    (d / "eval.csv").write_text("\n".join(rows[:-1]) + "\n")  # summary present, last eval missing
    with pytest.warns(UserWarning, match=r"holds 2 evaluation\(s\) .* not the protocol's 3 .* redo it: "
                                         r"python -m vagram_bench.run agent=alpha env=HopperDistract-0-v0 seed=0 "
                                         r"protocol=synthetic out=\S+ overwrite=true"):
        board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=200)
    assert board.final[("alpha", TASKS[0])].n == 4


def test_outputs_and_cli(grid, tmp_path):
    proto, root, truth = grid
    path = tmp_path / "synthetic.toml"
    # write the protocol to a file so the CLI can load it by path
    import tomllib  # noqa: F401  (the file below must parse as TOML)

    path.write_text(_protocol_toml(proto))
    assert load_protocol(path, check_ids=False).content_hash == proto.content_hash
    out = tmp_path / "board"
    rc = lb.main([str(root), f"protocol={path}", f"out={out}", "n_resamples=300"])
    assert rc == 0
    md = (out / "leaderboard.md").read_text()
    assert f"v1 (hash `{proto.short_hash}`)" in md
    header = next(l for l in md.splitlines() if l.startswith("| Agent"))
    assert TASKS[0] in header and "Normalised IQM" in header and "Mean rank" in header
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    row = next(r for r in rows if r["table"] == "final" and r["agent"] == "alpha" and r["task"] == TASKS[0])
    assert float(row["point"]) == pytest.approx(scipy.stats.trim_mean(truth[("alpha", TASKS[0])][:, -1], 0.25))
    assert row["n_seeds"] == "5" and row["complete"] == "True"
    wall = next(r for r in rows if r["table"] == "wall_hours" and r["agent"] == "beta" and r["task"] == TASKS[1])
    assert float(wall["point"]) == pytest.approx(1.0 / 3600)  # every synthetic summary says 1 s
    assert "### Run time (median wall-clock per completed run)" in md
    assert "| alpha | 1 s | 1 s |" in md
    for name in ("curves.png", "performance_profile.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md
    html_text = (out / "report.html").read_text()
    assert html_text.count("data:image/png;base64,") == 2
    assert "src='http" not in html_text and 'src="http' not in html_text  # self-contained


def test_markdown_and_html_carry_the_same_tables(grid, tmp_path):
    import html as html_lib

    proto, root, _ = grid
    board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=200)
    files = lb.write_leaderboard(board, tmp_path / "board")
    md = files["markdown"].read_text()
    page = files["html"].read_text()
    titles = [t.title for t in lb.report_tables(board)]
    assert titles == ["Final return", "Area under the curve (average return over training)",
                      "Probability of improvement (final return)",
                      "Probability of improvement per task (final return)",
                      "Run time (median wall-clock per completed run)"]
    for table in lb.report_tables(board):
        assert f"### {table.title}" in md and f"<h2>{html_lib.escape(table.title)}</h2>" in page
        for row in table.rows:
            # the Markdown row, and the same cells in the same order in one HTML row
            assert "| " + " | ".join(row) + " |" in md
            assert "".join(f"<td>{html_lib.escape(c)}</td>" for c in row) in page
    assert "<td>1 s</td>" in page  # the run-time table the HTML used to lack


def _protocol_toml(p) -> str:
    refs = "\n".join(f'"{t}" = {{ random = {r.random}, reference = {r.reference} }}'
                     for t, r in p.reference_scores.items())
    return f'''name = "{p.name}"
version = {p.version}
description = "{p.description}"
tasks = {json.dumps(list(p.tasks))}
seeds = {json.dumps(list(p.seeds))}
steps = {p.steps}
eval_every = {p.eval_every}
eval_episodes = {p.eval_episodes}
eval_seed = {p.eval_seed}
metric = "{p.metric}"
final_evals = {p.final_evals}
agents = {json.dumps(list(p.agents))}
reference_source = "{p.reference_source}"

[reference_scores]
{refs}
'''


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="needs a headless chromium (apt-get install -y chromium)")
def test_html_report_renders_in_headless_browser(grid, tmp_path):
    proto, root, _ = grid
    board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=200)
    files = lb.write_leaderboard(board, tmp_path / "board")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=1300,3000", files["html"].resolve().as_uri()],
        check=True, capture_output=True, timeout=60,
    )
    import matplotlib.image

    img = matplotlib.image.imread(shot)[..., :3]
    # non-blank: not a single colour, and both text (dark) and plot colours are present
    assert img.std() > 0.05
    assert (img.min(axis=-1) < 0.3).mean() > 0.001  # dark pixels: text, axes
    colourful = (img.max(axis=-1) - img.min(axis=-1)) > 0.3  # matplotlib's C0/C1 lines and bands
    assert colourful.mean() > 0.001


# --------------------------------------------------------------------------------------------------
# small-n intervals, probability of improvement, performance profiles


def test_small_n_cells_show_the_range_and_say_so(tmp_path):
    proto = make_protocol(seeds=(0, 1, 2))
    rng = np.random.default_rng(11)
    finals = {}
    for agent in ("alpha", "beta"):
        for task in TASKS:
            finals[(agent, task)] = rng.normal(50, 10, 3)
            for seed, f in enumerate(finals[(agent, task)]):
                write_run(tmp_path, proto, agent, task, seed, [0.0, 0.0, f])
    board = lb.build_leaderboard(lb.scan_runs(tmp_path), proto, n_resamples=2000)
    cell = board.final[("alpha", TASKS[0])]
    x = finals[("alpha", TASKS[0])]
    assert cell.interval == "range" and (cell.ci_low, cell.ci_high) == (x.min(), x.max())
    # why: at n = 3 the percentile bootstrap "95% CI" is exactly [min, max] (a resample of the smallest
    # seed three times has probability 1/27 > 2.5%), and so at n = 4 for the IQM (13/256 > 2.5%)
    for n in (3, 4):
        for _ in range(5):
            y = rng.normal(0, 1, n)
            assert lb.bootstrap_ci([y], "iqm", n_resamples=4000, seed=1) == pytest.approx((y.min(), y.max()))
    md = lb.to_markdown(board)
    row = next(l for l in md.splitlines() if l.startswith("| alpha"))
    assert f"{scipy.stats.trim_mean(x, 0.25):.1f}, range [{x.min():.1f}, {x.max():.1f}] (n=3)" in row
    assert "95%" not in row
    assert "With 2–4 seeds they are the range of the seeds" in md and "75%" in md
    # the aggregate keeps its stratified interval, flagged as under-covering
    assert board.final_aggregate["alpha"].few_seeds and "†" in row and "† Some task has fewer than 5" in md
    rows = list(csv.DictReader(_written_csv(board, tmp_path).open()))
    assert {r["interval"] for r in rows if r["table"] == "final" and r["task"] in TASKS} == {"range"}


def _written_csv(board, tmp_path):
    path = tmp_path / "lb.csv"
    lb.write_csv(board, path)
    return path


def test_range_coverage_closed_form_and_bootstrap_coverage_by_simulation():
    # The range of n draws covers the median with probability 1 - 2^(1-n), whatever the distribution.
    rng = np.random.default_rng(2021)
    for n in (2, 3, 4):
        for draw, median in ((lambda size: rng.normal(3.0, 2.0, size), 3.0),
                             (lambda size: rng.exponential(1.0, size), math.log(2.0))):
            x = draw((40_000, n))
            covered = np.mean((x.min(axis=1) <= median) & (median <= x.max(axis=1)))
            assert covered == pytest.approx(lb.range_coverage(n), abs=0.01)
    # From MIN_SEEDS_FOR_CI seeds on, the percentile bootstrap CI of the IQM is no longer the range and
    # covers about 0.90 (0.897 with 1000 repetitions of normal scores at n = 5; this cheaper run, standard
    # error ~0.017, checks >= 0.82 and that the interval is strictly inside the range most of the time).
    n, reps, hits, inside = lb.MIN_SEEDS_FOR_CI, 300, 0, 0
    for r in range(reps):
        x = rng.normal(0.0, 1.0, n)
        low, high = lb.bootstrap_ci([x], "iqm", n_resamples=500, seed=r)
        hits += low <= 0.0 <= high
        inside += x.min() < low and high < x.max()
    assert hits / reps >= 0.82 and inside / reps > 0.9


def _brute_force_p(x, y):
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    return wins / (len(x) * len(y))


def test_probability_of_improvement_brute_force():
    x1, y1 = np.array([3.0, 5.0, 5.0, 9.0]), np.array([1.0, 5.0, 7.0])  # with ties
    x2, y2 = np.array([0.5, 2.0, 8.0]), np.array([2.0, 2.0, 3.0, 4.0, 10.0])
    for x, y in ((x1, y1), (x2, y2)):
        assert lb.probability_of_improvement([x], [y], n_resamples=200)[0] == pytest.approx(_brute_force_p(x, y))
        u = scipy.stats.mannwhitneyu(x, y).statistic
        assert _brute_force_p(x, y) == pytest.approx(u / (len(x) * len(y)))
    point, low, high = lb.probability_of_improvement([x1, x2], [y1, y2], n_resamples=2000, seed=4)
    assert point == pytest.approx((_brute_force_p(x1, y1) + _brute_force_p(x2, y2)) / 2)
    back = lb.probability_of_improvement([y1, y2], [x1, x2], n_resamples=2000, seed=4)
    assert point + back[0] == pytest.approx(1.0)
    # the CI: an independent stratified bootstrap with the brute-force statistic, one resample at a time
    ref = scipy.stats.bootstrap(
        (x1, y1, x2, y2), lambda a, b, c, d: (_brute_force_p(a, b) + _brute_force_p(c, d)) / 2,
        n_resamples=2000, vectorized=False, paired=False, method="percentile", rng=np.random.default_rng(4))
    assert (low, high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert low <= point <= high


def test_board_probability_of_improvement(grid):
    proto, root, truth = grid
    board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=300, seed=2)
    assert set(board.improvement) == {("alpha", "beta"), ("beta", "alpha")}
    expected = np.mean([_brute_force_p(truth[("beta", t)][:, -1], truth[("alpha", t)][:, -1]) for t in TASKS])
    assert board.improvement[("beta", "alpha")].point == pytest.approx(expected)
    assert board.improvement[("alpha", "beta")].point == pytest.approx(1 - expected)


def test_performance_profile_by_direct_counting():
    task_a = np.array([0.1, 0.4, 0.4, 0.9])
    task_b = np.array([0.2, 0.5, 1.1])  # unequal seed counts: each task still weighs 1/2
    taus = np.array([-0.1, 0.0, 0.2, 0.4, 0.45, 1.0, 1.2])
    counted = [(sum(v > tau for v in task_a) / 4 + sum(v > tau for v in task_b) / 3) / 2 for tau in taus]
    assert lb.performance_profile([task_a, task_b], taus) == pytest.approx(counted)
    low, high = lb.performance_profile_ci([task_a, task_b], taus, n_resamples=1000, seed=9)
    for k, tau in enumerate(taus):
        ref = scipy.stats.bootstrap(
            (task_a, task_b), lambda a, b: (np.mean(a > tau) + np.mean(b > tau)) / 2,
            n_resamples=1000, vectorized=False, paired=False, method="percentile",
            rng=np.random.default_rng(9))
        assert (low[k], high[k]) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))


def test_board_performance_profile(grid, tmp_path):
    proto, root, truth = grid
    board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=300)
    prof = board.profile
    assert set(prof.fraction) == {"alpha", "beta"} and not prof.few_seeds
    norm = [(truth[("alpha", TASKS[0])][:, -1] - 0.0) / 100.0, (truth[("alpha", TASKS[1])][:, -1] - 10.0) / 100.0]
    for k in (0, 37, 64, 100):
        tau = prof.taus[k]
        assert prof.fraction["alpha"][k] == pytest.approx(np.mean([np.mean(s > tau) for s in norm]))
    assert np.all(np.diff(prof.fraction["alpha"]) <= 0)  # a survival function never rises
    # without reference scores there is nothing to normalise: no profile, no figure
    no_refs = make_protocol(refs=False)
    for (agent, task), curves in truth.items():
        for seed, c in enumerate(curves):
            write_run(tmp_path / "no_refs", no_refs, agent, task, seed, list(c))
    board2 = lb.build_leaderboard(lb.scan_runs(tmp_path / "no_refs"), no_refs, n_resamples=100)
    assert board2.final[("alpha", TASKS[0])].complete and board2.improvement  # the runs are used
    assert board2.profile is None
    files = lb.write_leaderboard(board2, tmp_path / "b2")
    assert "png:profile" not in files and not (tmp_path / "b2" / "performance_profile.png").exists()


# --------------------------------------------------------------------------------------------------
# probability of improvement per task


@pytest.fixture
def three_agents(tmp_path):
    """alpha, beta, gamma on both tasks, 5 seeds; integer finals on task 0 so that runs tie, and beta above
    every alpha run on task 1."""
    proto = make_protocol()
    rng = np.random.default_rng(31)
    finals = {}
    for agent in ("alpha", "beta", "gamma"):
        finals[(agent, TASKS[0])] = rng.integers(40, 46, 5).astype(float)
    finals[("alpha", TASKS[1])] = rng.normal(50.0, 10.0, 5)
    finals[("beta", TASKS[1])] = finals[("alpha", TASKS[1])].max() + 1.0 + rng.exponential(5.0, 5)
    finals[("gamma", TASKS[1])] = rng.normal(55.0, 10.0, 5)
    for (agent, task), values in finals.items():
        for seed, f in enumerate(values):
            write_run(tmp_path / "runs", proto, agent, task, seed, [0.0, 0.0, float(f)])
    return proto, tmp_path / "runs", finals


def test_per_task_probability_equals_mann_whitney_and_its_own_bootstrap(three_agents):
    proto, root, finals = three_agents
    board = lb.build_leaderboard(lb.scan_runs(root), proto, agents=["alpha", "beta", "gamma"],
                                 n_resamples=500, seed=6)
    assert set(board.improvement_by_task) == {(x, y, t) for x in ("alpha", "beta", "gamma")
                                              for y in ("alpha", "beta", "gamma") for t in TASKS if x != y}
    assert len(np.unique(finals[("alpha", TASKS[0])])) < 5  # the comparison on task 0 has ties
    for (x, y, t), cell in board.improvement_by_task.items():
        fx, fy = finals[(x, t)], finals[(y, t)]
        u = scipy.stats.mannwhitneyu(fx, fy).statistic
        assert cell.point == pytest.approx(u / (fx.size * fy.size)) == pytest.approx(_brute_force_p(fx, fy))
        separated = fx.min() > fy.max() or fx.max() < fy.min()
        assert (cell.n, cell.interval, cell.few_seeds) == (5, "separation" if separated else "ci", False)
        assert cell.point + board.improvement_by_task[(y, x, t)].point == pytest.approx(1.0)
    # beta beats every alpha run on task 1: P = 1, every resample agrees, so the cell reports the separation's
    # exact one-sided p-value, 1 / C(10, 5) with 5 vs 5 runs, instead of the interval [1, 1]
    c = board.improvement_by_task[("beta", "alpha", TASKS[1])]
    assert (c.point, c.ci_low, c.ci_high, c.interval) == (1.0, 1.0, 1.0, "separation")
    assert c.separation_p == pytest.approx(1 / math.comb(10, 5))
    assert board.improvement_by_task[("alpha", "beta", TASKS[1])].separation_p == pytest.approx(1 / math.comb(10, 5))
    # the interval: an independent bootstrap of the brute-force count, X's and Y's runs resampled separately
    fx, fy = finals[("gamma", TASKS[1])], finals[("alpha", TASKS[1])]
    ref = scipy.stats.bootstrap((fx, fy), _brute_force_p, n_resamples=500, vectorized=False, paired=False,
                                method="percentile", rng=np.random.default_rng(6))
    c = board.improvement_by_task[("gamma", "alpha", TASKS[1])]
    assert (c.ci_low, c.ci_high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert c.ci_low <= c.point <= c.ci_high < 1.0
    # the cross-task figure is unchanged: the mean of the per-task counts, with the stratified bootstrap
    # over both tasks' samples
    x1, y1, x2, y2 = (finals[("gamma", TASKS[0])], finals[("alpha", TASKS[0])], fx, fy)
    across = board.improvement[("gamma", "alpha")]
    assert across.point == pytest.approx((_brute_force_p(x1, y1) + _brute_force_p(x2, y2)) / 2)
    ref = scipy.stats.bootstrap(
        (x1, y1, x2, y2), lambda a, b, c, d: (_brute_force_p(a, b) + _brute_force_p(c, d)) / 2,
        n_resamples=500, vectorized=False, paired=False, method="percentile", rng=np.random.default_rng(6))
    assert (across.ci_low, across.ci_high) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high))


def test_a_pair_complete_on_one_task_is_compared_on_that_task_only(three_agents, tmp_path):
    proto, root, finals = three_agents
    (root / TASKS[1] / "gamma" / "seed2" / "summary.json").unlink()  # gamma's task-1 cell: 4/5
    board = lb.build_leaderboard(lb.scan_runs(root), proto, agents=["alpha", "beta", "gamma"],
                                 n_resamples=200, improvement_pairs=["gamma:alpha", "beta:alpha"])
    assert {t for x, y, t in board.improvement_by_task if "gamma" in (x, y)} == {TASKS[0]}
    assert ("gamma", "alpha", TASKS[0]) in board.improvement_by_task
    assert ("gamma", "alpha") not in board.improvement  # its row is incomplete: no cross-task figure
    table = next(t for t in lb.report_tables(board) if t.title.startswith("Probability of improvement per task"))
    assert table.header == ["Task", "P(gamma > alpha)", "P(beta > alpha)"]
    assert [r[0] for r in table.rows] == [*TASKS, "mean over tasks"]
    p0 = _brute_force_p(finals[("gamma", TASKS[0])], finals[("alpha", TASKS[0])])
    assert table.rows[0][1].startswith(f"{p0:.2f} [") and table.rows[0][1].endswith("(n=5)")
    assert table.rows[1][1] == "⚠ incomplete" and table.rows[2][1] == "⚠ incomplete row"
    assert table.rows[1][2] == "1.00, complete separation, p = 0.004 (n=5)"
    rows = list(csv.DictReader(_written_csv(board, tmp_path).open()))
    per_task = [(r["agent"], r["task"], r["statistic"]) for r in rows if r["table"] == "improvement_task"]
    assert ("gamma", TASKS[0], "P(X>alpha)") in per_task and ("gamma", TASKS[1], "P(X>alpha)") not in per_task
    assert len(per_task) == len(board.improvement_by_task)
    row = next(r for r in rows if r["table"] == "improvement_task" and r["agent"] == "gamma"
               and r["statistic"] == "P(X>alpha)")
    assert float(row["point"]) == pytest.approx(p0) and row["interval"] == "ci95" and row["n_seeds"] == "5"
    # the cross-task rows keep their format: the opponent in ``task``
    across = next(r for r in rows if r["table"] == "improvement" and r["agent"] == "beta")
    assert (across["task"], across["statistic"]) == ("alpha", "P(X>Y)")


def test_default_focus_pairs():
    agents = ["sac", "mbpo_mse", "mbpo_vagram", "mbpo_mle", "svg_vagram", "mbpo_itervaml"]
    assert lb.improvement_focus(agents) == [("mbpo_vagram", "mbpo_mse"), ("mbpo_vagram", "mbpo_mle"),
                                            ("mbpo_vagram", "mbpo_itervaml")]
    assert lb.improvement_focus(["c", "a", "b"]) == [("c", "a"), ("c", "b"), ("a", "b")]
    assert lb.improvement_focus(agents, ["sac:mbpo_mse", ("svg_vagram", "sac")]) == [
        ("sac", "mbpo_mse"), ("svg_vagram", "sac")]
    for bad in (["mbpo_vagram:nope"], ["sac"], ["sac:sac"], ["a:b:c"]):
        with pytest.raises(ValueError, match=r"bad pair .* valid agents: \['sac', 'mbpo_mse'"):
            lb.improvement_focus(agents, bad)


def test_default_focus_on_a_board_with_mbpo_vagram(tmp_path):
    proto = make_protocol(seeds=(0, 1, 2))
    rng = np.random.default_rng(5)
    agents = ["sac", "mbpo_mse", "mbpo_mle", "mbpo_vagram"]
    for agent in agents:
        for task in TASKS:
            for seed in range(3):
                write_run(tmp_path, proto, agent, task, seed, [0.0, 0.0, float(rng.normal(50, 10))])
    board = lb.build_leaderboard(lb.scan_runs(tmp_path), proto, agents=agents, n_resamples=200)
    table = next(t for t in lb.report_tables(board) if t.title.startswith("Probability of improvement per task"))
    assert table.header == ["Task", "P(mbpo_vagram > mbpo_mse)", "P(mbpo_vagram > mbpo_mle)"]
    # 3 seeds: the bootstrap interval is shown and flagged as under-covering, like the cross-task cells
    cell = board.improvement_by_task[("mbpo_vagram", "mbpo_mse", TASKS[0])]
    assert cell.few_seeds and "†" in table.rows[0][1] and "† Some task has fewer than 5" in lb.to_markdown(board)


def test_improvement_pairs_option_and_a_bad_pair_exits_2(grid, tmp_path, capsys):
    proto, root, _ = grid
    path = tmp_path / "synthetic.toml"
    path.write_text(_protocol_toml(proto))
    out = tmp_path / "board"
    assert lb.main([str(root), f"protocol={path}", f"out={out}", "n_resamples=100",
                    "improvement_pairs=[beta:alpha]"]) == 0
    assert "| Task | P(beta > alpha) |" in (out / "leaderboard.md").read_text()
    assert lb.main([str(root), "--protocol", str(path), "--out", str(out), "--n-resamples", "100",
                    "--improvement-pairs", "alpha:beta", "beta:alpha"]) == 0
    assert "| Task | P(alpha > beta) | P(beta > alpha) |" in (out / "leaderboard.md").read_text()
    capsys.readouterr()
    bad_out = tmp_path / "bad"
    assert lb.main([str(root), f"protocol={path}", f"out={bad_out}", "improvement_pairs=[beta:alpha,beta:gama]"]) == 2
    err = capsys.readouterr().err
    assert "error: improvement_pairs: bad pair 'beta:gama'" in err and "valid agents: ['alpha', 'beta']" in err
    assert not bad_out.exists()


# --------------------------------------------------------------------------------------------------
# the modules of the leaderboard: one job each, layered, short functions

LAYERS = ["records", "stats", "board", "tables", "figures", "report", "publish", "leaderboard"]
"""The leaderboard's modules in import order: each may import only modules before it (``tables`` and
``figures`` are one layer: neither imports the other)."""


def _imports(module: str) -> set[str]:
    """The vagram_bench modules ``module`` imports anywhere (top level or inside a function)."""
    import ast

    import vagram_bench

    path = Path(vagram_bench.__file__).parent / f"{module}.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n.split(".")[1] for n in names if n.startswith("vagram_bench.") and n.split(".")[1] in LAYERS}


def test_leaderboard_modules_import_only_earlier_layers():
    for i, module in enumerate(LAYERS):
        later = set(LAYERS[i + 1:]) | {module}
        if module == "tables":
            later.add("figures")
        assert not (_imports(module) & later), (module, _imports(module) & later)
    # the old cycle: publish imported leaderboard, which imported publish
    assert "leaderboard" not in _imports("publish") and "publish" in _imports("leaderboard")


def test_publish_is_its_own_entry_point():
    out = subprocess.run([sys.executable, "-m", "vagram_bench.publish", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "python -m vagram_bench.publish" in out.stdout
    out = subprocess.run([sys.executable, "-m", "vagram_bench.leaderboard", "publish", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "python -m vagram_bench.leaderboard publish" in out.stdout



# --------------------------------------------------------------------------------------------------
# issue 25: degenerate intervals, one configuration per cell, excluded runs said, the HTML's headline columns


def separated_grid(root: Path, seeds=(0, 1, 2, 3, 4)):
    """beta above every alpha run on both tasks; alpha's task-0 seeds all end at exactly 42.0."""
    proto = make_protocol(seeds=seeds)
    rng = np.random.default_rng(5)
    for k, task in enumerate(TASKS):
        for seed in seeds:
            write_run(root, proto, "alpha", task, seed, [0.0, 0.0, 42.0 if k == 0 else float(rng.normal(50, 5))])
            write_run(root, proto, "beta", task, seed, [0.0, 0.0, float(rng.normal(200, 5))])
    return proto


def test_complete_separation_is_reported_with_its_exact_p_value_never_as_an_interval(tmp_path):
    proto = separated_grid(tmp_path)
    board = lb.build_leaderboard(lb.scan_runs(tmp_path), proto, n_resamples=300)
    p_task = 1 / math.comb(10, 5)  # P(all 5 beta runs above all 5 alpha runs | no difference)
    assert p_task == pytest.approx(scipy.stats.mannwhitneyu([2] * 5, [1] * 5, alternative="greater",
                                                             method="exact").pvalue)
    for t in TASKS:
        assert board.improvement_by_task[("beta", "alpha", t)].separation_p == pytest.approx(p_task)
        assert board.improvement_by_task[("alpha", "beta", t)].point == 0.0
    assert board.improvement[("beta", "alpha")].separation_p == pytest.approx(p_task ** 2)  # independent tasks
    md = lb.to_markdown(board)
    assert "[1.00, 1.00]" not in md and "[0.00, 0.00]" not in md
    per_task = next(t for t in lb.report_tables(board) if t.title.startswith("Probability of improvement per"))
    assert per_task.rows[0][1] == "0.00, complete separation, p = 0.004 (n=5)"  # P(alpha > beta)
    matrix = next(t for t in lb.report_tables(board) if t.title == "Probability of improvement (final return)")
    assert matrix.rows[1][1] == f"1.00, complete separation, p = {p_task ** 2:.1e}"
    assert "Complete separation: every run of X ended above every run of Y" in md
    # a zero-width interval of a score cell says what it is
    final = next(t for t in lb.report_tables(board) if t.title == "Final return")
    assert final.rows[0][3] == "42.0, all 5 equal (n=5)"
    # the CSV: no interval, the p-value in its own column
    lb.write_csv(board, tmp_path / "b.csv")
    row = next(r for r in csv.DictReader((tmp_path / "b.csv").open())
               if r["table"] == "improvement_task" and r["agent"] == "beta" and r["task"] == TASKS[0])
    assert (row["interval"], row["ci_low"], row["ci_high"]) == ("separation", "", "")
    assert float(row["p_value"]) == pytest.approx(p_task)


def test_a_separation_at_two_seeds_is_labelled_with_its_weak_p_value(tmp_path):
    proto = separated_grid(tmp_path, seeds=(0, 1))
    board = lb.build_leaderboard(lb.scan_runs(tmp_path), proto, n_resamples=200)
    md = lb.to_markdown(board)
    assert "[0.00, 0.00]" not in md and "[1.00, 1.00]" not in md
    assert "| 0.00, complete separation, p = 0.167 (n=2) |" in md  # 1 / C(4, 2)


def test_a_cell_holds_one_agent_configuration(grid):
    proto, root, _ = grid
    default = {"batch_size": 256, "hidden_size": 256, "lr": 0.0003}
    for run_dir in root.glob("*/*/seed*"):
        config = json.loads((run_dir / "config.json").read_text())
        tuned = config["agent"] == "beta" and config["env"] == TASKS[0] and config["seed"] == 4
        config["agent_config"] = dict(default, batch_size=32, hidden_size=8) if tuned else default
        (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="agent config differs"):
        board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=200)
    cell = board.final[("beta", TASKS[0])]
    assert (cell.n, cell.complete) == (4, False)  # the tuned seed is not mixed in
    line = next(e for e in board.excluded if "beta/seed4" in e)
    assert "batch_size=32 (the cell's: 256), hidden_size=8 (the cell's: 256)" in line
    assert "seed(s) 0, 1, 2, 3" in line and "lr=" not in line
    # every row's hyperparameters, folded: a <details> table in the HTML and the Markdown
    tables = lb.hyperparameter_tables(board)
    assert [t.title for t in tables] == ["Hyperparameters: alpha", "Hyperparameters: beta"]
    assert tables[1].header == ["Field", "all tasks"] and ["batch_size", "256"] in tables[1].rows
    html_text = lb.to_html(board, {})
    assert "<details><summary>Hyperparameters: beta</summary>" in html_text
    assert "<details><summary>Hyperparameters: beta</summary>" in lb.to_markdown(board)


def test_hyperparameters_that_differ_by_task_get_a_column_each(grid):
    proto, root, _ = grid
    for run_dir in root.glob("*/*/seed*"):
        config = json.loads((run_dir / "config.json").read_text())
        config["agent_config"] = {"batch_size": 256 if config["env"] == TASKS[0] else 64}
        (run_dir / "config.json").write_text(json.dumps(config))
    board = lb.build_leaderboard(lb.scan_runs(root), proto, n_resamples=200)
    assert board.excluded == []
    table = lb.hyperparameter_tables(board)[0]
    assert table.header == ["Field", TASKS[0], TASKS[1]] and table.rows == [["batch_size", "256", "64"]]


def test_runs_made_without_the_protocol_are_named_not_silently_dropped(tmp_path, capsys):
    proto = make_protocol(seeds=(0, 1))
    for seed in (0, 1):
        write_run(tmp_path / "runs", proto, "alpha", TASKS[0], seed, [1.0, 2.0, 3.0], record=False)
    write_run(tmp_path / "runs", proto, "alpha", TASKS[1], 0, [1.0, 2.0, 3.0])
    with pytest.warns(UserWarning, match="made without protocol="):
        board = lb.build_leaderboard(lb.scan_runs(tmp_path / "runs"), proto, n_resamples=100)
    line = next(e for e in board.excluded if "without protocol=" in e)
    assert line.startswith("2 run(s) on this protocol's tasks were made without protocol=")
    assert str(tmp_path / "runs" / TASKS[0] / "alpha" / "seed0") in line and "protocol=synthetic" in line
    assert "made without protocol=" in lb.to_markdown(board)


def test_no_run_of_the_protocol_exits_2_and_writes_nothing(grid, tmp_path, capsys):
    proto, root, _ = grid
    path = tmp_path / "synthetic.toml"
    path.write_text(_protocol_toml(proto))
    empty, out = tmp_path / "empty", tmp_path / "board"
    empty.mkdir()
    assert lb.main([str(empty), f"protocol={path}", f"out={out}"]) == 2
    assert capsys.readouterr().err.startswith(f"error: no run records under '{empty}'")
    assert not out.exists()
    # runs, but none of this protocol: the message says what they are
    other = tmp_path / "other"
    write_run(other, proto, "alpha", TASKS[0], 0, [1.0, 2.0, 3.0], record=False)
    assert lb.main([str(other), f"protocol={path}", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "none of the 1 run record(s)" in err and "made without protocol=" in err
    assert not out.exists()


_LAYOUT_PROBE = """<script>
window.addEventListener('load', () => {
  const head = [...document.querySelectorAll('th')]
    .filter(th => th.textContent.startsWith('Normalised') || th.textContent === 'Mean rank')
    .map(th => th.getBoundingClientRect().right);
  const scrolling = [...document.querySelectorAll('div.scroll')].slice(0, 2)
    .map(d => d.scrollWidth - d.clientWidth);
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({width: window.innerWidth, head: head, scrolling: scrolling});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="needs a headless chromium (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1280, 1920])
def test_the_headline_columns_are_in_view_in_a_browser(tmp_path, width):
    """The cpu report (four long task ids) in headless chromium: the header cells of the normalised score
    and the mean rank lie inside the window, and the two score tables fit without a horizontal scrollbar."""
    repo = Path(__file__).resolve().parents[1]
    board = lb.build_leaderboard(lb.scan_runs(repo / "results" / "cpu" / "runs"), "cpu", n_resamples=50)
    page = tmp_path / "report.html"
    page.write_text(lb.to_html(board, {}).replace("</body>", _LAYOUT_PROBE + "</body>"))
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--window-size={width},900", "--dump-dom", page.resolve().as_uri()],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    import html as html_lib
    import re

    probe = json.loads(html_lib.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom).group(1)))
    assert probe["width"] == width
    assert len(probe["head"]) == 4 and all(0 < right <= width for right in probe["head"]), probe
    assert probe["scrolling"] == [0, 0], probe


@pytest.mark.parametrize("module, argv", [
    ("leaderboard", ["runs", "protocol=cpu", "n_resamples=abc"]),
    ("publish", ["protocol=cpu", "runs=runs", "out=x", "n_resamples=abc"]),
    ("sweep", ["protocol=cpu", "local.workers=two"]),
])
def test_a_type_error_is_one_error_line_with_exit_2(module, argv, capsys):
    """Issue 25: bad input on every command reads as one ``error:`` line (not tyro's box), exit 2."""
    import importlib

    main = importlib.import_module(f"vagram_bench.{module}").main
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and ("abc" in err[0] or "two" in err[0]), err
