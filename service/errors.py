"""Typed errors of the core and their one mapping onto gRPC statuses.

Everything below the servicers raises `GatewayError`; the servicers turn it into a
`google.rpc.Status` (ErrorInfo + BadRequest/RetryInfo details) exactly once, in
`to_rpc_status`. The HTTP layer maps the status back by `ErrorInfo.reason`, never by
message text (DESIGN §4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "switchyard"
DETAILS_KEY = "grpc-status-details-bin"

# ErrorInfo.reason -> gRPC code. Several reasons share a code (402 and 503 need the
# reason to be told apart), which is why the reason travels in every status.
REASON_CODES: dict[str, grpc.StatusCode] = {
    "INVALID_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "INVALID_API_KEY": grpc.StatusCode.UNAUTHENTICATED,
    "INSUFFICIENT_CREDITS": grpc.StatusCode.FAILED_PRECONDITION,
    "MODERATION_FLAGGED": grpc.StatusCode.PERMISSION_DENIED,
    "MODEL_NOT_ALLOWED": grpc.StatusCode.PERMISSION_DENIED,
    "KEY_NOT_ALLOWED": grpc.StatusCode.PERMISSION_DENIED,
    "MODEL_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "GENERATION_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "KEY_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "REQUEST_TIMEOUT": grpc.StatusCode.DEADLINE_EXCEEDED,
    "RATE_LIMITED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "UPSTREAM_ERROR": grpc.StatusCode.UNAVAILABLE,
    "NO_PROVIDER_AVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL": grpc.StatusCode.INTERNAL,
}

# ErrorInfo.reason -> the HTTP status of the contract (DESIGN §4), for the metrics and the
# access log of calls that never went through the HTTP layer. CANCELLED is not a reason
# of the contract: it marks a call its client gave up on (nginx's 499).
REASON_STATUS: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "INVALID_API_KEY": 401,
    "INSUFFICIENT_CREDITS": 402,
    "MODERATION_FLAGGED": 403,
    "MODEL_NOT_ALLOWED": 403,
    "KEY_NOT_ALLOWED": 403,
    "MODEL_NOT_FOUND": 404,
    "GENERATION_NOT_FOUND": 404,
    "KEY_NOT_FOUND": 404,
    "REQUEST_TIMEOUT": 408,
    "RATE_LIMITED": 429,
    "UPSTREAM_ERROR": 502,
    "NO_PROVIDER_AVAILABLE": 503,
    "INTERNAL": 500,
    "CANCELLED": 499,
}


@dataclass(frozen=True, eq=False)
class GatewayError(Exception):
    """A failure with a place in the error contract."""

    reason: str
    message: str
    param: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASON_CODES:
            raise ValueError(f"unknown error reason {self.reason!r}")

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    @property
    def code(self) -> grpc.StatusCode:
        return REASON_CODES[self.reason]


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError("INVALID_REQUEST", message, param=param)


def unauthenticated(message: str) -> GatewayError:
    return GatewayError("INVALID_API_KEY", message)


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        "MODEL_NOT_FOUND",
        f"The model '{model}' does not exist or is not served here.",
        param="model",
        metadata={"model": model},
    )


def request_timeout() -> GatewayError:
    return GatewayError("REQUEST_TIMEOUT", "The request did not complete before its deadline.")


def upstream_error(provider: str, message: str, status: int | None = None) -> GatewayError:
    metadata = {"provider_name": provider}
    if status is not None:
        metadata["upstream_status"] = str(status)
    return GatewayError("UPSTREAM_ERROR", message, metadata=metadata)


def internal_error() -> GatewayError:
    return GatewayError("INTERNAL", "The gateway failed unexpectedly; the error was logged.")


def to_rpc_status(err: GatewayError) -> status_pb2.Status:
    """Build the rich status for `err`: ErrorInfo always, BadRequest/RetryInfo where they fit."""
    status = status_pb2.Status(code=err.code.value[0], message=err.message)
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)
    status.details.add().Pack(info)
    if err.param is not None:
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field=err.param, description=err.message)
        status.details.add().Pack(bad)
    if err.retry_after is not None:
        seconds = max(0.0, err.retry_after)
        whole = math.floor(seconds)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status


def trailing_metadata(status: status_pb2.Status) -> tuple[tuple[str, bytes], ...]:
    """The trailer that carries `status` to gRPC clients (grpc-status-details-bin)."""
    return ((DETAILS_KEY, status.SerializeToString()),)
