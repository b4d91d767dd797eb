"""What the engine reports of its upstream attempts: metrics, trace spans, the call's
record, and breaker changes. Kept apart from the engine's routing logic, which calls
these at the few points where an attempt begins and ends."""

from __future__ import annotations

import time

from service.providers.errors import FailureKind, ProviderError
from service.providers.http1.pool import TRACE_HEADERS
from service.routing.health import EndpointHealth
from service.routing.router import Candidate
from service.telemetry import metrics as metrics_module
from service.telemetry import tracing as tracing_module
from service.telemetry.record import CallRecord


def error_kind(err: ProviderError) -> str:
    """A failed attempt's kind for the metrics: a word of a short, fixed list."""
    if err.kind is not FailureKind.STATUS:
        return str(err.kind.value)
    if err.status == 429:
        return "rate_limited"
    return f"status_{(err.status or 500) // 100}xx"


def breaker_changed(endpoint: str, is_open: bool) -> None:
    metrics = metrics_module.ACTIVE
    if metrics is not None:
        metrics.breaker_state(endpoint, is_open)


def succeeded(health: EndpointHealth, endpoint: str, now: float, ms: float) -> None:
    was_open = health.opened_at is not None
    health.success(now, ms)
    if was_open:
        breaker_changed(endpoint, False)


class Tally:
    """The upstream attempts of one call, for the metrics and the call's record.

    A failed attempt's outcome depends on what follows it: `retried` (the same endpoint
    again), `fell_back` (another endpoint or model was tried next) or `failed` (the call
    ended). So a failure that is not retried waits here until the next attempt begins or
    the tries end.
    """

    __slots__ = (
        "_ended",
        "_ended_ns",
        "_error",
        "_pending",
        "_provider",
        "_record",
        "_span",
        "_started",
    )

    def __init__(self, record: CallRecord | None) -> None:
        self._record = record
        self._provider = ""
        self._started = self._ended = 0.0
        self._ended_ns = 0
        self._pending = False
        self._error = ""
        self._span: object = None

    def begin(self, candidate: Candidate) -> None:
        if self._pending:
            self._emit("fell_back")
        self._provider = candidate.endpoint.provider
        self._started = time.perf_counter()
        record = self._record
        if record is not None:
            record.attempts += 1
            record.provider = candidate.endpoint.provider
            record.model = candidate.model.id
            tracing = tracing_module.ACTIVE
            if tracing is not None:
                self._span = tracing.start_attempt(
                    record, candidate.endpoint.provider, candidate.endpoint.model
                )

    def _emit(self, outcome: str) -> None:
        self._pending = False
        error = "" if outcome == "success" else self._error
        metrics = metrics_module.ACTIVE
        if metrics is not None:
            metrics.attempt(self._provider, outcome, error, self._ended - self._started)
        if self._span is not None:
            tracing_module.Tracing.end_attempt(self._span, outcome, error, self._ended_ns)
            self._span = None

    def _end(self) -> None:
        self._ended = time.perf_counter()
        if self._span is not None:
            self._ended_ns = time.time_ns()
        if TRACE_HEADERS.get():
            TRACE_HEADERS.set(b"")

    def succeeded(self) -> None:
        self._end()
        self._emit("success")

    def failed(self, kind: str) -> None:
        self._error = kind
        self._pending = True
        self._end()

    def retried(self) -> None:
        self._emit("retried")

    def close(self) -> None:
        if self._pending:
            self._emit("failed")
        elif self._span is not None:  # cancelled mid-attempt (a deadline, a client gone)
            self._end()
            tracing_module.Tracing.end_attempt(self._span, "cancelled", "", self._ended_ns)
            self._span = None
