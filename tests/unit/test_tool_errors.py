"""Golden tests: a failed tool's result (Anthropic's tool_result `is_error`) per adapter.

The Messages door keeps the flag on the chat core's tool message; Anthropic endpoints
get it as `is_error`, the result unchanged; Gemini gets the result under the `error`
key it documents for function errors; OpenAI-compatible and local upstreams, which have
no such flag, read "Error: " ahead of the result. A result that did not fail is sent
as it is everywhere, and the flag is part of the response-cache key.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.cache.keys import exact_key
from service.domain.chat import ChatRequest, Message, TextPart, ToolCall, tool_result
from service.providers.anthropic.convert import build_request
from service.providers.gemini.convert import chat_body as gemini_body
from service.providers.local.prompt import plan
from service.providers.openai_compat.convert import chat_body as openai_body

CALL = ToolCall("call_1", "look", '{"city":"Atlantis"}')


def _request(result: Message) -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=(
            Message("user", "weather in Atlantis?"),
            Message("assistant", None, tool_calls=(CALL,)),
            result,
        ),
    )


FAILED = Message("tool", "no such city", tool_call_id="call_1", is_error=True)
FINE = Message("tool", "sunny", tool_call_id="call_1")


def _json(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def test_anthropic_gets_the_flag() -> None:
    body = _json(build_request(_request(FAILED), "claude", stream=False, default_max_tokens=9).body)
    assert body["messages"][-1]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "call_1",
            "content": "no such city",
            "is_error": True,
        }
    ]
    body = _json(build_request(_request(FINE), "claude", stream=False, default_max_tokens=9).body)
    assert "is_error" not in body["messages"][-1]["content"][0]


def test_gemini_gets_the_error_key() -> None:
    body = gemini_body(_request(FAILED), {})
    assert body["contents"][-1]["parts"] == [
        {
            "functionResponse": {
                "name": "look",
                "response": {"error": "no such city"},
                "id": "call_1",  # not an id of the adapter's making: Gemini's own
            }
        }
    ]
    structured = Message("tool", '{"code": 404}', tool_call_id="call_1", is_error=True)
    body = gemini_body(_request(structured), {})
    assert body["contents"][-1]["parts"][0]["functionResponse"]["response"] == {
        "error": {"code": 404}
    }
    body = gemini_body(_request(FINE), {})
    assert body["contents"][-1]["parts"][0]["functionResponse"]["response"] == {"content": "sunny"}


def test_openai_compatible_and_local_read_it_in_the_text() -> None:
    body = openai_body(_request(FAILED), "gpt", stream=False)
    assert body["messages"][-1] == {
        "role": "tool",
        "content": "Error: no such city",
        "tool_call_id": "call_1",
    }
    assert openai_body(_request(FINE), "gpt", stream=False)["messages"][-1]["content"] == "sunny"
    assert plan(_request(FAILED)).messages[-1] == {
        "role": "user",
        "content": "Tool result (call_1): Error: no such city",
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("boom", "Error: boom"),
        ("", "Error"),
        (None, "Error"),
        ((TextPart("boom"),), (TextPart("Error:"), TextPart("boom"))),
    ],
)
def test_tool_result_prefix(content: Any, expected: Any) -> None:
    assert tool_result(Message("tool", content, tool_call_id="c", is_error=True)) == expected
    assert tool_result(Message("tool", content, tool_call_id="c")) == content


def test_the_flag_is_part_of_the_cache_key() -> None:
    assert exact_key(_request(FAILED), "p") != exact_key(
        _request(Message("tool", "no such city", tool_call_id="call_1")), "p"
    )
