"""A data-parallel training run for the tests, started by torchrun (not a test module):

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/integration/dist_train.py \\
        RUN_DIR [--stop-after N] [--resume] [--set KEY=VALUE ...]

Each rank joins the process group, trains the tests' tiny CartPole config (with the overrides
given) or resumes RUN_DIR, and leaves the group tidily.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.conftest

import ppokit
from ppokit import parallel
from ppokit.config import parse_value, resolve
from tests.conftest import tiny_config


def helper_args() -> argparse.Namespace:
    """RUN_DIR [--stop-after N] [--resume] [--set KEY=VALUE ...], as both trainers' helpers take them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], dest="overrides", metavar="KEY=VALUE")
    return parser.parse_args()


def main() -> None:
    args = helper_args()
    comm = parallel.init("cpu", timeout_s=60)
    try:
        if args.resume:
            ppokit.train(resume=args.run_dir, stop_after=args.stop_after, comm=comm)
        else:
            values = {resolve(k): parse_value(k, v) for k, v in (o.split("=", 1) for o in args.overrides)}
            config = tiny_config(args.run_dir, **{k.rsplit(".", 1)[-1]: v for k, v in values.items()})
            ppokit.train(config, stop_after=args.stop_after, comm=comm)
    finally:
        parallel.shutdown()
    parallel.exit_process(0)  # as ppokit's command line does: no interpreter teardown after the run


if __name__ == "__main__":
    main()
