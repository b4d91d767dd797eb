"""Latency summaries, computed one way for every scenario, direct and through the gateway.

Percentiles interpolate linearly between closest ranks (numpy's default), on samples in
seconds; summaries are reported in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already-sorted values."""
    if not ordered:
        raise ValueError("no samples")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Iterable[float]) -> Summary | None:
    """Summary of samples given in seconds; None when there are none."""
    ordered = sorted(samples)
    if not ordered:
        return None
    ms = 1000.0
    return Summary(
        count=len(ordered),
        p50_ms=percentile(ordered, 50) * ms,
        p90_ms=percentile(ordered, 90) * ms,
        p99_ms=percentile(ordered, 99) * ms,
        max_ms=ordered[-1] * ms,
        mean_ms=sum(ordered) / len(ordered) * ms,
    )
