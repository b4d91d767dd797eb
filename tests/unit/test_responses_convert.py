"""Golden conversions of the Responses API, both ways: request JSON -> proto -> the
domain's chat request, and chat results / deltas -> Response objects and typed events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway_http.errors import HttpError
from gateway_http.transcode.responses import event_json, parse_response_request, response_json
from service.domain.chat import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    Choice,
    ChoiceDelta,
    ImagePart,
    Message,
    Reasoning,
    ReasoningDetail,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from service.engine import Served
from service.errors import GatewayError
from service.servicers.reasoning_seal import seal, unseal
from service.servicers.responses_events import ResponseEvents
from service.servicers.responses_proto import request_from_proto, response_to_proto

JSON = dict[str, Any]
SERVED = Served(model="up/think", provider="up")
SIGNED = (
    ReasoningDetail("reasoning.text", text="hm", signature="s1", format="anthropic-claude-v1"),
)


def domain(body: JSON) -> ChatRequest:
    return request_from_proto(parse_response_request({"model": "m", **body}).request)


def test_string_input_and_instructions() -> None:
    request = domain({"input": "hi", "instructions": "Be brief.", "max_output_tokens": 50})
    assert request.messages == (Message("system", "Be brief."), Message("user", "hi"))
    assert request.max_completion_tokens == 50


def test_items_fold_into_chat_messages() -> None:
    request = domain(
        {
            "input": [
                {"role": "user", "content": "weather in Paris and Tokyo?"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "hm"}],
                    "encrypted_content": seal(SIGNED),
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
                },
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"a":1}'},
                {"type": "function_call_output", "call_id": "c1", "output": "21C"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "22C"}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "and this?"},
                        {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"},
                    ],
                },
            ],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
        }
    )
    assert request.messages == (
        Message("user", "weather in Paris and Tokyo?"),
        Message(
            "assistant",
            "Checking.",
            tool_calls=(ToolCall("c1", "w", "{}"), ToolCall("c2", "w", '{"a":1}')),
            reasoning_details=SIGNED,
        ),
        Message("tool", "21C", tool_call_id="c1"),
        Message("tool", "22C", tool_call_id="c2"),
        Message("user", (TextPart("and this?"), ImagePart("https://x/a.png", "low"))),
    )
    assert request.tools == (Tool("w", parameters_json='{"type":"object"}'),)


def test_reasoning_before_bare_calls_becomes_their_turn() -> None:
    gemini = (ReasoningDetail("reasoning.encrypted", data="S", id="c1", format="google-gemini-v1"),)
    request = domain(
        {
            "input": [
                {"role": "user", "content": "q"},
                {"type": "reasoning", "summary": [], "encrypted_content": seal(gemini)},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ]
        }
    )
    assert request.messages[1] == Message(
        "assistant", None, tool_calls=(ToolCall("c1", "w", "{}"),), reasoning_details=gemini
    )


def test_settings_map_onto_the_chat_request() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = domain(
        {
            "input": "hi",
            "tools": [{"type": "function", "name": "w", "strict": True}],
            "tool_choice": {"type": "function", "name": "w"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": schema}},
            "reasoning": {"effort": "high", "summary": "auto"},
            "temperature": 0.5,
            "top_p": 0.9,
            "parallel_tool_calls": False,
            "user": "u1",
            "metadata": {"k": "v"},
            "include": ["reasoning.encrypted_content"],
            "top_k": 40,  # a provider extra, passed upstream
        }
    )
    assert request.tool_choice == ToolChoice("function", "w")
    assert request.response_format == ResponseFormat(
        "json_schema", name="out", schema_json=orjson.dumps(schema).decode()
    )
    assert request.reasoning == Reasoning(effort="high")
    assert (request.temperature, request.top_p, request.parallel_tool_calls) == (0.5, 0.9, False)
    assert request.user == "u1"
    assert request.extra_json == '{"top_k":40}'


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "previous_response_id": "r"}, "previous_response_id"),
        ({"input": "hi", "store": True}, "store"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call"}]}, "input[0].type"),
        ({"input": "hi", "tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"input": "hi", "conversation": "c"}, "conversation"),
        ({"input": [{"role": "user"}]}, "input[0].content"),
        ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "tool_choice": {"type": "mcp"}}, "tool_choice.type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, None),
        ({"input": [{"type": "reasoning", "encrypted_content": "sy1:%%%"}]}, None),
    ],
)
def test_refusals_name_the_param(body: JSON, param: str | None) -> None:
    with pytest.raises((HttpError, GatewayError)) as caught:
        domain(body)
    error = caught.value
    assert isinstance(error, HttpError | GatewayError)
    if param is not None:
        assert error.param == param
    else:
        assert error.param is not None and error.param.startswith("input[0]")


def test_sealed_reasoning_round_trips_and_foreign_content_is_ignored() -> None:
    assert unseal(seal(SIGNED), "p") == SIGNED
    assert seal(()) == ""
    assert unseal("gAAAAABopenai-encrypted", "p") == ()


def _result(message: Message, finish: str = "stop") -> ChatResult:
    usage = Usage(5, 9, 14, cached_tokens=2, reasoning_tokens=4, cache_write_tokens=3)
    return ChatResult(choices=(Choice(0, message, finish),), usage=usage)


def test_result_to_response_object() -> None:
    message = Message(
        "assistant",
        "Checking.",
        tool_calls=(ToolCall("c1", "w", "{}"),),
        reasoning="hm",
        reasoning_details=SIGNED,
    )
    response = response_to_proto(_result(message), SERVED, "gen-1", 1700)
    body = {"input": "q", "instructions": "Be brief.", "metadata": {"k": "v"}}
    out = response_json(response, body)
    assert [item["type"] for item in out["output"]] == ["reasoning", "message", "function_call"]
    reasoning, text, call = out["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "hm"}]
    assert unseal(reasoning["encrypted_content"], "p") == SIGNED
    assert text["content"] == [
        {"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}
    ]
    assert call == {
        "type": "function_call",
        "id": "fc_gen-1_0",
        "call_id": "c1",
        "name": "w",
        "arguments": "{}",
        "status": "completed",
    }
    assert out["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 3},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 14,
    }
    assert (out["instructions"], out["metadata"], out["status"]) == (
        "Be brief.",
        {"k": "v"},
        "completed",
    )
    hidden = response_to_proto(_result(message), SERVED, "gen-1", 1700, exclude_reasoning=True)
    assert [i.WhichOneof("item") for i in hidden.output] == ["message", "function_call"]
    cut = response_json(
        response_to_proto(_result(Message("assistant", "a"), "length"), SERVED, "g", 1), {}
    )
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}


def _events(deltas: list[ChatDelta], finish: str = "stop") -> list[JSON]:
    builder = ResponseEvents(SERVED, "gen-1", 1700)
    events = builder.start()
    for delta in deltas:
        events += builder.feed(delta)
    events += builder.finish(Usage(1, 2, 3), 0.5)
    return [event_json(e, {}) for e in events]


def one(**fields: Any) -> ChatDelta:
    return ChatDelta(choices=(ChoiceDelta(0, **fields),))


def test_events_of_reasoning_then_text() -> None:
    events = _events(
        [
            one(
                role="assistant",
                reasoning="h",
                reasoning_details=(ReasoningDetail("reasoning.text", "h"),),
            ),
            one(reasoning="m", reasoning_details=(ReasoningDetail("reasoning.text", "m"),)),
            one(reasoning_details=(ReasoningDetail("reasoning.text", "", signature="s1"),)),
            one(content="Hi "),
            one(content="there."),
            one(finish_reason="stop"),
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    reasoning = events[8]["item"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "hm"}]
    assert unseal(reasoning["encrypted_content"], "p") == (
        ReasoningDetail("reasoning.text", text="hm", signature="s1"),
    )
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][1]["content"][0]["text"] == "Hi there."
    assert final["usage"]["cost"] == 0.5


def test_events_of_calls_with_a_signature() -> None:
    signature = ReasoningDetail("reasoning.encrypted", data="S", id="c1", format="g", index=1)
    events = _events(
        [
            one(
                tool_calls=(ToolCallDelta(0, id="c1", name="w", arguments=""),),
                reasoning_details=(signature,),
            ),
            one(tool_calls=(ToolCallDelta(0, arguments='{"a":'),)),
            one(tool_calls=(ToolCallDelta(0, arguments="1}"),)),
            one(tool_calls=(ToolCallDelta(1, id="c2", name="v", arguments="{}"),)),
            one(finish_reason="tool_calls"),
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds[2:] == [
        "response.output_item.added",  # the signature's reasoning item, without a summary
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "function_call", "function_call"]
    assert unseal(output[0]["encrypted_content"], "p") == (signature,)
    assert output[1] | {"id": ""} == {
        "type": "function_call",
        "id": "",
        "call_id": "c1",
        "name": "w",
        "arguments": '{"a":1}',
        "status": "completed",
    }
    added = events[4]["item"]
    assert added["arguments"] == "" and added["status"] == "in_progress"


def test_a_cut_answer_is_incomplete() -> None:
    events = _events([one(content="a"), one(finish_reason="length")])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    message = events[-1]["response"]["output"][0]
    assert message["status"] == "incomplete" and message["content"][0]["text"] == "a"
