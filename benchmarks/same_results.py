"""Does a change keep the results? ppokit at two commits, trained with the same seeds.

    .venv/bin/python benchmarks/same_results.py BASE [HEAD] [--case ppo ppo-kl ...]

Checks BASE (and HEAD, default: this working tree) out into temporary git worktrees, trains
every case once with each tree's ``src`` on ``PYTHONPATH`` (a fresh process each, one torch
thread), and compares the logged metrics update by update. It prints, per case, whether every
metric is bit-identical, else the metrics that differ and the largest difference. Timing keys
(``sps``, ``time_elapsed``) are left out; a metric only one side logs is listed as such.

Cases are spelled with the flat field names that every ppokit since the first release reads,
so one case means the same to both commits.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from trees import run_job, two_trees  # this folder is on sys.path when a script runs

TIME_KEYS = {"sps", "time_elapsed"}

_TINY = {"num_envs": 4, "num_steps": 64, "minibatch_size": 64, "update_epochs": 4, "total_steps": 256 * 8}
CASES: dict[str, dict[str, Any]] = {
    "ppo": {"id": "CartPole-v1", **_TINY},
    "ppo-norm": {"id": "Pendulum-v1", **_TINY, "norm_obs": True, "norm_reward": True, "target_kl": 0.02},
    "ppo-kl": {"id": "CartPole-v1", **_TINY, "method": "ppo-kl"},
    "a2c": {"id": "CartPole-v1", **_TINY, "method": "a2c"},
    "reinforce": {"id": "CartPole-v1", **_TINY, "method": "reinforce"},
    "grpo": {"id": "ppokit/GridWorld-v0", "method": "grpo", "group_size": 4, "num_envs": 8, "num_steps": 50,
             "minibatch_size": 100, "total_steps": 400 * 6},
    "ref-kl": {"id": "CartPole-v1", **_TINY, "ref_kl_coef": 0.1, "adaptive_clip": True},
    "recompute": {"id": "CartPole-v1", **_TINY, "recompute_advantages": True, "ent_coef_final": 0.0},
    "box": {"id": "Pendulum-v1", **_TINY, "anneal_clip": True},
}  # fmt: skip

_RUN = """
import json, sys, tempfile, torch
torch.set_num_threads(1)
import ppokit
from ppokit.config import RunConfig, override
values = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    values.update(run_dir=tmp + "/run", progress=False, tensorboard=False, eval_episodes=4, seed=1)
    result = ppokit.train(override(RunConfig(), values).validate())
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
print(json.dumps({"metrics": [json.loads(x) for x in lines], "eval": result.evaluation.returns}))
"""


def run(src: Path, values: dict[str, Any]) -> dict[str, Any]:
    return run_job(src, _RUN, values)


def differences(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    """One line per metric that is not bit-identical over all updates (NaN equals NaN)."""
    lines: list[str] = []
    if len(base["metrics"]) != len(head["metrics"]):
        return [f"updates: base {len(base['metrics'])}, head {len(head['metrics'])}"]
    keys = sorted({k for row in base["metrics"] + head["metrics"] for k in row} - TIME_KEYS)
    for key in keys:
        b = [row.get(key) for row in base["metrics"]]
        h = [row.get(key) for row in head["metrics"]]
        if all(x is None for x in b) != all(x is None for x in h):
            lines.append(f"{key}: logged by {'head' if all(x is None for x in b) else 'base'} only")
            continue
        pairs = [(x, y) for x, y in zip(b, h, strict=True) if not _same(x, y)]
        gaps = [math.inf if x is None or y is None else abs(x - y) for x, y in pairs]
        worst = max(gaps, default=None)
        if worst is not None:
            lines.append(f"{key}: differs, max |base - head| = {worst:.3g}")
    if base["eval"] != head["eval"]:
        lines.append(f"final evaluation: base {base['eval']}, head {head['eval']}")
    return lines


def _same(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is y
    return x == y or (math.isnan(x) and math.isnan(y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the commit to compare against")
    parser.add_argument("head", nargs="?", help="the other commit (default: this working tree)")
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=list(CASES))
    args = parser.parse_args()
    with two_trees(args.base, args.head) as (base, head):
        print(f"metrics per update, base {args.base}, head {args.head or 'this tree'}")
        for case in args.case:
            lines = differences(run(base, CASES[case]), run(head, CASES[case]))
            print(f"{case:10s} {'identical' if not lines else 'DIFFERENT'}")
            for line in lines:
                print(f"{'':10s} {line}")


if __name__ == "__main__":
    main()
