"""The Messages door's conversions, golden both ways.

Anthropic JSON -> MessagesRequest -> the ChatRequest the core serves; ChatResponse and
ChatChunks -> MessagesResponse and events -> Anthropic JSON. Exact expected values: a
field lost or renamed on either side fails here before any gateway runs.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from switchyard.v1 import chat_pb2, common_pb2

from gateway_http.errors import HttpError
from gateway_http.transcode.messages import error_json, event_json, parse_messages, response_json
from service.errors import GatewayError
from service.servicers.messages_proto import EventBuilder, chat_request, response

JSON = dict[str, Any]


def to_chat(body: JSON) -> JSON:
    return MessageToDict(
        chat_request(parse_messages(body).request), preserving_proto_field_name=True
    )


def test_request_golden() -> None:
    body = {
        "model": "anthropic/claude",
        "max_tokens": 256,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.png"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
                    {"type": "text", "text": "And?"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_k": 5,
        "tools": [
            {
                "name": "look",
                "description": "Look closer",
                "input_schema": {"type": "object", "properties": {"q": {"type": "integer"}}},
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u1"},
        "service_tier": "auto",
        "provider": {"order": ["claude"]},
    }
    assert to_chat(body) == {
        "model": "anthropic/claude",
        "max_tokens": 256,
        "messages": [
            {
                "role": "system",
                "parts": {
                    "parts": [{"text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
                },
            },
            {
                "role": "user",
                "parts": {
                    "parts": [
                        {"text": "Look:"},
                        {"image_url": {"url": "https://example.com/a.png"}},
                    ]
                },
            },
            {
                "role": "assistant",
                "parts": {"parts": [{"text": "Checking."}]},
                # Thinking travels as reasoning details, its signature kept.
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "hm",
                        "signature": "s",
                        "format": "anthropic-claude-v1",
                    }
                ],
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q":1}'},
                    }
                ],
            },
            {"role": "tool", "text": "a cat", "tool_call_id": "toolu_1"},
            {"role": "user", "parts": {"parts": [{"text": "And?"}]}},
        ],
        "stop": ["END"],
        "temperature": 0.2,
        "user": "u1",
        "parallel_tool_calls": False,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "description": "Look closer",
                    "parameters_json": '{"type":"object","properties":{"q":{"type":"integer"}}}',
                },
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        "tool_choice": {"mode": "required"},
        "extra_json": '{"top_k":5}',
        # Anthropic's own parameters reach Anthropic endpoints only.
        "native_extra_json": {"anthropic": '{"service_tier":"auto"}'},
        "provider": {"order": ["claude"]},
    }


def test_tool_result_error_and_blocks() -> None:
    chat = to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": "no such city",
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "content": [{"type": "text", "text": "ok"}],
                            "cache_control": {"type": "ephemeral"},
                        },
                    ],
                }
            ],
        }
    )
    assert chat["messages"] == [
        # The flag, not a prefix: Anthropic endpoints take it as is (the other adapters
        # say it in their own terms: tests/unit/test_tool_errors.py).
        {"role": "tool", "text": "no such city", "tool_call_id": "t1", "is_error": True},
        {
            "role": "tool",
            "parts": {"parts": [{"text": "ok", "cache_control": {"type": "ephemeral"}}]},
            "tool_call_id": "t2",
        },
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 5, "messages": []}, "model"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "video"}]}],
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [],
                "tools": [{"type": "web_search_20250305", "name": "w"}],
            },
            "tools[0].type",
        ),
        ({"model": "m", "max_tokens": "5", "messages": []}, "max_tokens"),
    ],
)
def test_request_refused_at_the_door(body: JSON, param: str) -> None:
    with pytest.raises(HttpError) as exc:
        parse_messages(body)
    assert (exc.value.status, exc.value.param) == (400, param)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": []}, "max_tokens"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [], "tool_choice": {"type": "tool"}},
            "tool_choice.name",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [], "tool_choice": {"type": "maybe"}},
            "tool_choice.type",
        ),
    ],
)
def test_request_refused_by_the_service(body: JSON, param: str) -> None:
    with pytest.raises(GatewayError) as exc:
        chat_request(parse_messages(body).request)
    assert (exc.value.reason, exc.value.param) == ("INVALID_REQUEST", param)


def _chat_response(finish: str, **message: Any) -> chat_pb2.ChatResponse:
    out = chat_pb2.ChatResponse(id="gen-1", model="m/x", provider="p")
    out.choices.add(
        index=0, finish_reason=finish, message=chat_pb2.Message(role="assistant", **message)
    )
    out.usage.CopyFrom(
        common_pb2.Usage(
            prompt_tokens=100,
            completion_tokens=7,
            total_tokens=107,
            cached_tokens=60,
            cache_write_tokens=30,
            cost=0.5,
        )
    )
    return out


def test_response_golden() -> None:
    chat = _chat_response(
        "tool_calls",
        text="Let me look.",
        tool_calls=[
            chat_pb2.ToolCall(
                id="c1",
                type="function",
                function=chat_pb2.FunctionCall(name="look", arguments='{"q": 1}'),
            )
        ],
    )
    rendered = orjson.loads(orjson.dumps(response_json(response(chat))))
    assert rendered == {
        "id": "gen-1",
        "type": "message",
        "role": "assistant",
        "model": "m/x",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "c1", "name": "look", "input": {"q": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        # Anthropic's input_tokens leave out the cache reads and writes.
        "usage": {
            "input_tokens": 10,
            "output_tokens": 7,
            "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 60,
            "cost": 0.5,
        },
        "provider": "p",
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_stop_reasons(finish: str, stop_reason: str) -> None:
    assert response(_chat_response(finish, text="x")).stop_reason == stop_reason


def _chunk(**delta: Any) -> chat_pb2.ChatChunk:
    finish = delta.pop("finish", "")
    out = chat_pb2.ChatChunk(id="gen-2", model="m/x", provider="p")
    out.choices.add(index=0, delta=chat_pb2.Delta(**delta), finish_reason=finish)
    return out


def test_stream_golden() -> None:
    """Text, then two tool calls whose arguments arrive in pieces, then usage."""
    chunks = [
        _chunk(role="assistant", content="Hi"),
        _chunk(content=" there"),
        _chunk(
            tool_calls=[
                chat_pb2.ToolCallDelta(index=0, id="c1", type="function", name="a", arguments="")
            ]
        ),
        _chunk(tool_calls=[chat_pb2.ToolCallDelta(index=0, arguments='{"x"')]),
        _chunk(
            tool_calls=[
                chat_pb2.ToolCallDelta(index=1, id="c2", type="function", name="b", arguments="{}")
            ]
        ),
        _chunk(tool_calls=[chat_pb2.ToolCallDelta(index=0, arguments=":1}")]),
        _chunk(finish="tool_calls"),
    ]
    usage = chat_pb2.ChatChunk(id="gen-2", model="m/x", provider="p")
    usage.usage.CopyFrom(
        common_pb2.Usage(prompt_tokens=9, completion_tokens=4, total_tokens=13, cost=0.1)
    )
    chunks.append(usage)
    builder = EventBuilder()
    events = [e for c in chunks for e in builder.events(c)] + builder.end()
    rendered = [orjson.loads(orjson.dumps(event_json(e)[1])) for e in events]
    assert [event_json(e)[0] for e in events] == [r["type"] for r in rendered]
    zero = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert rendered == [
        {
            "type": "message_start",
            "message": {
                "id": "gen-2",
                "type": "message",
                "role": "assistant",
                "model": "m/x",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": zero,
                "provider": "p",
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " there"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "c1", "name": "a", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"x"'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "c2", "name": "b", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ":1}"},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {
                "input_tokens": 9,
                "output_tokens": 4,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cost": 0.1,
            },
        },
        {"type": "message_stop"},
    ]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (408, "timeout_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
    ],
)
def test_error_types(status: int, kind: str) -> None:
    """The gateway's statuses (DESIGN §4) under Anthropic's error type names."""
    body = error_json(HttpError(status, "whatever", "Something failed."), "rid-1")
    assert body == {
        "type": "error",
        "error": {"type": kind, "message": "Something failed."},
        "request_id": "rid-1",
    }


def test_documents_become_file_parts() -> None:
    chat = to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0=",
                            },
                            "title": "a.pdf",
                        },
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "hi"},
                        },
                    ],
                }
            ],
        }
    )
    assert chat["messages"][0]["parts"]["parts"] == [
        {"file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        {"file": {"file_data": "data:text/plain;base64,aGk="}},
    ]
    url = {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
    with pytest.raises(HttpError) as exc:
        parse_messages(
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [url]}]}
        )
    assert exc.value.param == "messages[0].content[0].source.type"


def test_cache_breakpoint_on_a_text_tool_result_and_thinking_only_turns() -> None:
    """Claude Code's last breakpoint sits on a tool result with string content; a turn
    with nothing but thinking (an answer cut short) is left out, not sent empty."""
    chat = to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "..."}]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "42",
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "user", "text": "go"},
        {
            "role": "tool",
            "parts": {"parts": [{"text": "42", "cache_control": {"type": "ephemeral"}}]},
            "tool_call_id": "t1",
        },
    ]


# --- thinking -------------------------------------------------------------------------


def _thinking_body(thinking: JSON, **extra: Any) -> JSON:
    return {
        "model": "m",
        "max_tokens": 4096,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should look", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "tool_use", "id": "t1", "name": "look", "input": {}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ],
        "thinking": thinking,
        **extra,
    }


def test_thinking_request_golden() -> None:
    """`thinking` becomes the core's reasoning config (and reaches Anthropic as sent),
    and thinking blocks sent back become reasoning details, signatures and data kept."""
    chat = to_chat(_thinking_body({"type": "enabled", "budget_tokens": 2048}))
    assert chat["reasoning"] == {"enabled": True, "max_tokens": 2048}
    assert orjson.loads(chat["native_extra_json"]["anthropic"]) == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert chat["messages"][1] == {
        "role": "assistant",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "I should look",
                "signature": "sig-1",
                "format": "anthropic-claude-v1",
            },
            {
                "type": "reasoning.encrypted",
                "data": "opaque",
                "format": "anthropic-claude-v1",
                "index": 1,
            },
        ],
        "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
        ],
    }
    assert to_chat(_thinking_body({"type": "disabled"}))["reasoning"] == {"enabled": False}


def test_adaptive_thinking_and_display_also_go_natively() -> None:
    """What the unified config cannot say reaches Anthropic endpoints as sent, merged
    with the other Anthropic-only parameters (the adapter keeps adaptive and display)."""
    chat = to_chat(
        _thinking_body({"type": "adaptive", "display": "summarized"}, service_tier="auto")
    )
    assert chat["reasoning"] == {"enabled": True}
    assert orjson.loads(chat["native_extra_json"]["anthropic"]) == {
        "service_tier": "auto",
        "thinking": {"type": "adaptive", "display": "summarized"},
    }
    chat = to_chat(_thinking_body({"type": "enabled", "budget_tokens": 1024, "display": "omitted"}))
    assert orjson.loads(chat["native_extra_json"]["anthropic"]) == {
        "thinking": {"type": "enabled", "budget_tokens": 1024, "display": "omitted"}
    }


@pytest.mark.parametrize(
    ("thinking", "param"),
    [
        ({"type": "enabled", "budget_tokens": 1000}, "thinking.budget_tokens"),
        ({"type": "enabled"}, "thinking.budget_tokens"),
        ({"type": "enabled", "budget_tokens": 4096}, "thinking.budget_tokens"),  # = max_tokens
        ({"type": "sometimes"}, "thinking.type"),
    ],
)
def test_thinking_refused_as_anthropic_refuses_it(thinking: JSON, param: str) -> None:
    with pytest.raises(GatewayError) as exc:
        to_chat(_thinking_body(thinking))
    assert (exc.value.reason, exc.value.param) == ("INVALID_REQUEST", param)


def test_thinking_block_without_its_text_is_refused_at_the_door() -> None:
    body = _thinking_body({"type": "disabled"})
    body["messages"][1]["content"][0] = {"type": "thinking", "signature": "s"}
    with pytest.raises(HttpError) as exc:
        parse_messages(body)
    assert exc.value.param == "messages[1].content[0].thinking"


# Gemini's signature of call c1, sealed: what the client gets as redacted_thinking data.
GEMINI_SIG = b'[{"type":"reasoning.encrypted","data":"gsig","id":"c1","format":"google-gemini-v1","index":0}]'  # noqa: E501
GEMINI_ENVELOPE = "sy1:" + base64.urlsafe_b64encode(GEMINI_SIG).decode()


def test_thinking_response_golden() -> None:
    """Thinking blocks lead the content, in the details' order; a Gemini thought
    signature is our sealed envelope in a redacted_thinking block, right before the
    tool_use it signs."""
    chat = _chat_response(
        "tool_calls",
        reasoning="I should look",
        reasoning_details=[
            chat_pb2.ReasoningDetail(
                type="reasoning.text", text="I should look", signature="sig-1", index=0
            ),
            chat_pb2.ReasoningDetail(type="reasoning.encrypted", data="opaque", index=1),
            chat_pb2.ReasoningDetail(
                type="reasoning.encrypted", data="gsig", id="c1", format="google-gemini-v1"
            ),
        ],
        tool_calls=[
            chat_pb2.ToolCall(id="c1", type="function", function=chat_pb2.FunctionCall(name="look"))
        ],
    )
    content = orjson.loads(orjson.dumps(response_json(response(chat))))["content"]
    assert content == [
        {"type": "thinking", "thinking": "I should look", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "redacted_thinking", "data": GEMINI_ENVELOPE},
        {"type": "tool_use", "id": "c1", "name": "look", "input": {}},
    ]
    # Reasoning without details (DeepSeek, vLLM): one unsigned thinking block.
    plain = _chat_response("stop", text="hi", reasoning="hmm")
    assert orjson.loads(orjson.dumps(response_json(response(plain))))["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": ""},
        {"type": "text", "text": "hi"},
    ]


def _rendered(chunks: list[chat_pb2.ChatChunk]) -> list[JSON]:
    builder = EventBuilder()
    events = [e for c in chunks for e in builder.events(c)] + builder.end()
    rendered = [orjson.loads(orjson.dumps(event_json(e)[1])) for e in events]
    assert [event_json(e)[0] for e in events] == [r["type"] for r in rendered]
    return rendered[1:-2]  # the content blocks: message_start and the end are as above


def _detail(**fields: Any) -> chat_pb2.ReasoningDetail:
    return chat_pb2.ReasoningDetail(format="anthropic-claude-v1", **fields)


def test_thinking_stream_golden() -> None:
    """Anthropic's documented order: a thinking block opens empty (signature ""),
    thinking_delta pieces, the signature_delta last, its stop; a redacted block whole in
    its start; then the text and the tool call."""
    text = "reasoning.text"
    chunks = [
        _chunk(role="assistant", reasoning="I should", reasoning_details=[
            _detail(type=text, text="I should", index=0)]),
        _chunk(reasoning=" look", reasoning_details=[_detail(type=text, text=" look", index=0)]),
        _chunk(reasoning_details=[_detail(type=text, signature="sig-1", index=0)]),
        _chunk(reasoning_details=[_detail(type="reasoning.encrypted", data="opaque", index=1)]),
        _chunk(content="Looking."),
        _chunk(tool_calls=[chat_pb2.ToolCallDelta(index=0, id="c1", name="look", arguments="{}")]),
        _chunk(finish="tool_calls"),
    ]  # fmt: skip
    thinking_delta = {"type": "thinking_delta", "thinking": "I should"}
    assert _rendered(chunks) == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "content_block_delta", "index": 0, "delta": thinking_delta},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": " look"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig-1"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "opaque"},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "text_delta", "text": "Looking."},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "tool_use", "id": "c1", "name": "look", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 3},
    ]


def test_stream_of_reasoning_without_details() -> None:
    """DeepSeek- and vLLM-style `delta.reasoning`: one unsigned thinking block, no
    signature_delta (there is no signature to send)."""
    chunks = [
        _chunk(role="assistant", reasoning="hm"),
        _chunk(reasoning="m"),
        _chunk(content="ok", finish="stop"),
    ]
    assert _rendered(chunks) == [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta",
                                                              "thinking": "hm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta",
                                                              "thinking": "m"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 1},
    ]  # fmt: skip
