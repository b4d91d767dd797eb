"""Accounting values on the wire: rate-limit state, and generations."""

from __future__ import annotations

from switchyard.v1 import admin_pb2, common_pb2

from service.accounting.ledger import Generation
from service.accounting.limiter import LimitState


def rate_limits_to_proto(state: LimitState, out: common_pb2.RateLimits) -> None:
    if state.limit_requests is not None:
        out.limit_requests = state.limit_requests
        out.remaining_requests = state.remaining_requests or 0
        out.reset_requests_s = state.reset_requests or 0.0
    if state.limit_tokens is not None:
        out.limit_tokens = state.limit_tokens
        out.remaining_tokens = state.remaining_tokens or 0
        out.reset_tokens_s = state.reset_tokens or 0.0


def generation_to_proto(generation: Generation) -> admin_pb2.Generation:
    return admin_pb2.Generation(
        id=generation.id,
        key_id=generation.key_id,
        model=generation.model,
        provider=generation.provider,
        upstream_model=generation.upstream_model,
        kind=generation.kind,
        created_at=generation.created_at,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        cost=generation.cost,
        latency_ms=generation.latency_ms,
        generation_time_ms=generation.generation_time_ms,
        finish_reason=generation.finish_reason,
        streamed=generation.streamed,
        cancelled=generation.cancelled,
        status=generation.status,
        attempts=generation.attempts,
        cached_tokens=generation.cached_tokens,
        cache_write_tokens=generation.cache_write_tokens,
        cache=generation.cache,
    )
