"""Golden tests: Claude's interleaved thinking through the chat shape and back.

An answer [thinking, tool_use, thinking, tool_use] is one list of reasoning details and
one of tool calls in the chat core; the thinking after the first call is tied to the
next call by its detail's `id`, so the Messages door renders the blocks in Claude's
order and the adapter sends a returned turn back in it.
"""

from __future__ import annotations

from typing import Any

import orjson
from switchyard.v1 import chat_pb2

from gateway_http.transcode.messages import response_json
from service.domain.chat import ChatRequest, Message, ReasoningDetail, ToolCall
from service.providers.anthropic.answer import parse_message
from service.providers.anthropic.convert import build_request
from service.servicers.chat_proto import details_to_proto
from service.servicers.messages_proto import response

CLAUDE = "anthropic-claude-v1"
BLOCKS: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "Paris first.", "signature": "sig-p"},
    {"type": "tool_use", "id": "toolu_p", "name": "look", "input": {"city": "Paris"}},
    {"type": "redacted_thinking", "data": "EmwKAhgB"},
    {"type": "thinking", "thinking": "Now Tokyo.", "signature": "sig-t"},
    {"type": "tool_use", "id": "toolu_t", "name": "look", "input": {"city": "Tokyo"}},
]
ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": BLOCKS,
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 9, "output_tokens": 20},
}


def test_thinking_between_calls_is_tied_to_the_next_call() -> None:
    message = parse_message(ANSWER).choices[0].message
    assert message.reasoning_details == (
        ReasoningDetail("reasoning.text", text="Paris first.", signature="sig-p", format=CLAUDE),
        ReasoningDetail(
            "reasoning.encrypted", data="EmwKAhgB", id="toolu_t", format=CLAUDE, index=1
        ),
        ReasoningDetail(
            "reasoning.text",
            text="Now Tokyo.",
            signature="sig-t",
            id="toolu_t",
            format=CLAUDE,
            index=2,
        ),
    )
    assert [c.id for c in message.tool_calls] == ["toolu_p", "toolu_t"]


def test_messages_door_renders_claude_s_order() -> None:
    message = parse_message(ANSWER).choices[0].message
    chat = chat_pb2.ChatResponse(id="gen-1", model="claude", provider="claude")
    choice = chat.choices.add(index=0, finish_reason="tool_calls")
    choice.message.role = "assistant"
    details_to_proto(message.reasoning_details, choice.message.reasoning_details)
    for call in message.tool_calls:
        choice.message.tool_calls.add(
            id=call.id,
            type="function",
            function=chat_pb2.FunctionCall(name=call.name, arguments=call.arguments),
        )
    content = orjson.loads(orjson.dumps(response_json(response(chat))))["content"]
    assert content == BLOCKS


def test_a_returned_turn_goes_back_in_claude_s_order() -> None:
    message = parse_message(ANSWER).choices[0].message
    request = ChatRequest(
        model="m",
        messages=(
            Message("user", "weather?"),
            message,
            Message("tool", "sunny", tool_call_id="toolu_p"),
            Message("tool", "rainy", tool_call_id="toolu_t"),
        ),
    )
    body = build_request(request, "claude", stream=False, default_max_tokens=64).body
    assert orjson.loads(orjson.dumps(body["messages"][1]["content"])) == BLOCKS


def test_a_turn_without_ties_keeps_thinking_ahead() -> None:
    """Details tied to no call of the turn (a chat client's, Gemini's) lead it, as before."""
    call = ToolCall("toolu_p", "look", '{"city":"Paris"}')
    details = (
        ReasoningDetail("reasoning.text", text="hm", signature="s", format=CLAUDE, id="gone"),
    )
    request = ChatRequest(
        model="m",
        messages=(
            Message("user", "weather?"),
            Message("assistant", "Looking.", tool_calls=(call,), reasoning_details=details),
            Message("tool", "sunny", tool_call_id="toolu_p"),
        ),
    )
    body = build_request(request, "claude", stream=False, default_max_tokens=64).body
    kinds = [b["type"] for b in body["messages"][1]["content"]]
    assert kinds == ["thinking", "text", "tool_use"]
