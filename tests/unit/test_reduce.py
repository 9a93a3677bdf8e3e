"""Loss aggregation modes and masked whitening against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from ppokit.core.reduce import aggregate, constant_normalizer, masked_mean, seq_mean_token_mean, token_mean

# Two sequences: [1, 2, 3] (3 tokens) and [10, pad, pad] (1 token).
X = torch.tensor([[1.0, 2.0, 3.0], [10.0, 99.0, 99.0]])
M = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_token_mean_weighs_every_token_alike() -> None:
    # (1 + 2 + 3 + 10) / 4 = 4
    assert float(token_mean(X, M)) == pytest.approx(4.0)
    assert float(token_mean(X, M)) == float(masked_mean(X, M))


def test_seq_mean_token_mean_weighs_every_sequence_alike() -> None:
    # mean(2, 10) = 6: the one-token sequence counts as much as the three-token one
    assert float(seq_mean_token_mean(X, M)) == pytest.approx(6.0)


def test_seq_mean_token_mean_leaves_out_empty_sequences() -> None:
    mask = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert float(seq_mean_token_mean(X, mask)) == pytest.approx(2.0)
    assert float(seq_mean_token_mean(X, torch.zeros_like(M))) == 0.0


def test_constant_normalizer_divides_the_masked_sum() -> None:
    # Dr. GRPO: sum 16 over B x L_max = 2 x 3 = 6
    assert float(constant_normalizer(X, M, 6.0)) == pytest.approx(16.0 / 6.0)
    with pytest.raises(ValueError, match="must be > 0"):
        constant_normalizer(X, M, 0.0)


@pytest.mark.parametrize(("mode", "expected"), [("token-mean", 4.0), ("seq-mean-token-mean", 6.0), ("constant", 8.0)])
def test_aggregate_dispatches_by_name(mode: str, expected: float) -> None:
    assert float(aggregate(X, M, mode, constant=2.0)) == pytest.approx(expected)  # type: ignore[arg-type]  # a str of the Literal


def test_aggregate_refuses_unknown_modes_and_a_missing_constant() -> None:
    with pytest.raises(ValueError, match="allowed: token-mean"):
        aggregate(X, M, "sum")  # type: ignore[arg-type]  # the wrong value under test
    with pytest.raises(ValueError, match="needs the constant"):
        aggregate(X, M, "constant")


def test_masked_tokens_carry_no_gradient() -> None:
    x = X.clone().requires_grad_(True)
    seq_mean_token_mean(x, M).backward()  # type: ignore[no-untyped-call]  # torch stub gap
    assert x.grad is not None
    # d/dx_it = m_it / (B * tokens_i): 1/6 for the first sequence's tokens, 1/2 for the second's one
    torch.testing.assert_close(x.grad, torch.tensor([[1 / 6, 1 / 6, 1 / 6], [0.5, 0.0, 0.0]]))


def test_a_step_split_into_micro_batches_has_the_gradient_of_the_whole_step() -> None:
    """Token-mean over the whole optimizer step: each micro-batch's masked sum divided by the
    step's token count (``constant_normalizer``) accumulates to the full batch's gradient;
    each micro-batch's own mean does not (short and long completions would weigh unlike)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, generator=gen, requires_grad=True)
    features = torch.randn(8, 6, 5, generator=gen)  # 8 completions of up to 6 tokens
    lengths = torch.tensor([1, 6, 2, 5, 3, 1, 1, 2])  # 14 tokens in the first half, 7 in the second
    mask = (torch.arange(6)[None] < lengths[:, None]).float()

    def per_token(rows: slice) -> torch.Tensor:
        return (features[rows] @ w) ** 2

    (whole,) = torch.autograd.grad(token_mean(per_token(slice(0, 8)), mask), w)
    tokens = float(mask.sum())
    parts = [constant_normalizer(per_token(slice(i, i + 4)), mask[i : i + 4], tokens) for i in (0, 4)]
    (accumulated,) = torch.autograd.grad(parts[0] + parts[1], w)
    torch.testing.assert_close(accumulated, whole)
    naive = [token_mean(per_token(slice(i, i + 4)), mask[i : i + 4]) / 2 for i in (0, 4)]
    (wrong,) = torch.autograd.grad(naive[0] + naive[1], w)
    assert not torch.allclose(wrong, whole)
