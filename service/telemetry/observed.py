"""The wrapper around every servicer method: a `CallRecord` per call, counted and logged
once when the call ends, whichever way it ends.

`Service.register` registers the wrapped methods instead of the servicer's own, on the
grpc.aio server and on the in-process channel alike, so that calls from the HTTP layer
and direct gRPC calls are observed the same way. With metrics, the access log and
tracing all off, nothing is wrapped and a call costs what it did before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from service.telemetry import metrics as metrics_module
from service.telemetry.access_log import AccessLog
from service.telemetry.record import RECORDS, CallRecord

# The calls the HTTP layer's key check makes (gateway_http/routes/base.py, AuthProbe):
# only these may be marked as a probe, so that no client can keep its generations out of
# the metrics and the access log by sending the marker.
PROBE_ROUTES = frozenset({"ModelService.List", "AccountService.GetOwnKey"})

Unary = Callable[[Any, Any], Awaitable[Any]]
Streaming = Callable[[Any, Any], AsyncIterator[Any]]


class Observer:
    """What observes the calls of one process: its metrics, access log and tracer."""

    def __init__(
        self,
        access_log: AccessLog | None = None,
        tracer: Any = None,
    ) -> None:
        self.access_log = access_log
        self.tracer = tracer  # service.telemetry.tracing.Tracing, when tracing is on

    @property
    def active(self) -> bool:
        return (
            metrics_module.ACTIVE is not None
            or self.access_log is not None
            or self.tracer is not None
        )

    def wrap(self, servicer: Any, descriptor: ServiceDescriptor) -> Any:
        """`servicer` with each method of `descriptor` observed (itself when nothing is on)."""
        if not self.active:
            return servicer
        proxy = SimpleNamespace()
        for method in descriptor.methods:
            route = f"{descriptor.name}.{method.name}"
            handler = getattr(servicer, method.name)
            if method.server_streaming:
                setattr(proxy, method.name, self._streaming(route, handler))
            else:
                setattr(proxy, method.name, self._unary(route, handler))
        return proxy

    def _begin(self, route: str, context: Any) -> CallRecord:
        record = CallRecord(route, time.perf_counter())
        if self.access_log is not None and self.access_log.bodies:
            record.prompt = ""  # asks the servicer for the texts
        RECORDS[context] = record
        metrics = metrics_module.ACTIVE
        if metrics is not None:
            metrics.started(route)
        if self.tracer is not None:
            self.tracer.start_call(record, context)
        return record

    def _end(self, record: CallRecord, context: Any) -> None:
        RECORDS.pop(context, None)
        seconds = time.perf_counter() - record.started
        if record.probe and record.route not in PROBE_ROUTES:
            record.probe = False
        if self.tracer is not None:
            self.tracer.end_call(record)
        metrics = metrics_module.ACTIVE
        if metrics is not None:
            if record.probe:
                metrics.probed(record.route)
            else:
                metrics.finished(record, seconds)
        if self.access_log is not None and not record.probe:
            self.access_log.call(record, seconds)

    def _unary(self, route: str, handler: Unary) -> Unary:
        async def observed(request: Any, context: Any) -> Any:
            record = self._begin(route, context)
            try:
                return await handler(request, context)
            except asyncio.CancelledError:
                record.reason = record.reason or "CANCELLED"
                raise
            except BaseException:
                record.reason = record.reason or "INTERNAL"
                raise
            finally:
                self._end(record, context)

        return observed

    def _streaming(self, route: str, handler: Streaming) -> Streaming:
        async def observed(request: Any, context: Any) -> AsyncIterator[Any]:
            record = self._begin(route, context)
            messages = handler(request, context)
            try:
                async for message in messages:
                    yield message
            except (asyncio.CancelledError, GeneratorExit):
                record.reason = record.reason or "CANCELLED"
                raise
            except BaseException:
                record.reason = record.reason or "INTERNAL"
                raise
            finally:
                try:
                    await messages.aclose()  # type: ignore[attr-defined]
                finally:
                    self._end(record, context)

        return observed
