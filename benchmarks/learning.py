"""Learning evidence on the benchmark's own tasks: run named sets of agents on named envs at a stated
budget through the common runner, then collect their curves into ``results/learning/``.

Every run is one ``python -m vagram_bench.run ... out=<out>`` subprocess (at most two at a time, under
``nice``, one thread each), so a killed script is resumed by running it again: complete runs
(``summary.json`` present) are skipped and incomplete ones resume from their checkpoint in the runner.
Run directories follow the runner's layout ``<out>/<env>/<agent>/seed<k>/``.

The collection step copies each run's ``eval.csv``, ``config.json``, ``train.csv`` and (once complete)
``summary.json`` to ``results/learning/<env>/<agent>/seed<k>/``, draws one PNG of evaluation return
against env steps with the published reference curves on the same axes, and writes
``results/learning/README.md`` (the exact commands, the machine, wall time per run and every
evaluation point).

Usage::

    python benchmarks/learning.py --list                              # the named sets and their commands
    python benchmarks/learning.py --set sac --out /work/learning/runs # run (resumable), then collect
    python benchmarks/learning.py --set all --out /work/learning/runs --collect-only
    python benchmarks/learning.py --set mbpo --dry-run                # print the commands only
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from vagram_bench.publish import RECORD_FILES, this_machine

REPO = Path(__file__).resolve().parents[1]
REFERENCES = REPO / "results" / "learning" / "references"
MAX_PARALLEL = 2


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One agent on one env at one budget, for several seeds."""

    agent: str
    env: str
    seeds: tuple[int, ...]
    steps: int
    eval_every: int
    eval_episodes: int = 10
    overrides: tuple[str, ...] = ()
    """``agent.<field>=value`` overrides, in command-line form."""
    variant: str = ""
    """Names a run that differs from the agent's defaults by more than cost reductions (a diagnosis);
    its runs live under ``<out>/<variant>/`` so they never share a directory with the default runs."""

    @property
    def label(self) -> str:
        return f"{self.agent} [{self.variant}]" if self.variant else self.agent

    def root(self, out: Path) -> Path:
        return out / self.variant if self.variant else out

    def command(self, seeds: int | tuple[int, ...], out: Path) -> list[str]:
        """The runner command of one seed or of a population of seeds (the one place it is built).

        Several seeds go to one process as one population (``seed=0,1``); the runner still writes
        one run directory per seed.
        """
        seeds = (seeds,) if isinstance(seeds, int) else seeds
        return [
            "python", "-m", "vagram_bench.run", f"agent={self.agent}", f"env={self.env}",
            f"seed={','.join(map(str, seeds))}",
            f"steps={self.steps}", f"eval_every={self.eval_every}", f"eval_episodes={self.eval_episodes}",
            f"out={self.root(out)}", "quiet=true", "threads=1", *self.overrides,
        ]

    def run_dir(self, seed: int, out: Path) -> Path:
        return self.root(out) / self.env / self.agent / f"seed{seed}"


# MBPO on a 2-core CPU: the paper's Hopper settings except SAC width 256 (paper 1024) and 10 SAC
# updates per env step (paper 20), which the CPU time forces. The paper's config explores for
# 10,000 steps (Janner et al. 2019: 5,000) and those steps count on the x-axis, as in both
# published curves; 20,000 steps leave 10,000 model-based steps (~0.2 CPU-s each here).
MBPO_CPU = ("agent.sac_hidden_size=256", "agent.num_sac_updates_per_step=10")

# SVG on a 2-core CPU: upstream's network sizes cost ~8.5 s per env step here (docs/svg.md "Speed"),
# so 10k steps would take a day; the run uses the narrower networks of the SVG learning check
# (128 wide, 2 layers, batches 256/128: ~0.09 s per step), everything else at the agent's defaults.
SVG_CPU = (
    "agent.model_free_hidden_dim=128", "agent.model_free_hidden_depth=2", "agent.xu_enc_hidden_dim=128",
    "agent.rec_latent_dim=128", "agent.rew_hidden_dim=128", "agent.done_hidden_dim=128",
    "agent.step_batch_size=256", "agent.seq_batch_size=128",
)

# Diagnosis of "MBPO no better than SAC at 20k steps" (docs/mbpo.md "Learning on Hopper"): the
# VaGraM paper's Hopper settings are tuned for 250k-500k-step runs. This variant changes exactly the
# four settings in which Janner et al. (2019)'s MBPO differs from them early in training, and nothing
# else: 5,000 exploration steps (paper 10,000), 95 % model data from the first epoch (paper: a ramp
# from 0 over 20 epochs), actor learning rate 3e-4 (paper 3e-5) and real data collected with the
# stochastic policy (paper: the policy mean). Same CPU reductions as the default runs.
JANNER_SETTING = (
    "agent.initial_exploration_steps=5000", "agent.model_data_likelihood=[0,1,0.95,0.95]",
    "agent.sac_actor_lr=3e-4", "agent.deterministic_real_actions=false",
)

SETS: dict[str, tuple[RunSpec, ...]] = {
    "sac": (RunSpec("sac", "Hopper-v5", (0, 1), 100_000, 5000),),
    "mbpo": (
        RunSpec("mbpo_mse", "Hopper-v5", (0,), 20_000, 1000, overrides=MBPO_CPU),
        RunSpec("mbpo_vagram", "Hopper-v5", (0,), 20_000, 1000, overrides=MBPO_CPU),
    ),
    "svg": (RunSpec("svg_mse", "Hopper-v5", (0,), 10_000, 1000, overrides=SVG_CPU),),
    "mbpo_janner": (
        RunSpec("mbpo_mse", "Hopper-v5", (0,), 15_000, 1000, overrides=MBPO_CPU + JANNER_SETTING,
                variant="janner-setting"),
    ),
}
SETS["all"] = SETS["sac"] + SETS["mbpo"] + SETS["svg"] + SETS["mbpo_janner"]

# What bfloat16 autocast does to learning: the same MBPO runs in fp32 and with the SAC update and the
# model rollouts under bf16 autocast, on InvertedPendulum (solved in ~2.5k steps, so a whole curve
# is cheap). On a CPU without bf16 matmul instructions bf16 is far slower than fp32 (README "Speed":
# 0.13x fp32's speed for MBPO, measured side by side),
# which is why this comparison is not run on Hopper here. Hardware with bf16 matmuls rounds to the same
# precision but may accumulate in another order (SET_NOTES["bf16"]).
SETS["bf16"] = (
    RunSpec("mbpo_mse", "InvertedPendulum-v5", (0, 1), 3000, 500, eval_episodes=5),
    RunSpec("mbpo_mse", "InvertedPendulum-v5", (0, 1), 3000, 500, eval_episodes=5,
            overrides=("agent.sac_bf16=true", "agent.rollout_bf16=true"), variant="bf16"),
)

# Where do the model losses separate on the InvertedDoublePendulum distraction family? One seed per
# agent and distractor count, measured before the `cpu` protocol's grid was fixed (its TOML file
# quotes the outcome). MBPO runs the family's defaults (mbrl-lib's inverted-pendulum settings:
# 500 exploration steps, 250-step epochs, 10 SAC updates per step on 2x256 nets); they collect into
# ``results/idp_separation`` (RESULTS_DIRS).
# The small-model runs (variant ``model-2x16``) train the dynamics model with 2 hidden layers of 16
# units instead of 4 x 200 on the undistracted task: the CPU-sized version of VaGraM's capacity
# question. The runs were stopped at ``--stop-at 4000`` (``mbpo_vagram`` balanced the undistracted
# pendulum from 3.5k steps on) to leave the CPU to the protocol's sweep; sac's runs were not needed
# to choose the grid (the sweep runs it on every task).
SEPARATION_AGENTS = ("mbpo_mse", "mbpo_vagram", "mbpo_mle")
SETS["idp_separation"] = tuple(
    RunSpec(agent, f"InvertedDoublePendulumDistract-{d}-v0", (0,), 10_000, 500, eval_episodes=5)
    for d in (0, 20) for agent in SEPARATION_AGENTS
) + tuple(
    RunSpec(agent, "InvertedDoublePendulumDistract-0-v0", (0,), 10_000, 500, eval_episodes=5,
            overrides=("agent.num_layers=2", "agent.hid_size=16"), variant="model-2x16")
    for agent in SEPARATION_AGENTS
) + tuple(RunSpec("sac", f"InvertedDoublePendulumDistract-{d}-v0", (0,), 10_000, 500, eval_episodes=5) for d in (0, 20))


#: The results directory (under ``results/``) of a set that does not collect into ``results/learning``.
RESULTS_DIRS = {"idp_separation": "idp_separation"}


def results_dir_of(name: str) -> str:
    """The directory under ``results/`` that the named set collects into."""
    return RESULTS_DIRS.get(name, "learning")


def sets_sharing_results(names: list[str]) -> list[str]:
    """Every named set that collects into the same results directory as one of ``names``.

    Collecting rewrites a directory's README and figure from the runs it is given, so collecting one
    set alone would drop the others' runs from them (``--set bf16`` once left ``results/learning``
    without its Hopper runs): a collection always takes every set of its directory, and the runs of
    those sets that exist under ``--out``."""
    dirs = {results_dir_of(name) for name in names}
    # "all" only names other sets' runs again
    return [name for name in SETS if name != "all" and results_dir_of(name) in dirs]


def specs_of(names: list[str]) -> list[RunSpec]:
    out: list[RunSpec] = []
    for name in names:
        if name not in SETS:
            raise SystemExit(f"unknown set {name!r}; valid choices: {', '.join(SETS)}")
        out += [s for s in SETS[name] if s not in out]
    return out


# ------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------
def is_complete(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists()


def last_eval_step(run_dir: Path) -> int:
    path = run_dir / "eval.csv"
    return max((p[0] for p in read_eval(path)), default=0) if path.exists() else 0


def run_all(specs: list[RunSpec], out: Path, parallel: int, dry_run: bool, stop_at: int | None = None) -> None:
    """Start every incomplete run, at most ``parallel`` at a time, under ``nice``; wait for all.

    With ``stop_at``, a run is stopped (SIGTERM; the runner resumes it later from its checkpoint) once
    every seed has an evaluation at or after that env step, and runs already there are not started.
    """
    # One job per spec: its incomplete seeds train together as one population.
    def reached(spec: RunSpec, seeds: tuple[int, ...]) -> bool:
        return stop_at is not None and all(last_eval_step(spec.run_dir(k, out)) >= stop_at for k in seeds)

    pending = [(s, seeds) for s in specs
               if (seeds := tuple(k for k in s.seeds if not is_complete(s.run_dir(k, out))))
               and not reached(s, seeds)]
    if dry_run:
        for spec, seeds in pending:
            print(shlex.join(spec.command(seeds, out)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    running: list[tuple[subprocess.Popen, RunSpec, tuple[int, ...], float]] = []
    failed = []
    while pending or running:
        while pending and len(running) < parallel:
            spec, seeds = pending.pop(0)
            cmd = spec.command(seeds, out)
            cmd[0] = sys.executable
            log = spec.run_dir(seeds[0], out).parent / f"seeds{'-'.join(map(str, seeds))}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"start {spec.agent} {spec.env} seeds {seeds} (log {log})", flush=True)
            with open(log, "a") as f:
                proc = subprocess.Popen(["nice", "-n", "10", *cmd], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
            running.append((proc, spec, seeds, time.monotonic()))
        time.sleep(5)
        for item in list(running):
            proc, spec, seeds, t0 = item
            if proc.poll() is None and reached(spec, seeds):
                print(f"stop at {stop_at}: {spec.agent} {spec.env} seeds {seeds}", flush=True)
                proc.terminate()
                proc.wait()
                running.remove(item)
                continue
            if proc.poll() is None:
                continue
            running.remove(item)
            status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(f"{status}: {spec.agent} {spec.env} seeds {seeds} after {time.monotonic() - t0:.0f} s", flush=True)
            if proc.returncode != 0:
                failed.append((spec, seeds))
    if failed:
        print(f"{len(failed)} run(s) failed; see their .log files next to the run directories", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# collecting
# ------------------------------------------------------------------------------------------------
def read_eval(path: Path) -> list[tuple[int, float, float]]:
    with open(path, newline="") as f:
        return [(int(r["env_step"]), float(r["return_mean"]), float(r["return_std"])) for r in csv.DictReader(f)]


def read_reference(name: str) -> list[tuple[int, float, float | None]]:
    with open(REFERENCES / name, newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return [(int(r["env_step"]), float(r["return_mean"]),
                 float(r["return_std"]) if r.get("return_std") else None) for r in rows]


REFERENCE_CURVES = {
    # env id -> [(label, file)]
    "Hopper-v5": [
        ("SAC, published (SVG repo data/sac/hopper.csv)", "sac_hopper.csv"),
        ("MBPO, published (Janner et al. 2019; SVG repo hopper_mbpo.pkl)", "mbpo_hopper.csv"),
    ],
}


def collect(specs: list[RunSpec], out: Path, results: Path) -> dict:
    """Copy every found run into ``results`` and return ``{(env, agent): {seed: info}}``."""
    found: dict = {}
    for spec in specs:
        for seed in spec.seeds:
            src = spec.run_dir(seed, out)
            if not (src / "eval.csv").exists():
                continue
            dst = results / spec.variant / spec.env / spec.agent / f"seed{seed}" if spec.variant else results / spec.env / spec.agent / f"seed{seed}"
            dst.mkdir(parents=True, exist_ok=True)
            for name in RECORD_FILES:
                if (src / name).exists():
                    shutil.copy2(src / name, dst / name)
            summary = json.loads((src / "summary.json").read_text()) if is_complete(src) else None
            evals = read_eval(src / "eval.csv")
            wall = summary["wall_seconds"] if summary else (max(_wall_column(src / "eval.csv"), default=0.0))
            found.setdefault((spec.env, spec.label), {})[seed] = dict(
                spec=spec, evals=evals, complete=summary is not None, wall_seconds=wall,
            )
    return found


def _wall_column(path: Path) -> list[float]:
    with open(path, newline="") as f:
        return [float(r["wall_seconds"]) for r in csv.DictReader(f)]


def _zoom_limit(found: dict, env: str) -> int | None:
    """The x limit of a zoomed panel when some runs on ``env`` end before half of the longest one
    (e.g. MBPO's 20k steps beside SAC's 100k), else ``None``."""
    ends = [max(p[0] for p in info["evals"]) for (e, _), seeds in found.items() if e == env
            for info in seeds.values() if info["evals"]]
    short = [x for x in ends if x < 0.5 * max(ends, default=0)]
    return max(short) if short else None


def _draw(ax, found: dict, env: str, x_limit: int | None) -> None:
    """Every agent's seeds (thin) and their mean (thick) on ``env``, and the published references."""
    import numpy as np

    xmax = 0
    for (e, agent), seeds in sorted(found.items()):
        if e != env:
            continue
        runs = list(seeds.values())
        line = None
        for info in runs:
            pts = [p for p in info["evals"] if x_limit is None or p[0] <= x_limit]
            x, y = [p[0] for p in pts], [p[1] for p in pts]
            xmax = max(xmax, max(x, default=0))
            line = ax.plot(x, y, lw=0.8, alpha=0.35, color=None if line is None else line[0].get_color())
        common = sorted(set.intersection(*(set(p[0] for p in info["evals"]) for info in runs)))
        common = [c for c in common if x_limit is None or c <= x_limit]
        mean = [np.mean([dict((p[0], p[1]) for p in info["evals"])[s] for info in runs]) for s in common]
        ax.plot(common, mean, lw=2, color=line[0].get_color(),
                label=f"{agent} (ours, mean of {len(runs)} seed{'s' if len(runs) > 1 else ''})")
    for label, name in REFERENCE_CURVES.get(env, []):
        ref = [r for r in read_reference(name) if r[0] <= max(xmax, 1) * 1.05]
        if not ref:
            continue
        x, y = [r[0] for r in ref], [r[1] for r in ref]
        ln = ax.plot(x, y, ls="--", marker="o", ms=3, lw=1.2, label=label)
        if ref[0][2] is not None:
            sd = np.array([r[2] for r in ref])
            ax.fill_between(x, np.array(y) - sd, np.array(y) + sd, color=ln[0].get_color(), alpha=0.12)
    ax.set_title(env if x_limit is None else f"{env}: the first {x_limit // 1000}k steps")
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (deterministic policy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot(found: dict, path: Path) -> None:
    """One row per env: the whole curves, and beside them the first steps zoomed in when some runs are
    much shorter than others."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({env for env, _ in found}) or ["(no runs)"]
    panels = [[None] + ([z] if (z := _zoom_limit(found, env)) else []) for env in envs]
    cols = max(len(p) for p in panels)
    fig, axes = plt.subplots(len(envs), cols, figsize=(7.5 * cols, 5 * len(envs)), squeeze=False)
    for row, (env, limits) in enumerate(zip(envs, panels)):
        for col in range(cols):
            if col < len(limits):
                _draw(axes[row][col], found, env, limits[col])
            else:
                axes[row][col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# What the Hopper sets' curves can and cannot show (written under their figure).
HOPPER_NOTES = [
    "Dashed: published reference curves on the same axes (`references/`): SAC on Hopper as stored in "
    "facebookresearch/svg `data/sac/hopper.csv` (commit 4874bc2; plotted there with `sac_scale=1.0` for "
    "Hopper), MBPO on Hopper from the MBPO authors' result pickle stored as `data/mbpo/hopper_mbpo.pkl` "
    "(commit c05887e; mean ± std over their seeds).",
    "",
    "What this can and cannot show: one or two seeds per agent and short budgets (MBPO 20k, SVG 10k "
    "env steps); each evaluation point is the mean of 10 deterministic episodes of one seed. Single-seed "
    "Hopper returns early in training are bimodal (an episode either falls or hops), so differences "
    "of a few hundred between single points are within noise; the published curves are means over "
    "several seeds.",
    "",
    "An agent name with a bracketed variant (e.g. `mbpo_mse [janner-setting]`) is a diagnosis run: it differs "
    "from the agent's defaults by the overrides in its command (the `mbpo_janner` set: Janner et al.'s "
    "early-training settings; the `bf16` set: bfloat16 autocast). What the MBPO runs show and why MBPO "
    "does not beat SAC by 20k steps here: docs/mbpo.md, \"Learning on Hopper-v5\".",
    "",
]

# A set's own paragraph under the figure.
SET_NOTES = {
    "bf16": (
        "What bfloat16 autocast does to learning (`[bf16]`: `agent.sac_bf16=true agent.rollout_bf16=true`, "
        "the SAC update's matmuls and the model rollouts' hidden layers in bf16; parameters, optimiser state, "
        "losses and the state update `s + Δ̂` stay float32): `mbpo_mse` on InvertedPendulum-v5, seeds 0 and 1 "
        "as one population, against the same command in fp32. Both start from the same networks and the same "
        "exploration data, so a difference comes from bf16 rounding and the trajectories it leads to. Two seeds on "
        "the easiest task can show whether bf16 breaks learning, not a small difference in sample efficiency. "
        "This CPU has no bf16 matmul instructions (bf16 is emulated: README \"Speed\", 0.13x fp32's speed), which is why the "
        "comparison was not run on Hopper. Hardware with bf16 matmuls rounds to the same precision but may "
        "accumulate in another order, so it would not repeat these runs bitwise. The run times in the table "
        "come from separate runs, each sharing the machine with another job: they are not a speed comparison."
    ),
    "idp_separation": (
        "Where the model losses separate on InvertedDoublePendulum, measured with one seed per agent before "
        "the `cpu` protocol's grid was fixed (`protocols/cpu.toml` quotes the outcome). The MBPO runs were "
        "stopped at 4,000 env steps (20 distractor dims: 6,000; `--stop-at`), so their status reads "
        "incomplete; `mbpo_vagram` on the undistracted task and `sac` on 20 distractor dims ran further in an "
        "earlier session. `[model-2x16]`: the dynamics model cut to 2 hidden layers of 16 units (what "
        "`InvertedDoublePendulumCapacity-2x16-v0` fixes). One seed each: a difference between single runs is "
        "not a result, only a pointer for choosing the grid."
    ),
}


def write_readme(found: dict, results: Path, out: Path, png: str, set_names: list[str]) -> None:
    lines = [
        "# Learning on the benchmark's own tasks",
        "",
        f"Generated by `python benchmarks/learning.py --set {' '.join(set_names)} --out {out} --collect-only`. "
        "Each run is one call of the common runner; its `eval.csv`, `config.json`, `train.csv` and (once "
        "complete) `summary.json` are copied to `<env>/<agent>/seed<k>/` here.",
        "",
        f"![evaluation return vs env steps]({png})",
        "",
    ]
    lines += [line for name in set_names if name in SET_NOTES for line in (SET_NOTES[name], "")]
    if any(env == "Hopper-v5" for env, _ in found):
        lines += HOPPER_NOTES
    lines += [
        "## Runs",
        "",
        f"Machine (where the runs were collected): {this_machine()}. Runs: one thread each, at most "
        f"{MAX_PARALLEL} at a time, under `nice -n 10`, on a machine shared with other work, so wall "
        "times are upper bounds.",
        "",
        "| env | agent | seed | status | env steps | wall time | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for (env, agent), seeds in sorted(found.items()):
        for seed, info in sorted(seeds.items()):
            # The command that ran: a spec's seeds train together as one population.
            cmd = shlex.join(info["spec"].command(info["spec"].seeds, out))
            last = info["evals"][-1][0] if info["evals"] else 0
            status = "complete" if info["complete"] else "incomplete"
            lines.append(
                f"| {env} | {agent} | {seed} | {status} | {last} | {info['wall_seconds'] / 60:.0f} min | `{cmd}` |"
            )
    for (env, agent), seeds in sorted(found.items()):
        lines += ["", f"## {agent} on {env}: evaluation return at each evaluation point", ""]
        steps = sorted({p[0] for info in seeds.values() for p in info["evals"]})
        header = "| env steps | " + " | ".join(f"seed {s}" for s in sorted(seeds)) + " |"
        lines += [header, "|---|" + "---|" * len(seeds)]
        for st in steps:
            cells = []
            for seed in sorted(seeds):
                val = dict((p[0], p[1]) for p in seeds[seed]["evals"]).get(st)
                cells.append("" if val is None else f"{val:.1f}")
            lines.append(f"| {st} | " + " | ".join(cells) + " |")
    (results / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", nargs="+", default=["all"], help=f"named sets: {', '.join(SETS)}")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("VAGRAM_LEARNING_OUT", "runs/learning")),
                        help="runner output root (<out>/<env>/<agent>/seed<k>/); default $VAGRAM_LEARNING_OUT or runs/learning")
    parser.add_argument("--results", type=Path, default=None,
                        help="where the collected results go (default: results/<the sets' directory>, "
                             "results/learning for the Hopper sets, results/idp_separation for idp_separation)")
    parser.add_argument("--parallel", type=int, default=MAX_PARALLEL, help=f"runs at a time (at most {MAX_PARALLEL})")
    parser.add_argument("--collect-only", action="store_true", help="do not run anything; collect existing runs and plot")
    parser.add_argument("--dry-run", action="store_true", help="print the commands of the incomplete runs and exit")
    parser.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                        help="stop each run once it has an evaluation at env step >= STEP (resumable later)")
    parser.add_argument("--list", action="store_true", help="list the named sets and exit")
    args = parser.parse_args(argv)
    if not 1 <= args.parallel <= MAX_PARALLEL:
        print(f"--parallel must be in [1, {MAX_PARALLEL}]; got {args.parallel}", file=sys.stderr)
        return 2
    if args.list:
        for name, specs in SETS.items():
            print(f"{name}:")
            for spec in specs:
                for seed in spec.seeds:
                    print("   ", shlex.join(spec.command(seed, Path("OUT"))))
        return 0
    try:
        specs = specs_of(args.set)
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 2
    if args.results is None:
        dirs = {results_dir_of(name) for name in args.set}
        if len(dirs) > 1:
            print(f"sets {args.set} collect into different directories {sorted(dirs)}; collect them one at a time "
                  "or pass --results", file=sys.stderr)
            return 2
        args.results = REPO / "results" / dirs.pop()
    out = args.out.resolve()
    if not args.collect_only:
        run_all(specs, out, args.parallel, args.dry_run, args.stop_at)
        if args.dry_run:
            return 0
    collected_sets = sets_sharing_results(args.set)
    found = collect(specs_of(collected_sets), out, args.results)
    if not found:
        print(f"no runs with an eval.csv under {out}", file=sys.stderr)
        return 1
    present = [name for name in collected_sets if any((s.env, s.label) in found for s in SETS[name])]
    png = "learning_curves.png"
    plot(found, args.results / png)
    write_readme(found, args.results, out, png, present)
    print(f"collected {sum(len(s) for s in found.values())} run(s) into {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
