"""The one error type adapters raise, with enough structure to decide on retries."""

from __future__ import annotations

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
