"""benchmarks/learning.py: the run commands and the collect-only mode on a fake run tree."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_scripts import load_benchmark


def _script():
    return load_benchmark("learning")


def test_sac_command_is_the_documented_one():
    mod = _script()
    (sac,) = mod.SETS["sac"]
    assert " ".join(sac.command(1, Path("/o"))) == (
        "python -m vagram_bench.run agent=sac env=Hopper-v5 seed=1 steps=100000 eval_every=5000 "
        "eval_episodes=10 out=/o quiet=true threads=1"
    )
    assert sac.run_dir(1, Path("/o")) == Path("/o/Hopper-v5/sac/seed1")
    assert "seed=0,1" in sac.command((0, 1), Path("/o"))
    mbpo = {s.agent: s for s in mod.SETS["mbpo"]}
    assert mbpo["mbpo_vagram"].steps == 20_000
    assert "agent.num_sac_updates_per_step=10" in mbpo["mbpo_mse"].command(0, Path("/o"))


def test_collect_only_copies_runs_and_writes_plot_and_readme(tmp_path):
    mod = _script()
    out, results = tmp_path / "runs", tmp_path / "results"
    header = "env_step,return_mean,return_std,return_min,return_max,episode_length_mean,wall_seconds\n"
    for seed, rows in ((0, [(5000, 30.0), (10000, 225.5)]), (1, [(5000, 12.5)])):
        d = out / "Hopper-v5" / "sac" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "eval.csv").write_text(header + "".join(f"{s},{r},1,0,2,50,{s / 50}\n" for s, r in rows))
        (d / "config.json").write_text("{}")
    (out / "Hopper-v5" / "sac" / "seed0" / "summary.json").write_text(json.dumps({"wall_seconds": 600.0}))
    assert mod.main(["--set", "sac", "--out", str(out), "--results", str(results), "--collect-only"]) == 0
    assert (results / "Hopper-v5" / "sac" / "seed0" / "summary.json").exists()
    assert (results / "Hopper-v5" / "sac" / "seed1" / "eval.csv").exists()
    assert (results / "learning_curves.png").stat().st_size > 1000
    readme = (results / "README.md").read_text()
    assert "| 10000 | 225.5 |  |" in readme and "| 5000 | 30.0 | 12.5 |" in readme
    assert "| Hopper-v5 | sac | 0 | complete | 10000 | 10 min |" in readme
    assert "| Hopper-v5 | sac | 1 | incomplete | 5000 |" in readme
    assert mod.main(["--set", "nope", "--collect-only"]) == 2


def test_a_variant_runs_in_its_own_root_and_is_collected_under_its_label(tmp_path):
    """A diagnosis variant never shares a run directory with the agent's default runs."""
    mod = _script()
    (janner,) = mod.SETS["mbpo_janner"]
    (default,) = [s for s in mod.SETS["mbpo"] if s.agent == janner.agent]
    assert janner.run_dir(0, tmp_path) == tmp_path / "janner-setting" / "Hopper-v5" / "mbpo_mse" / "seed0"
    assert janner.run_dir(0, tmp_path) != default.run_dir(0, tmp_path)
    assert f"out={tmp_path / 'janner-setting'}" in janner.command(0, tmp_path)
    assert "agent.deterministic_real_actions=false" in janner.command(0, tmp_path)
    header = "env_step,return_mean,return_std,return_min,return_max,episode_length_mean,wall_seconds\n"
    for spec, ret in ((janner, 302.5), (default, 33.0)):
        d = spec.run_dir(0, tmp_path / "runs")
        d.mkdir(parents=True)
        (d / "eval.csv").write_text(header + f"10000,{ret},1,0,2,50,100\n")
        (d / "config.json").write_text("{}")
    found = mod.collect([janner, default], tmp_path / "runs", tmp_path / "results")
    assert found[("Hopper-v5", "mbpo_mse [janner-setting]")][0]["evals"] == [(10000, 302.5, 1.0)]
    assert found[("Hopper-v5", "mbpo_mse")][0]["evals"] == [(10000, 33.0, 1.0)]
    assert (tmp_path / "results" / "janner-setting" / "Hopper-v5" / "mbpo_mse" / "seed0" / "eval.csv").exists()


def test_sets_collect_into_their_own_results_directory(tmp_path, capsys):
    mod = _script()
    # sets that collect into different directories are refused before anything runs
    assert mod.main(["--set", "sac", "idp_separation", "--out", str(tmp_path / "runs"), "--dry-run"]) == 2
    assert "different directories ['idp_separation', 'learning']" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_stop_at_skips_runs_already_past_it(tmp_path, capsys):
    mod = _script()
    spec = mod.RunSpec("sac", "InvertedDoublePendulum-v5", (0,), 2000, 500)
    run = spec.run_dir(0, tmp_path)
    run.mkdir(parents=True)
    (run / "eval.csv").write_text("env_step,return_mean,return_std\n500,1.0,0.0\n1000,2.0,0.0\n")
    mod.run_all([spec], tmp_path, 1, dry_run=True, stop_at=1500)
    assert "agent=sac" in capsys.readouterr().out  # 1000 < 1500: still to run
    mod.run_all([spec], tmp_path, 1, dry_run=True, stop_at=1000)
    assert capsys.readouterr().out == ""  # reached: not started


def test_collecting_one_set_keeps_the_other_sets_of_its_directory(tmp_path):
    """``--set bf16`` collects into results/learning like the Hopper sets: the README and figure it
    rewrites keep the Hopper runs found under --out, and name only the sets that have runs."""
    mod = _script()
    out, results = tmp_path / "runs", tmp_path / "results"
    header = "env_step,return_mean,return_std,return_min,return_max,episode_length_mean,wall_seconds\n"
    (sac,) = mod.SETS["sac"]
    fp32, bf16 = mod.SETS["bf16"]
    for spec, ret in ((sac, 225.5), (fp32, 1000.0), (bf16, 987.5)):
        d = spec.run_dir(0, out)
        d.mkdir(parents=True)
        (d / "eval.csv").write_text(header + f"1000,{ret},1,0,2,50,100\n")
        (d / "config.json").write_text("{}")
    assert mod.main(["--set", "bf16", "--out", str(out), "--results", str(results), "--collect-only"]) == 0
    readme = (results / "README.md").read_text()
    assert "| Hopper-v5 | sac | 0 |" in readme
    assert "| InvertedPendulum-v5 | mbpo_mse [bf16] | 0 |" in readme and "| 1000 | 987.5 |" in readme
    assert (results / "Hopper-v5" / "sac" / "seed0" / "eval.csv").exists()
    assert "--set sac bf16 " in readme  # the sets with runs, in the order of SETS
    # the separation set collects alone: its directory holds no other set
    assert mod.sets_sharing_results(["idp_separation"]) == ["idp_separation"]
