"""The Anthropic adapter end to end: a real gateway in front of the Anthropic mock.

What the contract suite does not show: how Anthropic's failures reach the client, that
stop sequences and cache usage survive translation, what the upstream actually
receives, and that the adapter's I/O is bounded and closed when the caller stops.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.config import ProviderConfig
from service.domain.chat import ChatRequest, Message
from service.providers.anthropic import AnthropicProvider
from service.providers.base import Attempt
from service.providers.errors import FailureKind, ProviderError
from service.routing.policy import RetryPolicy
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import RawResponse, open_stream, request, sse_events
from tests.fixtures.mock_anthropic import MockAnthropic

MODELS = ("echo", "tools", "overloaded", "fail400", "stop_seq", "error_midstream")
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"maximum": 7}},
            },
        },
    }
]


def _config(path: Path, base_url: str) -> Path:
    lines = [
        "providers:",
        "  claude:",
        "    kind: anthropic",
        f"    base_url: '{base_url}'",
        "    api_key: upstream-secret",
        "    timeout: 20",
        "    default_max_tokens: 1000",
        "models:",
    ]
    for model in MODELS:
        lines.append(
            f"  - {{id: claude/{model}, endpoints: [{{provider: claude, model: {model}}}]}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def mock() -> Iterator[MockAnthropic]:
    upstream = MockAnthropic().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gateway(mock: MockAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = _config(tmp_path_factory.mktemp("anthropic") / "switchyard.yaml", mock.base_url)
    running = start_gateway(config, tmp_path_factory.mktemp("anthropic-data"))
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _fresh(mock: MockAnthropic) -> None:
    mock.clear()


def chat(gateway: Gateway, body: dict[str, Any]) -> RawResponse:
    headers = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}
    return request("POST", gateway.base_url + "/chat/completions", body, headers)


def stream_chunks(gateway: Gateway, body: dict[str, Any]) -> tuple[int, list[str]]:
    conn, response = open_stream(
        gateway.base_url + "/chat/completions",
        body | {"stream": True},
        {"Authorization": f"Bearer {gateway.key}"},
    )
    try:
        if response.status != 200:
            return response.status, [response.read().decode()]
        return 200, sse_events(response)
    finally:
        conn.close()


def test_the_upstream_request_has_anthropic_shape(gateway: Gateway, mock: MockAnthropic) -> None:
    raw = chat(
        gateway,
        {
            "model": "claude/echo",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Use metric units."},
                {"role": "user", "content": "hello"},
            ],
            "tools": TOOLS,
            "parallel_tool_calls": False,
            "top_k": 5,
        },
    )
    assert raw.status == 200, raw.body
    [seen] = mock.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "upstream-secret"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    body = seen.body
    assert body is not None
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use metric units."},
    ]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert body["max_tokens"] == 1000  # the provider's default_max_tokens
    assert body["top_k"] == 5
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "stream" not in body


def test_overloaded_529_reaches_the_client_as_502(gateway: Gateway, mock: MockAnthropic) -> None:
    raw = chat(
        gateway, {"model": "claude/overloaded", "messages": [{"role": "user", "content": "x"}]}
    )
    assert raw.status == 502, raw.body
    error = raw.json()["error"]
    assert error["type"] == "upstream_error"
    assert error["metadata"]["provider_name"] == "claude"
    assert "overloaded_error" in error["message"]
    # 529 is retryable: the engine retried the endpoint before giving up.
    attempts = RetryPolicy().retries + 1
    assert [r.body["model"] for r in mock.requests if r.body] == ["overloaded"] * attempts
    assert error["metadata"]["attempts"] == str(attempts)


def test_an_error_event_before_any_output_keeps_its_status(gateway: Gateway) -> None:
    status, events = stream_chunks(
        gateway, {"model": "claude/error_midstream", "messages": [{"role": "user", "content": "x"}]}
    )
    assert status == 502
    error = json.loads(events[0])["error"]
    assert error["metadata"]["provider_name"] == "claude"


def test_upstream_400_is_the_clients_400(gateway: Gateway) -> None:
    raw = chat(gateway, {"model": "claude/fail400", "messages": [{"role": "user", "content": "x"}]})
    assert raw.status == 400, raw.body
    error = raw.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "temperature"
    assert error["metadata"]["provider_name"] == "claude"


def test_stop_sequence_is_finish_reason_stop(gateway: Gateway, mock: MockAnthropic) -> None:
    body = {
        "model": "claude/stop_seq",
        "messages": [{"role": "user", "content": "count"}],
        "stop": ["STOP"],
    }
    raw = chat(gateway, body)
    assert raw.status == 200, raw.body
    choice = raw.json()["choices"][0]
    assert choice["message"]["content"] == "one two three "
    assert choice["finish_reason"] == "stop"
    assert mock.requests[-1].body is not None
    assert mock.requests[-1].body["stop_sequences"] == ["STOP"]
    status, events = stream_chunks(gateway, body)
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "one two three "
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"


def test_cached_tokens_are_visible(gateway: Gateway) -> None:
    body = {
        "model": "claude/echo",
        "messages": [
            {"role": "system", "content": "You answer questions about a long handbook."},
            {"role": "user", "content": "first question"},
        ],
    }
    first = chat(gateway, body).json()["usage"]
    second = chat(gateway, body).json()["usage"]
    # The mock caches the system prompt (7 words): written by the first call, read after.
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["prompt_tokens_details"]["cached_tokens"] == 7
    assert first["prompt_tokens"] == second["prompt_tokens"] == 2 + 7
    assert second["total_tokens"] == second["prompt_tokens"] + second["completion_tokens"]
    status, events = stream_chunks(gateway, body | {"stream_options": {"include_usage": True}})
    assert status == 200
    usage = json.loads(events[-2])["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 7


def _tool_ids(turns: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(block type, id) of every tool_use and tool_result the upstream received."""
    return [
        (b["type"], b.get("id") or b.get("tool_use_id"))
        for turn in turns
        for b in turn["content"]
        if b["type"] in ("tool_use", "tool_result")
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_conversation_begun_elsewhere_continues_with_claude(
    gateway: Gateway, mock: MockAnthropic, stream: bool
) -> None:
    """Ids minted by another provider (Kimi-style `functions.get_weather:0`) are refused
    by Anthropic; the gateway sends ids that fit, the same for a call and its result."""

    def call(cid: str, city: str) -> dict[str, Any]:
        arguments = json.dumps({"city": city})
        return {
            "id": cid,
            "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }

    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                call("functions.get_weather:0", "Paris"),
                call("functions.get_weather:1", "Tokyo"),
            ],
        },
        {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "functions.get_weather:1", "content": "rain"},
        {"role": "assistant", "content": "Sunny in Paris, rain in Tokyo."},
        {"role": "user", "content": "And tomorrow?"},
    ]
    body = {"model": "claude/tools", "messages": history, "tools": TOOLS}
    if stream:
        status, events = stream_chunks(gateway, body)
        assert status == 200, events
        calls = [
            c
            for e in events[:-1]
            for c in json.loads(e)["choices"][0]["delta"].get("tool_calls") or []
            if c.get("id")
        ]
        answered = [c["id"] for c in calls]
    else:
        raw = chat(gateway, body)
        assert raw.status == 200, raw.body
        answered = [c["id"] for c in raw.json()["choices"][0]["message"]["tool_calls"]]
    assert answered == ["call_a", "call_b"]  # Claude's own ids reach the client unchanged
    sent = mock.requests[-1].body
    assert sent is not None
    ids = _tool_ids(sent["messages"])
    uses = [i for kind, i in ids if kind == "tool_use"]
    assert [kind for kind, _ in ids] == ["tool_use", "tool_use", "tool_result", "tool_result"]
    assert [i for kind, i in ids if kind == "tool_result"] == uses  # each result, its call
    assert len(set(uses)) == 2 and not {"functions.get_weather:0", "functions.get_weather:1"} & set(
        uses
    )

    # The next turn re-sends the history plus Claude's calls: the foreign ids map the
    # same way again, and Claude's own ids go back exactly as Claude sent them.
    history += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call("call_a", "Paris"), call("call_b", "Tokyo")],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "cloudy"},
        {"role": "tool", "tool_call_id": "call_b", "content": "snow"},
    ]
    raw = chat(gateway, {"model": "claude/echo", "messages": history, "tools": TOOLS})
    assert raw.status == 200, raw.body
    again = mock.requests[-1].body
    assert again is not None
    assert [i for _, i in _tool_ids(again["messages"])] == [
        *uses,
        *uses,
        "call_a",
        "call_b",
        "call_a",
        "call_b",
    ]


# --- the adapter's own I/O ------------------------------------------------------------


def _provider(mock: MockAnthropic, **settings: Any) -> AnthropicProvider:
    config = ProviderConfig(
        name="claude",
        kind="anthropic",
        base_url=mock.base_url,
        api_key="upstream-secret",
        **settings,
    )
    return AnthropicProvider(config)


def _ask(model: str) -> ChatRequest:
    return ChatRequest(model=f"claude/{model}", messages=(Message(role="user", content="go"),))


def test_closing_the_stream_closes_the_upstream_response(mock: MockAnthropic) -> None:
    async def scenario() -> str | None:
        provider = _provider(mock)
        try:
            deltas = provider.stream(_ask("slow"), Attempt("slow"))
            first = await anext(deltas)
            await deltas.aclose()  # type: ignore[attr-defined]
            return first.choices[0].content
        finally:
            await provider.aclose()

    assert asyncio.run(scenario()) == "tick "
    assert mock.wait_for_disconnect(5.0), "the upstream stream was left open"


@pytest.mark.parametrize(
    ("settings", "deadline"),
    [({}, 0.3), ({"first_byte_timeout": 0.3}, None), ({"timeout": 0.3}, None)],
    ids=["deadline", "first_byte_timeout", "timeout"],
)
def test_a_hanging_upstream_is_bounded(
    mock: MockAnthropic, settings: dict[str, float], deadline: float | None
) -> None:
    async def scenario() -> ProviderError:
        provider = _provider(mock, **settings)
        until = None if deadline is None else asyncio.get_running_loop().time() + deadline
        try:
            await provider.complete(_ask("hang"), Attempt("hang", deadline=until))
        except ProviderError as err:
            return err
        finally:
            await provider.aclose()
        raise AssertionError("the hanging call returned")

    started = time.monotonic()
    err = asyncio.run(scenario())
    assert err.kind is FailureKind.TIMEOUT and err.retryable
    assert time.monotonic() - started < 3.0
    assert mock.wait_for_disconnect(5.0), "the upstream request was left open"


def test_a_wrong_key_is_anthropics_401(mock: MockAnthropic) -> None:
    async def scenario() -> ProviderError:
        config = ProviderConfig(name="claude", kind="anthropic", base_url=mock.base_url)
        provider = AnthropicProvider(config)
        try:
            await provider.complete(_ask("echo"), Attempt("echo"))
        except ProviderError as err:
            return err
        finally:
            await provider.aclose()
        raise AssertionError("the call without a key succeeded")

    err = asyncio.run(scenario())
    assert err.status == 401 and not err.retryable and not err.client_fault
    assert "authentication_error" in err.message
