"""The one error type adapters raise, with enough structure to decide on retries.

Also how a transport failure is told: in plain words to the client ("cannot reach
groq: the connection was refused"), and in full, exception and address included, as
`detail`, which the engine writes only to the log, where every record carries the
request id (service/logs.py).
"""

from __future__ import annotations

import errno
import socket
import ssl
from enum import Enum


class FailureKind(Enum):
    CONNECT = "connect"  # could not reach the upstream
    TIMEOUT = "timeout"  # an attempt's time ran out
    STATUS = "status"  # the upstream answered with an error status
    BAD_RESPONSE = "bad_response"  # the upstream answered something we cannot read
    UNSUPPORTED = "unsupported"  # the adapter cannot serve this kind of request
    OVERLOADED = "overloaded"  # a local queue is full: come back after `retry_after`


class ProviderError(Exception):
    def __init__(
        self,
        kind: FailureKind,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
        upstream_fault: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.provider = provider
        self.message = message
        # What the upstream actually answered (the client sees it as `upstream_status`).
        self.status = status
        self.param = param
        self.retry_after = retry_after
        # What went wrong underneath (an exception's text, a socket address): for the
        # log, with the request id, and never in a message a client sees.
        self.detail = detail
        # The upstream's answer blames the gateway's side, whatever its status says: the
        # gateway's key (Gemini's 400 API_KEY_INVALID, Cohere's 498) or the model a route
        # sends to (TEI's 424). Never the client's to fix: the client gets a 502.
        self.upstream_fault = upstream_fault

    @property
    def retryable(self) -> bool:
        """Whether another attempt could succeed: transport failures, 408, 429 and 5xx."""
        if self.kind in (FailureKind.CONNECT, FailureKind.TIMEOUT, FailureKind.BAD_RESPONSE):
            return True
        return self.status is not None and (self.status in (408, 429) or self.status >= 500)

    @property
    def client_fault(self) -> bool:
        """The upstream refused the request itself (a 4xx other than auth, 408 and 429,
        unless the upstream's answer blames the gateway's side)."""
        return (
            not self.upstream_fault
            and self.status is not None
            and 400 <= self.status < 500
            and self.status
            not in (
                401,
                403,
                404,
                408,
                429,
            )
        )


# errno values a connection attempt fails with, in words.
_ERRNO_WORDS = {
    errno.ECONNREFUSED: "the connection was refused",
    errno.ECONNRESET: "the connection was reset",
    errno.ENETUNREACH: "the network is unreachable",
    errno.EHOSTUNREACH: "the host is unreachable",
}


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from, outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def in_words(exc: BaseException) -> str:
    """What a failure to reach a server was, for a client: no class, host or port."""
    for cause in _chain(exc):
        if isinstance(cause, TimeoutError):
            return "it did not answer in time"
        if isinstance(cause, socket.gaierror):
            return "the name did not resolve"
        if isinstance(cause, ssl.SSLError):
            return "the TLS handshake failed"
        if isinstance(cause, OSError) and cause.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[cause.errno]
    return "the connection failed"


def internals(exc: BaseException) -> str:
    """The whole story of `exc` for the log: each exception of its chain, with its class."""
    return " <- ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))
