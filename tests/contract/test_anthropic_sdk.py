"""The official `anthropic` SDK through a real gateway, against the OpenAI-compatible mock.

The Messages front door serves any model of the catalog: here an OpenAI-compatible
upstream answers, so every request and answer is translated both ways. Runs once per
channel between the HTTP layer and the service (in-process and gRPC).
"""

from __future__ import annotations

import json
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
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}],
        stop_sequences=["END"],
        metadata={"user_id": "u-42"},
        extra_body={"temperature": 0.5},  # this SDK version no longer names it
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
    assert sent["max_tokens"] == 100 and sent["stop"] == ["END"]
    assert sent["temperature"] == 0.5 and sent["user"] == "u-42"


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
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=gateway.http_url, api_key="sk-wrong", max_retries=0
        ).messages.create(
            model="mock/echo", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
