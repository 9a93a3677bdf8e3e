"""The job runner: a job that fails does not stop the others, and its one-line error reaches
the parent whole (a ConfigError raised in a spawned worker)."""

from __future__ import annotations

import pytest

from ppokit.analysis.jobs import run_jobs
from ppokit.errors import ConfigError


def square_or_refuse(n: int) -> int:
    if n == 2:
        raise ConfigError("algo.learning_rate", "got 'x' (str), expected a number")
    return n * n


def test_a_failing_job_lets_the_others_finish_and_arrives_as_its_own_error() -> None:
    seen: list[int] = []
    with pytest.raises(ConfigError) as info:
        run_jobs([1, 2, 3, 4], 2, square_or_refuse, on_result=seen.append)
    assert sorted(seen) == [1, 9, 16]  # every other job ran to its end and was reported
    assert info.value.field == "algo.learning_rate" and str(info.value).endswith("expected a number")
