"""service/servicers/chat_proto.py `request_from_proto`: validation naming the param."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from switchyard.v1 import chat_pb2

from service.domain import chat
from service.errors import GatewayError
from service.servicers import chat_proto
from service.servicers.chat_proto import request_from_proto


def user(text: str = "hi") -> chat_pb2.Message:
    return chat_pb2.Message(role="user", text=text)


def request(**fields: Any) -> chat_pb2.ChatRequest:
    fields.setdefault("model", "openai/gpt-4o")
    if "messages" not in fields:
        fields["messages"] = [user()]
    return chat_pb2.ChatRequest(**fields)


TOOL = chat_pb2.Tool(
    type="function",
    function=chat_pb2.FunctionDefinition(
        name="get_weather", parameters_json='{"type":"object","maxItems":3}'
    ),
)


def rejected(req: chat_pb2.ChatRequest) -> GatewayError:
    with pytest.raises(GatewayError) as exc:
        request_from_proto(req)
    assert exc.value.reason == "INVALID_REQUEST"
    return exc.value


def test_full_conversion() -> None:
    req = request(
        messages=[
            chat_pb2.Message(role="system", text="be brief"),
            chat_pb2.Message(
                role="user",
                parts=chat_pb2.ContentParts(
                    parts=[
                        chat_pb2.ContentPart(text="look"),
                        chat_pb2.ContentPart(
                            image_url=chat_pb2.ImageUrl(url="https://x/y.png", detail="high")
                        ),
                    ]
                ),
            ),
            chat_pb2.Message(
                role="assistant",
                tool_calls=[
                    chat_pb2.ToolCall(
                        id="call_1",
                        type="function",
                        function=chat_pb2.FunctionCall(name="get_weather", arguments="{}"),
                    )
                ],
            ),
            chat_pb2.Message(role="tool", text="sunny", tool_call_id="call_1"),
        ],
        temperature=0.5,
        max_tokens=10,
        stop=["END"],
        seed=7,
        logit_bias={"50256": -100.0},
        tools=[TOOL],
        tool_choice=chat_pb2.ToolChoice(function_name="get_weather"),
        response_format=chat_pb2.ResponseFormat(
            type="json_schema",
            json_schema=chat_pb2.JsonSchemaFormat(name="out", schema_json='{"type":"object"}'),
        ),
        stream_options=chat_pb2.StreamOptions(include_usage=True),
        extra_json='{"top_k":40}',
    )
    assert request_from_proto(req) == chat.ChatRequest(
        model="openai/gpt-4o",
        messages=(
            chat.Message(role="system", content="be brief"),
            chat.Message(
                role="user",
                content=(chat.TextPart("look"), chat.ImagePart("https://x/y.png", "high")),
            ),
            chat.Message(
                role="assistant",
                content=None,
                tool_calls=(chat.ToolCall("call_1", "get_weather", "{}"),),
            ),
            chat.Message(role="tool", content="sunny", tool_call_id="call_1"),
        ),
        temperature=0.5,
        max_tokens=10,
        stop=("END",),
        seed=7,
        logit_bias={"50256": -100.0},
        tools=(chat.Tool(name="get_weather", parameters_json='{"type":"object","maxItems":3}'),),
        tool_choice=chat.ToolChoice(mode="function", function="get_weather"),
        response_format=chat.ResponseFormat(
            type="json_schema", name="out", schema_json='{"type":"object"}'
        ),
        include_usage=True,
        extra_json='{"top_k":40}',
    )


def test_unset_optionals_stay_none() -> None:
    result = request_from_proto(request())
    assert (result.temperature, result.seed, result.max_tokens, result.tool_choice) == (
        None,
        None,
        None,
        None,
    )
    assert result.include_usage is False
    assert result.extra_json is None


def test_missing_model() -> None:
    assert rejected(request(model="")).param == "model"


def test_empty_messages() -> None:
    assert rejected(request(messages=[])).param == "messages"


def test_bad_role() -> None:
    err = rejected(request(messages=[chat_pb2.Message(role="robot", text="hi")]))
    assert err.param == "messages[0].role"
    assert "robot" in err.message


def test_bad_role_of_a_later_message() -> None:
    err = rejected(request(messages=[user(), chat_pb2.Message(role="", text="x")]))
    assert err.param == "messages[1].role"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 3.0),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("top_p", 1.5),
        ("presence_penalty", -2.5),
        ("frequency_penalty", 2.1),
        ("max_tokens", 0),
        ("n", 0),
        ("top_logprobs", 21),
    ],
)
def test_out_of_range_numbers(field: str, value: float) -> None:
    assert rejected(request(**{field: value})).param == field


def test_in_range_boundaries_are_accepted() -> None:
    result = request_from_proto(request(temperature=2.0, top_p=0.0, n=1, top_logprobs=20))
    assert (result.temperature, result.top_p, result.n, result.top_logprobs) == (2.0, 0.0, 1, 20)


def test_logit_bias_out_of_range() -> None:
    assert rejected(request(logit_bias={"42": 101.0})).param == "logit_bias.42"


def test_tool_message_without_tool_call_id() -> None:
    err = rejected(request(messages=[user(), chat_pb2.Message(role="tool", text="sunny")]))
    assert err.param == "messages[1].tool_call_id"


def test_user_message_without_content() -> None:
    assert rejected(request(messages=[chat_pb2.Message(role="user")])).param == (
        "messages[0].content"
    )


def test_assistant_message_may_have_no_content() -> None:
    result = request_from_proto(request(messages=[user(), chat_pb2.Message(role="assistant")]))
    assert result.messages[1] == chat.Message(role="assistant", content=None)


def test_tool_call_without_a_function_name() -> None:
    message = chat_pb2.Message(
        role="assistant", tool_calls=[chat_pb2.ToolCall(id="c", function=chat_pb2.FunctionCall())]
    )
    assert rejected(request(messages=[user(), message])).param == (
        "messages[1].tool_calls[0].function.name"
    )


def test_tool_choice_naming_an_unknown_tool() -> None:
    err = rejected(request(tools=[TOOL], tool_choice=chat_pb2.ToolChoice(function_name="nope")))
    assert err.param == "tool_choice"
    assert "nope" in err.message


@pytest.mark.parametrize("mode", ["sometimes", ""])
def test_tool_choice_with_an_unknown_mode(mode: str) -> None:
    err = rejected(request(tools=[TOOL], tool_choice=chat_pb2.ToolChoice(mode=mode)))
    assert err.param == "tool_choice"


def test_tool_choice_required_without_tools() -> None:
    assert rejected(request(tool_choice=chat_pb2.ToolChoice(mode="required"))).param == (
        "tool_choice"
    )


@pytest.mark.parametrize("parameters", ["{not json", "[1, 2]", '"schema"'])
def test_invalid_tool_parameters_json(parameters: str) -> None:
    tool = chat_pb2.Tool(function=chat_pb2.FunctionDefinition(name="f", parameters_json=parameters))
    assert rejected(request(tools=[tool])).param == "tools[0].function.parameters"


def test_tool_without_a_name_and_tool_of_a_wrong_type() -> None:
    nameless = chat_pb2.Tool(function=chat_pb2.FunctionDefinition())
    assert rejected(request(tools=[TOOL, nameless])).param == "tools[1].function.name"
    typed = chat_pb2.Tool(type="retrieval", function=chat_pb2.FunctionDefinition(name="f"))
    assert rejected(request(tools=[typed])).param == "tools[0].type"


def test_json_schema_without_a_name() -> None:
    fmt = chat_pb2.ResponseFormat(
        type="json_schema", json_schema=chat_pb2.JsonSchemaFormat(schema_json="{}")
    )
    assert rejected(request(response_format=fmt)).param == "response_format.json_schema.name"


def test_json_schema_with_invalid_schema() -> None:
    fmt = chat_pb2.ResponseFormat(
        type="json_schema", json_schema=chat_pb2.JsonSchemaFormat(name="x", schema_json="{")
    )
    assert rejected(request(response_format=fmt)).param == "response_format.json_schema.schema"


def test_unknown_response_format_type() -> None:
    fmt = chat_pb2.ResponseFormat(type="xml")
    assert rejected(request(response_format=fmt)).param == "response_format.type"


def test_invalid_extra_json() -> None:
    assert rejected(request(extra_json="[1]")).param == "extra"


def test_content_part_checks() -> None:
    empty_part = chat_pb2.Message(
        role="user", parts=chat_pb2.ContentParts(parts=[chat_pb2.ContentPart()])
    )
    assert rejected(request(messages=[empty_part])).param == "messages[0].content[0]"
    no_url = chat_pb2.Message(
        role="user",
        parts=chat_pb2.ContentParts(
            parts=[
                chat_pb2.ContentPart(text="a"),
                chat_pb2.ContentPart(image_url=chat_pb2.ImageUrl()),
            ]
        ),
    )
    assert rejected(request(messages=[no_url])).param == "messages[0].content[1].image_url.url"
    empty_file = chat_pb2.Message(
        role="user",
        parts=chat_pb2.ContentParts(
            parts=[chat_pb2.ContentPart(file=chat_pb2.FileInput(filename="a.pdf"))]
        ),
    )
    assert rejected(request(messages=[empty_file])).param == "messages[0].content[0].file"


def test_every_proto_field_has_a_place_in_the_domain() -> None:
    # request_from_proto maps the fields that are set by name (ListFields): a field added
    # to the proto must be given a place here, or it would be dropped or fail at runtime.
    by_hand = {"model", "messages", "tools", "tool_choice", "stream_options", "provider", "models"}
    by_hand.add("native_extra_json")
    by_hand.add("cache")  # the response cache's control: read by the servicer, not sent on
    request_fields = {f.name for f in chat_pb2.ChatRequest.DESCRIPTOR.fields}
    assert request_fields == set(chat_proto._OPTIONS) | by_hand
    domain_request = {f.name for f in dataclasses.fields(chat.ChatRequest)}
    assert set(chat_proto._OPTIONS) <= domain_request
    message_fields = {f.name for f in chat_pb2.Message.DESCRIPTOR.fields}
    domain_message = {f.name for f in dataclasses.fields(chat.Message)}
    assert message_fields - {"text", "parts"} <= domain_message
