"""The console's usage reads: query strings in, JSON out (`/v1/usage`, `/v1/generations`,
`/v1/endpoints`)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs

from switchyard.v1 import usage_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.keys import generation_fields

JSON = dict[str, Any]


def query(scope: Any) -> dict[str, str]:
    """The query string's parameters, the last value of each."""
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {name: values[-1] for name, values in parsed.items()}


def _number(params: dict[str, str], name: str) -> float | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise bad_request(f"'{name}' must be a number.", name) from None
    if not math.isfinite(value):
        raise bad_request(f"'{name}' must be a finite number.", name)
    return value


def usage_request(params: dict[str, str]) -> usage_pb2.UsageRequest:
    return usage_pb2.UsageRequest(
        range=params.get("range", ""),
        group_by=params.get("group_by", ""),
        key_id=params.get("key_id", ""),
    )


def generations_request(params: dict[str, str]) -> usage_pb2.ListGenerationsRequest:
    out = usage_pb2.ListGenerationsRequest(
        key_id=params.get("key_id", ""),
        model=params.get("model", ""),
        provider=params.get("provider", ""),
        status=params.get("status", ""),
    )
    for name in ("since", "until"):
        value = _number(params, name)
        if value is not None:
            setattr(out, name, value)
    limit = _number(params, "limit")
    if limit is not None:
        if limit != int(limit) or not 1 <= limit <= 200:
            raise bad_request("'limit' must be a whole number from 1 to 200.", "limit")
        out.limit = int(limit)
    return out


def _point(p: usage_pb2.UsagePoint) -> JSON:
    return {
        "start": p.start,
        "requests": p.requests,
        "errors": p.errors,
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "cost": p.cost,
        "p50_ms": p.p50_ms if p.HasField("p50_ms") else None,
        "p95_ms": p.p95_ms if p.HasField("p95_ms") else None,
    }


def usage_json(report: usage_pb2.UsageReport) -> JSON:
    return {
        "start": report.start,
        "bucket_seconds": report.bucket_seconds,
        "total": _point(report.total),
        "series": [
            {
                "group": s.group,
                "total": _point(s.total),
                "points": [_point(p) for p in s.points],
            }
            for s in report.series
        ],
    }


def generations_json(listed: usage_pb2.ListGenerationsResponse) -> JSON:
    return {
        "data": [generation_fields(g) for g in listed.generations],
        "next_until": listed.next_until if listed.HasField("next_until") else None,
    }


def endpoints_json(listed: usage_pb2.ListEndpointsResponse) -> JSON:
    def optional(e: usage_pb2.EndpointStatus, name: str) -> Any:
        return getattr(e, name) if e.HasField(name) else None  # type: ignore[arg-type]

    return {
        "data": [
            {
                "model": e.model,
                "provider": e.provider,
                "upstream_model": e.upstream_model,
                "pricing": {
                    "prompt": e.prompt_price,
                    "completion": e.completion_price,
                    "request": e.request_price,
                },
                "context_length": optional(e, "context_length"),
                "breaker": e.breaker,
                "consecutive_failures": e.consecutive_failures,
                "latency_ms": optional(e, "latency_ms"),
                "throughput": optional(e, "throughput"),
                "requests": e.requests,
                "errors": e.errors,
                "p50_ms": optional(e, "p50_ms"),
                "p95_ms": optional(e, "p95_ms"),
            }
            for e in listed.endpoints
        ]
    }
