"""The whole minibatch step as one pure function, compiled as one graph (``RunConfig.compile``).

A minibatch step of the small networks PPO trains on a CPU costs per-op overhead, not
arithmetic: the eager step (the loss's forward, autograd's backward, clipping and Adam) is
several hundred small ATen calls. Here the step is one pure function of tensors
(``FusedStep._pure``),

    (flat parameters, Adam's moments and step, minibatch, coefficients)
        -> (new flat parameters, new moments and step, metrics with the gradient norm)

the gradient taken with ``torch.func.grad`` of the loss over the policy's parameters laid out
in one flat tensor (``FlatAdam``'s), clipped by its global norm and stepped with Adam's
update written out (``core.optim.adam_update``), so that ``torch.compile(fullgraph=True)``
turns forward, backward, clipping and Adam into one compiled graph, as a jitted JAX update is
(PureJaxRL). The eager path (``core.update.run_epochs`` with ``FlatAdam``) stays the reference:
tests check this step against it to float tolerance, and the state it steps is ``FlatAdam``'s
own (its parameters, ``exp_avg``, ``exp_avg_sq`` and ``step``), so checkpoints are the same
either way and a run may resume with or without compiling.

What each call costs beside the graph is kept small: the graph gathers the minibatch's rows
from the update's batch itself, writes the new state over the old as its last ops, and
returns the metrics stacked in one vector (``core.metrics.Stacked``), so a step is one call
and no other op (10-14% less time per update than slicing the minibatch outside, copying the
state back and stacking the metrics after the call: ``benchmarks/fused_update.py``).

The coefficients that change between updates (learning rate, entropy weight, clip range, the
KL coefficient) enter as 0-d tensors: as Python floats each new value would compile a new
graph.

Compiled graphs persist across processes in torch's on-disk caches (``compile_cache_dir``):
the first process on a machine pays the compile, later ones load it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.stateless import _reparametrize_module

from ppokit.classic.batch import Batch
from ppokit.classic.objective import MinibatchLoss
from ppokit.classic.policy import ActorCritic
from ppokit.core.losses import Coefs
from ppokit.core.metrics import Stacked
from ppokit.core.optim import FlatAdam, adam_update, clipped

CACHE_ENV = "PPOKIT_COMPILE_CACHE"


def compile_cache_dir() -> Path:
    """Where compiled graphs persist: ``$PPOKIT_COMPILE_CACHE``, else ``~/.cache/ppokit/compile``
    (torch's inductor cache, ``TORCHINDUCTOR_CACHE_DIR``, unless the user set that)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "ppokit" / "compile"))


def use_compile_cache() -> Path:
    """Point torch's compile caches at ``compile_cache_dir`` (before the first compile), unless
    the user set ``TORCHINDUCTOR_CACHE_DIR``. Torch writes its own default (a folder in the
    temporary directory) into that variable the first time it asks for its cache, which may be
    before this call (importing ``torch._dynamo``, as the first optimizer does): that default
    is replaced, a folder the user chose is kept."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or Path(current).resolve() == Path(default_cache_dir()).resolve():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(compile_cache_dir())
    folder = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot build a graph for ``device`` here (None when it can): on a
    CPU, inductor writes C++ and needs a C++ compiler; on a GPU, it writes Triton kernels."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "torch.compile on cuda needs Triton, which is not installed"
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as e:  # inductor's InvalidCxxCompiler, or an error running the compiler's probe
        return f"torch.compile on the CPU needs a C++ compiler ($CXX, g++ or clang++): {str(e).splitlines()[0]}"
    return None


StepFn = Callable[..., tuple[tuple[str, ...], Tensor]]


class FusedStep:
    """The minibatch step of ``policy`` with ``optimizer``'s Adam, as one function of tensors;
    compiled as one graph with ``compile``. Call it with the update's batch, the indices of the
    minibatch's rows, the update's coefficients and the clipping norm: it gathers the rows,
    steps ``optimizer``'s state in place and returns the step's metrics with ``grad_norm``,
    stacked (``core.metrics.Stacked``), as ``run_epochs`` takes them."""

    def __init__(self, policy: ActorCritic, optimizer: FlatAdam, loss_fn: MinibatchLoss, compile: bool = True) -> None:
        names = {id(p): name for name, p in policy.named_parameters()}
        self.names = [names[id(p)] for p in optimizer.params]  # the flat tensor's order
        self.shapes = [p.shape for p in optimizer.params]
        self.sizes = [p.numel() for p in optimizer.params]
        trainable = set(self.names)
        self.fixed = {n: t for n, t in [*policy.named_parameters(), *policy.named_buffers()] if n not in trainable}
        self.policy, self.optimizer, self.loss_fn = policy, optimizer, loss_fn
        if compile:
            use_compile_cache()
        self.fn: StepFn = torch.compile(self._step, fullgraph=True) if compile else self._step
        self._scalars: tuple[tuple[float, ...], list[Tensor]] | None = None

    def __call__(self, batch: Batch, index: Tensor, coefs: Coefs, max_norm: float) -> Stacked:
        adam, flat = self.optimizer, self.optimizer.flat
        group = adam.param_groups[0]
        state = _adam_state(adam)
        values = (group["lr"], coefs.ent, coefs.clip_low, coefs.clip_high, coefs.kl)
        if self._scalars is None or self._scalars[0] != values:  # once per update: they change between updates
            self._scalars = (values, [torch.tensor(x, dtype=flat.dtype) for x in values])
        scalars = self._scalars[1]
        hyper = (group["betas"][0], group["betas"][1], group["eps"], max_norm, coefs.ref_kl, coefs.dual_clip)
        # flat.detach(): the step writes the parameters (and Adam's state) in place.
        names, vector = self.fn(flat.detach(), state["exp_avg"], state["exp_avg_sq"], state["step"], batch, index,
                                *scalars, *hyper)  # fmt: skip
        return Stacked(names, vector)

    def _step(
        self, flat: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: Tensor, batch: Batch, index: Tensor,
        *coefficients: Any,
    ) -> tuple[tuple[str, ...], Tensor]:  # fmt: skip
        """Gather the minibatch, take the pure step, write its new state over the old (in place:
        inside a compiled graph the writes are its last ops, no copies after the call)."""
        *new, names, metrics = self._pure(flat, exp_avg, exp_avg_sq, step, batch.select(index), *coefficients)
        for old, value in zip((flat, exp_avg, exp_avg_sq, step), new, strict=True):
            old.copy_(value)
        return names, metrics

    def _pure(
        self, flat: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: Tensor, mb: Batch, lr: Tensor, ent: Tensor,
        clip_low: Tensor, clip_high: Tensor, kl: Tensor, beta1: float, beta2: float, eps: float, max_norm: float,
        ref_kl: float, dual_clip: float | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[str, ...], Tensor]:  # fmt: skip
        """The step as a pure function: (parameters, Adam's moments and step, minibatch,
        coefficients) -> (new parameters, moments and step, the metrics' names, their values)."""
        coefs = Coefs(ent, clip_low, clip_high, kl, ref_kl, dual_clip)  # type: ignore[arg-type]  # 0-d tensors
        grad, metrics = torch.func.grad(self._loss, has_aux=True)(flat, mb, coefs)
        grad, norm = clipped(grad, max_norm)
        new, exp_avg, exp_avg_sq, step = adam_update(flat, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
        stacked = Stacked.of(metrics | {"grad_norm": norm})
        return new, exp_avg, exp_avg_sq, step, stacked.names, stacked.vector

    def _loss(self, flat: Tensor, mb: Batch, coefs: Coefs) -> tuple[Tensor, dict[str, Tensor]]:
        """The eager loss, with the policy's parameters views of ``flat``."""
        views = {n: t.view(s) for n, t, s in zip(self.names, torch.split(flat, self.sizes), self.shapes, strict=True)}
        with _reparametrize_module(self.policy, views | self.fixed):
            loss, metrics = self.loss_fn(self.policy, mb, coefs)
        return loss, {k: v.detach() for k, v in metrics.items()}


def _adam_state(adam: FlatAdam) -> dict[str, Any]:
    """torch Adam's state of the flat parameter (created as its first step would: zero moments)."""
    state: dict[str, Any] = adam.adam.state[adam.flat]
    if not state:
        state["step"] = torch.zeros((), dtype=torch.float32)
        state["exp_avg"] = torch.zeros_like(adam.flat, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(adam.flat, memory_format=torch.preserve_format)
    return state
