"""Per-key rate limits: requests per minute, tokens per minute, concurrent requests.

Sliding one-minute windows kept in process. Each admission checks and counts in one
synchronous step on the event loop (never read-then-write across an await). Tokens
are counted at the request's estimate and reconciled to the real usage afterwards.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from service import errors
from service.store.keys import KeyPolicy

WINDOW = 60.0


@dataclass(slots=True)
class _Window:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[list[float]] = field(default_factory=deque)  # [time, tokens]
    token_total: float = 0.0
    concurrent: int = 0

    def prune(self, now: float) -> None:
        horizon = now - WINDOW
        while self.requests and self.requests[0] <= horizon:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= horizon:
            self.token_total -= self.tokens.popleft()[1]


@dataclass(frozen=True, slots=True)
class LimitState:
    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None


UNLIMITED = LimitState()


@dataclass(slots=True)
class Admission:
    key_id: str
    entry: list[float] | None  # the token entry to reconcile (in process)
    state: LimitState = UNLIMITED  # the key's limits as this request left them
    lease: str = ""  # its concurrency lease (shared backends)
    tokens: int = 0  # the tokens counted at admission
    shared: bool = False  # counted in a shared store (else in this process)
    open: bool = True


class RateLimiter:
    def __init__(self, clock: object = time.monotonic) -> None:
        self._windows: dict[str, _Window] = {}
        self._clock = clock

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def _window(self, key_id: str) -> _Window:
        window = self._windows.get(key_id)
        if window is None:
            window = self._windows[key_id] = _Window()
        return window

    async def admit(self, key_id: str, policy: KeyPolicy, tokens: int) -> Admission:
        """Count this request in, or raise 429 with how long to wait."""
        admission = self.admit_now(key_id, policy, tokens)
        admission.state = self.state_now(key_id, policy)
        return admission

    def admit_now(self, key_id: str, policy: KeyPolicy, tokens: int) -> Admission:
        """`admit` in one synchronous step (the check and the count are never apart)."""
        now = self._now()
        window = self._window(key_id)
        window.prune(now)
        if policy.rpm is not None and len(window.requests) >= policy.rpm:
            wait = window.requests[0] + WINDOW - now
            raise self._limited(f"{policy.rpm} requests per minute", wait, key_id, policy)
        # A request that counts no token (a response-cache hit) is never refused for tokens.
        if policy.tpm is not None and tokens and window.token_total + tokens > policy.tpm:
            wait = self._token_wait(window, policy.tpm, tokens, now)
            raise self._limited(f"{policy.tpm} tokens per minute", wait, key_id, policy)
        if policy.max_concurrent is not None and window.concurrent >= policy.max_concurrent:
            raise self._limited(f"{policy.max_concurrent} concurrent requests", 1.0, key_id, policy)
        window.requests.append(now)
        entry = None
        if policy.tpm is not None:
            entry = [now, float(tokens)]
            window.tokens.append(entry)
            window.token_total += tokens
        window.concurrent += 1
        return Admission(key_id, entry)

    @staticmethod
    def _token_wait(window: _Window, tpm: int, tokens: int, now: float) -> float:
        if tokens > tpm:
            return WINDOW  # never fits; say when the window is at least empty
        total = window.token_total
        for stamp, counted in window.tokens:
            total -= counted
            if total + tokens <= tpm:
                return stamp + WINDOW - now
        return WINDOW

    def _limited(
        self, what: str, wait: float, key_id: str, policy: KeyPolicy
    ) -> errors.GatewayError:
        return limited(what, wait, self.state_now(key_id, policy))

    def finish(self, admission: Admission, tokens: int | None) -> None:
        """The request is over: free its concurrency slot, reconcile its tokens."""
        if not admission.open:
            return
        admission.open = False
        window = self._window(admission.key_id)
        window.concurrent = max(0, window.concurrent - 1)
        if admission.entry is not None and tokens is not None:
            window.token_total += tokens - admission.entry[1]
            admission.entry[1] = float(tokens)

    async def state(self, key_id: str, policy: KeyPolicy) -> LimitState:
        return self.state_now(key_id, policy)

    def state_now(self, key_id: str, policy: KeyPolicy) -> LimitState:
        if policy.rpm is None and policy.tpm is None:
            return UNLIMITED  # most keys: nothing to count or to build
        now = self._now()
        window = self._window(key_id)
        window.prune(now)
        state = LimitState()
        if policy.rpm is not None:
            oldest = window.requests[0] if window.requests else now
            state = LimitState(
                limit_requests=policy.rpm,
                remaining_requests=max(0, policy.rpm - len(window.requests)),
                reset_requests=max(0.0, oldest + WINDOW - now) if window.requests else 0.0,
            )
        if policy.tpm is not None:
            oldest = window.tokens[0][0] if window.tokens else now
            state = LimitState(
                state.limit_requests,
                state.remaining_requests,
                state.reset_requests,
                limit_tokens=policy.tpm,
                remaining_tokens=max(0, int(policy.tpm - window.token_total)),
                reset_tokens=max(0.0, oldest + WINDOW - now) if window.tokens else 0.0,
            )
        return state


def limited(what: str, wait: float, state: LimitState) -> errors.GatewayError:
    """The 429 for a limit reached: how long to wait, and the key's x-ratelimit state."""
    return errors.GatewayError(
        "RATE_LIMITED",
        f"Rate limit reached for this key ({what}); retry in {max(wait, 0):.1f} s.",
        metadata=headers_metadata(state),
        retry_after=max(0.001, wait),
    )


def headers_metadata(state: LimitState) -> dict[str, str]:
    """The state as x-ratelimit-* values (ErrorInfo metadata on a 429)."""
    out = {}
    if state.limit_requests is not None:
        out["x-ratelimit-limit-requests"] = str(state.limit_requests)
        out["x-ratelimit-remaining-requests"] = str(state.remaining_requests)
        out["x-ratelimit-reset-requests"] = f"{state.reset_requests or 0:.3f}s"
    if state.limit_tokens is not None:
        out["x-ratelimit-limit-tokens"] = str(state.limit_tokens)
        out["x-ratelimit-remaining-tokens"] = str(state.remaining_tokens)
        out["x-ratelimit-reset-tokens"] = f"{state.reset_tokens or 0:.3f}s"
    return out
