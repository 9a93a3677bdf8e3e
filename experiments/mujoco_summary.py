"""The tables and figures of docs/benchmarks.md (MuJoCo), from the runs of experiments/mujoco.sh.

    .venv/bin/python experiments/mujoco_summary.py [runs/mujoco] [--figures docs/img/mujoco]

Main table, per env (Walker2d-v5 twice: its own preset, and the common MuJoCo preset that the
other two envs use): the final deterministic evaluation (20 episodes) of each seed, its IQM
and mean with 95% bootstrap CIs, against CleanRL's published 1M-step mean (the goal is an
IQM >= 1.1x it); also the training return at the end (mean of the last 10% of updates, the
sampled policy: what CleanRL's figures measure) and each run's wall-clock (from its
config.toml to its eval.json: training, checkpoints and the final evaluation).

Ablation table: the HalfCheetah-v5 variants, 3 seeds each, with the difference of means
against the preset and its two-sample 95% bootstrap CI.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from ppokit.analysis import plots, stats
from ppokit.analysis.curves import RunData, final_eval_mean, load_run

# Published PPO returns at 1M steps (CleanRL ppo_continuous_action, MuJoCo v4, 3 seeds; and
# rl-baselines3-zoo's tuned SB3 agents), as quoted in the project's issue.
CLEANRL = {"Hopper-v5": 2383.0, "Walker2d-v5": 2288.0, "HalfCheetah-v5": 1443.0, "Humanoid-v5": 716.0}
GOAL_ENVS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5")  # Humanoid: reported as far as compute allows
RL_ZOO = {"Hopper-v5": 2410.0, "Walker2d-v5": 3479.0, "HalfCheetah-v5": 5819.0}
GOAL = 1.1

ABLATIONS = {  # label -> run folders under OUT, relative
    "preset": "ablation-bootstrap/runs/bootstrap_truncation=True",
    "no truncation bootstrap": "ablation-bootstrap/runs/bootstrap_truncation=False",
    "no obs normalization": "ablation-norm-obs/runs/norm_obs=False",
}


def seeds(folder: Path) -> list[RunData]:
    runs = [load_run(p) for p in sorted(folder.glob("seed-*"))]
    return [r for r in runs if r.final_eval is not None]


# Table rows: (label, env, the run folders' glob under OUT). "main*": the three envs with the common
# MuJoCo preset (main-*: seeds split over commands); "walker2d*": Walker2d-v5 with its own preset.
ROWS = [
    ("Hopper-v5", "Hopper-v5", "main*/runs/id=Hopper-v5/seed-*"),
    ("Walker2d-v5 (Walker2d preset)", "Walker2d-v5", "walker2d*/runs/base/seed-*"),
    ("HalfCheetah-v5", "HalfCheetah-v5", "main*/runs/id=HalfCheetah-v5/seed-*"),
    ("Walker2d-v5 (common MuJoCo preset)", "Walker2d-v5", "main*/runs/id=Walker2d-v5/seed-*"),
    ("Humanoid-v5", "Humanoid-v5", "humanoid*/runs/base/seed-*"),
]


def finished_runs(out: Path, pattern: str) -> list[Path]:
    """The finished runs matching ``pattern`` under ``out``, by seed."""
    paths = sorted(out.glob(pattern), key=lambda p: int(p.name.split("-")[1]))
    return [p for p in paths if (p / "eval.json").is_file()]


def wall_clock_min(run: RunData) -> float:
    return ((run.path / "eval.json").stat().st_mtime - (run.path / "config.toml").stat().st_mtime) / 60


def training_return(run: RunData) -> float:
    return stats.final_score(run.column("global_step"), run.column("episode_return_mean"))


def ci(e: stats.Estimate) -> str:
    return f"{e.point:.0f} [{e.low:.0f}, {e.high:.0f}]"


def main_table(out: Path) -> list[str]:
    lines = ["| env | final eval per seed | IQM [95% CI] | mean [95% CI] | CleanRL | IQM / CleanRL | goal (>= 1.1x) "
             "| training return at the end, mean of seeds | wall-clock per run (min) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for label, env, pattern in ROWS:
        cleanrl = CLEANRL[env]
        runs = [load_run(p) for p in finished_runs(out, pattern)]
        if not runs:
            lines.append(f"| {label} | not run | | | {cleanrl:.0f} | | | | |")
            continue
        scores = np.array([final_eval_mean(r) for r in runs])
        agg = stats.aggregate(scores)
        ratio = agg["iqm"].point / cleanrl
        per_seed = ", ".join(f"{s:.0f}" for s in scores)
        clocks = [wall_clock_min(r) for r in runs]
        train = statistics.mean(training_return(r) for r in runs)
        lines.append(
            f"| {label} | {per_seed} | **{ci(agg['iqm'])}** | {ci(agg['mean'])} | {cleanrl:.0f} | {ratio:.2f}x "
            f"| {('met' if ratio >= GOAL else 'not met') if env in GOAL_ENVS else 'no goal'} | {train:.0f} "
            f"| {statistics.median(clocks):.1f} ({min(clocks):.1f}-{max(clocks):.1f}) |"
        )
    return lines


def ablation_table(out: Path) -> list[str]:
    groups = {label: seeds(out / rel) for label, rel in ABLATIONS.items()}
    base = np.array([final_eval_mean(r) for r in groups[next(iter(ABLATIONS))]])
    lines = ["| HalfCheetah-v5, 300k steps | final eval per seed (1, 2, 3) | mean [95% CI] | IQM | "
             "minus the preset's mean [95% CI] |", "|---|---|---|---|---|"]  # fmt: skip
    for label, runs in groups.items():
        if not runs:
            lines.append(f"| {label} | not run | | | |")
            continue
        scores = np.array([final_eval_mean(r) for r in runs])
        agg = stats.aggregate(scores)
        diff = "" if label == next(iter(ABLATIONS)) or base.size == 0 else ci(stats.difference_ci(scores, base))
        per_seed = ", ".join(f"{s:.0f}" for s in scores)
        lines.append(f"| {label} | {per_seed} | {ci(agg['mean'])} | {agg['iqm'].point:.0f} | {diff} |")
    return lines


def figures(out: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for env, cleanrl in CLEANRL.items():
        groups = {label: paths for label, e, pattern in ROWS if e == env and (paths := finished_runs(out, pattern))}
        if groups:
            plots.learning_curves(groups, folder / f"{env}.png", x="global_step", threshold=GOAL * cleanrl)
    groups = {label: sorted((out / rel).glob("seed-*")) for label, rel in ABLATIONS.items()}
    if any(groups.values()):
        plots.learning_curves({k: v for k, v in groups.items() if v}, folder / "ablation-HalfCheetah-v5.png",
                              x="global_step")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="runs/mujoco", type=Path)
    parser.add_argument("--figures", type=Path, help="write the learning-curve figures to this folder")
    args = parser.parse_args()
    print("\n".join(main_table(args.out)))
    print()
    print("\n".join(ablation_table(args.out)))
    if args.figures:
        figures(args.out, args.figures)


if __name__ == "__main__":
    main()
