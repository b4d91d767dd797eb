"""Anthropic's failures as `ProviderError`s.

Anthropic answers errors as `{"type": "error", "error": {"type": ..., "message": ...},
"request_id": ...}` with documented statuses: 400 invalid_request_error, 401
authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large,
429 rate_limit_error, 500 api_error and 529 overloaded_error. 529 is >= 500, so
`ProviderError.retryable` holds and the core answers 502 once it gives up. The same
types arrive inside a stream as `event: error`, where the type stands in for a status.

Anthropic names no `param`, but its validation messages start with the path of the
bad field ("temperature: Input should be ..."); when that field is one the client sent
under an OpenAI name, that name becomes `param`. Message indexes are not carried over:
they count Anthropic's merged turns, not the client's messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

from service.providers.errors import FailureKind, ProviderError
from service.providers.openai_compat.errors import (
    answered_error,
    bad_response,
    transport_error,
)

STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
# Anthropic's top-level request fields -> the OpenAI field the client sent.
_PARAMS = {
    "model": "model",
    "messages": "messages",
    "system": "messages",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop_sequences": "stop",
    "tools": "tools",
    "tool_choice": "tool_choice",
    "metadata": "user",
}
_FIELD_PATH = re.compile(r"\s*([a-z_]+)(?:\.[\w.]+)?\s*:")


def error_details(status: int, payload: bytes) -> tuple[str | None, str]:
    """(Anthropic error type, message) of an error body, however it is shaped."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        text = payload.decode("utf-8", "replace").strip()[:500]
        return None, text or f"HTTP {status}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, f"HTTP {status}"
    kind = error.get("type")
    message = error.get("message")
    return (
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) and message else f"HTTP {status}",
    )


def param_of(message: str) -> str | None:
    """The client-side name of the field an Anthropic validation message starts with."""
    match = _FIELD_PATH.match(message)
    return _PARAMS.get(match.group(1)) if match else None


def status_error(
    provider: str, status: int, payload: bytes, headers: Mapping[str, str]
) -> ProviderError:
    kind, message = error_details(status, payload)
    detail = f"{kind}: {message}" if kind else message
    param = param_of(message) if 400 <= status < 500 else None
    return answered_error(provider, status, detail, param, headers)


def stream_error(provider: str, error_type: str, message: str) -> ProviderError:
    """An `event: error` in a stream: its type gives the status it would have had."""
    status = STATUS_OF_TYPE.get(error_type, 500)
    return ProviderError(
        FailureKind.STATUS,
        provider,
        f"{provider} failed mid-stream: {error_type}: {message}",
        status=status,
        param=param_of(message) if status == 400 else None,
    )


def rejected(provider: str, message: str, param: str | None) -> ProviderError:
    """The client's request cannot be expressed for Anthropic (a 400 for the client)."""
    return ProviderError(FailureKind.STATUS, provider, message, status=400, param=param)


def unsupported(provider: str, message: str) -> ProviderError:
    return ProviderError(FailureKind.UNSUPPORTED, provider, f"{provider}: {message}")


__all__ = [
    "STATUS_OF_TYPE",
    "bad_response",
    "error_details",
    "param_of",
    "rejected",
    "status_error",
    "stream_error",
    "transport_error",
    "unsupported",
]
