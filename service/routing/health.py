"""Per-endpoint health: a circuit breaker, and moving averages for `sort`.

What the breaker counts follows Envoy's outlier detection (consecutive failures across
requests): the engine records one verdict per request and endpoint, however many
attempts the request made there, so a single request that exhausts its retries
against an overloaded upstream is one failure, not three. The breaker opens after
`failures` consecutive failed requests, or when the error rate of the requests of the
last `window` seconds reaches `error_rate` (once `min_calls` were seen). After
`cooldown` seconds it lets one probe through (half-open): success closes it, failure
opens it again, and a probe that ends with no verdict (the client's deadline, a
cancelled call) gives the probe back, so that the next request probes instead.
Latency (time to first token) and throughput (tokens per second) are exponential
moving averages of successful calls.

Never ejecting a model's last endpoints (Envoy's panic routing) is the engine's part:
it skips open endpoints only while the request has somewhere else to go.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int = 3
    error_rate: float = 0.5
    window: float = 60.0
    min_calls: int = 10
    cooldown: float = 30.0


class Pass(enum.Enum):
    """What the breaker lets a request do with an endpoint."""

    CLOSED = "closed"  # go ahead
    PROBE = "probe"  # go ahead as the half-open probe: a verdict or `release` must follow
    REFUSED = "refused"  # open: skip it


@dataclass(slots=True)
class EndpointHealth:
    settings: BreakerSettings
    consecutive_failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    outcomes: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=200))
    latency_ms: float | None = None
    throughput: float | None = None

    def is_open(self, now: float) -> bool:
        """Whether a request would be refused now (nothing is claimed)."""
        if self.opened_at is None:
            return False
        return self.probing or now - self.opened_at < self.settings.cooldown

    def admit(self, now: float) -> Pass:
        """Let a request through, claiming the probe when half-open."""
        if self.opened_at is None:
            return Pass.CLOSED
        if self.is_open(now):
            return Pass.REFUSED
        self.probing = True
        return Pass.PROBE

    def release(self) -> None:
        """The probe ended without a verdict: the next request may probe."""
        self.probing = False

    def retry_after(self, now: float) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.settings.cooldown - (now - self.opened_at))

    def _error_rate(self, now: float) -> float | None:
        horizon = now - self.settings.window
        while self.outcomes and self.outcomes[0][0] < horizon:
            self.outcomes.popleft()
        if len(self.outcomes) < self.settings.min_calls:
            return None
        return sum(1 for _, ok in self.outcomes if not ok) / len(self.outcomes)

    def success(self, now: float, latency_ms: float | None = None) -> None:
        self.outcomes.append((now, True))
        self.consecutive_failures = 0
        self.opened_at = None
        self.probing = False
        if latency_ms is not None:
            self.latency_ms = _ema(self.latency_ms, latency_ms)

    def measured(self, throughput: float) -> None:
        """A finished call's tokens per second."""
        self.throughput = _ema(self.throughput, throughput)

    def failure(self, now: float) -> bool:
        """Record a failed request; True when this failure opened the breaker."""
        self.outcomes.append((now, False))
        self.consecutive_failures += 1
        was_open = self.opened_at is not None and not self.probing
        rate = self._error_rate(now)
        if (
            self.probing
            or self.consecutive_failures >= self.settings.failures
            or (rate is not None and rate >= self.settings.error_rate)
        ):
            self.opened_at = now
            self.probing = False
            return not was_open
        return False


def _ema(previous: float | None, value: float, alpha: float = 0.3) -> float:
    return value if previous is None else previous + alpha * (value - previous)


class HealthBoard:
    """Health of every endpoint, created on first sight."""

    def __init__(self, settings: BreakerSettings) -> None:
        self._settings = settings
        self._endpoints: dict[str, EndpointHealth] = {}

    def get(self, key: str) -> EndpointHealth:
        health = self._endpoints.get(key)
        if health is None:
            health = self._endpoints[key] = EndpointHealth(self._settings)
        return health

    def reset(self) -> None:
        """Forget every endpoint's history (close all breakers)."""
        self._endpoints.clear()

    @staticmethod
    def now() -> float:
        return time.monotonic()
