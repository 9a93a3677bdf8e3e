"""FlatAdam: the same steps as torch's Adam over separate parameters, with one flat tensor behind them."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppokit.classic.policy import ActorCritic
from ppokit.config import PolicyConfig
from ppokit.core.optim import FlatAdam, clip_grad_norm


def _policy(continuous: bool = True) -> ActorCritic:
    torch.manual_seed(0)
    obs = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    action = gym.spaces.Box(-1.0, 1.0, (2,), np.float32) if continuous else gym.spaces.Discrete(3)
    return ActorCritic(obs, action, PolicyConfig(hidden_sizes=(16, 16)))


def _loss(policy: ActorCritic, x: torch.Tensor) -> torch.Tensor:
    params, value = policy(x)
    return (params.pow(2).sum(-1) + (value - 1.0).pow(2)).mean()


@pytest.mark.parametrize("max_norm", [0.05, 100.0])
def test_clip_grad_norm_matches_torch(max_norm: float) -> None:
    torch.manual_seed(1)
    grads = [torch.randn(4, 3), torch.randn(7), torch.randn(2, 2)]
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    expected_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    flat = torch.cat([g.reshape(-1) for g in grads])
    norm = clip_grad_norm(flat, max_norm)
    torch.testing.assert_close(norm, expected_norm)
    torch.testing.assert_close(flat, torch.cat([p.grad.reshape(-1) for p in params]))  # type: ignore[union-attr]
    clipped = max_norm < float(expected_norm)
    assert float(flat.norm()) == pytest.approx(max_norm if clipped else float(expected_norm), rel=1e-4)


@pytest.mark.parametrize("continuous", [True, False])
def test_flat_adam_takes_the_steps_of_torch_adam(continuous: bool) -> None:
    """Same parameters after a few clipped steps as torch's Adam over the separate tensors."""
    flat_policy = _policy(continuous)
    plain_policy = copy.deepcopy(flat_policy)
    flat = FlatAdam(flat_policy, lr=1e-2, eps=1e-5)
    plain = torch.optim.Adam(plain_policy.parameters(), lr=1e-2, eps=1e-5)
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(2))
    for _ in range(5):
        flat.zero_grad()
        _loss(flat_policy, x).backward()  # type: ignore[no-untyped-call]
        flat_norm = flat.clip_grad_norm(0.5)
        flat.step()
        plain.zero_grad()
        _loss(plain_policy, x).backward()  # type: ignore[no-untyped-call]
        plain_norm = torch.nn.utils.clip_grad_norm_(plain_policy.parameters(), 0.5)
        plain.step()
        torch.testing.assert_close(flat_norm, plain_norm)
    for (name, a), b in zip(flat_policy.named_parameters(), plain_policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert flat.is_flat()


def test_parameters_and_gradients_are_views_of_the_flat_tensors() -> None:
    policy = _policy()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    opt = FlatAdam(policy, lr=1e-3, eps=1e-5)
    assert opt.is_flat()
    assert opt.flat.numel() == sum(p.numel() for p in policy.parameters())
    for k, v in policy.state_dict().items():  # the values (and names) moved unchanged
        torch.testing.assert_close(v, before[k])
    _loss(policy, torch.randn(8, 5)).backward()  # type: ignore[no-untyped-call]
    assert float(opt.grad.abs().sum()) > 0  # backward accumulated into the flat gradient
    torch.testing.assert_close(opt.grad, torch.cat([p.grad.reshape(-1) for p in policy.parameters()]))  # type: ignore[union-attr]
    # load_state_dict copies in place: the parameters stay in the flat tensor
    policy.load_state_dict(before)
    assert opt.is_flat()
    torch.testing.assert_close(opt.flat.detach(), torch.cat([v.reshape(-1) for k, v in before.items()
                                                             if k in dict(policy.named_parameters())]))  # fmt: skip


def test_zero_grad_zeroes_in_place_and_is_flat_notices_a_replaced_tensor() -> None:
    policy = _policy()
    opt = FlatAdam(policy, lr=1e-3, eps=1e-5)
    _loss(policy, torch.randn(8, 5)).backward()  # type: ignore[no-untyped-call]
    opt.zero_grad()
    assert float(opt.grad.abs().sum()) == 0.0 and opt.is_flat()
    first = next(policy.parameters())
    first.grad = None  # what optimizer.zero_grad(set_to_none=True) would do
    assert not opt.is_flat()


def test_state_dict_round_trip_resumes_the_same_steps() -> None:
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(3))
    a_policy = _policy()
    a = FlatAdam(a_policy, lr=1e-2, eps=1e-5)
    for _ in range(3):
        a.zero_grad()
        _loss(a_policy, x).backward()  # type: ignore[no-untyped-call]
        a.step()
    b_policy = _policy()
    b = FlatAdam(b_policy, lr=1e-2, eps=1e-5)
    b_policy.load_state_dict(a_policy.state_dict())
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for opt, policy in ((a, a_policy), (b, b_policy)):
        opt.zero_grad()
        _loss(policy, x).backward()  # type: ignore[no-untyped-call]
        opt.step()
    torch.testing.assert_close(a.flat.detach(), b.flat.detach(), rtol=0, atol=0)


def test_parameters_of_mixed_dtypes_or_none_are_refused() -> None:
    mixed = torch.nn.Linear(3, 2)
    mixed.bias.data = mixed.bias.data.double()
    with pytest.raises(ValueError, match="one dtype and device"):
        FlatAdam(mixed, lr=1e-3, eps=1e-5)
    with pytest.raises(ValueError, match="none"):
        FlatAdam(torch.nn.Linear(3, 2).requires_grad_(False), lr=1e-3, eps=1e-5)
