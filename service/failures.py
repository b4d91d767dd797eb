"""How an upstream's failure becomes the contract's error, and which failures count
against an endpoint's health (the breaker): the engine's one translation of a
`ProviderError` (DESIGN §4), kept apart from its routing and retry loop.
"""

from __future__ import annotations

import asyncio

from service import errors
from service.providers.errors import FailureKind, ProviderError

# An attempt bounded by the request deadline times out at (about) the deadline; timer
# callbacks may fire up to a clock tick early, so "about" needs a little slack.
DEADLINE_SLACK = 0.05
# Failures that say "not this endpoint, not now" rather than "this endpoint is broken".
NOT_HEALTH = (FailureKind.UNSUPPORTED, FailureKind.OVERLOADED)


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - asyncio.get_running_loop().time()


def expired(deadline: float | None) -> bool:
    left = remaining(deadline)
    return left is not None and left < DEADLINE_SLACK


def provider_failure(
    err: ProviderError, deadline: float | None, retry_after: float = 1.0
) -> errors.GatewayError:
    """The contract error for one upstream failure (DESIGN §4).

    An upstream's 429 stays a 429, with the upstream's own `Retry-After` (else
    `retry_after`), as OpenRouter answers it: the client can wait and come back, which a
    502 would not tell it.
    """
    if expired(deadline) and err.kind in (FailureKind.TIMEOUT, FailureKind.CONNECT):
        return errors.request_timeout()
    if err.status == 429:
        return errors.GatewayError(
            "RATE_LIMITED",
            err.message,
            metadata={"provider_name": err.provider, "upstream_status": "429"},
            retry_after=err.retry_after if err.retry_after is not None else retry_after,
        )
    if err.kind in NOT_HEALTH:
        return errors.GatewayError(
            "NO_PROVIDER_AVAILABLE",
            err.message,
            metadata={"provider_name": err.provider},
            retry_after=err.retry_after,
        )
    if err.client_fault:
        return errors.GatewayError(
            "INVALID_REQUEST",
            f"The provider rejected the request: {err.message}",
            param=err.param,
            metadata={"provider_name": err.provider},
        )
    return errors.upstream_error(err.provider, err.message, err.status)


def counts_against(err: ProviderError) -> bool:
    """Whether a failure says the endpoint is unhealthy (what the breaker counts).

    Not a refusal of the request itself (it answered), not "not now" (a full local
    queue, an unsupported request) and not an upstream's rate limit: a 429 is the
    upstream asking this account to slow down, with a Retry-After that the retries
    already honour, and must not take the endpoint away from every other request.
    """
    return not err.client_fault and err.kind not in NOT_HEALTH and err.status != 429


def described(err: ProviderError) -> str:
    """The failure for the log: the message, and what went wrong underneath."""
    return f"{err.message} ({err.detail})" if err.detail else err.message
