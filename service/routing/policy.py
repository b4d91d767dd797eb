"""Retry policy: jittered exponential backoff, honouring an upstream's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from service.routing.health import BreakerSettings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 2  # further attempts on the same endpoint after a retryable failure
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    retry_after_cap: float = 10.0  # a longer Retry-After sends us to the next endpoint

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds to wait before retry number `attempt + 1`; None: do not retry here."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.retry_after_cap else None
        # "Full jitter": spreads the retries of many clients hit by the same outage.
        return rng.uniform(0.0, min(self.backoff_max, self.backoff_base * 2**attempt))


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
