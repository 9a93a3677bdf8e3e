"""What a process pays before its first compiled step, with a warm cache: dynamo traces the
step again and loads the cached graph (``benchmarks/precompile.py`` measures torch's precompile,
which skips the tracing).

    .venv/bin/python benchmarks/warm_start.py warm      # twice: the first call fills the cache
    .venv/bin/python benchmarks/warm_start.py import    # importing inductor alone

CartPole's preset network, a 256-row minibatch (``fused_step._setup``), one torch thread, the
compile cache in ``/tmp/ppokit-warm-start``. Printed: the seconds from the optimizer's creation
(which already imports ``torch._dynamo``) to the end of the first step.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "warm"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = "/tmp/ppokit-warm-start"
    import torch
    from fused_step import _setup

    from ppokit.classic.fused import FusedStep
    from ppokit.core.optim import FlatAdam

    torch.set_num_threads(1)
    base, mb, algo, coefs, loss_fn = _setup("CartPole-v1", 256)
    policy = copy.deepcopy(base)
    optimizer = FlatAdam(policy, algo.learning_rate, algo.adam_eps)
    start = time.perf_counter()
    index = torch.randperm(256)
    if mode == "import":
        import torch._inductor.compile_fx

        print(f"importing inductor: {time.perf_counter() - start:.2f} s")
        return
    step = FusedStep(policy, optimizer, loss_fn, compile=mode == "warm")
    if mode == "warm":
        step(mb, index, coefs, algo.max_grad_norm)
        print(f"warm first step: {time.perf_counter() - start:.2f} s")
        return
    raise SystemExit(f"mode: {mode}; allowed: warm, import")


if __name__ == "__main__":
    main()
