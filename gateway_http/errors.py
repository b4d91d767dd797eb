"""The error contract on the HTTP side: gRPC status -> OpenAI-style error JSON.

The mapping reads `google.rpc.ErrorInfo.reason` from the status details (falling back
to the bare status code for errors raised by the transport itself, such as a client
deadline), never the message text. See DESIGN §4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"

# reason -> (HTTP status, OpenAI error type)
REASONS: dict[str, tuple[int, str]] = {
    "INVALID_REQUEST": (400, "invalid_request_error"),
    "INVALID_API_KEY": (401, "authentication_error"),
    "INSUFFICIENT_CREDITS": (402, "insufficient_quota"),
    "MODERATION_FLAGGED": (403, "permission_error"),
    "MODEL_NOT_ALLOWED": (403, "permission_error"),
    "KEY_NOT_ALLOWED": (403, "permission_error"),
    "MODEL_NOT_FOUND": (404, "not_found_error"),
    "GENERATION_NOT_FOUND": (404, "not_found_error"),
    "KEY_NOT_FOUND": (404, "not_found_error"),
    "REQUEST_TIMEOUT": (408, "timeout_error"),
    "RATE_LIMITED": (429, "rate_limit_error"),
    "UPSTREAM_ERROR": (502, "upstream_error"),
    "NO_PROVIDER_AVAILABLE": (503, "service_unavailable"),
    "INTERNAL": (500, "server_error"),
}

# For statuses without ErrorInfo (raised by a transport, not by the service).
CODE_REASONS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "INVALID_REQUEST",
    grpc.StatusCode.UNAUTHENTICATED: "INVALID_API_KEY",
    grpc.StatusCode.PERMISSION_DENIED: "MODEL_NOT_ALLOWED",
    grpc.StatusCode.NOT_FOUND: "MODEL_NOT_FOUND",
    grpc.StatusCode.DEADLINE_EXCEEDED: "REQUEST_TIMEOUT",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RATE_LIMITED",
    grpc.StatusCode.UNAVAILABLE: "NO_PROVIDER_AVAILABLE",
}


@dataclass(frozen=True)
class HttpError(Exception):
    status: int
    type: str
    message: str
    param: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()
    # Said by the service (a failed call), which has logged and counted it already.
    from_service: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "metadata": self.metadata,
            }
        }

    def render(self) -> bytes:
        return orjson.dumps(self.body())

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return list(self.extra_headers)
        # Rounded up: a client must never be told to come back before it may.
        retry = str(max(1, math.ceil(self.retry_after))).encode()
        return [(b"retry-after", retry), *self.extra_headers]


def bad_request(message: str, param: str | None = None) -> HttpError:
    return HttpError(400, "invalid_request_error", message, param)


def _rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    trailing: Any = err.trailing_metadata() or ()
    for key, value in trailing:
        if key == DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def from_rpc_error(err: grpc.aio.AioRpcError) -> HttpError:
    """The HTTP error for a failed gRPC call."""
    message = err.details() or err.code().name
    rich = _rich_status(err)
    reason = None
    param = None
    metadata: dict[str, Any] = {}
    retry_after = None
    if rich is not None:
        for detail in rich.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                metadata = {k: _metadata_value(v) for k, v in info.metadata.items()}
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    param = bad.field_violations[0].field
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    if reason is None:
        reason = CODE_REASONS.get(err.code(), "INTERNAL")
        if reason == "NO_PROVIDER_AVAILABLE":
            message = f"The gateway's service is unavailable: {message}"
        elif reason == "REQUEST_TIMEOUT":
            message = "The request did not complete before its deadline."
    status, kind = REASONS.get(reason, REASONS["INTERNAL"])
    headers = tuple(
        (k.encode(), str(v).encode()) for k, v in metadata.items() if k.startswith("x-ratelimit-")
    )
    return HttpError(status, kind, message, param, metadata, retry_after, headers, True)


def _metadata_value(value: str) -> Any:
    """ErrorInfo metadata is text; a value marked `json:` carries structure (a list...)."""
    if value.startswith("json:"):
        try:
            return orjson.loads(value[5:])
        except orjson.JSONDecodeError:
            return value
    return value
