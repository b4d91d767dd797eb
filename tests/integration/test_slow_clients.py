"""Slow and oversized clients at the HTTP edge (gateway_http/read_limits.py), against a
whole gateway: a stalled or trickling request is answered 408 or closed within its
(here shortened) timeout, an oversized head is refused with 431 before it is all sent,
and none of it leaves a task running on the server's loop or an upstream call open."""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_http.protocol import HttpProtocol
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI

DEADLINE = 15.0  # far beyond every shortened timeout below


@pytest.fixture(scope="module")
def mock() -> Iterator[MockOpenAI]:
    server = MockOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local(mock: MockOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    config = f"""
providers:
  mock: {{kind: openai, base_url: "{mock.base_url}", api_key: upstream-secret, timeout: 60}}
models:
  - {{id: mock/echo, endpoints: [{{provider: mock, model: echo}}]}}
  - {{id: mock/hang, endpoints: [{{provider: mock, model: hang}}]}}
"""
    gateway = LocalGateway(config, tmp_path_factory.mktemp("slow-clients")).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def short(monkeypatch: pytest.MonkeyPatch, mock: MockOpenAI) -> None:
    """Timeouts short enough for a test; read by the protocol at each use."""
    monkeypatch.setattr(HttpProtocol, "header_timeout", 0.5)
    monkeypatch.setattr(HttpProtocol, "body_timeout", 0.5)
    monkeypatch.setattr(HttpProtocol, "linger", 1.0)
    mock.clear()


def _connect(local: LocalGateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", local.port), timeout=DEADLINE)


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a socket timeout fails the test)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _assert_error(raw: bytes, status: int, kind: str) -> dict[str, Any]:
    code, headers, body = _parse(raw)
    assert code == status, raw[:300]
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    error = json.loads(body)["error"]
    assert error["code"] == status
    assert error["type"] == kind
    assert error["param"] is None
    assert error["metadata"] == {}
    assert error["message"]
    return dict(error)


def _chat_head(local: LocalGateway, extra: str) -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {local.key}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_head_that_stops_half_way_gets_408(local: LocalGateway, short: None) -> None:
    with _connect(local) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Ty")
        raw = _read_to_close(sock)
    _assert_error(raw, 408, "timeout_error")
    assert local.busy_tasks() == []


def test_a_connection_that_never_sends_is_closed_without_an_answer(
    local: LocalGateway, short: None
) -> None:
    with _connect(local) as sock:
        assert _read_to_close(sock) == b""
    assert local.busy_tasks() == []


def test_a_chunked_body_that_goes_silent_gets_408_and_no_call(
    local: LocalGateway, mock: MockOpenAI, short: None
) -> None:
    with _connect(local) as sock:
        sock.sendall(_chat_head(local, "Transfer-Encoding: chunked\r\n") + b'9\r\n{"model":\r\n')
        raw = _read_to_close(sock)
    _assert_error(raw, 408, "timeout_error")
    # The route was waiting for the body: its task has ended, nothing reached upstream.
    assert local.busy_tasks() == []
    assert mock.requests == []


def test_a_trickled_body_is_cut(
    local: LocalGateway, mock: MockOpenAI, short: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One byte every 0.1 s never leaves the connection idle for the 2 s allowed between
    # two reads; the minimum rate (500 bytes/s after a grace of 2 s) cuts it.
    monkeypatch.setattr(HttpProtocol, "body_timeout", 2.0)
    body = json.dumps(
        {"model": "mock/echo", "messages": [{"role": "user", "content": "x" * 2000}]}
    ).encode()
    sent = 0
    with _connect(local) as sock:
        sock.sendall(_chat_head(local, f"Content-Length: {len(body)}\r\n"))
        deadline = time.monotonic() + DEADLINE
        while not select.select([sock], [], [], 0.1)[0]:
            assert time.monotonic() < deadline, f"still open after {sent} bytes"
            sock.sendall(body[sent : sent + 1])
            sent += 1
        raw = _read_to_close(sock)
    assert sent < len(body)
    _assert_error(raw, 408, "timeout_error")
    assert local.busy_tasks() == []
    assert mock.requests == []


def test_a_16_mb_head_gets_431(local: LocalGateway) -> None:
    # The refusal lingers (reading and dropping the rest) so that a client that writes its
    # whole request before reading, as http.client does, reads the 431 and not a reset.
    conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=DEADLINE)
    try:
        conn.request("GET", "/healthz", headers={"X-Big": "a" * 16_000_000})
        response = conn.getresponse()
        assert response.status == 431
        error = json.loads(response.read())["error"]
    finally:
        conn.close()
    assert error["type"] == "invalid_request_error"
    assert "65536" in error["message"]
    assert local.busy_tasks() == []


def test_an_oversized_head_is_refused_before_it_is_all_sent(local: LocalGateway) -> None:
    with _connect(local) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000)
        # The head is not finished (no blank line yet), and the answer is already there.
        raw = _read_to_close(sock)
    _assert_error(raw, 431, "invalid_request_error")
    assert local.busy_tasks() == []


def test_a_head_under_the_cap_is_served(local: LocalGateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=DEADLINE)
    try:
        conn.request("GET", "/healthz", headers={"X-Big": "a" * 60_000})
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_split_and_pipelined_requests_are_served(local: LocalGateway, short: None) -> None:
    body = json.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})
    health = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with _connect(local) as sock:
        # Three requests in one write: three answers, in order.
        sock.sendall(health * 3)
        received = b""
        while received.count(b'{"status":"ok"}') < 3:
            chunk = sock.recv(65536)
            assert chunk, "closed early"
            received += chunk
        assert received.count(b"HTTP/1.1 200 ") == 3
        # Idle longer than the head timeout between requests: that is keep-alive's to
        # judge (5 s), not the head's clock. Then a head and a body each in two reads.
        time.sleep(1.0)
        head = _chat_head(local, f"Content-Length: {len(body)}\r\n")
        sock.sendall(head[:20])
        time.sleep(0.1)
        sock.sendall(head[20:] + body[:10].encode())
        time.sleep(0.1)
        sock.sendall(body[10:].encode())
        answer = sock.recv(65536)
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert local.busy_tasks() == []


def test_a_stalled_pipelined_head_closes_the_connection_and_the_call(
    local: LocalGateway, mock: MockOpenAI, short: None
) -> None:
    # A request waiting on its upstream, and behind it a head that stops half way: an
    # answer cannot be put in front of the first response, so the connection closes,
    # and the first request's upstream call is cancelled with it.
    body = json.dumps({"model": "mock/hang", "messages": [{"role": "user", "content": "hi"}]})
    with _connect(local) as sock:
        sock.sendall(
            _chat_head(local, f"Content-Length: {len(body)}\r\n")
            + body.encode()
            + b"GET /healthz HTTP/1.1\r\nHo"
        )
        assert _read_to_close(sock) == b""
    assert mock.wait_for_disconnect(DEADLINE), "the upstream call was left open"
    assert local.busy_tasks() == []


def test_a_body_over_32_mib_gets_413(local: LocalGateway, mock: MockOpenAI) -> None:
    mock.clear()
    content = "x" * (32 * 1024 * 1024 + 1)
    body = json.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": content}]})
    conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=DEADLINE * 4)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=body.encode(),
            headers={"Authorization": f"Bearer {local.key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        assert response.status == 413
        error = json.loads(response.read())["error"]
    finally:
        conn.close()
    assert error["type"] == "invalid_request_error"
    assert str(32 * 1024 * 1024) in error["message"]
    assert mock.requests == []
