"""The cost of one gloo all-reduce between the processes of this machine, by tensor size.

    .venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/allreduce.py

Rank 0 prints microseconds per ``all_reduce`` of 1, 10k and 100k float32s (1,000 calls after 50
warm-up ones): what data-parallel training pays per minibatch step for the flat gradient
(docs/distributed.md).
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist


def main() -> None:
    dist.init_process_group("gloo")
    for size in (1, 10_000, 100_000):
        tensor = torch.ones(size)
        for _ in range(50):
            dist.all_reduce(tensor)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(1000):
            dist.all_reduce(tensor)
        if dist.get_rank() == 0:
            print(f"all_reduce of {size:,} floats: {(time.perf_counter() - start) / 1000 * 1e6:,.0f} us", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
