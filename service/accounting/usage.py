"""Usage aggregates, whatever the store: what the console's reads return.

The store's own module (usage_sqlite.py, service/store/pg_usage.py) sums the ledger in
SQL; what it hands back is small (a point per bucket and group), and is shaped here.
Latency percentiles cannot be summed, so the stores keep a latency histogram with
LATENCY_BINS doubling bins (up to 8 ms, 16 ms, ... 64 s, then the rest) and p50/p95 are
read off a summed histogram by `percentile`, accurate to the bin's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

LATENCY_BINS = 14
# Upper bound of bin i in ms: 8 * 2**i; the last bin is unbounded.
BIN_BOUNDS: tuple[float, ...] = tuple(8.0 * 2**i for i in range(LATENCY_BINS - 1))


def latency_bin(ms: float) -> int:
    """The histogram bin of a latency: 0 up to 8 ms, then one bin per doubling."""
    if ms <= BIN_BOUNDS[0]:
        return 0
    return min(int(ms / 8.0 - 1e-9).bit_length(), LATENCY_BINS - 1)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, interpolated inside its bin."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            low = 0.0 if i == 0 else BIN_BOUNDS[i - 1]
            high = BIN_BOUNDS[i] if i < len(BIN_BOUNDS) else low * 2
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return BIN_BOUNDS[-1] * 2


@dataclass(slots=True)
class Point:
    """One bucket of one series."""

    start: float
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BINS)

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latency, 0.5)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latency, 0.95)


GROUPS = {"": "''", "model": "model", "provider": "provider", "key": "key_id"}


@dataclass(frozen=True, slots=True)
class EndpointUsage:
    model: str
    provider: str
    requests: int
    errors: int
    completion_tokens: int
    generation_ms: float
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class GenerationFilter:
    key_id: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None  # "ok", "error" (anything but ok) or one reason
    since: float | None = None
    until: float | None = None  # exclusive: the next page's cursor
    limit: int = 50

    def where(self, mark: str) -> tuple[str, list[object]]:
        """The filter as SQL (`WHERE ...`, or "" when it filters nothing) and its
        arguments, with `mark` as the driver's placeholder (`?` or `%s`)."""
        where: list[str] = []
        args: list[object] = []
        for column, value in (
            ("key_id", self.key_id),
            ("model", self.model),
            ("provider", self.provider),
        ):
            if value is not None:
                where.append(f"{column} = {mark}")
                args.append(value)
        if self.status == "error":
            where.append("status <> 'ok'")
        elif self.status is not None:
            where.append(f"status = {mark}")
            args.append(self.status)
        if self.since is not None:
            where.append(f"created_at >= {mark}")
            args.append(self.since)
        if self.until is not None:
            where.append(f"created_at < {mark}")
            args.append(self.until)
        return ("WHERE " + " AND ".join(where) if where else ""), args


GROUP_BY = ("", "model", "provider", "key")
# The console's ranges: (span, bucket) in seconds. Buckets are whole hours (the rollup's
# grain), aligned on UTC.
RANGES = {"24h": (86_400, 3_600), "7d": (7 * 86_400, 6 * 3_600), "30d": (30 * 86_400, 86_400)}


def merge(points: Sequence[Point], start: float = 0.0) -> Point:
    """The sum of points (their histograms too)."""
    total = Point(start)
    for p in points:
        total.requests += p.requests
        total.errors += p.errors
        total.prompt_tokens += p.prompt_tokens
        total.completion_tokens += p.completion_tokens
        total.cost += p.cost
        total.latency = [a + b for a, b in zip(total.latency, p.latency, strict=True)]
    return total
