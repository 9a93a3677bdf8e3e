"""Rank-aware side effects: per-rank seeds, rank-0 writes, thread settings restored."""

from __future__ import annotations

import pytest
import torch

from ppokit.runtime import SEED_STRIDE, Process, torch_threads


def test_rank_zero_keeps_the_seed_and_writes_others_do_neither() -> None:
    assert Process().seed(7) == 7 and Process().writes
    assert Process(2, 4).seed(7) == 7 + 2 * SEED_STRIDE and not Process(2, 4).writes
    assert len({Process(r, 8).seed(1) for r in range(8)}) == 8


@pytest.mark.parametrize(("rank", "size"), [(-1, 2), (2, 2), (0, 0)])
def test_impossible_ranks_are_refused(rank: int, size: int) -> None:
    with pytest.raises(ValueError, match="rank"):
        Process(rank, size)


def test_torch_threads_are_set_inside_and_restored_after() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: leave torch's setting alone
        assert torch.get_num_threads() == before
