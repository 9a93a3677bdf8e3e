"""Torch's precompile of the fused step: the traced function saved, then loaded in a fresh
process without tracing (``torch.compile(...).aot_compile``, ``save_compiled_function``,
``torch.compiler.load_compiled_function``; experimental in torch 2.13; ppokit does not use it).

    rm -rf /tmp/aot-cache
    .venv/bin/python benchmarks/precompile.py save    # from the repository root
    .venv/bin/python benchmarks/precompile.py load    # prints the load's and the first step's seconds

CartPole's preset network and a 256-row minibatch (``fused_step._setup``), one torch thread, the
compile cache in ``/tmp/aot-cache`` (fresh: saved over a cache the usual compile had filled, the
function did not load here). It needs the constant hyperparameters bound outside the traced
function, only portable guards kept, and the parameters' ``.grad`` views detached (the guards'
pickler cannot restore them); its first ``aot_compile`` raises a float-specialization restart
that the second has learned from. Also printed on load: microseconds per call, with and without
the guard check.
"""

# ruff: noqa
# mypy: ignore-errors
import os, sys, time, copy, io

os.environ["TORCHINDUCTOR_CACHE_DIR"] = "/tmp/aot-cache"
sys.path.insert(0, "benchmarks")
t0 = time.perf_counter()
import torch
from fused_step import _setup
from ppokit.classic.fused import FusedStep, _adam_state
from ppokit.core.optim import FlatAdam

torch.set_num_threads(1)
base, mb, algo, coefs, loss_fn = _setup("CartPole-v1", 256)
policy = copy.deepcopy(base)
opt = FlatAdam(policy, algo.learning_rate, algo.adam_eps)


def run(self, flat, m, v, s, batch, index, lr, ent, cl, ch, kl):
    return self._step(flat, m, v, s, batch, index, lr, ent, cl, ch, kl, *self.hyper)


step = FusedStep(policy, opt, loss_fn, compile=False)
state = _adam_state(opt)
group = opt.param_groups[0]
scal = [
    torch.tensor(x, dtype=torch.float32) for x in (group["lr"], coefs.ent, coefs.clip_low, coefs.clip_high, coefs.kl)
]
hyper = (group["betas"][0], group["betas"][1], group["eps"], algo.max_grad_norm, coefs.ref_kl, coefs.dual_clip)
index = torch.randperm(256)
args = (step, opt.flat.detach(), state["exp_avg"], state["exp_avg_sq"], state["step"], mb, index, *scal)
step.hyper = hyper

for p in [*policy.parameters(), opt.flat]:
    p.grad = None
t1 = time.perf_counter()
print("setup", round(t1 - t0, 2))
if sys.argv[1] == "save":
    try:
        torch.compile(
            run, fullgraph=True, dynamic=False, options={"guard_filter_fn": torch.compiler.keep_portable_guards_unsafe}
        ).aot_compile((args, {}))
    except Exception as e:
        print("first try", type(e).__name__)
    if True:
        fn = torch.compile(
            run, fullgraph=True, dynamic=False, options={"guard_filter_fn": torch.compiler.keep_portable_guards_unsafe}
        ).aot_compile((args, {}))
    print("aot compile", round(time.perf_counter() - t1, 2))
    fn.save_compiled_function("/tmp/aot-step.bin", external_data={"fused": step})
    print(fn(*args))
else:
    with open("/tmp/aot-step.bin", "rb") as f:
        fn = torch.compiler.load_compiled_function(f, external_data={"fused": step})
    t2 = time.perf_counter()
    print("load", round(t2 - t1, 2))
    out = fn(*args)
    t3 = time.perf_counter()
    print("first call", round(t3 - t2, 2), out)
    import statistics

    ts = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(200):
            fn(*args)
        ts.append((time.perf_counter() - t) / 200 * 1e6)
    print("us per call", round(statistics.median(ts)))
    fn.disable_guard_check()
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(200):
            fn(*args)
        ts.append((time.perf_counter() - t) / 200 * 1e6)
    print("us per call no guards", round(statistics.median(ts)))
