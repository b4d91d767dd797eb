"""Every error row of the contract that exists so far, over HTTP, on both channels."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from tests.fixtures.gateway import Gateway
from tests.fixtures.http import RawResponse, open_stream, request, sse_events
from tests.fixtures.mock_openai import MockOpenAI

HELLO = [{"role": "user", "content": "hello"}]


def post(
    gateway: Gateway, path: str, body: Any, key: str | None = "", **headers: str
) -> RawResponse:
    all_headers = {"Content-Type": "application/json", **headers}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key or gateway.key}"
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request("POST", gateway.base_url + path, payload, all_headers)


def assert_error(
    raw: RawResponse, status: int, kind: str, param: str | None = None
) -> dict[str, Any]:
    assert raw.status == status, raw.body
    assert raw.headers.get("content-type") == "application/json"
    assert raw.headers.get("x-request-id"), "every response carries x-request-id"
    body = raw.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "type", "param", "metadata"}
    assert error["code"] == status
    assert error["type"] == kind
    assert error["param"] == param
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["metadata"], dict)
    return error  # type: ignore[no-any-return]


def test_malformed_json(gateway: Gateway) -> None:
    assert_error(post(gateway, "/chat/completions", b'{"model": '), 400, "invalid_request_error")
    assert_error(post(gateway, "/chat/completions", b"[1, 2]"), 400, "invalid_request_error")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock/echo"}, "messages"),
        ({"messages": HELLO}, "model"),
        ({"model": "mock/echo", "messages": "hello"}, "messages"),
        ({"model": "mock/echo", "messages": [{"content": "x"}]}, "messages[0].role"),
        (
            {"model": "mock/echo", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
        ),
        ({"model": 42, "messages": HELLO}, "model"),
        ({"model": "mock/echo", "messages": HELLO, "temperature": "hot"}, "temperature"),
        ({"model": "mock/echo", "messages": HELLO, "max_tokens": 1.5}, "max_tokens"),
        ({"model": "mock/echo", "messages": HELLO, "stream": "yes"}, "stream"),
        (
            {"model": "mock/echo", "messages": HELLO, "tools": [{"type": "function"}]},
            "tools[0].function",
        ),
        (
            {"model": "mock/echo", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        # Checked by the service (the same checks serve gRPC clients):
        ({"model": "mock/echo", "messages": []}, "messages"),
        ({"model": "mock/echo", "messages": HELLO, "temperature": 5}, "temperature"),
        (
            {"model": "mock/echo", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {"model": "mock/echo", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
        (
            {"model": "mock/echo", "messages": HELLO, "tool_choice": "required"},
            "tool_choice",
        ),
    ],
)
def test_bad_chat_request(gateway: Gateway, mock: MockOpenAI, body: Any, param: str) -> None:
    assert_error(post(gateway, "/chat/completions", body), 400, "invalid_request_error", param)
    assert not mock.requests, "a rejected request must not reach the upstream"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/embeddings", {"model": "mock/embed"}, "input"),
        ("/embeddings", {"model": "mock/embed", "input": []}, "input"),
        (
            "/embeddings",
            {"model": "mock/embed", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
        ("/embeddings", {"model": "mock/embed", "input": "x", "dimensions": 0}, "dimensions"),
        ("/rerank", {"model": "mock/rerank", "documents": ["a"]}, "query"),
        ("/rerank", {"model": "mock/rerank", "query": "q", "documents": []}, "documents"),
        ("/rerank", {"model": "mock/rerank", "query": "q", "documents": [1]}, "documents[0]"),
        ("/embeddings", {"model": "mock/echo", "input": "x"}, "model"),
    ],
)
def test_bad_embeddings_and_rerank(gateway: Gateway, path: str, body: Any, param: str) -> None:
    assert_error(post(gateway, path, body), 400, "invalid_request_error", param)


@pytest.mark.parametrize("path", ["/chat/completions", "/embeddings", "/rerank"])
def test_bad_or_missing_key(gateway: Gateway, path: str) -> None:
    body = {"model": "mock/echo", "messages": HELLO}
    assert_error(post(gateway, path, body, key="sk-sy-not-a-key"), 401, "authentication_error")
    assert_error(post(gateway, path, body, key=None), 401, "authentication_error")
    # Even a broken body gets the 401 first: nothing is told to an unknown caller.
    assert_error(post(gateway, path, b"{", key="sk-sy-not-a-key"), 401, "authentication_error")
    raw = request("GET", gateway.base_url + "/models", headers={"Authorization": "Basic abc"})
    assert_error(raw, 401, "authentication_error")


def test_unknown_model(gateway: Gateway) -> None:
    error = assert_error(
        post(gateway, "/chat/completions", {"model": "acme/nope", "messages": HELLO}),
        404,
        "not_found_error",
        "model",
    )
    assert "acme/nope" in error["message"]
    raw = request(
        "GET",
        gateway.base_url + "/models/acme/nope",
        headers={"Authorization": f"Bearer {gateway.key}"},
    )
    assert_error(raw, 404, "not_found_error", "model")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "model", ["mock/fail500", "dead/chat", "mock/garbage", "mock/empty", "mock/cut", "mock/drop"]
)
def test_upstream_failure_is_502(gateway: Gateway, model: str, stream: bool) -> None:
    raw = post(gateway, "/chat/completions", {"model": model, "messages": HELLO, "stream": stream})
    if model in ("mock/cut", "mock/drop") and stream:
        # These streams send content before failing: the 200 is out, so the failure
        # arrives in-stream (next test).
        assert raw.status == 200
        return
    error = assert_error(raw, 502, "upstream_error")
    assert error["metadata"]["provider_name"] == model.split("/")[0]


def test_upstream_400_is_the_callers_fault(gateway: Gateway) -> None:
    error = assert_error(
        post(gateway, "/chat/completions", {"model": "mock/fail400", "messages": HELLO}),
        400,
        "invalid_request_error",
        "temperature",
    )
    assert "bad parameter from upstream" in error["message"]
    assert error["metadata"]["provider_name"] == "mock"


@pytest.mark.parametrize("model", ["mock/cut", "mock/drop"])
def test_failure_after_first_chunk_is_an_error_chunk(gateway: Gateway, model: str) -> None:
    conn, response = open_stream(
        gateway.base_url + "/chat/completions",
        {"model": model, "messages": HELLO, "stream": True},
        {"Authorization": f"Bearer {gateway.key}"},
    )
    try:
        assert response.status == 200
        events = sse_events(response)
    finally:
        conn.close()
    assert "[DONE]" not in events
    first, last = json.loads(events[0]), json.loads(events[-1])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "partial "  # what arrived before the failure was delivered
    assert last["id"] == first["id"]
    assert last["choices"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 502
    assert last["error"]["type"] == "upstream_error"
    assert last["error"]["metadata"]["provider_name"] == "mock"


@pytest.mark.parametrize("how", ["header", "body"])
@pytest.mark.parametrize("stream", [False, True])
def test_deadline_is_408(gateway: Gateway, how: str, stream: bool) -> None:
    body: dict[str, Any] = {"model": "mock/hang", "messages": HELLO, "stream": stream}
    headers = {}
    if how == "header":
        headers["x-switchyard-timeout"] = "0.5"
    else:
        body["timeout"] = 0.5
    started = time.monotonic()
    raw = post(gateway, "/chat/completions", body, **headers)
    elapsed = time.monotonic() - started
    assert_error(raw, 408, "timeout_error")
    assert elapsed < 5, f"the deadline was not honoured ({elapsed:.1f} s)"


def test_bad_timeout_value(gateway: Gateway) -> None:
    raw = post(
        gateway,
        "/chat/completions",
        {"model": "mock/echo", "messages": HELLO},
        **{"x-switchyard-timeout": "soon"},
    )
    assert_error(raw, 400, "invalid_request_error", "x-switchyard-timeout")


def test_request_id_is_echoed_or_made(gateway: Gateway) -> None:
    raw = post(
        gateway,
        "/chat/completions",
        {"model": "mock/echo", "messages": HELLO},
        **{"x-request-id": "trace-123"},
    )
    assert raw.status == 200
    assert raw.headers["x-request-id"] == "trace-123"
    raw = post(
        gateway,
        "/chat/completions",
        {"model": "acme/nope", "messages": HELLO},
        **{"x-request-id": "bad id with spaces"},
    )
    assert raw.headers["x-request-id"] != "bad id with spaces"


def test_healthz_carries_a_request_id(gateway: Gateway) -> None:
    """/healthz is a response like any other: it names its request for the logs."""
    raw = request("GET", gateway.http_url + "/healthz", headers={"x-request-id": "probe-7"})
    assert raw.status == 200 and raw.json() == {"status": "ok"}
    assert raw.headers.get("x-request-id") == "probe-7"
    made = request("GET", gateway.http_url + "/healthz").headers.get("x-request-id")
    assert made and made != "probe-7"


def test_unknown_route_and_method(gateway: Gateway) -> None:
    assert_error(request("GET", gateway.base_url + "/nothing"), 404, "not_found_error")
    assert_error(
        request("GET", gateway.base_url + "/chat/completions"), 405, "invalid_request_error"
    )


def test_sdk_raises_typed_errors(gateway: Gateway) -> None:
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as not_found:
        sdk.chat.completions.create(model="acme/nope", messages=HELLO)  # type: ignore[arg-type]
    assert not_found.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="mock/echo", messages=[])
    assert bad.value.param == "messages"
    bad_key = openai.OpenAI(base_url=gateway.base_url, api_key="sk-sy-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()
    with pytest.raises(openai.InternalServerError) as upstream:
        sdk.chat.completions.create(model="mock/fail500", messages=HELLO)  # type: ignore[arg-type]
    assert upstream.value.status_code == 502
