"""Adam over a module's parameters laid end to end in one tensor, and gradient-norm clipping on it.

A minibatch step of a 64x64 actor-critic on a CPU is bound by per-call overhead, not by
arithmetic. Over the policy's ten-odd parameter tensors, ``zero_grad``,
``torch.nn.utils.clip_grad_norm_`` and fused ``Adam.step`` took 87, 297 and 276 us of a
3,201 us minibatch step (CartPole's networks, minibatch 256; ``benchmarks/adam_step.py``).
Here every parameter's data is a view into one flat tensor and its gradient a view into
another, so zeroing is one op, clipping two, and torch's fused Adam steps one tensor: 8, 83
and 230 us of 2,910 us in the same run.

The module keeps its parameters (same objects, names and ``state_dict``); only their storage
moves. Backward accumulates into the existing ``.grad`` views in place (autograd's
``AccumulateGrad`` does so whenever ``.grad`` is already set), which is why the gradients are
zeroed, never set to None.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def clip_grad_norm(grad: Tensor, max_norm: float) -> Tensor:
    """Scale ``grad`` in place to an L2 norm of at most ``max_norm``; return the norm before.

    The rule of ``torch.nn.utils.clip_grad_norm_``: multiply by min(1, max_norm / (norm + 1e-6))."""
    norm: Tensor = torch.linalg.vector_norm(grad)
    grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


def clipped(grad: Tensor, max_norm: float) -> tuple[Tensor, Tensor]:
    """``clip_grad_norm`` as a pure function: ``(grad scaled to a norm of at most max_norm, the
    norm before)``."""
    norm: Tensor = torch.linalg.vector_norm(grad)
    return grad * torch.clamp(max_norm / (norm + 1e-6), max=1.0), norm


def adam_update(
    param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: Tensor, lr: Tensor | float,
    beta1: float, beta2: float, eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """One Adam step (Kingma & Ba 2015, as ``torch.optim.Adam`` computes it, no weight decay)
    as a pure function: ``(param, exp_avg, exp_avg_sq, step)`` after it.

        m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2,   t = t + 1
        param = param - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)"""
    step = step + 1
    exp_avg = torch.lerp(exp_avg, grad, 1 - beta1)
    exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
    denom = exp_avg_sq.sqrt() / (1 - beta2**step).sqrt() + eps
    return param - lr / (1 - beta1**step) * exp_avg / denom, exp_avg, exp_avg_sq, step


class FlatAdam:
    """``torch.optim.Adam(fused=True)`` stepping one flat tensor that holds ``module``'s parameters.

    Build it after the module is on its device: moving the module afterwards would give its
    parameters new storage and cut them off from the flat tensor."""

    def __init__(self, module: nn.Module, lr: float, eps: float) -> None:
        params = [p for p in module.parameters() if p.requires_grad]
        if not params or len({(p.dtype, p.device) for p in params}) > 1:
            kinds = sorted({f"{p.dtype} on {p.device}" for p in params})
            raise ValueError(f"FlatAdam needs trainable parameters of one dtype and device; got {kinds or 'none'}")
        first = params[0]
        size = sum(p.numel() for p in params)
        self.flat = nn.Parameter(torch.empty(size, dtype=first.dtype, device=first.device))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        for p in params:
            n = p.numel()
            self.flat.data[offset : offset + n].copy_(p.data.reshape(-1))
            p.data = self.flat.data[offset : offset + n].view_as(p)
            p.grad = self.flat.grad[offset : offset + n].view_as(p)
            offset += n
        self.params = params
        self.adam = torch.optim.Adam([self.flat], lr=lr, eps=eps, fused=True)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.adam.param_groups

    @property
    def grad(self) -> Tensor:
        grad = self.flat.grad
        assert grad is not None  # set in __init__, zeroed in place, never dropped
        return grad

    def zero_grad(self) -> None:
        self.grad.zero_()

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        return clip_grad_norm(self.grad, max_norm)

    def step(self) -> None:
        self.adam.step()

    def is_flat(self) -> bool:
        """Whether every parameter and gradient still lives in the flat tensors (nothing replaced them)."""
        offset, size = 0, self.flat.element_size()
        for p in self.params:
            expect_data = self.flat.data_ptr() + offset * size
            expect_grad = self.grad.data_ptr() + offset * size
            if p.data_ptr() != expect_data or p.grad is None or p.grad.data_ptr() != expect_grad:
                return False
            offset += p.numel()
        return True

    def state_dict(self) -> dict[str, Any]:
        return self.adam.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Adam's state, checked first (ValueError naming what is wrong): the fused kernel does
        not check, and a moment of another shape or a NaN would abort or poison training."""
        _check_adam_state(state, self.adam.state_dict(), self.flat)
        self.adam.load_state_dict(state)


def _check_adam_state(state: Any, current: dict[str, Any], flat: Tensor) -> None:
    """ValueError unless ``state`` is Adam's state of one flat parameter like ``flat``: param
    groups of the current keys and kinds, at most one entry of finite moments of its shape."""
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise ValueError("optimizer: expected the keys state and param_groups")
    groups, entries = state["param_groups"], state["state"]
    if not isinstance(groups, list) or len(groups) != len(current["param_groups"]):
        raise ValueError("optimizer: param_groups is not one group per current group")
    essential = {"lr", "betas", "eps", "weight_decay", "params"}  # other keys come and go with torch versions
    for group, now in zip(groups, current["param_groups"], strict=True):
        if not isinstance(group, dict) or not essential <= set(group):
            raise ValueError(f"optimizer: a param group lacks one of {', '.join(sorted(essential))}")
        for key in set(group) & set(now):
            value = now[key]
            if type(group[key]) is not type(value) and not (isinstance(value, float) and isinstance(group[key], int)):
                raise ValueError(f"optimizer: param group {key} is {group[key]!r}")
    if not isinstance(entries, dict) or set(entries) - {0}:
        raise ValueError("optimizer: state is not the state of one flat parameter")
    for entry in entries.values():
        if not isinstance(entry, dict) or set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
            raise ValueError("optimizer: a state entry lacks step, exp_avg or exp_avg_sq")
        for key in ("exp_avg", "exp_avg_sq"):
            moment = entry[key]
            if not (isinstance(moment, Tensor) and moment.shape == flat.shape and moment.dtype == flat.dtype):
                raise ValueError(f"optimizer: {key} is not a tensor of the parameters' shape and dtype")
            if not bool(torch.isfinite(moment).all()) or (key == "exp_avg_sq" and bool((moment < 0).any())):
                raise ValueError(f"optimizer: {key} holds NaN, inf or (exp_avg_sq) negative values")
        step = entry["step"]
        if not (isinstance(step, Tensor) and step.numel() == 1 and bool(torch.isfinite(step).all()) and step >= 0):
            raise ValueError("optimizer: step is not a count")
