"""Independent training jobs in parallel worker processes, shared by experiments and comparisons.

Workers are ``spawn``ed, not forked: a fork of a process that has used torch can hang in its
thread pools or fail on CUDA, and ``spawn`` behaves the same on every platform. Jobs finished by an earlier
call are not run again (``finished``), so running the same call again resumes the work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import TypeVar

from ppokit.errors import PPOKitError

Job = TypeVar("Job")
Result = TypeVar("Result")


def run_jobs(
    jobs: Sequence[Job],
    workers: int,
    fn: Callable[[Job], Result],
    on_result: Callable[[Result], None] | None = None,
    finished: Callable[[Job], Result | None] | None = None,
) -> list[Result]:
    """``fn(job)`` for every job not finished before, in up to ``workers`` processes.

    ``finished(job)`` (called in this process, in job order, before any job starts) returns the
    saved result of a job done by an earlier call, or None to run it; it may clear what a
    half-run job left behind. ``on_result`` sees each new result as its job ends (not the saved
    ones). Returns the saved results in job order, then the new ones in the order they ended.
    ``fn`` must be picklable (a module-level function). A job that raises does not stop the
    others: they all finish (their results reach ``on_result`` and are saved by it), then the
    first failed job's exception, in job order, is raised here whole (ppokit's errors survive
    pickling: one line); a crash that is not ppokit's own error comes first.
    """
    results: list[Result] = []
    todo: list[Job] = []
    for job in jobs:
        saved = finished(job) if finished is not None else None
        if saved is None:
            todo.append(job)
        else:
            results.append(saved)
    if not todo:
        return results
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo))), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fn, job) for job in todo]
        failed = False
        for future in as_completed(futures):
            if future.exception() is not None:
                failed = True
                continue
            result = future.result()
            results.append(result)
            if on_result is not None:
                on_result(result)
    if failed:  # the first failed job's error, in job order; a crash (not ppokit's own error) before it
        errors = [e for e in (f.exception() for f in futures) if e is not None]
        raise next((e for e in errors if not isinstance(e, PPOKitError)), errors[0])
    return results
