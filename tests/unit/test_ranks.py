"""What the classic trainer does differently with several ranks (``ppokit.classic.ranks``),
without processes: the run's length, a checkpoint's parts per rank, shared episodes."""

from __future__ import annotations

from typing import Any

import pytest

from ppokit.classic import ranks
from ppokit.classic.rollout import Episodes
from ppokit.errors import CheckpointError, ConfigError
from ppokit.parallel import Solo, rank_share
from ppokit.runtime import Process
from tests.conftest import tiny_config


class TwoRanks(Solo):
    """The gather of two ranks, the other rank's object given: enough for the functions here."""

    def __init__(self, other: Any) -> None:
        super().__init__(Process(0, 2))
        self.other = other

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj, self.other]


def test_ranks_share_total_steps_and_one_update_must_fit(tmp_path: Any) -> None:
    config = tiny_config(tmp_path / "run")  # 384 steps, 64 per rank and update
    assert [ranks.num_updates(config, n) for n in (1, 2, 3, 6)] == [6, 3, 2, 1]
    ranks.check_world_size(config, 6)
    with pytest.raises(ConfigError, match=r"nproc: 7 processes take 448 env steps per update \(64 each\), more "
                                          r"than total_steps \(384\); allowed: at most 6"):  # fmt: skip
        ranks.check_world_size(config, 7)


def test_evaluation_episodes_are_dealt_out_round_robin() -> None:
    assert [rank_share(20, Process(r, 3)) for r in range(3)] == [7, 7, 6]
    assert [rank_share(1, Process(r, 2)) for r in range(2)] == [1, 0]


def test_shared_episodes_are_the_union_and_sum_the_steps() -> None:
    mine = Episodes([1.0, 2.0], [10, 20], {"x": 3.0}, {"x": 2}, env_steps=64)
    other = Episodes([5.0], [7], {"x": 1.0}, {"x": 1}, env_steps=64)
    shared = ranks.shared_episodes(TwoRanks(other), mine)
    assert (shared.returns, shared.lengths, shared.env_steps) == ([1.0, 2.0, 5.0], [10, 20, 7], 128)
    assert (shared.info_sums, shared.info_counts) == ({"x": 4.0}, {"x": 3})
    assert ranks.shared_episodes(Solo(), mine) is mine


def _saved(parts: Any) -> dict[str, Any]:
    state = {"policy": "shared", "rollout": "rank0", "rng": "rank0"}
    return {"state": state, "env_state": "env0", "ranks": parts}


def test_each_rank_resumes_its_own_part_and_another_world_size_is_refused() -> None:
    parts = [{"rollout": f"r{r}", "rng": f"g{r}", "env_state": f"e{r}"} for r in range(2)]
    mine = ranks.for_rank(_saved(parts), 1, 2)
    assert mine["state"] == {"policy": "shared", "rollout": "r1", "rng": "g1"} and mine["env_state"] == "e1"
    with pytest.raises(CheckpointError, match=r"written by 2 process\(es\), resumed with 3; resume with --nproc 2"):
        ranks.for_rank(_saved(parts), 0, 3)
    single = {"state": {}, "env_state": None}
    assert ranks.for_rank(single, 0, 1) is single
    with pytest.raises(CheckpointError, match=r"written by 1 process\(es\), resumed with 2"):
        ranks.for_rank(single, 0, 2)
    with pytest.raises(CheckpointError, match=r"ranks\[1\] is not a rank's part"):
        ranks.for_rank(_saved([parts[0], {"rollout": 1}]), 1, 2)
    with pytest.raises(CheckpointError, match="ranks is str; expected a list of each rank's part"):
        ranks.for_rank(_saved("damaged"), 0, 2)
