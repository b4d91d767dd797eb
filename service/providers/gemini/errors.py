"""Gemini failures as `ProviderError`s.

Google answers errors as `{"error": {"code", "message", "status", "details"}}` (AIP-193).
Two details matter to us: `RetryInfo.retryDelay` (how long a 429 asks us to wait) and
`ErrorInfo.reason == "API_KEY_INVALID"`, which Google sends as a 400: that 400 is about
the gateway's own key, not the client's request, so it is marked `upstream_fault` (an
upstream failure, a 502 for the client) and keeps its status: the client reads
`upstream_status: "400"`, which is what Gemini answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from service.providers.errors import FailureKind, ProviderError
from service.providers.gemini.convert import RequestError
from service.providers.gemini.response import PromptBlockedError
from service.providers.openai_compat.errors import bad_response, retry_after, transport_error

_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def google_error(payload: bytes) -> dict[str, Any] | None:
    """The `error` object of a Google error body, if the body is one."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # some Google front ends wrap the body in an array
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    details = error.get("details")
    return (
        [d for d in details or () if isinstance(d, dict) and d.get("@type") == kind]
        if isinstance(details, list)
        else []
    )


def _retry_delay(error: Mapping[str, Any]) -> float | None:
    for info in _details(error, _RETRY_INFO):
        delay = info.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                continue
    return None


def status_error(
    provider: str, status: int, payload: bytes, headers: Mapping[str, str]
) -> ProviderError:
    """The `ProviderError` for an HTTP error status (or an error event of a stream)."""
    error = google_error(payload)
    if error is None:
        text = payload.decode("utf-8", "replace").strip()[:500]
        message = text or f"HTTP {status}"
    else:
        message = str(error.get("message") or f"HTTP {status}")
        if isinstance(error.get("status"), str):
            message = f"{error['status']}: {message}"
    reasons = {d.get("reason") for d in _details(error or {}, _ERROR_INFO)}
    return ProviderError(
        FailureKind.STATUS,
        provider,
        f"{provider} answered HTTP {status}: {message}",
        status=status,
        retry_after=retry_after(headers) or _retry_delay(error or {}),
        upstream_fault="API_KEY_INVALID" in reasons,
    )


def event_error(provider: str, payload: Mapping[str, Any]) -> ProviderError:
    """An error object sent inside a stream; its `code` stands for the HTTP status."""
    error = payload.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    return status_error(provider, status, orjson.dumps(payload), {})


def blocked_error(provider: str, exc: PromptBlockedError) -> ProviderError:
    """A prompt Gemini refused: the client's to change, so a 400 naming the messages."""
    return ProviderError(
        FailureKind.STATUS, provider, f"{exc} - rephrase the request", status=400, param="messages"
    )


def request_error(provider: str, exc: RequestError) -> ProviderError:
    return ProviderError(FailureKind.STATUS, provider, str(exc), status=400, param=exc.param)


def unsupported(provider: str, what: str) -> ProviderError:
    return ProviderError(FailureKind.UNSUPPORTED, provider, f"{provider} (Gemini) {what}")


__all__ = [
    "bad_response",
    "blocked_error",
    "event_error",
    "google_error",
    "request_error",
    "status_error",
    "transport_error",
    "unsupported",
]
