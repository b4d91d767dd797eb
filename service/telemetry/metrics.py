"""Prometheus metrics (`GET /metrics`), correct across the workers of `--workers N`.

Labels are bounded by construction: a route is a gRPC method of ours, a model is an id
from the config (`none` when the call never chose one), a provider a configured
provider name, a status a class (`2xx`, `4xx`, `5xx`), an outcome and an error kind
are words of a fixed list. Keys, users and request ids are never labels.

Under `--workers N` the parent names a directory in `PROMETHEUS_MULTIPROC_DIR` before it
spawns the workers (`multiprocess_dir`), so prometheus-client keeps each worker's values
in a memory-mapped file there, and a scrape, whichever worker answers it, adds up every
worker's files. Gauges say how to combine: in-flight counts and queue depths are summed
over the live workers, a breaker is open if it is open in any of them.

The hot path pays a dictionary lookup for its labelled children (cached per label
tuple) and a few increments; nothing is formatted until a scrape.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from service.errors import REASON_STATUS
from service.telemetry.record import CallRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds. A gateway's own answers take milliseconds; an upstream's, up to minutes.
LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
REFUSALS = frozenset(
    {"INVALID_API_KEY", "INSUFFICIENT_CREDITS", "MODERATION_FLAGGED", "MODEL_NOT_ALLOWED"}
    | {"KEY_NOT_ALLOWED", "RATE_LIMITED"}
)


def status_class(reason: str) -> str:
    if not reason:
        return "2xx"
    return f"{REASON_STATUS.get(reason, 500) // 100}xx"


class Metrics:
    """The metric families, registered in a registry of their own."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.requests = Counter(
            "switchyard_requests",
            "Calls answered, by route (gRPC method), model, provider and status class.",
            ("route", "model", "provider", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "switchyard_request_duration_seconds",
            "Time from a call's start to its end (a stream's last chunk).",
            ("route", "model", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "switchyard_time_to_first_token_seconds",
            "Streams: time from the call's start to its first delta with content.",
            ("model", "provider"),
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "switchyard_tokens",
            "Tokens billed, by direction (in: prompt, out: completion).",
            ("model", "provider", "direction"),
            registry=registry,
        )
        self.cost = Counter(
            "switchyard_cost_usd",
            "US dollars billed.",
            ("model", "provider"),
            registry=registry,
        )
        self.refusals = Counter(
            "switchyard_refusals",
            "Calls refused by the gateway itself (401, 402, 403, 429), by reason.",
            ("reason",),
            registry=registry,
        )
        self.attempts = Counter(
            "switchyard_upstream_attempts",
            "Upstream attempts by provider and outcome (success, retried, fell_back, failed) "
            "and, for a failure, its kind.",
            ("provider", "outcome", "error"),
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "switchyard_upstream_duration_seconds",
            "One upstream attempt's time (to the first delta, for a stream).",
            ("provider",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.breaker = Gauge(
            "switchyard_breaker_open",
            "1 while an endpoint's circuit breaker is open (in any worker), else 0.",
            ("endpoint",),
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.in_flight = Gauge(
            "switchyard_in_flight",
            "Calls in flight, by route (ChatService.Stream: streams).",
            ("route",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.local_queue = Gauge(
            "switchyard_local_queue_depth",
            "Inputs waiting for a built-in local model.",
            ("model",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.local_batch = Histogram(
            "switchyard_local_batch_size",
            "Inputs per batch run by a built-in local model.",
            ("model",),
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.ledger_backlog = Gauge(
            "switchyard_ledger_backlog",
            "Ledger rows journalled and not yet committed to the database.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def started(self, route: str) -> None:
        self._child(self.in_flight, route).inc()

    def finished(self, record: CallRecord, seconds: float) -> None:
        """Count a call that ended (`record` says how)."""
        route, model, provider, reason = record.route, record.model, record.provider, record.reason
        status = status_class(reason)
        child = self._child
        child(self.in_flight, route).dec()
        child(self.requests, route, model, provider, status).inc()
        child(self.duration, route, model, status).observe(seconds)
        if reason in REFUSALS:
            child(self.refusals, reason).inc()
        if record.ttft is not None:
            child(self.ttft, model, provider).observe(record.ttft)
        if record.tokens_in:
            child(self.tokens, model, provider, "in").inc(record.tokens_in)
        if record.tokens_out:
            child(self.tokens, model, provider, "out").inc(record.tokens_out)
        if record.cost:
            child(self.cost, model, provider).inc(record.cost)

    def probed(self, route: str) -> None:
        """A key check made by the HTTP layer for an error answer: not a request of its own."""
        self._child(self.in_flight, route).dec()

    def edge(self, status: int) -> None:
        """An HTTP request answered by the HTTP layer alone (a 400 before any call, a 404)."""
        self._child(self.requests, "http", "none", "none", f"{status // 100}xx").inc()

    def attempt(self, provider: str, outcome: str, error: str, seconds: float) -> None:
        self._child(self.attempts, provider, outcome, error).inc()
        self._child(self.attempt_duration, provider).observe(seconds)

    def breaker_state(self, endpoint: str, is_open: bool) -> None:
        self._child(self.breaker, endpoint).set(1 if is_open else 0)

    def render(self) -> tuple[bytes, str]:
        """The exposition of every process's values, and its content type."""
        where = os.environ.get(MULTIPROC_ENV)
        if where:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, where)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# The process's metrics, once `enable` ran (None: metrics are off and cost nothing).
ACTIVE: Metrics | None = None


def enable() -> Metrics:
    global ACTIVE
    if ACTIVE is None:
        ACTIVE = Metrics()
    return ACTIVE


def disable() -> None:
    global ACTIVE
    ACTIVE = None


@contextmanager
def multiprocess_dir(workers: int) -> Iterator[None]:
    """Around `--workers N` (N > 1): a fresh directory for the workers' metric files,
    named in the environment they inherit, removed when they are gone. An operator's own
    PROMETHEUS_MULTIPROC_DIR is used as it is."""
    if workers <= 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    where = tempfile.mkdtemp(prefix="switchyard-metrics-")
    os.environ[MULTIPROC_ENV] = where
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(where, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters stay in the totals)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
