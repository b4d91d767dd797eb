"""OpenTelemetry traces: a span per call, a child span per upstream attempt.

Off unless the config's `tracing.enabled` is true, or it is unset and the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) variable is (and
`OTEL_SDK_DISABLED` is not true). Spans go to an OTLP/gRPC collector through the SDK's
batching processor, on its own thread. Sampling is the config's `sample_ratio` (parent
based: a sampled caller's trace is always kept), else `OTEL_TRACES_SAMPLER` and
`OTEL_TRACES_SAMPLER_ARG`, else everything.

The call's span continues the caller's W3C trace (`traceparent`, `tracestate`: HTTP
headers, which the HTTP layer passes on as gRPC metadata, or gRPC metadata from a
direct caller). Each upstream attempt is a CLIENT span under it, so that retries and
fallbacks show as siblings, and the upstream request carries the attempt's
`traceparent`. Attributes follow the GenAI semantic conventions (`gen_ai.*`).

At a root sampling ratio of 0 a call without a caller's trace makes no span at all
(nothing could be sampled below it): configured but sampled at 0, tracing costs a
metadata scan per call.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.providers.http1.pool import TRACE_HEADERS
from service.telemetry.record import CallRecord
from service.telemetry.settings import TracingSettings

log = logging.getLogger("switchyard.tracing")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROPAGATOR = TraceContextTextMapPropagator()
# gRPC route -> gen_ai.operation.name (the GenAI conventions' words where they have one).
OPERATIONS = {
    "ChatService.Complete": "chat",
    "ChatService.Stream": "chat",
    "MessagesService.Create": "chat",
    "MessagesService.Stream": "chat",
    "ResponsesService.Create": "chat",
    "ResponsesService.Stream": "chat",
    "EmbeddingService.Embed": "embeddings",
    "RerankService.Rerank": "rerank",
}


def wanted(settings: TracingSettings, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if settings.enabled is not None:
        return settings.enabled
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name) for name in ENDPOINT_VARIABLES)


def _root_ratio(settings: TracingSettings, env: Mapping[str, str]) -> float | None:
    """The sampling ratio of calls without a caller's trace, when it is known here."""
    if settings.sample_ratio is not None:
        return settings.sample_ratio
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name in ("always_off", "parentbased_always_off"):
        return 0.0
    if name in ("always_on", "parentbased_always_on"):
        return 1.0
    if name in ("traceidratio", "parentbased_traceidratio"):
        try:
            return float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
        except ValueError:
            return None
    return None


def traceparent(span: Any) -> bytes:
    """The upstream request's header lines for `span`'s context."""
    context = span.get_span_context()
    flags = int(context.trace_flags)
    return b"traceparent: 00-%032x-%016x-%02x\r\n" % (context.trace_id, context.span_id, flags)


class Tracing:
    def __init__(self, settings: TracingSettings, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        name = settings.service_name or env.get("OTEL_SERVICE_NAME") or "switchyard"
        sampler: Sampler | None = None
        if settings.sample_ratio is not None:
            sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
        # Without a sampler of ours the SDK reads OTEL_TRACES_SAMPLER(_ARG) itself.
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": name}), sampler=sampler
        )
        exporter = OTLPSpanExporter(endpoint=settings.endpoint or None)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("switchyard")
        self._never_root = _root_ratio(settings, env) == 0.0

    def start_call(self, record: CallRecord, context: Any) -> None:
        carrier: dict[str, str] | None = None
        for key, value in context.invocation_metadata() or ():
            if key in ("traceparent", "tracestate") and isinstance(value, str):
                if carrier is None:
                    carrier = {}
                carrier[key] = value
        if carrier is None and self._never_root:
            return
        parent = _PROPAGATOR.extract(carrier) if carrier is not None else None
        record.span = self._tracer.start_span(record.route, context=parent, kind=SpanKind.SERVER)

    def end_call(self, record: CallRecord) -> None:
        span = record.span
        if span is None:
            return
        if span.is_recording():
            operation = OPERATIONS.get(record.route)
            if operation is not None:
                span.update_name(f"{operation} {record.model}")
                span.set_attribute("gen_ai.operation.name", operation)
                span.set_attribute("gen_ai.request.model", record.model)
                if record.provider != "none":
                    span.set_attribute("gen_ai.provider.name", record.provider)
                    span.set_attribute("gen_ai.response.model", record.model)
                span.set_attribute("gen_ai.usage.input_tokens", record.tokens_in)
                span.set_attribute("gen_ai.usage.output_tokens", record.tokens_out)
                span.set_attribute("switchyard.cost", record.cost)
                span.set_attribute("switchyard.attempts", record.attempts)
            span.set_attribute("switchyard.request_id", record.request_id)
            if record.reason:
                span.set_attribute("error.type", record.reason)
                span.set_status(Status(StatusCode.ERROR, record.reason))
        span.end()

    def start_attempt(self, record: CallRecord, provider: str, upstream_model: str) -> Any:
        """The attempt's span (None when its call is not sampled), and the upstream's
        `traceparent` set for the attempt's task."""
        parent = record.span
        if parent is None:
            return None
        if not parent.is_recording():  # propagate the caller's decision, make nothing
            TRACE_HEADERS.set(traceparent(parent))
            return None
        operation = OPERATIONS.get(record.route, "chat")
        span = self._tracer.start_span(
            f"{operation} {upstream_model}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": upstream_model,
            },
        )
        TRACE_HEADERS.set(traceparent(span))
        return span

    @staticmethod
    def end_attempt(span: Any, outcome: str, error: str, ended_ns: int) -> None:
        """End an attempt's span once its outcome is known (a failure's is known only when
        the next attempt begins), at the time the attempt itself ended."""
        if span is None:
            return
        span.set_attribute("switchyard.outcome", outcome)
        if error:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=ended_ns)

    def shutdown(self) -> None:
        """Export what is buffered (a few seconds at most), then stop."""
        try:
            self.provider.force_flush(timeout_millis=3000)
        finally:
            self.provider.shutdown()


# The process's tracing, when on (the engine's attempts look here).
ACTIVE: Tracing | None = None


def enable(settings: TracingSettings) -> Tracing | None:
    """Turn tracing on if the config or the OTEL_* variables ask for it."""
    global ACTIVE
    ACTIVE = Tracing(settings) if wanted(settings) else None
    return ACTIVE
