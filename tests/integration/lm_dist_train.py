"""A data-parallel language-model run for the tests, started by torchrun (not a test module):

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/integration/lm_dist_train.py \\
        RUN_DIR [--stop-after N] [--resume] [--set KEY=VALUE ...]

Each rank joins the process group, trains the tests' tiny language-model config (with the
overrides given, values as JSON) or resumes RUN_DIR, and leaves the group tidily.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ppokit import parallel
from ppokit.lm.config import LMConfig
from ppokit.lm.trainer import train

TINY = {"steps": 4, "sft_steps": 2, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 8, "eval_prompts": 8,
        "width": 32, "save_every": 3}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    comm = parallel.init("cpu", timeout_s=60)
    try:
        if args.resume:
            train(resume=args.run_dir, stop_after=args.stop_after, comm=comm)
        else:
            values = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.overrides)}
            config = LMConfig(run_dir=str(args.run_dir), **(TINY | values))
            train(config, stop_after=args.stop_after, comm=comm)
    finally:
        parallel.shutdown()
    parallel.exit_process(0)  # as ppokit's command line does: no interpreter teardown after the run


if __name__ == "__main__":
    main()
