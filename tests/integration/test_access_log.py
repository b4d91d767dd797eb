"""The access log on a real gateway (issue 18, item 3): one line per request, text or
JSON, the key's id and name but never the key, no prompt text unless asked, and the
request id on the error lines of the same request."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from switchyard.v1 import chat_pb2, chat_pb2_grpc

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.integration.test_metrics import observed_config

SECRET_PROMPT = "the prompt nobody may read 7d1f"


@pytest.fixture(scope="module")
def mock() -> Iterator[MockOpenAI]:
    upstream = MockOpenAI().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def text_gateway(mock: MockOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("access-text")
    gateway = start_gateway(observed_config(tmp / "c.yaml", mock.base_url), tmp / "data")
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def json_gateway(mock: MockOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("access-json")
    extra = "access_log: {format: json, log_bodies: true}"
    gateway = start_gateway(observed_config(tmp / "c.yaml", mock.base_url, extra), tmp / "data")
    yield gateway
    gateway.stop()


def post(
    gateway: Gateway, body: bytes, rid: str, key: str | None = None, path: str = "/chat/completions"
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        gateway.base_url + path,
        data=body,
        headers={
            "Authorization": f"Bearer {key or gateway.key}",
            "Content-Type": "application/json",
            "X-Request-Id": rid,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def chat_body(model: str = "mock/echo", stream: bool = False) -> bytes:
    messages = [{"role": "user", "content": SECRET_PROMPT}]
    return json.dumps({"model": model, "messages": messages, "stream": stream}).encode()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def all_access_lines(gateway: Gateway) -> str:
    """Every access line (the log also holds the keys printed once at first start)."""
    return "\n".join(
        line
        for line in gateway.log().splitlines()
        if " access request_id=" in line or line.startswith('{"time"')
    )


def access_lines(gateway: Gateway, rid: str) -> list[str]:
    return [
        line
        for line in gateway.log().splitlines()
        if (" access " in line and f"request_id={rid} " in line) or f'"request_id":"{rid}"' in line
    ]


def one_line(gateway: Gateway, rid: str) -> str:
    wait_for(lambda: bool(access_lines(gateway, rid)), f"the access line of {rid}")
    time.sleep(0.3)  # a second line, if there were one, would be flushed by now
    (line,) = access_lines(gateway, rid)
    return line


def fields(line: str) -> dict[str, str]:
    """`k=v` pairs of a text line (values JSON-quoted where they may hold spaces)."""
    out = {}
    for part in line.split(" ")[2:]:
        key, _, value = part.partition("=")
        out[key] = json.loads(value) if value.startswith('"') else value
    return out


def test_a_text_line_per_request(text_gateway: Gateway) -> None:
    status, _ = post(text_gateway, chat_body(), "acc-text-1")
    assert status == 200
    line = one_line(text_gateway, "acc-text-1")
    got = fields(line)
    assert got["route"] == "ChatService.Complete"
    assert (got["model"], got["provider"], got["status"], got["attempts"]) == (
        "mock/echo",
        "mock",
        "200",
        "1",
    )
    assert got["key_name"] == "development" and got["key_id"] not in ("", "-")
    assert int(got["tokens_in"]) > 0 and int(got["tokens_out"]) > 0
    assert float(got["latency_ms"]) > 0 and float(got["upstream_ms"]) > 0
    assert text_gateway.key not in all_access_lines(text_gateway)
    assert SECRET_PROMPT not in text_gateway.log()


def test_failures_have_one_line_and_their_errors_carry_the_request_id(
    text_gateway: Gateway,
) -> None:
    status, _ = post(text_gateway, chat_body("mock/fail500"), "acc-fail-1")
    assert status == 502
    got = fields(one_line(text_gateway, "acc-fail-1"))
    assert (got["status"], got["reason"], got["attempts"]) == ("502", "UPSTREAM_ERROR", "2")
    # The engine's lines about this request's upstream failures name the request.
    about = [
        line
        for line in text_gateway.log().splitlines()
        if "fail500" in line and " access request_id=" not in line
    ]
    assert len(about) >= 2 and all("[acc-fail-1]" in line for line in about), about

    status, _ = post(text_gateway, chat_body(), "acc-bad-key", key="sk-wrong")
    assert status == 401
    got = fields(one_line(text_gateway, "acc-bad-key"))
    assert (got["status"], got["reason"], got["key_id"]) == ("401", "INVALID_API_KEY", "-")


def test_requests_the_http_layer_refuses_alone_are_logged_once(text_gateway: Gateway) -> None:
    status, _ = post(text_gateway, b"{not json", "acc-edge-400")
    assert status == 400
    got = fields(one_line(text_gateway, "acc-edge-400"))
    assert (got["route"], got["status"], got["path"]) == ("http", "400", "/v1/chat/completions")
    # A bad key on a body that does not parse: the key check answers, once.
    status, _ = post(text_gateway, b"{not json", "acc-edge-401", key="sk-wrong")
    assert status == 401
    assert fields(one_line(text_gateway, "acc-edge-401"))["status"] == "401"
    status, _ = post(text_gateway, b"{}", "acc-edge-404", path="/no/such/route")
    assert status == 404
    assert fields(one_line(text_gateway, "acc-edge-404"))["status"] == "404"


def test_a_stream_the_client_leaves_is_logged_as_499(
    text_gateway: Gateway, mock: MockOpenAI
) -> None:
    mock.slow_ticks = 600
    body = chat_body("mock/slow", stream=True)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {text_gateway.key}\r\nX-Request-Id: acc-gone-1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", text_gateway.http_port), 30) as sock:
        sock.sendall(head + body)
        received = b""
        while b"tick" not in received:
            chunk = sock.recv(65536)
            assert chunk, "the stream ended early"
            received += chunk
    got = fields(one_line(text_gateway, "acc-gone-1"))
    assert (got["route"], got["status"], got["reason"]) == (
        "ChatService.Stream",
        "499",
        "CANCELLED",
    )
    assert int(got["tokens_out"]) > 0  # what it produced was billed


def test_json_lines_with_bodies_when_asked(json_gateway: Gateway) -> None:
    status, _ = post(json_gateway, chat_body(), "acc-json-1")
    assert status == 200
    line = json.loads(one_line(json_gateway, "acc-json-1"))
    assert line["route"] == "ChatService.Complete" and line["status"] == 200
    assert line["key_name"] == "development" and line["model"] == "mock/echo"
    assert line["prompt"] == SECRET_PROMPT and line["completion"]
    status, _ = post(json_gateway, chat_body(stream=True), "acc-json-2")
    assert status == 200
    line = json.loads(one_line(json_gateway, "acc-json-2"))
    assert line["route"] == "ChatService.Stream" and line["completion"]
    assert json_gateway.key not in all_access_lines(json_gateway)


def test_the_access_log_can_be_a_file_or_off(mock: MockOpenAI, tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    extra = f"access_log: {{path: {target}}}\nmetrics: {{enabled: false}}"
    gateway = start_gateway(
        observed_config(tmp_path / "c.yaml", mock.base_url, extra), tmp_path / "d"
    )
    try:
        assert post(gateway, chat_body(), "acc-file-1")[0] == 200
        wait_for(lambda: target.exists() and "acc-file-1" in target.read_text(), "the file line")
        assert "acc-file-1" not in gateway.log()
        request = urllib.request.Request(
            gateway.http_url + "/metrics",
            headers={
                "Authorization": f"Bearer {(gateway.data_dir / 'admin-key').read_text().strip()}"
            },
        )
        with pytest.raises(urllib.error.HTTPError) as off:
            urllib.request.urlopen(request, timeout=30)
        assert off.value.code == 404
    finally:
        gateway.stop()
    extra = "access_log: {enabled: false}"
    gateway = start_gateway(
        observed_config(tmp_path / "c.yaml", mock.base_url, extra), tmp_path / "d"
    )
    try:
        assert post(gateway, chat_body(), "acc-off-1")[0] == 200
        time.sleep(0.5)
        assert "acc-off-1" not in gateway.log()
    finally:
        gateway.stop()


def test_the_probe_marker_hides_no_generation(text_gateway: Gateway) -> None:
    """The marker of the HTTP layer's key checks, sent by a client on a chat call."""
    with grpc.insecure_channel(text_gateway.grpc_target) as channel:
        chat_pb2_grpc.ChatServiceStub(channel).Complete(
            chat_pb2.ChatRequest(
                model="mock/echo", messages=[chat_pb2.Message(role="user", text="hidden?")]
            ),
            metadata=(
                ("authorization", f"Bearer {text_gateway.key}"),
                ("x-request-id", "acc-probe-spoof"),
                ("x-switchyard-probe", "1"),
            ),
            timeout=30,
        )
    assert fields(one_line(text_gateway, "acc-probe-spoof"))["status"] == "200"
