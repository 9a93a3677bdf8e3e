"""A data-parallel language-model run for the tests, started by torchrun (not a test module):

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/integration/lm_dist_train.py \\
        RUN_DIR [--stop-after N] [--resume] [--set KEY=VALUE ...]

Each rank joins the process group, trains the tests' tiny language-model config (with the
overrides given, values as JSON) or resumes RUN_DIR, and leaves the group tidily.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.integration

from ppokit import parallel
from ppokit.lm.config import LMConfig
from ppokit.lm.trainer import train
from tests.integration.dist_train import helper_args

TINY = {"steps": 4, "sft_steps": 2, "prompts_per_step": 4, "group_size": 4, "minibatch_size": 8, "eval_prompts": 8,
        "width": 32, "save_every": 3}  # fmt: skip


def main() -> None:
    args = helper_args()
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
