"""The error contract, end to end: GatewayError -> google.rpc.Status -> HTTP error JSON.

The table below is the specification (DESIGN §4), hard-coded on purpose: a change to
either side's mapping must show up here.
"""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from gateway_http.errors import HttpError, from_rpc_error
from service.errors import (
    DOMAIN,
    REASON_CODES,
    GatewayError,
    to_rpc_status,
    trailing_metadata,
)
from service.inprocess import InProcessRpcError

C = grpc.StatusCode

# reason -> (gRPC code, HTTP status, OpenAI error type)
CONTRACT: dict[str, tuple[grpc.StatusCode, int, str]] = {
    "INVALID_REQUEST": (C.INVALID_ARGUMENT, 400, "invalid_request_error"),
    "INVALID_API_KEY": (C.UNAUTHENTICATED, 401, "authentication_error"),
    "INSUFFICIENT_CREDITS": (C.FAILED_PRECONDITION, 402, "insufficient_quota"),
    "MODERATION_FLAGGED": (C.PERMISSION_DENIED, 403, "permission_error"),
    "MODEL_NOT_ALLOWED": (C.PERMISSION_DENIED, 403, "permission_error"),
    "KEY_NOT_ALLOWED": (C.PERMISSION_DENIED, 403, "permission_error"),
    "MODEL_NOT_FOUND": (C.NOT_FOUND, 404, "not_found_error"),
    "GENERATION_NOT_FOUND": (C.NOT_FOUND, 404, "not_found_error"),
    "KEY_NOT_FOUND": (C.NOT_FOUND, 404, "not_found_error"),
    "REQUEST_TIMEOUT": (C.DEADLINE_EXCEEDED, 408, "timeout_error"),
    "RATE_LIMITED": (C.RESOURCE_EXHAUSTED, 429, "rate_limit_error"),
    "UPSTREAM_ERROR": (C.UNAVAILABLE, 502, "upstream_error"),
    "NO_PROVIDER_AVAILABLE": (C.UNAVAILABLE, 503, "service_unavailable"),
    "INTERNAL": (C.INTERNAL, 500, "server_error"),
}


def round_trip(err: GatewayError) -> HttpError:
    """What the HTTP layer makes of `err`, raised by a servicer behind a channel."""
    status = to_rpc_status(err)
    rpc_error = InProcessRpcError(err.code, status.message, trailing_metadata(status))
    return from_rpc_error(rpc_error)


def test_the_contract_covers_every_reason() -> None:
    assert set(REASON_CODES) == set(CONTRACT)


@pytest.mark.parametrize("reason", sorted(CONTRACT))
def test_reason_maps_to_grpc_code(reason: str) -> None:
    code, _, _ = CONTRACT[reason]
    assert REASON_CODES[reason] == code
    err = GatewayError(reason, "boom")
    assert err.code == code
    status = to_rpc_status(err)
    assert status.code == code.value[0]
    assert status.message == "boom"


@pytest.mark.parametrize("reason", sorted(CONTRACT))
def test_reason_round_trips_to_http(reason: str) -> None:
    _, http_status, kind = CONTRACT[reason]
    message = f"something about {reason.lower()}"
    http = round_trip(GatewayError(reason, message))
    assert (http.status, http.type) == (http_status, kind)
    assert http.message == message
    assert http.param is None
    assert http.metadata == {}
    assert http.retry_after is None
    assert http.headers() == []
    assert http.body() == {
        "error": {
            "code": http_status,
            "message": message,
            "type": kind,
            "param": None,
            "metadata": {},
        }
    }


def test_status_always_carries_error_info() -> None:
    status = to_rpc_status(GatewayError("RATE_LIMITED", "slow down", metadata={"a": "b"}))
    assert len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "RATE_LIMITED"
    assert info.domain == DOMAIN == "switchyard"
    assert dict(info.metadata) == {"a": "b"}


def test_trailing_metadata_is_the_serialized_status() -> None:
    status = to_rpc_status(GatewayError("INTERNAL", "x"))
    ((key, value),) = trailing_metadata(status)
    assert key == "grpc-status-details-bin"
    assert status_pb2.Status.FromString(value) == status


def test_param_survives_as_bad_request() -> None:
    err = GatewayError("INVALID_REQUEST", "'temperature' must be between 0 and 2.", "temperature")
    status = to_rpc_status(err)
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("temperature", err.message)
    ]
    http = round_trip(err)
    assert http.status == 400
    assert http.param == "temperature"
    assert http.body()["error"]["param"] == "temperature"


def test_metadata_survives_as_error_info() -> None:
    metadata = {"provider_name": "groq", "upstream_status": "503"}
    http = round_trip(GatewayError("UPSTREAM_ERROR", "groq answered 503", metadata=metadata))
    assert http.status == 502
    assert http.metadata == metadata
    assert http.body()["error"]["metadata"] == metadata


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (0.0, b"1"),
        (0.2, b"1"),
        (1.0, b"1"),
        (7.0, b"7"),
        (2.3, b"3"),
        (2.5, b"3"),
        (59.9, b"60"),
    ],
)
def test_retry_after_survives_as_retry_info_and_header(retry_after: float, header: bytes) -> None:
    err = GatewayError("RATE_LIMITED", "slow down", retry_after=retry_after)
    status = to_rpc_status(err)
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    assert delay == pytest.approx(retry_after, abs=1e-6)
    http = round_trip(err)
    assert http.status == 429
    assert http.retry_after == pytest.approx(retry_after, abs=1e-6)
    # Rounded up, never down: a client must not come back before the suggested delay.
    assert http.headers() == [(b"retry-after", header)]


def test_negative_retry_after_is_clamped_to_zero() -> None:
    http = round_trip(GatewayError("RATE_LIMITED", "slow down", retry_after=-5.0))
    assert http.retry_after == 0.0
    assert http.headers() == [(b"retry-after", b"1")]


def test_all_details_together() -> None:
    err = GatewayError(
        "MODEL_NOT_FOUND", "no such model", param="model", metadata={"model": "x/y"}, retry_after=3
    )
    http = round_trip(err)
    assert (http.status, http.type, http.param, http.metadata, http.retry_after) == (
        404,
        "not_found_error",
        "model",
        {"model": "x/y"},
        3.0,
    )


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (C.DEADLINE_EXCEEDED, 408, "timeout_error"),
        (C.UNAUTHENTICATED, 401, "authentication_error"),
        (C.INVALID_ARGUMENT, 400, "invalid_request_error"),
        (C.RESOURCE_EXHAUSTED, 429, "rate_limit_error"),
        (C.UNAVAILABLE, 503, "service_unavailable"),
        (C.UNKNOWN, 500, "server_error"),
        (C.INTERNAL, 500, "server_error"),
    ],
)
def test_status_without_details_maps_by_code(code: grpc.StatusCode, status: int, kind: str) -> None:
    http = from_rpc_error(InProcessRpcError(code, "transport said no"))
    assert (http.status, http.type) == (status, kind)
    assert http.param is None
    assert http.metadata == {}
    assert http.retry_after is None


def test_deadline_without_details_gets_a_clear_message() -> None:
    http = from_rpc_error(InProcessRpcError(C.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert http.status == 408
    assert "deadline" in http.message


def test_reason_wins_over_code() -> None:
    """402 and 503 share gRPC codes with others: only the reason can tell them apart."""
    status = to_rpc_status(GatewayError("INSUFFICIENT_CREDITS", "top up"))
    http = from_rpc_error(
        InProcessRpcError(C.FAILED_PRECONDITION, "top up", trailing_metadata(status))
    )
    assert http.status == 402
    status = to_rpc_status(GatewayError("UPSTREAM_ERROR", "bad gateway"))
    http = from_rpc_error(
        InProcessRpcError(C.UNAVAILABLE, "bad gateway", trailing_metadata(status))
    )
    assert http.status == 502


def test_undecodable_details_fall_back_to_the_code() -> None:
    """A corrupted grpc-status-details-bin trailer must still map by code, not raise."""
    rpc_error = InProcessRpcError(
        C.UNAVAILABLE, "connection reset", (("grpc-status-details-bin", b"\xff\xff\xff"),)
    )
    http = from_rpc_error(rpc_error)
    assert http.status == 503
    assert http.type == "service_unavailable"


def test_body_has_exactly_the_contract_keys() -> None:
    http = HttpError(429, "rate_limit_error", "slow down", "model", {"k": "v"}, 2.0)
    body = http.body()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "message", "type", "param", "metadata"}
    assert body["error"] == {
        "code": 429,
        "message": "slow down",
        "type": "rate_limit_error",
        "param": "model",
        "metadata": {"k": "v"},
    }


def test_gateway_error_rejects_an_unknown_reason() -> None:
    with pytest.raises(ValueError, match="NOT_A_REASON"):
        GatewayError("NOT_A_REASON", "x")
