"""Golden tests: other providers' signed reasoning on the Messages door, both ways.

A Gemini thought signature is a `redacted_thinking` block whose data is the gateway's
sealed envelope (`sy1:` + base64url of the detail's JSON), before the tool_use it signs;
a client's echo of it is the reasoning detail again; a damaged envelope is a 400 naming
the field; redacted data without the prefix stays Anthropic's; and a turn that falls
back to Anthropic does not carry Gemini's signatures there.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from switchyard.v1 import chat_pb2

from gateway_http.transcode.messages import event_json, parse_messages
from service.errors import GatewayError
from service.providers.anthropic.convert import build_request
from service.servicers.chat_proto import request_from_proto
from service.servicers.messages_proto import EventBuilder, chat_request

JSON = dict[str, Any]
GEMINI = "google-gemini-v1"


def _envelope(raw: bytes) -> str:
    return "sy1:" + base64.urlsafe_b64encode(raw).decode()


# The detail as the Gemini adapter reads it from a signed functionCall part.
CALL_SIG = _envelope(
    b'[{"type":"reasoning.encrypted","data":"gsig-1","id":"c1","format":"google-gemini-v1","index":1}]'
)
TEXT_SIG = _envelope(
    b'[{"type":"reasoning.encrypted","data":"gsig-2","format":"google-gemini-v1","index":2}]'
)


def _body(assistant: list[JSON]) -> JSON:
    return {
        "model": "google/gemini-3",
        "max_tokens": 512,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1"}]},
        ],
    }


def _assistant(body: JSON) -> JSON:
    request = chat_request(parse_messages(body).request)
    messages = MessageToDict(request, preserving_proto_field_name=True)["messages"]
    return next(m for m in messages if m["role"] == "assistant")


USE: JSON = {"type": "tool_use", "id": "c1", "name": "look", "input": {"city": "Paris"}}


def test_envelope_comes_back_as_the_detail() -> None:
    turn = _assistant(
        _body(
            [
                {"type": "thinking", "thinking": "hm", "signature": ""},
                {"type": "redacted_thinking", "data": CALL_SIG},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"},  # Anthropic's own
                USE,
            ]
        )
    )
    assert turn["reasoning_details"] == [
        {"type": "reasoning.text", "text": "hm", "format": "anthropic-claude-v1"},
        {
            "type": "reasoning.encrypted",
            "data": "gsig-1",
            "id": "c1",
            "format": GEMINI,
            "index": 1,
        },
        {
            "type": "reasoning.encrypted",
            "data": "EmwKAhgBEgy3",
            "format": "anthropic-claude-v1",
            "index": 2,
        },
    ]


@pytest.mark.parametrize(
    "data",
    [
        "sy1:%%%",  # not base64
        _envelope(b"not json"),
        _envelope(b"[]"),  # seals nothing
        _envelope(b'{"type":"reasoning.encrypted"}'),  # not a list
        _envelope(b'[{"type":"reasoning.magic","data":"x"}]'),
        _envelope(b'[{"type":"reasoning.encrypted","data":5}]'),
        _envelope(b'[{"type":"reasoning.encrypted","data":"x","index":"1"}]'),
        _envelope(b'[{"type":"reasoning.encrypted","data":"x","extra":"y"}]'),
        CALL_SIG[:-6],  # cut short
    ],
)
def test_damaged_envelope_is_a_400_naming_the_field(data: str) -> None:
    with pytest.raises(GatewayError) as caught:
        _assistant(_body([{"type": "redacted_thinking", "data": data}, USE]))
    assert caught.value.reason == "INVALID_REQUEST"
    assert caught.value.param == "messages[1].content[0].data"
    assert "damaged" in str(caught.value)


def test_fallback_to_anthropic_drops_gemini_signatures() -> None:
    """The same turn routed to Anthropic: its own redacted block goes, Gemini's not."""
    body = _body(
        [
            {"type": "redacted_thinking", "data": CALL_SIG},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"},
            USE,
        ]
    )
    request = request_from_proto(chat_request(parse_messages(body).request))
    sent = orjson.loads(
        orjson.dumps(build_request(request, "claude", stream=False, default_max_tokens=64).body)
    )
    assert sent["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3"},
        USE,
    ]


def _chunk(**delta: Any) -> chat_pb2.ChatChunk:
    finish = delta.pop("finish", "")
    out = chat_pb2.ChatChunk(id="gen-3", model="google/gemini-3", provider="g")
    out.choices.add(index=0, delta=chat_pb2.Delta(**delta), finish_reason=finish)
    return out


def _signature(data: str, index: int, call: str = "") -> chat_pb2.ReasoningDetail:
    return chat_pb2.ReasoningDetail(
        type="reasoning.encrypted", data=data, id=call, format=GEMINI, index=index
    )


def test_gemini_stream_golden() -> None:
    """As the Gemini adapter streams: thoughts, text, the text's signature, then each
    call's head with its signature, its arguments. Each envelope is whole in its start
    event and closed when the next block opens: after the text, before the tool_use."""
    thought = chat_pb2.ReasoningDetail(type="reasoning.text", text="hm", format=GEMINI)
    head = chat_pb2.ToolCallDelta(index=0, id="c1", name="look", arguments="")
    chunks = [
        _chunk(role="assistant", reasoning="hm", reasoning_details=[thought]),
        _chunk(content="Looking."),
        _chunk(reasoning_details=[_signature("gsig-2", 2)]),
        _chunk(tool_calls=[head], reasoning_details=[_signature("gsig-1", 1, "c1")]),
        _chunk(tool_calls=[chat_pb2.ToolCallDelta(index=0, arguments='{"city":"Paris"}')]),
        _chunk(finish="tool_calls"),
    ]
    builder = EventBuilder()
    events = [e for c in chunks for e in builder.events(c)] + builder.end()
    rendered = [orjson.loads(orjson.dumps(event_json(e)[1])) for e in events][1:-2]
    thinking_start = {"type": "thinking", "thinking": "", "signature": ""}
    use_start = {"type": "tool_use", "id": "c1", "name": "look", "input": {}}
    assert rendered == [
        {"type": "content_block_start", "index": 0, "content_block": thinking_start},
        {"type": "content_block_delta", "index": 0}
        | {"delta": {"type": "thinking_delta", "thinking": "hm"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1}
        | {"delta": {"type": "text_delta", "text": "Looking."}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2}
        | {"content_block": {"type": "redacted_thinking", "data": TEXT_SIG}},
        {"type": "content_block_stop", "index": 2},
        {"type": "content_block_start", "index": 3}
        | {"content_block": {"type": "redacted_thinking", "data": CALL_SIG}},
        {"type": "content_block_stop", "index": 3},
        {"type": "content_block_start", "index": 4, "content_block": use_start},
        {"type": "content_block_delta", "index": 4}
        | {"delta": {"type": "input_json_delta", "partial_json": '{"city":"Paris"}'}},
        {"type": "content_block_stop", "index": 4},
    ]
