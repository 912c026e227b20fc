"""Latency metric definitions, written once and used by every runner and benchmark.

Percentiles are computed from raw samples (never from a bucketed histogram such as Locust's,
which rounds), by linear interpolation between the two nearest ranks: Hyndman and Fan's type 7,
the default of numpy and of most spreadsheets, so numbers can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

STANDARD_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``; NaN when there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Iterable[float],
              qs: Sequence[float] = STANDARD_PERCENTILES) -> dict[str, float]:
    """Count, mean, the standard percentiles and the maximum of ``samples``."""
    data = sorted(samples)
    out: dict[str, float] = {"count": float(len(data))}
    out["mean"] = sum(data) / len(data) if data else math.nan
    for q in qs:
        out[f"p{q:g}"] = percentile(data, q)
    out["max"] = data[-1] if data else math.nan
    return out
