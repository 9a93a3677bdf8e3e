"""Running statistics: Chan et al.'s merge, the normalizer module, and the host copy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ppokit.core.normalize import MeanVar, RunningNorm, chan_merge, merge_all


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _assert_same_stats(a: MeanVar, b: MeanVar, rtol: float = 0.0) -> None:
    np.testing.assert_allclose(a.mean, b.mean, rtol=rtol, atol=0.0)
    np.testing.assert_allclose(a.var, b.var, rtol=rtol, atol=0.0)
    assert a.count == b.count


# --- MeanVar.merge ---------------------------------------------------------------------------


def test_merge_of_two_halves_by_hand() -> None:
    # [1, 3]: mean 2, var 1; [5, 7, 9]: mean 7, var 8/3; [1, 3, 5, 7, 9]: mean 5, var 40/5 = 8.
    a = MeanVar.of(np.array([1.0, 3.0]), ())
    b = MeanVar.of(np.array([5.0, 7.0, 9.0]), ())
    assert (float(a.mean), float(a.var), a.count) == (2.0, 1.0, 2.0)
    assert float(b.mean) == 7.0 and float(b.var) == pytest.approx(8.0 / 3.0) and b.count == 3.0
    # w = 3/5, delta = 5: mean = 2 + 5 * 0.6 = 5; var = 1 * 0.4 + 8/3 * 0.6 + 25 * 0.24 = 8.
    merged = a.merge(b)
    assert float(merged.mean) == pytest.approx(5.0, abs=1e-15)
    assert float(merged.var) == pytest.approx(8.0, abs=1e-14)
    assert merged.count == 5.0
    # The order of the two sides does not matter (up to rounding).
    swapped = b.merge(a)
    _assert_same_stats(swapped, merged, rtol=1e-15)


def test_since_undoes_a_merge_by_hand() -> None:
    # [1, 3, 5, 7, 9] (mean 5, var 8) since [1, 3] (mean 2, var 1) is [5, 7, 9]: mean 7, var 8/3.
    whole, first = MeanVar.of(np.array([1.0, 3.0, 5.0, 7.0, 9.0]), ()), MeanVar.of(np.array([1.0, 3.0]), ())
    rest = whole.since(first)
    assert rest.count == 3.0 and float(rest.mean) == pytest.approx(7.0) and float(rest.var) == pytest.approx(8 / 3)
    assert whole.since(whole).count == 0.0  # nothing new


def test_since_of_several_processes_merges_back_to_the_union() -> None:
    # Two processes start from one statistic and each update it with their own steps: the start
    # merged with what each saw since is the statistic of everything (the union of the data).
    gen = np.random.default_rng(3)
    start_data, a_data, b_data = gen.normal(2, 3, (50, 4)), gen.normal(-1, 1, (30, 4)), gen.normal(5, 2, (70, 4))
    start = MeanVar.of(start_data, (4,))
    a, b = MeanVar(start.mean, start.var, start.count), MeanVar(start.mean, start.var, start.count)
    for row in a_data:
        a.update(row[None])
    for row in b_data:
        b.update(row[None])
    merged = merge_all([start, a.since(start), b.since(start)], (4,))
    _assert_same_stats(merged, MeanVar.of(np.concatenate([start_data, a_data, b_data]), (4,)), rtol=1e-10)


def test_chan_merge_formula_by_hand() -> None:
    # (mean 2, var 1, n 2) and (mean 7, var 8/3, n 3): the [1, 3] + [5, 7, 9] of the test above.
    mean, var, count = chan_merge(np.array(2.0), np.array(1.0), 2.0, np.array(7.0), np.array(8.0 / 3.0), 3.0)
    assert float(mean) == pytest.approx(5.0, abs=1e-15)
    assert float(var) == pytest.approx(8.0, abs=1e-14)
    assert count == 5.0


def test_merge_per_feature_by_hand() -> None:
    # Feature 0: [0, 2] + [4] -> [0, 2, 4]: mean 2, var 8/3; feature 1: [10, 10] + [10]: mean 10, var 0.
    a = MeanVar.of(np.array([[0.0, 10.0], [2.0, 10.0]]), (2,))
    b = MeanVar.of(np.array([[4.0, 10.0]]), (2,))
    merged = a.merge(b)
    np.testing.assert_allclose(merged.mean, [2.0, 10.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(merged.var, [8.0 / 3.0, 0.0], rtol=0, atol=1e-15)
    assert merged.count == 3.0


def test_merge_does_not_modify_its_inputs() -> None:
    a = MeanVar.of(np.array([1.0, 3.0]), ())
    b = MeanVar.of(np.array([5.0]), ())
    a.merge(b)
    assert (float(a.mean), float(a.var), a.count) == (2.0, 1.0, 2.0)
    assert (float(b.mean), float(b.var), b.count) == (5.0, 0.0, 1.0)


@pytest.mark.parametrize("split", [1, 37, 500, 999])
def test_merge_of_random_halves_equals_the_whole(split: int) -> None:
    rng = np.random.default_rng(123)
    data = rng.normal(size=(1000, 3)) * [1.0, 50.0, 1e-3] + [0.0, -20.0, 7.0]
    whole = MeanVar.of(data, (3,))
    merged = MeanVar.of(data[:split], (3,)).merge(MeanVar.of(data[split:], (3,)))
    np.testing.assert_allclose(merged.mean, data.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(merged.var, data.var(0), rtol=1e-10)
    _assert_same_stats(merged, whole, rtol=1e-10)


def test_merge_all_of_chunks_equals_the_whole() -> None:
    """What several processes would do: each computes the statistic of its own data, then all
    are folded together."""
    rng = np.random.default_rng(7)
    data = rng.normal(size=(4, 250, 2)) * [3.0, 0.5] + [1.0, 2.0]  # 4 "processes"
    merged = merge_all((MeanVar.of(chunk, (2,)) for chunk in data), (2,))
    _assert_same_stats(merged, MeanVar.of(data, (2,)), rtol=1e-10)
    _assert_same_stats(merge_all([], (2,)), MeanVar.empty((2,)))


def test_merge_with_empty_is_the_identity() -> None:
    stats = MeanVar.of(np.array([[1.0, -2.0], [4.0, 0.5], [-3.0, 8.0]]), (2,))
    empty = MeanVar.empty((2,))
    assert empty.count == 0.0
    _assert_same_stats(stats.merge(empty), stats)  # bit for bit
    _assert_same_stats(empty.merge(stats), stats)
    _assert_same_stats(stats.merge(MeanVar.of(np.zeros((0, 2)), (2,))), stats)
    _assert_same_stats(empty.merge(empty), empty)


def test_update_is_merge_of_the_batch_statistic() -> None:
    rng = np.random.default_rng(3)
    stats = MeanVar(np.zeros(3), np.ones(3), 1e-4)  # RunningNorm's prior
    expected = stats
    for size in (5, 1, 0, 12):
        batch = rng.normal(size=(size, 3))
        expected = expected.merge(MeanVar.of(batch, (3,)))
        stats.update(batch)
        _assert_same_stats(stats, expected)
    assert stats.count == pytest.approx(18 + 1e-4)


def test_update_by_hand_from_the_prior() -> None:
    # Prior (0, 1, 1e-4) plus [2, 4] (mean 3, var 1): w = 2 / 2.0001, delta = 3.
    stats = MeanVar(np.zeros(()), np.ones(()), 1e-4)
    stats.update(np.array([2.0, 4.0]))
    w = 2.0 / 2.0001
    assert float(stats.mean) == pytest.approx(3.0 * w, rel=1e-15)
    assert float(stats.var) == pytest.approx((1.0 - w) + w + 9.0 * w * (1.0 - w), rel=1e-14)
    assert stats.count == 2.0001


# --- RunningNorm -----------------------------------------------------------------------------


def test_running_norm_merge_stats_equals_update_with_the_data() -> None:
    rng = np.random.default_rng(5)
    batch = rng.normal(size=(9, 2)) * 4.0 + 1.0
    by_update, by_merge = RunningNorm((2,), enabled=True), RunningNorm((2,), enabled=True)
    by_update.update(torch.as_tensor(batch))
    by_merge.merge_stats(MeanVar.of(batch, (2,)))
    for key, value in by_update.state_dict().items():
        assert torch.equal(value, by_merge.state_dict()[key]), key


def test_disabled_running_norm_ignores_merged_statistics() -> None:
    norm = RunningNorm((2,), enabled=False)
    norm.merge_stats(MeanVar.of(np.ones((4, 2)) * 9.0, (2,)))
    assert torch.equal(norm.mean, torch.zeros(2, dtype=torch.float64))
    assert float(norm.count) == 1e-4


def test_running_norm_matches_numpy_over_all_batches() -> None:
    rng = np.random.default_rng(0)
    norm = RunningNorm((3,), enabled=True)
    shift, scale = np.array([5.0, -2.0, 0.5]), np.array([2.0, 0.1, 10.0])
    # Different batch sizes, one with extra leading dims [T, N, 3] as the rollout passes them.
    shapes = [(7, 3), (1, 3), (50, 3), (2, 5, 3), (13, 3)]
    seen: list[np.ndarray] = []
    for shape in shapes:
        batch = rng.normal(size=shape) * scale + shift
        norm.update(torch.as_tensor(batch, dtype=torch.float32))
        seen.append(batch.reshape(-1, 3).astype(np.float32))
        data = np.concatenate(seen).astype(np.float64)
        # The 1e-4 pseudo-count prior (mean 0, var 1) shifts things by ~1e-5 relative at most.
        np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-3, atol=1e-4)
        assert float(norm.count) == pytest.approx(len(data), abs=1e-3)
    normalized = norm(torch.as_tensor(np.concatenate(seen)))
    assert normalized.dtype == torch.float32
    np.testing.assert_allclose(normalized.mean(0).numpy(), 0.0, atol=1e-3)
    np.testing.assert_allclose(normalized.std(0, unbiased=False).numpy(), 1.0, atol=1e-3)


def test_running_norm_forward_formula_and_clip() -> None:
    norm = RunningNorm((2,), enabled=True, clip=3.0)
    norm.update(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))  # mean ~[1, 20], var ~[1, 100]
    out = norm(torch.tensor([[2.0, 0.0], [100.0, -1000.0]]))
    # (2 - 1)/1 = 1, (0 - 20)/10 = -2; then clipped to [-3, 3].
    torch.testing.assert_close(out, torch.tensor([[1.0, -2.0], [3.0, -3.0]]), rtol=0, atol=1e-3)


def test_running_norm_disabled_is_identity_and_never_updates() -> None:
    norm = RunningNorm((3,), enabled=False)
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm.update(torch.randn(20, 3) * 50 + 7)
    for key, value in norm.state_dict().items():
        assert torch.equal(value, before[key]), key
    x = torch.randn(5, 3) * 100.0  # well beyond the clip of 10
    assert torch.equal(norm(x), x)


def test_running_norm_statistics_live_in_state_dict() -> None:
    norm = RunningNorm((2,), enabled=True)
    norm.update(torch.randn(10, 2) + 3.0)
    state = norm.state_dict()
    assert set(state) == {"mean", "var", "count"}
    fresh = RunningNorm((2,), enabled=True)
    fresh.load_state_dict(state)
    x = torch.randn(4, 2)
    torch.testing.assert_close(fresh(x), norm(x))


def test_host_statistics_normalize_exactly_as_the_module() -> None:
    """The rollout normalizes with MeanVar (numpy), the update and evaluation with the module's
    forward (torch): both must give the same input, or the ratio would not start at 1."""
    rng = np.random.default_rng(1)
    norm = RunningNorm((3,), enabled=True, clip=2.0)
    stats = norm.to_host()
    for _ in range(5):
        stats.update(rng.normal(size=(4, 3)) * [3.0, 0.1, 20.0] + [1.0, -5.0, 0.0])
    norm.load_host(stats)
    x = (rng.normal(size=(16, 3)) * [3.0, 0.1, 20.0]).astype(np.float32)  # some beyond the clip
    np.testing.assert_allclose(stats.normalize(x, norm.clip), norm(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)
    assert float(norm.count) == pytest.approx(20 + 1e-4)


def test_core_normalize_imports_no_gymnasium() -> None:
    """ppokit.core is shared by every trainer (and processes that never step an env): importing
    the normalizers in a fresh interpreter must not pull in gymnasium."""
    code = (
        "import sys\n"
        "import ppokit.core.normalize\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'gymnasium'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
