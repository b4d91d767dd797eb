"""Upstream failures of an OpenAI-compatible API, as `ProviderError`s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from service.providers.errors import FailureKind, ProviderError, in_words, internals
from service.providers.http1 import BrokenBodyError, DisconnectedError, MalformedResponseError
from service.providers.openai_compat.convert import error_message


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds, from either of its two forms (delta or HTTP date)."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def answered_error(
    provider: str,
    status: int,
    message: str,
    param: str | None,
    headers: Mapping[str, str],
    *,
    upstream_fault: bool = False,
) -> ProviderError:
    """An upstream's HTTP error answer, `status` as it came (see ProviderError.upstream_fault
    for an answer that blames the gateway's side rather than the request)."""
    return ProviderError(
        FailureKind.STATUS,
        provider,
        f"{provider} answered HTTP {status}: {message}",
        status=status,
        param=param,
        retry_after=retry_after(headers),
        upstream_fault=upstream_fault,
    )


def status_error(
    provider: str, status: int, payload: bytes, headers: Mapping[str, str]
) -> ProviderError:
    message, param = error_message(status, payload)
    return answered_error(provider, status, message, param, headers)


def transport_error(provider: str, exc: BaseException) -> ProviderError:
    """A failure below HTTP, told in words; the exception itself goes to the log only."""
    if isinstance(exc, TimeoutError):
        return ProviderError(FailureKind.TIMEOUT, provider, f"{provider} did not answer in time")
    detail = internals(exc)
    if isinstance(exc, (BrokenBodyError, MalformedResponseError)):
        message = f"{provider} sent a broken response body"
        return ProviderError(FailureKind.BAD_RESPONSE, provider, message, detail=detail)
    if isinstance(exc, DisconnectedError):
        words = "the connection closed before an answer"
    else:
        words = in_words(exc)
    message = f"cannot reach {provider}: {words}"
    return ProviderError(FailureKind.CONNECT, provider, message, detail=detail)


def bad_response(provider: str, detail: str) -> ProviderError:
    return ProviderError(
        FailureKind.BAD_RESPONSE, provider, f"{provider} sent an unreadable answer ({detail})"
    )
