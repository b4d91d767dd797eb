"""The official `anthropic` SDK through a real gateway, against the OpenAI-compatible mock.

The Messages front door serves any model of the catalog: here an OpenAI-compatible
upstream answers, so every request and answer is translated both ways. Runs once per
channel between the HTTP layer and the service (in-process and gRPC).
"""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import pytest

from tests.fixtures.gateway import Gateway
from tests.fixtures.http import open_stream, request
from tests.fixtures.mock_openai import MockOpenAI

WEATHER: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
]


def sdk(gateway: Gateway, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.http_url, api_key=gateway.key, max_retries=0, **options
    )


def last_chat_body(mock: MockOpenAI) -> dict[str, Any]:
    bodies = [r.body for r in mock.requests if r.path.endswith("/chat/completions")]
    assert bodies and bodies[-1] is not None, "the upstream saw no chat request"
    return bodies[-1]


def test_create_text(gateway: Gateway, mock: MockOpenAI) -> None:
    message = sdk(gateway).messages.create(
        model="mock/echo",
        max_tokens=2000,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}],
        stop_sequences=["END"],
        metadata={"user_id": "u-42"},
        extra_body={"temperature": 0.5},  # this SDK version no longer names it
        thinking={"type": "enabled", "budget_tokens": 1024},
        service_tier="auto",
    )
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.model == "mock/echo"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = last_chat_body(mock)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][1] == {"role": "user", "content": "hello there"}
    assert sent["max_tokens"] == 2000 and sent["stop"] == ["END"]
    assert sent["temperature"] == 0.5 and sent["user"] == "u-42"
    # Anthropic's own parameters (as Claude Code sends) never reach another upstream;
    # thinking does, in the upstream's own terms (OpenAI's nearest effort).
    assert "thinking" not in sent and "service_tier" not in sent
    assert sent["reasoning_effort"] == "low"


def test_stream_text(gateway: Gateway) -> None:
    client = sdk(gateway)
    with client.messages.stream(
        model="mock/echo",
        max_tokens=100,
        messages=[{"role": "user", "content": "stream me please"}],
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "echo: stream me please"
    assert len(texts) > 1, "the text should arrive in several deltas"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert final.content[0].text == "echo: stream me please"  # type: ignore[union-attr]


def test_stream_event_sequence(gateway: Gateway) -> None:
    """The raw events, in Anthropic's documented order, each named after its type."""
    conn, response = open_stream(
        gateway.http_url + "/v1/messages",
        {
            "model": "mock/echo",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "one two"}],
        },
        {"x-api-key": gateway.key, "content-type": "application/json"},
    )
    try:
        assert response.status == 200
        assert response.getheader("x-generation-id")
        names: list[str] = []
        datas: list[dict[str, Any]] = []
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                names.append(line[7:])
            elif line.startswith("data: "):
                datas.append(json.loads(line[6:]))
    finally:
        conn.close()
    assert [d["type"] for d in datas] == names
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = datas[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert datas[2]["content_block"] == {"type": "text", "text": ""}
    delta = datas[-2]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] > 0


def test_bearer_auth_and_missing_key(gateway: Gateway) -> None:
    bearer = anthropic.Anthropic(base_url=gateway.http_url, auth_token=gateway.key, max_retries=0)
    reply = bearer.messages.create(
        model="mock/echo", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content[0].text == "echo: hi"  # type: ignore[union-attr]
    raw = request(
        "POST",
        gateway.http_url + "/v1/messages",
        {"model": "mock/echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        {"content-type": "application/json"},
    )
    assert raw.status == 401
    body = raw.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert "x-api-key" in body["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=gateway.http_url, api_key="sk-wrong", max_retries=0
        ).messages.create(
            model="mock/echo", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


# --- tools ----------------------------------------------------------------------------


def test_tool_loop(gateway: Gateway, mock: MockOpenAI) -> None:
    """Two rounds: the model calls two tools, the client answers with tool_result
    blocks, the model answers in text; the upstream sees OpenAI's tool messages."""
    client = sdk(gateway)
    question: Any = {"role": "user", "content": "weather and time?"}
    first = client.messages.create(
        model="mock/tools", max_tokens=100, tools=WEATHER, messages=[question]
    )
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert [(c.id, c.name, c.input) for c in calls] == [
        ("call_a", "get_weather", {"city": "Paris"}),
        ("call_b", "get_time", {"city": "Tokyo"}),
    ]
    sent = last_chat_body(mock)
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER[0]["input_schema"]

    results: Any = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"},
            {
                "type": "tool_result",
                "tool_use_id": "call_b",
                "content": [{"type": "text", "text": "noon"}],
            },
        ],
    }
    history: Any = [question, {"role": "assistant", "content": first.content}, results]
    second = client.messages.create(
        model="mock/tools", max_tokens=100, tools=WEATHER, messages=history
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "tool results: sunny; noon"  # type: ignore[union-attr]
    sent = last_chat_body(mock)
    assert sent["messages"][1]["role"] == "assistant"
    assert [c["id"] for c in sent["messages"][1]["tool_calls"]] == ["call_a", "call_b"]
    assert json.loads(sent["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris"
    }
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}
    assert sent["messages"][3]["tool_call_id"] == "call_b"


def test_tool_loop_streamed(gateway: Gateway) -> None:
    client = sdk(gateway)
    question: Any = {"role": "user", "content": "weather?"}
    with client.messages.stream(
        model="mock/tools", max_tokens=100, tools=WEATHER, messages=[question]
    ) as stream:
        events = list(stream)
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in first.content] == [
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"city": "Tokyo"}),
    ]
    deltas = [
        e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(deltas) >= 4, "tool input should stream in input_json_delta fragments"
    assert {e.index for e in deltas} == {0, 1}
    history: Any = [
        question,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": b.id, "content": f"r{i}"}  # type: ignore[union-attr]
                for i, b in enumerate(first.content)
            ],
        },
    ]
    with client.messages.stream(
        model="mock/tools", max_tokens=100, tools=WEATHER, messages=history
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "tool results: r0; r1"
    assert final.stop_reason == "end_turn"


def test_tool_choice_and_parallel(gateway: Gateway, mock: MockOpenAI) -> None:
    client = sdk(gateway)
    ask: Any = [{"role": "user", "content": "go"}]
    cases: list[tuple[Any, Any, Any]] = [
        (
            {"type": "tool", "name": "get_time"},
            {"type": "function", "function": {"name": "get_time"}},
            None,
        ),
        ({"type": "any"}, "required", None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "none"}, "none", None),
    ]
    for given, expected, parallel in cases:
        client.messages.create(
            model="mock/echo", max_tokens=20, tools=WEATHER, tool_choice=given, messages=ask
        )
        sent = last_chat_body(mock)
        assert sent["tool_choice"] == expected, given
        assert sent.get("parallel_tool_calls") == parallel, given


def test_image_block(gateway: Gateway, mock: MockOpenAI) -> None:
    pixel = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
        "rkJggg=="
    )
    message = sdk(gateway).messages.create(
        model="mock/echo",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": pixel},
                    },
                ],
            }
        ],
    )
    assert message.content[0].text == "echo: what is this [images: 1]"  # type: ignore[union-attr]
    parts = last_chat_body(mock)["messages"][0]["content"]
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{pixel}"


# --- errors, auth, count_tokens ---------------------------------------------------------


def post(gateway: Gateway, path: str, body: Any, **headers: str) -> Any:
    sent = {"x-api-key": gateway.key, "content-type": "application/json", **headers}
    return request("POST", gateway.http_url + path, body, sent)


def anthropic_error(raw: Any, status: int, kind: str) -> str:
    """The error's message, after checking Anthropic's shape, status and type."""
    assert raw.status == status, raw.body
    body = raw.json()
    assert set(body) == {"type", "error", "request_id"}
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert body["request_id"] == raw.headers["x-request-id"]
    return str(body["error"]["message"])


def test_errors_in_anthropic_shape(gateway: Gateway) -> None:
    ask = [{"role": "user", "content": "x"}]
    message = anthropic_error(
        post(gateway, "/v1/messages", {"model": "mock/echo", "messages": ask}),
        400,
        "invalid_request_error",
    )
    assert "max_tokens" in message
    anthropic_error(post(gateway, "/v1/messages", b"{nope"), 400, "invalid_request_error")
    anthropic_error(
        post(gateway, "/v1/messages", {"model": "mock/nope", "max_tokens": 5, "messages": ask}),
        404,
        "not_found_error",
    )
    anthropic_error(
        post(gateway, "/v1/messages", {"model": "mock/fail500", "max_tokens": 5, "messages": ask}),
        502,
        "api_error",
    )
    # A bad key is a 401 even when the body is bad too (as on every route).
    anthropic_error(
        post(gateway, "/v1/messages", {"messages": 3}, **{"x-api-key": "sk-bad"}),
        401,
        "authentication_error",
    )
    client = sdk(gateway)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="mock/nope", max_tokens=5, messages=ask)  # type: ignore[arg-type]
    video: Any = [{"role": "user", "content": [{"type": "video"}]}]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="mock/echo", max_tokens=5, messages=video)
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_stream_errors(gateway: Gateway) -> None:
    """Before any output: the true status. After it: an `error` event ends the stream."""
    ask: Any = [{"role": "user", "content": "x"}]
    client = sdk(gateway)
    with (
        pytest.raises(anthropic.InternalServerError) as failed,
        client.messages.stream(model="mock/fail500", max_tokens=5, messages=ask) as s,
    ):
        list(s)
    assert failed.value.status_code == 502
    conn, response = open_stream(
        gateway.http_url + "/v1/messages",
        {"model": "mock/drop", "max_tokens": 5, "stream": True, "messages": ask},
        {"x-api-key": gateway.key, "content-type": "application/json"},
    )
    try:
        assert response.status == 200
        lines = [raw.decode().rstrip("\r\n") for raw in response]
    finally:
        conn.close()
    names = [line[7:] for line in lines if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "error"
    assert "message_stop" not in names
    error = json.loads([line for line in lines if line.startswith("data: ")][-1][6:])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="mock/drop", max_tokens=5, messages=ask) as s,
    ):
        list(s)


def test_version_header_accepted(gateway: Gateway) -> None:
    raw = post(
        gateway,
        "/v1/messages",
        {"model": "mock/echo", "max_tokens": 5, "messages": [{"role": "user", "content": "v"}]},
        **{"anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"},
    )
    assert raw.status == 200
    assert raw.json()["content"] == [{"type": "text", "text": "echo: v"}]


def test_count_tokens(gateway: Gateway) -> None:
    client = sdk(gateway)
    short = client.messages.count_tokens(
        model="mock/echo", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="mock/echo",
        system="A much longer system prompt that must count for something.",
        messages=[{"role": "user", "content": "hi " * 50}],
        tools=WEATHER,
    )
    assert 0 < short.input_tokens < long.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="mock/nope", messages=[{"role": "user", "content": "x"}])
    anthropic_error(
        post(
            gateway,
            "/v1/messages/count_tokens",
            {"model": "mock/echo", "messages": []},
            **{"x-api-key": "sk-bad"},
        ),
        401,
        "authentication_error",
    )


def test_stream_disconnect_closes_upstream_and_bills(gateway: Gateway, mock: MockOpenAI) -> None:
    conn, response = open_stream(
        gateway.http_url + "/v1/messages",
        {
            "model": "mock/slow",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "go"}],
        },
        {"x-api-key": gateway.key, "content-type": "application/json"},
    )
    assert response.status == 200
    generation_id = response.getheader("x-generation-id")
    deltas = 0
    for line in response:
        if line.startswith(b"event: content_block_delta"):
            deltas += 1
        if deltas == 3:
            break
    assert conn.sock is not None
    conn.sock.close()
    conn.close()
    assert mock.wait_for_disconnect(5.0), "the upstream stream was left open"
    deadline = time.monotonic() + 10
    while True:
        found = request(
            "GET",
            gateway.base_url + f"/generation?id={generation_id}",
            headers={"Authorization": f"Bearer {gateway.key}"},
        )
        if found.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found.status == 200, found.body
    row = found.json()["data"]
    assert row["cancelled"] is True and row["tokens_completion"] > 0
