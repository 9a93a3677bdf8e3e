"""The numbers of docs/experiments.md that are not in the reports' tables, from the runs' metrics.

    .venv/bin/python experiments/summarize.py [runs/experiments]

Per experiment and configuration, per seed: env steps used, training wall-clock, the range
of ppo-kl's beta and of the adaptive clip range, the health warnings, and the mean training
return over the updates between 9k and 11k env steps.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any


def rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def window_return(metrics: list[dict[str, Any]], low: int = 9_000, high: int = 11_000) -> float:
    inside = finite([r["episode_return_mean"] for r in metrics if low <= r["global_step"] <= high])
    return statistics.mean(inside) if inside else math.nan


def describe(run: Path) -> str:
    metrics = rows(run)
    last = metrics[-1]
    betas, clips = finite([r.get("kl_coef") for r in metrics]), finite([r.get("clip_coef") for r in metrics])
    diagnostics = json.loads((run / "diagnostics.json").read_text())
    warned = {k: v["warnings"] for k, v in diagnostics["rules"].items() if v["warnings"]}
    return (
        f"steps {last['global_step']:>7,}  train {last['time_elapsed']:6.1f} s  "
        f"beta [{min(betas):.3g}, {max(betas):.3g}] median {statistics.median(betas):.3g}  "
        f"clip [{min(clips):.3g}, {max(clips):.3g}] median {statistics.median(clips):.3g}  "
        f"return@9-11k {window_return(metrics):7.2f}  warnings {warned or 'none'}"
    )


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/experiments")
    for experiment in sorted(p for p in root.iterdir() if (p / "experiment.json").is_file()):
        print(f"== {experiment.name}")
        for variant in sorted((experiment / "runs").iterdir()):
            windows = []
            for run in sorted(variant.iterdir(), key=lambda p: int(p.name.split("-")[-1])):
                if (run / "metrics.jsonl").is_file():
                    print(f"  {variant.name:<22} {run.name:<7} {describe(run)}")
                    windows.append(window_return(rows(run)))
            if windows and all(math.isfinite(w) for w in windows):
                print(f"  {variant.name:<22} mean over seeds of return@9-11k: {statistics.mean(windows):.1f}")


if __name__ == "__main__":
    main()
