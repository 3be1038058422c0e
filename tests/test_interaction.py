"""The setting × loss interaction (issue 24, item 2): ΔP, drops and their difference with stratified bootstrap
intervals, complete separation with its exact p-value, Kaplan–Meier time to solve, rliable's aggregate metrics,
the ``[[interaction]]`` protocol field, and the report of an anchored protocol end to end. Each checked against
closed forms, a hand-worked example, scipy or a second computation."""

from __future__ import annotations

import csv
import math
from math import comb
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from test_leaderboard import write_run  # a run record in the runner's format
from vagram_bench import leaderboard as lb
from vagram_bench.interaction import (default_pairs, delta_improvement, drop, drop_difference, km_fraction_solved,
                                      km_median, solve_budgets, time_to_solve)
from vagram_bench.protocol import ProtocolError, parse_protocol
from vagram_bench.stats import aggregate_interval_estimates, aggregate_metric, separation_p_value

# --------------------------------------------------------------------------------------------------
# ΔP and complete separation


HIGH, LOW = np.arange(10.0, 15.0), np.arange(0.0, 5.0)  # every HIGH run beats every LOW run


@pytest.mark.parametrize("anchor, setting, expected", [
    ((HIGH, LOW), (LOW, HIGH), -1.0),   # V ahead at the anchor, behind in the setting
    ((HIGH, LOW), (HIGH, LOW), 0.0),    # ahead in both
    ((LOW, HIGH), (HIGH, LOW), 1.0),    # behind at the anchor, ahead in the setting
])
def test_delta_p_at_complete_separation_is_exact_and_reports_the_rank_test(anchor, setting, expected):
    e = delta_improvement(anchor[0], anchor[1], setting[0], setting[1], n_resamples=500, seed=3)
    assert e.point == expected
    assert e.low == e.high == expected  # every resample: the bootstrap says nothing here ...
    # ... so the estimate carries both separations' exact one-sided p-values, 1 / C(5+5, 5) each
    assert e.separation == pytest.approx((1 / comb(10, 5), 1 / comb(10, 5)), rel=1e-12)
    assert e.parts == ((1.0 if anchor[0] is HIGH else 0.0), (1.0 if setting[0] is HIGH else 0.0))


def test_separation_p_equals_one_over_binomial_and_scipy_exact_with_unequal_n():
    x, y = np.array([7.0, 8.0, 9.0]), np.array([1.0, 2.0, 3.0, 4.0])
    p = separation_p_value([x], [y])
    assert p == pytest.approx(1 / comb(7, 3), rel=1e-12) == pytest.approx(1 / 35)
    assert p == pytest.approx(scipy.stats.mannwhitneyu(x, y, alternative="greater", method="exact").pvalue)


def test_delta_p_without_separation_matches_scipy_u_and_has_a_real_interval():
    rng = np.random.default_rng(0)
    va, xa, vs, xs = (rng.normal(m, 1.0, 6) for m in (1.0, 0.0, 1.5, 0.0))
    e = delta_improvement(va, xa, vs, xs, n_resamples=2000, seed=1)
    u = [scipy.stats.mannwhitneyu(v, x).statistic / (v.size * x.size) for v, x in ((va, xa), (vs, xs))]
    assert e.point == pytest.approx(u[1] - u[0], abs=1e-12)
    assert e.parts == pytest.approx(tuple(u))
    assert e.separation is None and e.low < e.point < e.high and e.n == 6
    # the same seed gives the same interval (seeded generator, no global state)
    again = delta_improvement(va, xa, vs, xs, n_resamples=2000, seed=1)
    assert (again.low, again.high) == (e.low, e.high)


# --------------------------------------------------------------------------------------------------
# drops


@pytest.mark.parametrize("metric", ["iqm", "mean"])
def test_drop_of_a_constant_shift_is_the_shift(metric):
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.55, 0.2, 0.9, 0.05])
    e = drop(x + 0.3, x, metric, n_resamples=500)
    assert e.point == pytest.approx(0.3, abs=1e-12)
    # the cells are resampled independently (stratified, not paired by seed): a paired resample would keep the
    # shift in every draw and give the point [0.3, 0.3]
    assert e.low < 0.3 - 0.05 and e.high > 0.3 + 0.05
    d = drop_difference(x + 0.1, x, x + 0.5, x, metric, n_resamples=500)  # V drops 0.1, X drops 0.5
    assert d.point == pytest.approx(0.4, abs=1e-12)


def test_drop_of_constant_cells_has_no_spread():
    e = drop(np.full(5, 0.8), np.full(5, 0.2), "iqm", n_resamples=200)
    assert e.point == pytest.approx(0.6) and e.degenerate


def test_drop_interval_matches_a_hand_written_stratified_bootstrap():
    # a second computation: resample each cell's seeds independently in a plain loop, percentile interval
    rng = np.random.default_rng(7)
    anchor, setting = rng.normal(0.9, 0.1, 8), rng.normal(0.4, 0.3, 8)
    e = drop(anchor, setting, "mean", n_resamples=20_000, seed=0)
    gen = np.random.default_rng(12345)
    boot = [anchor[gen.integers(0, 8, 8)].mean() - setting[gen.integers(0, 8, 8)].mean() for _ in range(20_000)]
    low, high = np.percentile(boot, [2.5, 97.5])
    spread = high - low
    assert e.low == pytest.approx(low, abs=0.03 * spread) and e.high == pytest.approx(high, abs=0.03 * spread)
    # both cells are resampled: a bootstrap of the setting alone (anchor fixed) is clearly narrower
    fixed = [anchor.mean() - setting[gen.integers(0, 8, 8)].mean() for _ in range(20_000)]
    assert np.subtract(*np.percentile(fixed, [97.5, 2.5])) < 0.97 * spread


# --------------------------------------------------------------------------------------------------
# time to solve


def test_time_to_solve_first_crossing_and_censoring():
    steps = np.array([500, 1000, 1500, 2000])
    returns = np.array([[10, 9500, 100, 9400],     # solved at 1000 (a later dip does not matter)
                        [10, 20, 30, 9100],        # solved at 2000: exactly at the threshold counts
                        [10, 20, 9099.9, 50]])     # never solved: censored at 2000
    times, solved = time_to_solve(steps, returns, 9100.0)
    assert times.tolist() == [1000, 2000, 2000] and solved.tolist() == [True, True, False]


def test_kaplan_meier_against_a_hand_worked_censored_example():
    # 7 runs: solved at 1000, 2000, 2000, 3000; censored at 2000, 4000, 4000.
    # At risk / solved: t=1000 7/1 -> S = 6/7; t=2000 6/2 (the run censored at 2000 is still at risk) ->
    # S = 6/7 * 4/6 = 4/7; t=3000 3/1 -> S = 4/7 * 2/3 = 8/21. Median: first t with S <= 1/2, 3000.
    times = np.array([1000, 2000, 2000, 3000, 2000, 4000, 4000], dtype=float)
    solved = np.array([1, 1, 1, 1, 0, 0, 0], dtype=bool)
    assert km_median(times, solved) == 3000
    f = km_fraction_solved(times, solved, [500, 1000, 1999, 2000, 3000, 4000])
    assert f == pytest.approx([0, 1 / 7, 1 / 7, 3 / 7, 13 / 21, 13 / 21], abs=1e-12)


def _product_limit(times, solved, t):
    """A second, plain-python Kaplan–Meier: S(t) = prod over event times u <= t of (1 - d_u / n_u)."""
    s = 1.0
    for u in sorted(set(times[solved])):
        if u <= t:
            at_risk = np.sum(times >= u)
            s *= 1 - np.sum((times == u) & solved) / at_risk
    return s


def test_kaplan_meier_matches_a_plain_product_limit_on_random_censored_data():
    rng = np.random.default_rng(5)
    for _ in range(20):
        times = rng.integers(1, 9, 12).astype(float) * 500
        solved = rng.random(12) < 0.6
        budgets = np.arange(500, 4501, 500)
        expected = [1 - _product_limit(times, solved, b) for b in budgets]
        assert km_fraction_solved(times, solved, budgets) == pytest.approx(expected, abs=1e-12)


def test_median_is_not_reached_below_half_and_reached_at_exactly_half():
    times = np.array([1000, 2000, 3000, 8000, 8000, 8000, 8000, 8000], dtype=float)
    assert km_median(times, np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)) is None  # 3 of 8
    times[3] = 4000
    assert km_median(times, np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)) == 4000  # S(4000) = 4/8
    assert km_median(times, np.zeros(8, bool)) is None
    assert km_fraction_solved(times, np.zeros(8, bool), [8000]).tolist() == [0.0]


def test_solve_budgets_quarters():
    assert solve_budgets(range(500, 4001, 500)) == (1000, 2000, 3000, 4000)


# --------------------------------------------------------------------------------------------------
# rliable's aggregate metrics


def test_aggregate_metrics_closed_form():
    tasks = [np.array([0.2, 0.4, 0.6, 1.4]), np.array([0.0, 0.1, 0.2, 0.3]), np.array([0.9, 1.0, 1.1, 1.2])]
    means = [0.65, 0.15, 1.05]
    pooled = np.concatenate(tasks)
    assert aggregate_metric("mean", tasks) == pytest.approx(np.mean(means))
    assert aggregate_metric("median", tasks) == pytest.approx(0.65)
    assert aggregate_metric("iqm", tasks) == pytest.approx(np.sort(pooled)[3:9].mean())  # middle 6 of 12
    assert aggregate_metric("optimality_gap", tasks) == pytest.approx(np.mean(1 - np.minimum(pooled, 1)))
    est = aggregate_interval_estimates(tasks, n_resamples=500, seed=0)
    for name, (point, low, high) in est.items():
        assert point == pytest.approx(aggregate_metric(name, tasks)) and low <= point <= high


# --------------------------------------------------------------------------------------------------
# the protocol field


A0, A1, A2 = "HopperDistract-0-v0", "HopperDistract-15-v0", "HopperCapacity-2x16-v0"


def protocol_content(**interaction):
    content = {
        "name": "anchored", "version": 1, "description": "anchored grid for tests", "tasks": [A0, A1, A2],
        "seeds": [0, 1, 2, 3, 4], "steps": 400, "eval_every": 100, "eval_episodes": 2, "eval_seed": 1_000_000,
        "metric": "iqm", "agents": ["mbpo_vagram", "mbpo_mle", "sac"], "reference_source": "made up",
        "reference_scores": {t: {"random": 10.0, "reference": 110.0} for t in (A0, A1, A2)},
    }
    entry = {"anchor": A0, "settings": [A1, A2], "solved_threshold": 100.0}
    entry.update(interaction)
    content["interaction"] = [{k: v for k, v in entry.items() if v is not None}]
    return content


def test_interaction_field_parses_and_is_part_of_the_hash():
    p = parse_protocol(protocol_content(), "<t>", check_ids=False)
    (spec,) = p.interaction
    assert (spec.anchor, spec.settings, spec.solved_threshold, spec.pairs) == (A0, (A1, A2), 100.0, None)
    q = parse_protocol(protocol_content(pairs=["mbpo_vagram:sac"]), "<t>", check_ids=False)
    assert q.interaction[0].pairs == (("mbpo_vagram", "sac"),) and q.content_hash != p.content_hash
    bare = protocol_content()
    del bare["interaction"]
    assert parse_protocol(bare, "<t>", check_ids=False).interaction == ()


@pytest.mark.parametrize("change, message", [
    ({"anchor": "Hopper-v5"}, "key 'interaction[0].anchor': task 'Hopper-v5' is not in tasks"),
    ({"settings": [A1, "Nope-v0"]}, "key 'interaction[0].settings': task 'Nope-v0' is not in tasks"),
    ({"settings": [A0, A1]}, "the anchor 'HopperDistract-0-v0' is not a setting of itself"),
    ({"solved_threshold": "high"}, "key 'interaction[0].solved_threshold': expected a finite number"),
    ({"pairs": ["mbpo_vagram:svg_mle"]}, "bad pair 'mbpo_vagram:svg_mle'; a pair is X:Y with two different "
                                         "agents, valid agents: ['mbpo_vagram', 'mbpo_mle', 'sac']"),
    ({"pairs": ["mbpo_vagram"]}, "bad pair 'mbpo_vagram'"),
    ({"anchor": None}, "key 'interaction[0].anchor': missing required key"),
    ({"capacity": "full"}, "key 'interaction[0].capacity': unknown key; valid keys are ['anchor', 'settings', "
                           "'solved_threshold', 'pairs']"),
])
def test_bad_interaction_entries_are_one_line_errors_naming_the_value(change, message):
    with pytest.raises(ProtocolError) as info:
        parse_protocol(protocol_content(**change), "<t>", check_ids=False)
    assert str(info.value).startswith("<t>: ") and "\n" not in str(info.value) and message in str(info.value)


def test_interaction_needs_reference_scores_and_one_entry_per_task():
    content = protocol_content()
    del content["reference_scores"][A2]
    with pytest.raises(ProtocolError, match=r"tasks \['HopperCapacity-2x16-v0'\] have no reference_scores"):
        parse_protocol(content, "<t>", check_ids=False)
    content = protocol_content()
    content["interaction"].append({"anchor": A1, "settings": [A2]})
    with pytest.raises(ProtocolError, match=r"task 'HopperDistract-15-v0' is already compared by interaction\[0\]"):
        parse_protocol(content, "<t>", check_ids=False)


def test_default_pairs_are_each_vagram_agent_against_its_family():
    agents = ["sac", "mbpo_mse", "mbpo_vagram", "mbpo_mle", "svg_mle", "svg_vagram"]
    assert default_pairs(agents) == [("mbpo_vagram", "mbpo_mse"), ("mbpo_vagram", "mbpo_mle"),
                                     ("svg_vagram", "svg_mle")]


# --------------------------------------------------------------------------------------------------
# end to end: an anchored protocol's report


def _toml(content) -> str:
    import json

    def value(v):
        return json.dumps(v) if not isinstance(v, dict) else \
            "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
    lines = [f"{k} = {value(v)}" for k, v in content.items() if k not in ("reference_scores", "interaction")]
    lines.append("[reference_scores]")
    lines += [f"{json.dumps(t)} = {value(r)}" for t, r in content["reference_scores"].items()]
    for entry in content.get("interaction", []):
        lines.append("[[interaction]]")
        lines += [f"{k} = {value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def _write_grid(runs: Path, protocol) -> None:
    """Deterministic step-shaped curves (per seed k): at the anchor VaGraM and MLE both balance (final 105+k vs
    100+k: every VaGraM run above every MLE run, a complete separation), sac does not; in HopperDistract-15
    MLE falls to ~random (20+k) while VaGraM holds (104+k); HopperCapacity-2x16 is the anchor again."""
    final = {("mbpo_vagram", A0): 105, ("mbpo_mle", A0): 100, ("sac", A0): 40,
             ("mbpo_vagram", A1): 104, ("mbpo_mle", A1): 20, ("sac", A1): 30,
             ("mbpo_vagram", A2): 105, ("mbpo_mle", A2): 100, ("sac", A2): 40}
    for (agent, task), base in final.items():
        for k in protocol.seeds:
            up = 1 + k % 3  # the first evaluation at or above the threshold 100: step 200, 300 or 400
            curve = [base + k if i >= up else 15.0 for i in range(4)]
            write_run(runs, protocol, agent, task, k, curve)


def _board(tmp_path, content: dict, n_resamples: int) -> Path:
    """Write ``content`` as a protocol, a fake grid of its runs, and its leaderboard; the board's dir."""
    path = tmp_path / "protocol.toml"
    path.write_text(_toml(content))
    protocol = parse_protocol(content, str(path), check_ids=False)
    _write_grid(tmp_path / "runs", protocol)
    out = tmp_path / "board"
    assert lb.main([str(tmp_path / "runs"), f"protocol={path}", f"out={out}", f"n_resamples={n_resamples}"]) == 0
    return out


def test_anchored_protocol_report_has_the_interaction_tables_and_both_plots(tmp_path):
    out = _board(tmp_path, protocol_content(), n_resamples=300)
    md = (out / "leaderboard.md").read_text()
    html = (out / "report.html").read_text()
    for title in ("Interaction: change of P(VaGraM > X) from the anchor HopperDistract-0-v0",
                  "Interaction: drop of normalised return from the anchor HopperDistract-0-v0",
                  "Interaction: difference of drops from the anchor", "Time to solve (first evaluation with a return ≥ 100)"):
        assert title in md and title.replace(">", "&gt;") in html
    assert md.index("Interaction: change of P") < md.index("### Final return")  # the primary statistic first
    # MLE vs VaGraM: at the anchor and in HopperDistract-15 every VaGraM run beats every MLE run ->
    # complete separation in both, ΔP = 0, printed with the exact p = 1/C(10, 5), never as [0.00, 0.00]
    assert ("+0.00: complete separation, exact one-sided Mann–Whitney p = 0.004 at the anchor (P = 1.00) and "
            "p = 0.004 in the setting (P = 1.00)") in md
    assert "[1.00, 1.00]" not in md and "[0.00, 0.00]" not in md and "[+0.00, +0.00]" not in md
    # drops: MLE loses (100+k - 20-k)/100 = 0.80 of the normalised return, VaGraM 0.01, sac 0.10
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    drops = {(r["agent"], r["task"]): float(r["point"]) for r in rows if r["table"] == "interaction_drop"}
    assert drops[("mbpo_mle", A1)] == pytest.approx(0.80) and drops[("mbpo_vagram", A1)] == pytest.approx(0.01)
    assert drops[("sac", A1)] == pytest.approx(0.10) and drops[("mbpo_mle", A2)] == pytest.approx(0.0)
    diff = {(r["task"], r["statistic"]): r for r in rows if r["table"] == "interaction_drop_difference"}
    assert float(diff[(A1, "drop(mbpo_mle)-drop(mbpo_vagram)")]["point"]) == pytest.approx(0.79)
    sep = [r for r in rows if r["table"] == "interaction_delta_p" and r["task"] == A1]
    assert [r["interval"] for r in sep] == ["separation"]
    assert [float(q) for q in sep[0]["p_value"].split(";")] == pytest.approx([1 / 252, 1 / 252])
    # time to solve: seeds solve at 200, 300, 400, 200, 300 -> KM median 300; sac never reaches 100
    tts = {(r["agent"], r["task"], r["statistic"]): r["point"] for r in rows if r["table"] == "time_to_solve"}
    assert float(tts[("mbpo_vagram", A0, "km_median_steps")]) == 300
    assert tts[("sac", A0, "km_median_steps")] == "inf" and tts[("mbpo_mle", A1, "km_median_steps")] == "inf"
    assert float(tts[("mbpo_vagram", A0, "km_fraction_solved_by_200")]) == pytest.approx(2 / 5)
    assert "not reached" in md and "0.40 (2/5 by 200)" in md
    for name in ("aggregate_intervals.png", "probability_of_improvement.png"):
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
        assert f"]({name})" in md
    assert html.count("data:image/png;base64,") == 4  # curves, profile and the two new plots


def test_a_protocol_without_an_anchor_writes_no_interaction(tmp_path):
    content = protocol_content()
    del content["interaction"]
    out = _board(tmp_path, content, n_resamples=100)
    md = (out / "leaderboard.md").read_text()
    assert "Interaction" not in md and "Time to solve" not in md
    assert not (out / "aggregate_intervals.png").exists() and not (out / "probability_of_improvement.png").exists()
    assert not any(r["table"].startswith(("interaction", "time_to_solve"))
                   for r in csv.DictReader((out / "leaderboard.csv").open()))


def test_a_bad_anchor_on_the_command_line_is_one_error_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(_toml(protocol_content(anchor="HopperDistract-5-v0")))
    assert lb.main([str(tmp_path), f"protocol={path}", f"out={tmp_path / 'board'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "'HopperDistract-5-v0' is not in tasks" in err
    assert not (tmp_path / "board").exists()


# ---------------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("low, high, solved, expected", [
    (0.01, 0.9, (8, 5), "supported"),
    (-0.9, -0.01, (8, 8), "contradicted"),
    (0.0, 0.9, (8, 8), "not resolved"),     # touching 0 is not above it
    (-0.3, 0.4, (6, 6), "not resolved"),
    (float("nan"), float("nan"), (8, 8), "not resolved"),
    (0.5, 0.9, (4, 8), "not measurable"),   # VaGraM does not solve the anchor: "holds" by staying low
    (0.5, 0.9, (8, 4), "not measurable"),   # X does not solve it: nothing to drop from
])
def test_the_claim_verdict_follows_the_preregistered_rule(low, high, solved, expected):
    from vagram_bench.interaction import Estimate, claim_verdict

    assert claim_verdict(Estimate(0.5, low, high, 8), solved, 8) == expected


def test_the_claim_verdict_refuses_counts_that_cannot_be():
    from vagram_bench.interaction import Estimate, claim_verdict

    with pytest.raises(ValueError, match=r"anchor_solved=\(9, 8\) must be two counts in \[0, 8\]"):
        claim_verdict(Estimate(0.5, 0.1, 0.9, 8), (9, 8), 8)


def test_the_claims_tool_reads_the_verdicts_off_a_published_csv(tmp_path, monkeypatch, capsys):
    """tools/claims.py (the README's claim lines): the difference of drops and its interval from the
    leaderboard CSV, the anchor's solved counts from the time-to-solve rows, the verdict of claim_verdict."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("claims", Path(__file__).parents[1] / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    monkeypatch.setattr(claims, "ANCHOR", A0)
    monkeypatch.setattr(claims, "PRIMARY_CLAIMS", (
        ("C1 distraction", "MBPO", "mbpo_vagram", "mbpo_mle", A1),
        ("C2 capacity", "MBPO", "mbpo_vagram", "mbpo_mle", A2),
        ("C1 distraction", "SVG", "svg_vagram", "svg_mle", A1),  # not in this board: skipped
    ))
    out = _board(tmp_path, protocol_content(), n_resamples=300)
    capsys.readouterr()
    c1, c2 = claims.claim_lines(out)
    # MLE falls to ~random in A1 while VaGraM holds: 0.80 - 0.01; every anchor run balances (5/5 each)
    assert c1.startswith(f"C1 distraction, MBPO (anchor → {A1}): drop(mbpo_mle) − drop(mbpo_vagram) = +0.79 [")
    assert "; drop(mbpo_vagram) = +0.01 [" in c1 and "; drop(mbpo_mle) = +0.80 [" in c1
    # every VaGraM run beats every MLE run at the anchor and in A1: ΔP = 0 at separation, p = 1/C(10, 5)
    assert ("ΔP(mbpo_vagram > mbpo_mle) = +0.00 (complete separation at the anchor and in the setting, exact "
            "one-sided Mann–Whitney p = 0.004 and 0.004)") in c1
    assert c1.endswith("anchor solved by 5/5 (mbpo_vagram) and 5/5 (mbpo_mle): **supported**")
    # A2 repeats the anchor: no drop for either; the anchor's and the setting's seeds are resampled
    # independently, so the interval straddles 0
    assert "drop(mbpo_vagram) = +0.00 [-0." in c2 and c2.endswith("5/5 (mbpo_mle): **not resolved**")
    # the time to solve (docs/results.md's table): seed k first reaches 100 at step 200, 300 or 400 (k % 3), so
    # 2/5 are solved by 200 and 4/5 by 300, the first step with at most half left unsolved: the median is 300
    assert claims.solve_lines(out) == [
        "| runs solved within the budget (Kaplan–Meier median env steps) | d=0 (anchor) | d=15 | 2×16 model |",
        "|---|---:|---:|---:|",
        "| `mbpo_vagram` | 5/5 (300) | 5/5 (300) | 5/5 (300) |",
        "| `mbpo_mle` | 5/5 (300) | 0/5 | 5/5 (300) |",
        "| `sac` | 0/5 | 0/5 | 0/5 |"]
    # a setting that was not run: "not measured" when the anchor is measurable, "not measurable" when not
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    kept = [r for r in rows if not (r["table"].startswith("interaction") and r["task"] == A1)]
    with (out / "leaderboard.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    assert claims.claim_lines(out)[0] == (f"C1 distraction, MBPO (anchor → {A1}): setting not run; anchor solved by "
                                          "5/5 (mbpo_vagram) and 5/5 (mbpo_mle): **not measured at this budget**")
    monkeypatch.setattr(claims, "MIN_SOLVED", 6)  # as if fewer than the rule's count had solved the anchor
    assert claims.claim_lines(out)[0].endswith("setting not run; anchor solved by 5/5 (mbpo_vagram) and 5/5 "
                                               "(mbpo_mle): **not measurable**")
    assert claims.claim_lines(out)[1].endswith("**not measurable**")
    monkeypatch.setattr(claims, "MIN_SOLVED", 5)
    (tmp_path / "again").mkdir()
    out = _board(tmp_path / "again", protocol_content(), n_resamples=300)
    capsys.readouterr()
    assert claims.main([str(out)]) == 0 and capsys.readouterr().out.splitlines() == [c1, c2]
    assert claims.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path}: no leaderboard.csv")


def test_the_claims_tool_never_prints_a_zero_width_interval():
    """A claim line's estimate with a zero-width bootstrap interval (e.g. ΔP when every anchor run of both
    agents ties at 1,000 and the setting separates them completely on one side only) reads as the
    leaderboard says it, "no spread in the bootstrap", never ``[+0.50, +0.50]``; a real interval and a
    missing one keep their forms."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("claims", Path(__file__).parents[1] / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)

    def row(point, low, high, interval="ci95"):
        return {"point": repr(point), "ci_low": low, "ci_high": high, "n_seeds": "8", "interval": interval,
                "p_value": ""}

    assert claims._text(row(0.5, "0.5", "0.5")) == "+0.50 (no spread in the bootstrap)"
    assert claims._text(row(0.5, "0.25", "0.75")) == "+0.50 [+0.25, +0.75]"
    assert claims._text(row(0.5, "", "", "")) == "+0.50 (no interval)"


def test_the_claims_tool_writes_the_readme_table_of_a_grid(tmp_path, monkeypatch, capsys):
    """tools/claims.py --table: each agent's final-return IQM on every task with its interval (the values of
    the fake grid: a run's final return is 'base + seed', so the IQM over seeds 0-4 is base + 2), a cell
    without runs as 'not run', and the primary pair's difference of drops as the claim lines write it."""
    import importlib.util

    from scipy.stats import trim_mean

    spec = importlib.util.spec_from_file_location("claims", Path(__file__).parents[1] / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    monkeypatch.setattr(claims, "ANCHOR", A0)
    monkeypatch.setattr(claims, "PRIMARY_CLAIMS", (("C1 distraction", "MBPO", "mbpo_vagram", "mbpo_mle", A1),
                                                   ("C2 capacity", "MBPO", "mbpo_vagram", "mbpo_mle", A2)))
    out = _board(tmp_path, protocol_content(), n_resamples=300)
    capsys.readouterr()
    head, rule, vagram, mle, sac, diff = claims.table_lines(out)
    assert head == "| final return, IQM [95% CI], 5 seeds | d=0 (anchor) | d=15 | 2×16 model |"
    assert rule == "|---|---:|---:|---:|"
    iqm = [trim_mean([b + k for k in range(5)], 0.25) for b in (105, 104, 105)]  # mbpo_vagram on A0, A1, A2
    assert [cell.split(" [")[0] for cell in vagram.split(" | ")[1:]] == [f"{x:,.0f}" for x in iqm]
    assert vagram.startswith("| `mbpo_vagram` | 107 [") and mle.startswith("| `mbpo_mle` | 102 [")
    assert sac.startswith("| `sac` | 42 [")
    c1, c2 = claims.claim_lines(out)
    primary = [line.split(" = ", 1)[1].split("; ")[0] for line in (c1, c2)]
    assert diff == "| drop(`mbpo_mle`) − drop(`mbpo_vagram`) | — | " + " | ".join(primary) + " |"
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    for r in rows:  # as if sac had not run on A1
        if (r["table"], r["agent"], r["task"]) == ("final", "sac", A1):
            r.update(point="nan", ci_low="nan", ci_high="nan", n_seeds="0")
    with (out / "leaderboard.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert claims.table_lines(out)[4].split(" | ")[2] == "not run"
    assert claims.main(["--table", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [c1, c2, "", *claims.table_lines(out)]


def test_the_claims_tool_says_what_an_equal_short_or_unsolved_cell_is(tmp_path, monkeypatch):
    """tools/claims.py, both tables: a cell whose runs all end at the same return has a zero-width interval and
    reads "all n equal" (checked on the publication's records, as the leaderboard says it), never "x [x, x]";
    one whose bootstrap merely has no spread says so; a cell short of seeds reads "⚠ incomplete (n/N)" in both
    tables (the leaderboard has no time to solve for it), never as "not run" or as a full cell; a cell where
    fewer than half the runs solve shows its count without a median."""
    import importlib.util
    import json
    import shutil

    spec = importlib.util.spec_from_file_location("claims", Path(__file__).parents[1] / "tools" / "claims.py")
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    monkeypatch.setattr(claims, "ANCHOR", A0)
    monkeypatch.setattr(claims, "PRIMARY_CLAIMS", (("C1 distraction", "MBPO", "mbpo_vagram", "mbpo_mle", A1),))
    content = protocol_content()
    path = tmp_path / "protocol.toml"
    path.write_text(_toml(content))
    protocol = parse_protocol(content, str(path), check_ids=False)
    runs = tmp_path / "runs"
    _write_grid(runs, protocol)
    for k in protocol.seeds:  # every MLE run on A2 ends at 100: all five equal
        write_run(runs, protocol, "mbpo_mle", A2, k, [15.0, 100.0, 100.0, 100.0])
    for k in (3, 4):  # sac on A1 short of two seeds
        shutil.rmtree(runs / A1 / "sac" / f"seed{k}")
    out = tmp_path / "published"
    assert lb.main([str(runs), f"protocol={path}", f"out={out}", "n_resamples=300"]) == 0
    shutil.copytree(runs, out / "runs")  # the publication's layout: its records and publish.json beside the board
    (out / "publish.json").write_text(json.dumps({"protocol": protocol.record()}))
    monkeypatch.setattr(claims, "load_protocol", lambda name: protocol if name == protocol.name else None)

    table = claims.table_lines(out)
    assert table[3].split(" | ")[3] == "100, all 5 equal |"
    assert table[4].split(" | ")[2] == "⚠ incomplete (3/5)"
    monkeypatch.setattr(claims, "_all_equal", lambda *a: False)  # as if the runs differed under a flat bootstrap
    assert claims.table_lines(out)[3].split(" | ")[3] == "100, no spread in the bootstrap |"
    solve = claims.solve_lines(out)
    assert solve[4] == "| `sac` | 0/5 | ⚠ incomplete (3/5) | 0/5 |"
    # as if only 2 of MLE's 5 A2 runs had solved: the count, and no median (Kaplan–Meier's is not reached)
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    for r in rows:
        if (r["table"], r["agent"], r["task"]) == ("time_to_solve", "mbpo_mle", A2):
            r["point"] = {"km_median_steps": "inf", "km_fraction_solved_by_400": "0.4"}.get(r["statistic"], r["point"])
    with (out / "leaderboard.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert claims.solve_lines(out)[3] == "| `mbpo_mle` | 5/5 (300) | 0/5 | 2/5 |"
    # a protocol changed since the publication cannot be read for it
    (out / "publish.json").write_text(json.dumps({"protocol": {**protocol.record(), "hash": "0" * 64}}))
    with pytest.raises(ValueError, match="protocol 'anchored' has changed since it was published"):
        claims._final_evals(out)
