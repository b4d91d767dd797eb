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

The hot path does not touch prometheus-client, whose every increment takes a lock and
checks its arguments (about 1 µs each, ten of them per call): a call adds to plain
lists keyed by its labels, and `flush` moves the sums into the Prometheus families once
a second and before every scrape (so a process's own scrape is exact, and a worker's
counts reach the others' scrapes within a second). Nothing is formatted until a scrape.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
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


# ErrorInfo.reason ("" for a success) -> its status class.
STATUS_CLASS = {"": "2xx"} | {
    reason: f"{status // 100}xx" for reason, status in REASON_STATUS.items()
}
FLUSH_SECONDS = 1.0


def _histogram(child: Any, total: float, counts: list[float]) -> None:
    """Add a batch of observations (their sum, and a count per bucket, +Inf last) to a
    prometheus-client histogram child, as that many `observe` calls would."""
    child._sum.inc(total)
    buckets = child._buckets
    for i, count in enumerate(counts):
        if count:
            buckets[i].inc(count)


class Metrics:
    """The metric families, registered in a registry of their own."""

    def __init__(self) -> None:
        # No `_created` series beside every counter: half the exposition.
        disable_created_metrics()  # type: ignore[no-untyped-call]
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
        self.cache_lookups = Counter(
            "switchyard_cache_lookups",
            "Response cache lookups of cached models, by outcome (hit, semantic-hit, miss; "
            "refresh: went upstream to store anew; bypass: the request stayed out).",
            ("model", "outcome"),
            registry=registry,
        )
        self.ledger_backlog = Gauge(
            "switchyard_ledger_backlog",
            "Ledger rows journalled and not yet committed to the database.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._children: dict[tuple[object, ...], Any] = {}
        # What the hot path adds to, until the next flush (see the module's docstring).
        self._calls: dict[tuple[str, str, str, str], list[float]] = {}
        self._ttft: dict[tuple[str, str], list[float]] = {}
        self._usage: dict[tuple[str, str], list[float]] = {}  # [tokens in, out, cost]
        self._refused: dict[str, int] = {}
        self._attempts: dict[tuple[str, str, str], list[float]] = {}
        self._cache: dict[tuple[str, str], int] = {}
        self._in_flight: dict[str, int] = {}  # current values, not increments
        self._timer: asyncio.TimerHandle | None = None

    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def started(self, route: str) -> None:
        in_flight = self._in_flight
        in_flight[route] = in_flight.get(route, 0) + 1

    def finished(self, record: CallRecord, seconds: float) -> None:
        """Count a call that ended (`record` says how): a few additions to plain lists."""
        route, model, provider, reason = record.route, record.model, record.provider, record.reason
        self._in_flight[route] -= 1
        key = (route, model, provider, STATUS_CLASS.get(reason, "5xx"))
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = [0.0] * (3 + len(LATENCY_BUCKETS))
        calls[0] += 1
        calls[1] += seconds
        calls[2 + bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if reason in REFUSALS:
            self._refused[reason] = self._refused.get(reason, 0) + 1
        if record.ttft is not None:
            pair = (model, provider)
            ttft = self._ttft.get(pair)
            if ttft is None:
                ttft = self._ttft[pair] = [0.0] * (2 + len(TTFT_BUCKETS))
            ttft[0] += record.ttft
            ttft[1 + bisect_left(TTFT_BUCKETS, record.ttft)] += 1
        if record.tokens_in or record.tokens_out or record.cost:
            pair = (model, provider)
            usage = self._usage.get(pair)
            if usage is None:
                usage = self._usage[pair] = [0.0, 0.0, 0.0]
            usage[0] += record.tokens_in
            usage[1] += record.tokens_out
            usage[2] += record.cost

    def probed(self, route: str) -> None:
        """A key check made by the HTTP layer for an error answer: not a request of its own."""
        self._in_flight[route] -= 1

    def edge(self, status: int) -> None:
        """An HTTP request answered by the HTTP layer alone (a 400 before any call, a 404)."""
        self._child(self.requests, "http", "none", "none", f"{status // 100}xx").inc()

    def attempt(self, provider: str, outcome: str, error: str, seconds: float) -> None:
        key = (provider, outcome, error)
        attempts = self._attempts.get(key)
        if attempts is None:
            attempts = self._attempts[key] = [0.0] * (3 + len(LATENCY_BUCKETS))
        attempts[0] += 1
        attempts[1] += seconds
        attempts[2 + bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def cache_lookup(self, model: str, outcome: str) -> None:
        """A response cache lookup of a cached model (a configured id) and its outcome."""
        key = (model, outcome)
        cache = self._cache
        cache[key] = cache.get(key, 0) + 1

    def flush(self) -> None:
        """Move what the calls added since the last flush into the Prometheus families
        (under --workers N: into this worker's memory-mapped file)."""
        child = self._child
        calls, self._calls = self._calls, {}
        for (route, model, provider, status), acc in calls.items():
            child(self.requests, route, model, provider, status).inc(acc[0])
            _histogram(child(self.duration, route, model, status), acc[1], acc[2:])
        ttfts, self._ttft = self._ttft, {}
        for (model, provider), acc in ttfts.items():
            _histogram(child(self.ttft, model, provider), acc[0], acc[1:])
        usages, self._usage = self._usage, {}
        for (model, provider), (tokens_in, tokens_out, cost) in usages.items():
            if tokens_in:
                child(self.tokens, model, provider, "in").inc(tokens_in)
            if tokens_out:
                child(self.tokens, model, provider, "out").inc(tokens_out)
            if cost:
                child(self.cost, model, provider).inc(cost)
        refused, self._refused = self._refused, {}
        for reason, count in refused.items():
            child(self.refusals, reason).inc(count)
        attempts, self._attempts = self._attempts, {}
        for (provider, outcome, error), acc in attempts.items():
            child(self.attempts, provider, outcome, error).inc(acc[0])
            _histogram(child(self.attempt_duration, provider), acc[1], acc[2:])
        looked, self._cache = self._cache, {}
        for (model, outcome), count in looked.items():
            child(self.cache_lookups, model, outcome).inc(count)
        for route, count in self._in_flight.items():
            child(self.in_flight, route).set(count)

    def start_flushing(self) -> None:
        """Flush every FLUSH_SECONDS on the running loop (a scrape flushes its own process
        first, so this is what other workers' scrapes see)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()
        self.start_flushing()

    def stop_flushing(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()

    def breaker_state(self, endpoint: str, is_open: bool) -> None:
        self._child(self.breaker, endpoint).set(1 if is_open else 0)

    def render(self) -> tuple[bytes, str]:
        """The exposition of every process's values, and its content type."""
        self.flush()
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
