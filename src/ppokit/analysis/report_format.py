"""How numbers read in a report's tables, the same in every section.

Across seeds a value is a 95% percentile-bootstrap confidence interval (``ppokit.analysis.stats``;
Agarwal et al. 2021), never a bare mean +- std; a missing or non-finite value reads ``n/a``.
"""

from __future__ import annotations

import math

import numpy as np

from ppokit.analysis import stats


def num(x: float | None, digits: int = 1, significant: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if significant else f"{x:,.{digits}f}"


def ci(e: stats.Estimate, digits: int = 1, significant: bool = False) -> str:
    def n(x: float) -> str:
        return num(x, digits, significant)

    return f"{n(e.point)} [{n(e.low)}, {n(e.high)}]"


def spread(values: list[float], kind: str, significant: int | None = None) -> str:
    """One run: its value; an experiment: mean [95% CI] over seeds. ``significant``: digits."""
    finite = [v for v in values if math.isfinite(v)]
    digits, sig = (significant, True) if significant is not None else (1, False)
    if not finite:
        return "n/a"
    if kind == "run":
        return num(finite[0], digits, sig)
    return ci(stats.bootstrap_ci(np.asarray(finite), stats.mean), digits, sig)
