"""Run statuses of the 1-D Monte Carlo and the crossing-probability estimate with its Wilson
interval (spec Section 2.7). Pure Python, so that the jobs that combine and plot chunk results do
not import torch."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum


class Status(IntEnum):
    UNFINISHED = 0
    X_DEGENERATE = 1
    A_DEGENERATE = 2
    CROSSED = 3
    LOCALLY_CONVERGED = 4
    EARLY_STOPPED = 5


def wilson_interval(
    successes: int, total: int, z: float = 1.959963984540054
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (z = 1.96: 95 %)."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # The ends are exactly 0 and 1 when no or all trials succeed; avoid rounding residue there.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == total else min(1.0, centre + half)
    return lo, hi


def estimate_crossing_probability(
    counts: Mapping, z: float = 1.959963984540054
) -> tuple[float, float, float]:
    """p̂_cross = 1 − (#LOCALLY_CONVERGED + #EARLY_STOPPED)/#runs with its Wilson interval.

    ``counts`` maps status names (or Status members) to counts; CROSSED, UNFINISHED and the two
    degenerate statuses all count, conservatively, as possibly crossed.
    """
    norm = {
        (Status[k] if isinstance(k, str) else Status(k)): int(v)
        for k, v in counts.items()
    }
    total = sum(norm.values())
    if total == 0:
        raise ValueError("no runs in counts")
    safe = norm.get(Status.LOCALLY_CONVERGED, 0) + norm.get(Status.EARLY_STOPPED, 0)
    crossed = total - safe
    lo, hi = wilson_interval(crossed, total, z)
    return crossed / total, lo, hi
