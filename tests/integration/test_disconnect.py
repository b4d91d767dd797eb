"""A client that goes away makes the gateway close its upstream request."""

from __future__ import annotations

import http.client
import json
import time

import grpc
from switchyard.v1 import chat_pb2, chat_pb2_grpc

from tests.fixtures.gateway import Gateway
from tests.fixtures.http import open_stream
from tests.fixtures.mock_openai import MockOpenAI


def _wait_for_request(mock: MockOpenAI, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not mock.requests:
        assert time.monotonic() < deadline, "the request never reached the upstream"
        time.sleep(0.01)


def test_http_stream_disconnect_closes_upstream(gateway: Gateway, mock: MockOpenAI) -> None:
    conn, response = open_stream(
        gateway.base_url + "/chat/completions",
        {"model": "mock/slow", "stream": True, "messages": [{"role": "user", "content": "go"}]},
        {"Authorization": f"Bearer {gateway.key}"},
    )
    assert response.status == 200
    frames = 0
    for line in response:
        if line.startswith(b"data: "):
            frames += 1
        if frames == 3:
            break
    conn.sock.close()
    conn.close()
    assert mock.wait_for_disconnect(5.0), "the upstream stream was left open"


def test_http_unary_disconnect_closes_upstream(gateway: Gateway, mock: MockOpenAI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.http_port, timeout=10)
    body = {"model": "mock/hang", "messages": [{"role": "user", "content": "wait"}]}
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"},
    )
    _wait_for_request(mock)
    conn.sock.close()
    conn.close()
    assert mock.wait_for_disconnect(5.0), "the upstream request was left open"


def test_grpc_cancel_closes_upstream(service: Gateway, mock: MockOpenAI) -> None:
    with grpc.insecure_channel(service.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        request = chat_pb2.ChatRequest(
            model="mock/slow", messages=[chat_pb2.Message(role="user", text="go")]
        )
        call = stub.Stream(request, metadata=(("authorization", f"Bearer {service.key}"),))
        for i, _ in enumerate(call):
            if i == 3:
                break
        call.cancel()  # type: ignore[no-untyped-call]
    assert mock.wait_for_disconnect(5.0), "the upstream stream was left open"
