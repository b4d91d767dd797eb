"""A Gemini 3 tool loop through the Messages door, as the official `anthropic` SDK runs it.

Gemini 3 signs each function call (`thoughtSignature`) and refuses a functionResponse
turn whose call lost its signature; the Gemini mock refuses it the same way. Messages
has no field for a signature, so it reaches the client as a `redacted_thinking` block
(the gateway's sealed envelope) before its tool_use, and the client sends the answer's
content back as it got it (what the SDKs' tool loops and Claude Code do). Streamed and
not, with thinking and without; a tampered envelope is a 400 naming the field.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.contract.test_reasoning import Pool
from tests.fixtures.flavors import Flavor, discover

GEMINI: Flavor = next(f for f in discover() if f.name == "gemini")
TOOLS: Any = [
    {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
QUESTION: Any = {"role": "user", "content": "weather in Paris?"}
THOUGHT = "The user said weather in Paris? so I think"
THINKING = pytest.mark.parametrize(
    "thinking",
    [None, {"type": "enabled", "budget_tokens": 2048}],
    ids=["plain", "thinking"],
)


@pytest.fixture(scope="module")
def gemini(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    running = Pool(tmp_path_factory)
    yield running.get(GEMINI)
    running.stop()


def _sdk(gateway: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.http_url, api_key=gateway.key, max_retries=0, timeout=60
    )


def _options(thinking: Any) -> Any:
    options: Any = {"model": "up/think", "max_tokens": 4096, "tools": TOOLS}
    if thinking is not None:
        options["thinking"] = thinking
    return options


def _result(tool_use_id: str) -> Any:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": '{"temp": 21}'}],
    }


def _check_first(content: Any, thinking: Any) -> None:
    kinds = [b.type for b in content]
    expected = ["redacted_thinking", "tool_use"]
    assert kinds == (["thinking", *expected] if thinking else expected)
    if thinking:
        assert content[0].thinking == THOUGHT and content[0].signature == ""
    envelope, use = content[-2], content[-1]
    assert envelope.data.startswith("sy1:")
    sealed = json.loads(base64.urlsafe_b64decode(envelope.data[4:]))
    assert sealed == [
        {
            "type": "reasoning.encrypted",
            "data": sealed[0]["data"],
            "id": use.id,
            "format": "google-gemini-v1",
            "index": 1,
        }
    ]
    assert sealed[0]["data"].startswith("gemini-sig-")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}


def _check_upstream(mock: Any, content: Any) -> None:
    """The second turn sent Gemini the call with its signature (the mock refused it
    otherwise); the client's thinking text went nowhere (Gemini does not take it)."""
    sent = mock.requests[-1].body
    model = [c for c in sent["contents"] if c["role"] == "model"][-1]
    sealed = json.loads(base64.urlsafe_b64decode(content[-2].data[4:]))
    assert model["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": sealed[0]["data"],
        }
    ]


@THINKING
def test_tool_loop(gemini: tuple[Any, Any], thinking: Any) -> None:
    mock, gateway = gemini
    client = _sdk(gateway)
    first = client.messages.create(**_options(thinking), messages=[QUESTION])
    _check_first(first.content, thinking)
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert use.type == "tool_use"
    second = client.messages.create(
        **_options(thinking),
        messages=[QUESTION, {"role": "assistant", "content": first.content}, _result(use.id)],
    )
    assert second.stop_reason == "end_turn"
    # Gemini 3 signs its last text part too: that signature follows the text.
    kinds = [b.type for b in second.content]
    assert kinds == (["thinking"] if thinking else []) + ["text", "redacted_thinking"]
    answer: Any = second.content[-2]
    assert answer.text == 'done: {"temp": 21}'
    _check_upstream(mock, first.content)


@THINKING
def test_tool_loop_streamed(gemini: tuple[Any, Any], thinking: Any) -> None:
    mock, gateway = gemini
    client = _sdk(gateway)
    with client.messages.stream(**_options(thinking), messages=[QUESTION]) as stream:
        events: list[Any] = [e for e in stream if e.type.startswith("content_block_")]
        first = stream.get_final_message()
    _check_first(first.content, thinking)
    # The envelope is whole in its start event, closed before the tool_use opens.
    at = len(first.content) - 2
    steps = [(e.type, e.index) for e in events if e.index in (at, at + 1)]
    assert steps[:3] == [
        ("content_block_start", at),
        ("content_block_stop", at),
        ("content_block_start", at + 1),
    ]
    opened = next(e for e in events if e.type == "content_block_start" and e.index == at)
    assert opened.content_block.type == "redacted_thinking"
    envelope: Any = first.content[at]
    assert opened.content_block.data == envelope.data
    use = first.content[-1]
    assert use.type == "tool_use"
    with client.messages.stream(
        **_options(thinking),
        messages=[QUESTION, {"role": "assistant", "content": first.content}, _result(use.id)],
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == 'done: {"temp": 21}'
    _check_upstream(mock, first.content)


def test_lost_signature_is_gemini_s_400(gemini: tuple[Any, Any]) -> None:
    """Without the envelope the loop fails as Gemini 3 fails it: what the block is for."""
    _, gateway = gemini
    client = _sdk(gateway)
    first = client.messages.create(**_options(None), messages=[QUESTION])
    use = first.content[-1]
    assert use.type == "tool_use"
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            **_options(None),
            messages=[QUESTION, {"role": "assistant", "content": [use]}, _result(use.id)],
        )
    assert "thought_signature" in str(caught.value.body)


def test_tampered_envelope_is_a_400_naming_the_field(gemini: tuple[Any, Any]) -> None:
    _, gateway = gemini
    client = _sdk(gateway)
    first = client.messages.create(**_options(None), messages=[QUESTION])
    use = first.content[-1]
    assert use.type == "tool_use"
    tampered: Any = {"type": "redacted_thinking", "data": first.content[0].data[:-6] + "%%"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            **_options(None),
            messages=[QUESTION, {"role": "assistant", "content": [tampered, use]}, _result(use.id)],
        )
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["error"]["type"] == "invalid_request_error"
    assert "'messages[1].content[0].data' is damaged" in body["error"]["message"]
