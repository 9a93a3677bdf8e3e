"""The result of a comparison of ppokit with SB3: per-run records, their summary with 95%
bootstrap CIs, and its Markdown table and figure.

Kept apart from :mod:`ppokit.analysis.compare` (which runs the jobs) so that what a
comparison concludes can be read, tested and redrawn without training anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

from ppokit.analysis.curves import group_curves, load_run, mean_band
from ppokit.analysis.plots import PALETTE
from ppokit.analysis.sb3 import describe, to_sb3
from ppokit.analysis.stats import Estimate, aggregate, difference_ci
from ppokit.config import RunConfig, override, to_dict
from ppokit.io.run_dir import seed_folder

LIBRARIES = ("ppokit", "sb3")
EVAL_EPISODES = 20
_MARKERS = {"mean": "o", "iqm": "D"}


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its final evaluation and its training time."""

    library: str
    seed: int
    run_dir: str
    eval_mean: float
    eval_returns: list[float]
    train_time: float  # seconds, rollouts + updates only
    steps: int  # env steps trained
    job_time: float  # seconds of the whole job after imports (env setup, training, evaluation)

    @property
    def sps(self) -> float:
        return self.steps / self.train_time


@dataclass(frozen=True)
class LibraryResult:
    scores: dict[int, float]  # seed -> final evaluation mean
    aggregates: dict[str, Estimate]  # mean, median, iqm of the scores, 95% bootstrap CIs
    train_time: dict[int, float]  # seed -> training wall-clock (s)
    sps: dict[int, float]  # seed -> env steps per second of training
    median_train_time: float
    median_sps: float


@dataclass(frozen=True)
class ComparisonResult:
    env_id: str
    seeds: list[int]
    total_steps: int  # env steps each run trained (updates x batch), the same for both
    out_dir: Path
    libraries: dict[str, LibraryResult]  # "ppokit", "sb3"
    difference: Estimate  # mean(ppokit) - mean(sb3) of the final evaluations, 95% CI
    time_ratio: float  # median train time, ppokit / sb3
    sps_ratio: float  # median steps per second, ppokit / sb3
    config: dict[str, Any] = field(default_factory=dict)
    sb3_setup: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return json.loads(json.dumps(data, default=describe))  # type: ignore[no-any-return]  # a JSON object


def summarize(base: RunConfig, seeds: list[int], out: Path, records: list[RunRecord]) -> ComparisonResult:
    """Per library the scores (sorted by seed), their aggregates and timings; and the difference."""
    by_lib = {lib: sorted((r for r in records if r.library == lib), key=lambda r: r.seed) for lib in LIBRARIES}
    libraries = {}
    for lib, recs in by_lib.items():
        scores = np.array([r.eval_mean for r in recs])
        libraries[lib] = LibraryResult(
            scores={r.seed: r.eval_mean for r in recs},
            aggregates=aggregate(scores),
            train_time={r.seed: r.train_time for r in recs},
            sps={r.seed: r.sps for r in recs},
            median_train_time=float(np.median([r.train_time for r in recs])),
            median_sps=float(np.median([r.sps for r in recs])),
        )
    p, s = libraries["ppokit"], libraries["sb3"]
    return ComparisonResult(
        env_id=base.env.id,
        seeds=seeds,
        total_steps=base.num_updates * base.batch_size,
        out_dir=out,
        libraries=libraries,
        difference=difference_ci(list(p.scores.values()), list(s.scores.values())),
        time_ratio=p.median_train_time / s.median_train_time,
        sps_ratio=p.median_sps / s.median_sps,
        config=to_dict(override(base, {"seed": 0, "run_dir": None})),
        sb3_setup=asdict(to_sb3(base)),
    )


# --- report ------------------------------------------------------------------------------------


def _ci(e: Estimate, digits: int = 1) -> str:
    return f"{e.point:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def markdown(result: ComparisonResult) -> str:
    """The comparison as a Markdown table plus the difference and the timing ratios."""
    lines = [
        f"# ppokit vs Stable-Baselines3 PPO on {result.env_id}",
        "",
        f"{len(result.seeds)} seeds ({', '.join(map(str, result.seeds))}), {result.total_steps} env steps each; "
        f"final evaluation: deterministic, {EVAL_EPISODES} episodes, the same eval env seeds for both.",
        "",
        "| library | final eval per seed | mean [95% CI] | IQM [95% CI] | median train time (s) | median steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for lib, r in result.libraries.items():
        per_seed = ", ".join(f"{v:.1f}" for v in r.scores.values())
        lines.append(f"| {lib} | {per_seed} | {_ci(r.aggregates['mean'])} | {_ci(r.aggregates['iqm'])} "
                     f"| {r.median_train_time:.1f} | {r.median_sps:.0f} |")  # fmt: skip
    lines += [
        "",
        f"- difference of means, ppokit - SB3: {_ci(result.difference)} (95% two-sample bootstrap CI)",
        f"- median train time ratio, ppokit / SB3: {result.time_ratio:.2f}",
        f"- median steps/s ratio, ppokit / SB3: {result.sps_ratio:.2f}",
        "",
    ]
    return "\n".join(lines)


def figure(result: ComparisonResult, path: Path) -> Path:
    """Left: training episode return vs env steps (mean over seeds, 95% bootstrap CI band, thin
    lines per seed). Right: final evaluation per seed, and mean and IQM with their 95% CIs."""
    fig = Figure(figsize=(12.5, 5.0), dpi=120, layout="constrained", facecolor="white")
    curves_ax, eval_ax = fig.subplots(1, 2, width_ratios=(2.2, 1.0))
    rng = np.random.default_rng(0)
    for i, (lib, r) in enumerate(result.libraries.items()):
        color = PALETTE[i]
        runs = [load_run(result.out_dir / lib / seed_folder(s)) for s in r.scores]
        grid, curves = group_curves(runs, "global_step", "episode_return_mean")
        mean, low, high = mean_band(curves)
        for seed_curve in curves:
            curves_ax.plot(grid, seed_curve, color=color, linewidth=0.7, alpha=0.3)
        curves_ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
        curves_ax.plot(grid, mean, color=color, linewidth=2.0, label=f"{lib} (n={len(runs)} seeds)")
        scores = np.array(list(r.scores.values()))
        eval_ax.scatter(i - 0.12 + rng.uniform(-0.05, 0.05, scores.size), scores, color=color, s=22, alpha=0.7)
        for offset, name in ((0.1, "mean"), (0.25, "iqm")):
            e = r.aggregates[name]
            eval_ax.errorbar(i + offset, e.point, yerr=[[e.point - e.low], [e.high - e.point]], color=color,
                             marker=_MARKERS[name], markersize=7, capsize=5, linewidth=1.8)  # fmt: skip
    curves_ax.set(xlabel="environment steps", ylabel="training episode return",
                  title="Training return (smoothed): mean, 95% CI band; thin: each seed")  # fmt: skip
    curves_ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    curves_ax.grid(True, alpha=0.3)
    curves_ax.legend(loc="best")
    eval_ax.set_xticks(range(len(result.libraries)), list(result.libraries))
    eval_ax.set_xlim(-0.5, len(result.libraries) - 0.5)
    eval_ax.set(ylabel="final evaluation return", title=f"Final eval ({EVAL_EPISODES} ep., deterministic)")
    eval_ax.grid(True, axis="y", alpha=0.3)
    eval_ax.legend(handles=[Line2D([], [], color="0.4", marker="o", linestyle="", label="each seed"),
                            Line2D([], [], color="0.4", marker=_MARKERS["mean"], label="mean, 95% CI"),
                            Line2D([], [], color="0.4", marker=_MARKERS["iqm"], label="IQM, 95% CI")],
                   loc="best", fontsize="small")  # fmt: skip
    d = result.difference
    fig.suptitle(f"ppokit vs SB3 PPO on {result.env_id}, {result.total_steps:,} steps: mean difference "
                 f"{d.point:+.1f} [{d.low:+.1f}, {d.high:+.1f}]; steps/s ratio {result.sps_ratio:.2f}")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor="white")
    return path
