"""`switchyard.v1.UsageService`: usage, generations and endpoint health for the console.

Who sees what is decided here, once: an admin key sees every key's usage and may narrow
it to one key; any other key is narrowed to itself, whatever it asked for (a key id it
names is ignored, not an error, so that a probe learns nothing about other keys).
"""

from __future__ import annotations

import asyncio
import math
import time

from switchyard.v1 import usage_pb2, usage_pb2_grpc

from service import errors
from service.accounting.backends import UsageBackend
from service.accounting.usage import GROUP_BY, RANGES, GenerationFilter, Point, merge
from service.engine import Engine
from service.pipeline import CallContext, Pipeline
from service.servicers.accounting_proto import generation_to_proto
from service.servicers.base import Context, abort, begin

MAX_LIMIT = 200
ENDPOINT_WINDOW = 3_600.0  # what "recent" means on the models page


def _scope(call: CallContext, asked: str) -> str | None:
    """The key whose usage this caller may read: None for every key (admins only)."""
    if call.key.policy.is_admin:
        return asked or None
    return call.key.id


def _point(p: Point, out: usage_pb2.UsagePoint) -> None:
    out.start = p.start
    out.requests = p.requests
    out.errors = p.errors
    out.prompt_tokens = p.prompt_tokens
    out.completion_tokens = p.completion_tokens
    out.cost = p.cost
    for name, value in (("p50_ms", p.p50_ms), ("p95_ms", p.p95_ms)):
        if value is not None:
            setattr(out, name, value)


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise errors.invalid_request(f"'{name}' must be a finite number.", name)
    return value


class UsageServicer(usage_pb2_grpc.UsageServiceServicer):
    def __init__(self, pipeline: Pipeline, engine: Engine, usage: UsageBackend) -> None:
        self._pipeline = pipeline
        self._engine = engine
        self._usage = usage

    async def GetUsage(  # noqa: N802 - gRPC method name
        self, request: usage_pb2.UsageRequest, context: Context
    ) -> usage_pb2.UsageReport:
        try:
            call = begin(self._pipeline, context)
            span_bucket = RANGES.get(request.range or "24h")
            if span_bucket is None:
                raise errors.invalid_request(
                    f"'range' must be one of {', '.join(RANGES)}.", "range"
                )
            if request.group_by not in GROUP_BY:
                raise errors.invalid_request(
                    "'group_by' must be model, provider or key.", "group_by"
                )
            span, bucket = span_bucket
            end = math.ceil(time.time() / bucket) * bucket
            start = end - span
            found = await asyncio.to_thread(
                self._usage.series, start, bucket, request.group_by, _scope(call, request.key_id)
            )
            starts = [float(s) for s in range(start, end, bucket)]
            out = usage_pb2.UsageReport(start=start, bucket_seconds=bucket)
            ordered = sorted(found.items(), key=lambda kv: -sum(p.requests for p in kv[1].values()))
            everything: list[Point] = []
            for group, points in ordered:
                series = out.series.add(group=group)
                for s in starts:
                    _point(points.get(s) or Point(s), series.points.add())
                merged = merge(list(points.values()), start)
                _point(merged, series.total)
                everything.append(merged)
            _point(merge(everything, start), out.total)
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "UsageService.GetUsage")

    async def ListGenerations(  # noqa: N802 - gRPC method name
        self, request: usage_pb2.ListGenerationsRequest, context: Context
    ) -> usage_pb2.ListGenerationsResponse:
        try:
            call = begin(self._pipeline, context)
            limit = request.limit or 50
            if not 1 <= limit <= MAX_LIMIT:
                raise errors.invalid_request(f"'limit' must be 1 to {MAX_LIMIT}.", "limit")
            f = GenerationFilter(
                key_id=_scope(call, request.key_id),
                model=request.model or None,
                provider=request.provider or None,
                status=request.status or None,
                since=_finite(request.since, "since") if request.HasField("since") else None,
                until=_finite(request.until, "until") if request.HasField("until") else None,
                limit=limit,
            )
            found = await asyncio.to_thread(self._usage.generations, f)
            out = usage_pb2.ListGenerationsResponse(
                generations=[generation_to_proto(g) for g in found]
            )
            if len(found) == limit:
                out.next_until = found[-1].created_at
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "UsageService.ListGenerations")

    async def ListEndpoints(  # noqa: N802 - gRPC method name
        self, request: usage_pb2.ListEndpointsRequest, context: Context
    ) -> usage_pb2.ListEndpointsResponse:
        try:
            call = begin(self._pipeline, context)
            used = await asyncio.to_thread(
                self._usage.endpoints, time.time() - ENDPOINT_WINDOW, _scope(call, "")
            )
            recent = {(u.model, u.provider): u for u in used}
            out = usage_pb2.ListEndpointsResponse()
            now = time.monotonic()
            for model in self._engine.models:
                for endpoint in model.endpoints:
                    health = self._engine.health(endpoint.key)
                    status = out.endpoints.add(
                        model=model.id,
                        provider=endpoint.provider,
                        upstream_model=endpoint.model,
                        prompt_price=endpoint.pricing.prompt,
                        completion_price=endpoint.pricing.completion,
                        request_price=endpoint.pricing.request,
                        consecutive_failures=health.consecutive_failures,
                        breaker=(
                            "closed"
                            if health.opened_at is None
                            else "open"
                            if health.is_open(now)
                            else "half_open"
                        ),
                    )
                    context_length = endpoint.context_length or model.context_length
                    if context_length is not None:
                        status.context_length = context_length
                    if health.latency_ms is not None:
                        status.latency_ms = health.latency_ms
                    if health.throughput is not None:
                        status.throughput = health.throughput
                    u = recent.get((model.id, endpoint.provider))
                    if u is not None:
                        status.requests, status.errors = u.requests, u.errors
                        if u.p50_ms is not None:
                            status.p50_ms = u.p50_ms
                        if u.p95_ms is not None:
                            status.p95_ms = u.p95_ms
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "UsageService.ListEndpoints")
