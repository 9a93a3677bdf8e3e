"""Two commits of ppokit side by side: git worktrees, and a job run under one tree's ``src``.

Shared by ``commits.py`` (steps/s) and ``same_results.py`` (logged metrics). Each job is a
fresh process with the tree's ``src`` first on ``PYTHONPATH``; it prints one JSON line last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def two_trees(base: str, head: str | None) -> Iterator[tuple[Path, Path]]:
    """``(base src, head src)``: BASE checked out in a temporary worktree, HEAD too if given
    (else this working tree); the worktrees are removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        trees = [_worktree(base, Path(tmp) / "base")]
        if head:
            trees.append(_worktree(head, Path(tmp) / "head"))
        try:
            yield trees[0] / "src", (trees[1] if head else ROOT) / "src"
        finally:
            for tree in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def _worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), rev], check=True)
    return where


def run_job(src: Path, script: str, values: dict[str, Any]) -> dict[str, Any]:
    """Run ``script`` (Python source reading ``json.loads(sys.argv[1])``) under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", script, json.dumps(values)], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
