"""The Messages door in front of every kind of upstream, and prompt caching end to end.

Toward an Anthropic endpoint the client's fields arrive as the client sent them
(cache_control included); toward Gemini and OpenAI-compatible ones the request is
translated. Cache reads and writes come back in both doors' usage, are priced at the
endpoint's cache prices and recorded in the ledger (/v1/generation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import request
from tests.fixtures.mock_anthropic import MockAnthropic
from tests.fixtures.mock_gemini import MockGemini
from tests.fixtures.mock_openai import MockOpenAI

PROMPT, COMPLETION, READ, WRITE = 0.000001, 0.000002, 0.0000001, 0.00000125
PRICED = (
    f"pricing: {{prompt: {PROMPT}, completion: {COMPLETION}, "
    f"input_cache_read: {READ}, input_cache_write: {WRITE}}}"
)
SYSTEM = "You are a careful assistant who answers in one short sentence only."


class Upstreams:
    def __init__(self) -> None:
        self.claude = MockAnthropic().start()
        self.gemini = MockGemini().start()
        self.openai = MockOpenAI().start()

    def stop(self) -> None:
        for mock in (self.claude, self.gemini, self.openai):
            mock.stop()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    running = Upstreams()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("messages") / "switchyard.yaml"
    lines = [
        "routing: {retries: 0}",
        "providers:",
        f"  claude: {{kind: anthropic, base_url: '{upstreams.claude.base_url}', "
        "api_key: upstream-secret}",
        f"  gemini: {{kind: gemini, base_url: '{upstreams.gemini.base_url}', "
        "api_key: upstream-secret}",
        f"  oai: {{kind: openai, base_url: '{upstreams.openai.base_url}', "
        "api_key: upstream-secret}",
        "models:",
    ]
    for provider, models in (
        ("claude", ("echo", "tools", "stop_seq")),
        ("gemini", ("echo", "tools", "cached")),
        ("oai", ("cached",)),
    ):
        for model in models:
            lines.append(
                f"  - {{id: {provider}/{model}, endpoints: "
                f"[{{provider: {provider}, model: {model}, {PRICED}}}]}}"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    running = start_gateway(path, tmp_path_factory.mktemp("messages-data"))
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _fresh(upstreams: Upstreams) -> None:
    for mock in (upstreams.claude, upstreams.gemini, upstreams.openai):
        mock.clear()


def sdk(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.http_url, api_key=gateway.key, max_retries=0)


def chat_sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)


def last_body(mock: Any) -> dict[str, Any]:
    bodies = [r.body for r in mock.requests if r.body is not None]
    assert bodies, "the upstream saw no request"
    return dict(bodies[-1])


def generation(gateway: Gateway, generation_id: str) -> dict[str, Any]:
    raw = request(
        "GET",
        gateway.base_url + f"/generation?id={generation_id}",
        headers={"Authorization": f"Bearer {gateway.key}"},
    )
    assert raw.status == 200, raw.body
    return dict(raw.json()["data"])


def priced(prompt: int, completion: int, read: int = 0, write: int = 0) -> float:
    fresh = prompt - read - write
    return fresh * PROMPT + completion * COMPLETION + read * READ + write * WRITE


# --- Anthropic endpoints: the client's fields as it sent them ---------------------------


def test_anthropic_endpoint_gets_the_fields_as_sent(gateway: Gateway, upstreams: Upstreams) -> None:
    system: Any = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    tools: Any = [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first question", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    message = sdk(gateway).messages.create(
        model="claude/echo",
        max_tokens=300,
        system=system,
        messages=messages,
        tools=tools,
        tool_choice={"type": "auto"},
        stop_sequences=["STOP"],
        metadata={"user_id": "user-7"},
        extra_body={"temperature": 0.3, "top_k": 4},
        service_tier="auto",
        thinking={"type": "disabled"},
    )
    assert message.content[0].text == "echo: second question"  # type: ignore[union-attr]
    sent = last_body(upstreams.claude)
    assert sent == {
        "model": "echo",
        "max_tokens": 300,
        "system": system,
        "messages": messages,
        "tools": tools,
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["STOP"],
        "metadata": {"user_id": "user-7"},
        "temperature": 0.3,
        "top_k": 4,
        "service_tier": "auto",
        "thinking": {"type": "disabled"},
    }


def test_anthropic_tool_loop_streamed(gateway: Gateway, upstreams: Upstreams) -> None:
    client = sdk(gateway)
    tools: Any = [
        {"name": "get_weather", "input_schema": {"type": "object"}},
        {"name": "get_time", "input_schema": {"type": "object"}},
    ]
    history: Any = [{"role": "user", "content": "weather and time?"}]
    with client.messages.stream(
        model="claude/tools", max_tokens=200, tools=tools, messages=history
    ) as stream:
        first = stream.get_final_message()
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and len(uses) == 2
    history += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "fine"},
                {
                    "type": "tool_result",
                    "tool_use_id": uses[1].id,
                    "content": "clock broken",
                    "is_error": True,
                },
            ],
        },
    ]
    second = client.messages.create(
        model="claude/tools", max_tokens=200, tools=tools, messages=history
    )
    assert second.stop_reason in ("tool_use", "end_turn")  # the mock calls again: it is a mock
    # The failed result reaches Anthropic flagged, as the client sent it.
    assert last_body(upstreams.claude)["messages"][-1] == history[-1]


# --- prompt caching ------------------------------------------------------------------


def test_cache_reads_and_writes_through_messages(gateway: Gateway) -> None:
    client = sdk(gateway)
    system: Any = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    ask: Any = [{"role": "user", "content": "hello cache"}]
    written = client.messages.create(
        model="claude/echo", max_tokens=50, system=system, messages=ask
    )
    words = len(SYSTEM.split())
    assert written.usage.cache_creation_input_tokens == words
    assert written.usage.cache_read_input_tokens == 0
    with client.messages.stream(
        model="claude/echo", max_tokens=50, system=system, messages=ask
    ) as stream:
        read = stream.get_final_message()
    assert read.usage.cache_read_input_tokens == words
    assert read.usage.cache_creation_input_tokens == 0
    assert read.usage.input_tokens == 2  # "hello cache": the rest of the prompt
    row = generation(gateway, read.id)
    assert (row["native_tokens_cached"], row["native_tokens_cache_write"]) == (words, 0)
    assert row["tokens_prompt"] == words + 2
    expected = priced(words + 2, row["tokens_completion"], read=words)
    assert row["total_cost"] == pytest.approx(expected)
    first_row = generation(gateway, written.id)
    assert first_row["native_tokens_cache_write"] == words
    assert first_row["total_cost"] == pytest.approx(
        priced(words + 2, first_row["tokens_completion"], write=words)
    )


def test_cache_control_through_chat_completions(gateway: Gateway, upstreams: Upstreams) -> None:
    client = chat_sdk(gateway)
    messages: Any = [
        {
            "role": "system",
            "content": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "user", "content": "hello again"},
    ]
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}},
            "cache_control": {"type": "ephemeral"},
        }
    ]
    first = client.chat.completions.create(model="claude/echo", messages=messages, tools=tools)
    sent = last_body(upstreams.claude)
    assert sent["system"] == [
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    ]
    assert sent["tools"][0]["cache_control"] == {"type": "ephemeral"}
    words = len(SYSTEM.split())
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    details = first.usage.prompt_tokens_details.model_dump()
    assert details["cached_tokens"] == 0 and details["cache_write_tokens"] == words
    second = client.chat.completions.create(model="claude/echo", messages=messages)
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens == words
    cost = second.usage.model_dump()["cost"]
    assert cost == pytest.approx(
        priced(second.usage.prompt_tokens, second.usage.completion_tokens, read=words)
    )


@pytest.mark.parametrize("model", ["gemini/cached", "oai/cached"])
def test_automatic_caching_reported_and_priced(gateway: Gateway, model: str) -> None:
    """OpenAI's and Gemini's own caching (no cache_control): reported the same way."""
    client = chat_sdk(gateway)
    messages: Any = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "cache me"},
    ]
    client.chat.completions.create(model=model, messages=messages)
    again = client.chat.completions.create(model=model, messages=messages)
    words = len(SYSTEM.split())
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details.cached_tokens == words
    cost = again.usage.model_dump()["cost"]
    assert cost == pytest.approx(
        priced(again.usage.prompt_tokens, again.usage.completion_tokens, read=words)
    )
    row = generation(gateway, again.id)
    assert row["native_tokens_cached"] == words
    via_messages = sdk(gateway).messages.create(
        model=model,
        max_tokens=20,
        system=SYSTEM,
        messages=[{"role": "user", "content": "cache me"}],
    )
    assert via_messages.usage.cache_read_input_tokens == words


# --- Gemini and the built-in local model behind the Messages door ------------------------


def test_gemini_tool_loop(gateway: Gateway, upstreams: Upstreams) -> None:
    client = sdk(gateway)
    tools: Any = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    history: Any = [{"role": "user", "content": "weather?"}]
    first = client.messages.create(
        model="gemini/tools", max_tokens=50, tools=tools, messages=history
    )
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and len(uses) == 2
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "Tokyo"}]
    history += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": u.id, "content": f"r{i}", "is_error": i == 1}
                for i, u in enumerate(uses)
            ],
        },
        {"role": "user", "content": "and now?"},
    ]
    second = client.messages.create(
        model="gemini/echo", max_tokens=50, tools=tools, messages=history
    )
    assert second.content[0].text == "echo: and now?"  # type: ignore[union-attr]
    contents = last_body(upstreams.gemini)["contents"]
    responses = [p for c in contents for p in c["parts"] if "functionResponse" in p]
    assert [r["functionResponse"]["name"] for r in responses] == ["get_weather", "get_weather"]
    # A failed result goes under the `error` key Gemini documents for it.
    assert [r["functionResponse"]["response"] for r in responses] == [
        {"content": "r0"},
        {"error": "r1"},
    ]


def test_local_model(local_gateway: Gateway) -> None:
    client = sdk(local_gateway)
    reply = client.messages.create(
        model="local/smollm2-135m-instruct",
        max_tokens=8,
        messages=[{"role": "user", "content": "Say hi."}],
    )
    assert reply.content and reply.content[0].type == "text"
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.output_tokens > 0
    with client.messages.stream(
        model="local/smollm2-135m-instruct",
        max_tokens=8,
        messages=[{"role": "user", "content": "Say hi."}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0


def test_models_show_cache_prices(gateway: Gateway) -> None:
    raw = request(
        "GET",
        gateway.base_url + "/models/claude/echo",
        headers={"Authorization": f"Bearer {gateway.key}"},
    )
    assert raw.status == 200, raw.body
    pricing = raw.json()["pricing"]
    assert (pricing["input_cache_read"], pricing["input_cache_write"]) == (
        "0.0000001",
        "0.00000125",
    )


def test_stop_sequence_reported(gateway: Gateway) -> None:
    client = sdk(gateway)
    ask: Any = [{"role": "user", "content": "count"}]
    reply = client.messages.create(
        model="claude/stop_seq", max_tokens=50, stop_sequences=["STOP"], messages=ask
    )
    assert reply.content[0].text == "one two three "  # type: ignore[union-attr]
    assert (reply.stop_reason, reply.stop_sequence) == ("stop_sequence", "STOP")
    with client.messages.stream(
        model="claude/stop_seq", max_tokens=50, stop_sequences=["STOP"], messages=ask
    ) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "STOP")


def test_documents_reach_anthropic_as_sent(gateway: Gateway, upstreams: Upstreams) -> None:
    """A PDF and a text document, in a user turn and inside a tool result (as Claude
    Code's file reads return them)."""
    pdf: Any = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
        "title": "spec.pdf",
    }
    notes: Any = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
        "title": "notes.txt",
    }
    messages: Any = [
        {"role": "user", "content": [pdf, {"type": "text", "text": "read these"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_9", "name": "read", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": [notes]},
                {"type": "text", "text": "summarise"},
            ],
        },
    ]
    tools: Any = [{"name": "read", "input_schema": {"type": "object"}}]
    reply = sdk(gateway).messages.create(
        model="claude/echo", max_tokens=50, tools=tools, messages=messages
    )
    assert reply.content[0].text == "echo: summarise"  # type: ignore[union-attr]
    assert last_body(upstreams.claude)["messages"] == messages
