"""`ProviderError` as the core reads it, and transport failures told in words."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from service.providers.errors import FailureKind, ProviderError, in_words, internals
from service.providers.http1 import ConnectError, DisconnectedError
from service.providers.openai_compat.errors import answered_error, transport_error


def _raised(exc: BaseException, cause: BaseException) -> BaseException:
    """`exc` as `raise exc from cause` leaves it."""
    try:
        raise exc from cause
    except BaseException as caught:  # noqa: BLE001 - the point is to keep it
        return caught


@pytest.mark.parametrize(
    ("cause", "words"),
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
            "the connection was refused",
        ),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "the name did not resolve",
        ),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "the TLS handshake failed"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "the host is unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "the network is unreachable"),
        (OSError("Multiple exceptions: ..."), "the connection failed"),
    ],
)
def test_a_failure_to_connect_in_words(cause: BaseException, words: str) -> None:
    exc = _raised(ConnectError("cannot connect to http://10.1.2.3:8080"), cause)
    err = transport_error("groq", exc)
    assert err.kind is FailureKind.CONNECT and err.retryable
    assert err.message == f"cannot reach groq: {words}"  # no class, host or port
    # The whole story is the detail, for the log: where, and what the socket said.
    assert err.detail == internals(exc)
    assert err.detail.startswith("ConnectError: cannot connect to http://10.1.2.3:8080 <- ")
    assert type(cause).__name__ in err.detail


def test_a_timeout_in_words() -> None:
    err = transport_error("groq", TimeoutError())
    assert (err.kind, err.message) == (FailureKind.TIMEOUT, "groq did not answer in time")
    assert in_words(TimeoutError()) == "it did not answer in time"


def test_a_connection_closed_before_an_answer() -> None:
    err = transport_error("groq", DisconnectedError("the connection closed before an answer"))
    assert err.message == "cannot reach groq: the connection closed before an answer"
    assert err.kind is FailureKind.CONNECT and err.retryable


@pytest.mark.parametrize("status", [400, 424, 498])
def test_a_4xx_that_blames_the_gateway_keeps_its_status(status: int) -> None:
    err = answered_error("up", status, "API key not valid", None, {}, upstream_fault=True)
    assert err.status == status and err.upstream_fault
    assert not err.client_fault and not err.retryable
    plain = answered_error("up", status, "bad field", "temperature", {})
    assert plain.client_fault and not plain.upstream_fault


def test_upstream_fault_leaves_retries_as_they_were() -> None:
    for status, retryable in ((429, True), (503, True), (401, False)):
        err = ProviderError(FailureKind.STATUS, "up", "x", status=status, upstream_fault=True)
        assert err.retryable is retryable and not err.client_fault
