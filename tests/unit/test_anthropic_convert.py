"""Golden tests for the Anthropic adapter's pure mappings (convert.py, stream.py, errors.py).

The upstream sides are Anthropic's documented examples (Messages API reference,
streaming, tool use, errors), so a mapping that drifts from the wire format fails here
before any server is involved.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from service.domain.chat import (
    AudioPart,
    ChatDelta,
    ChatRequest,
    ChatResult,
    Choice,
    ChoiceDelta,
    FilePart,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from service.providers.anthropic.answer import BadUpstreamError, parse_message, parse_usage
from service.providers.anthropic.convert import (
    FORMAT_TOOL,
    MessagesCall,
    RejectedError,
    UnsupportedError,
    build_request,
)
from service.providers.anthropic.errors import param_of, status_error, stream_error
from service.providers.anthropic.stream import StreamTranslator, UpstreamStreamError

JSON = dict[str, Any]
WEATHER = Tool(
    name="get_weather",
    description="Get the current weather in a given location",
    parameters_json=(
        '{"type":"object","properties":{"location":{"type":"string"},'
        '"days":{"type":"integer","maximum":7}},"required":["location"]}'
    ),
)
TIME = Tool(name="get_time", parameters_json='{"type":"object"}')
HELLO = (Message(role="user", content="Hello, Claude"),)


def body_of(request: ChatRequest, *, stream: bool = False, default_max_tokens: int = 4096) -> JSON:
    """The body exactly as it goes on the wire (orjson fragments resolved)."""
    call = build_request(
        request, "claude-sonnet-4-5", stream=stream, default_max_tokens=default_max_tokens
    )
    return orjson.loads(orjson.dumps(call.body))  # type: ignore[no-any-return]


def chat(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="anthropic/claude", messages=messages, **fields)


# --- requests -------------------------------------------------------------------------


def test_system_and_developer_become_top_level_system_in_a_multi_turn_chat() -> None:
    request = chat(
        Message(role="system", content="You are a helpful assistant."),
        Message(role="developer", content=(TextPart("Answer in French."),)),
        Message(role="user", content="Hello there."),
        Message(role="assistant", content="Hi, I'm Claude. How can I help you?"),
        Message(role="user", content="Can you explain LLMs in plain English?"),
        max_tokens=1024,
        temperature=0.5,
        top_p=0.9,
        user="user-123",
    )
    assert body_of(request) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are a helpful assistant."},
            {"type": "text", "text": "Answer in French."},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hello there."}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Hi, I'm Claude. How can I help you?"}],
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": "Can you explain LLMs in plain English?"}],
            },
        ],
        "temperature": 0.5,
        "top_p": 0.9,
        "metadata": {"user_id": "user-123"},
    }


def test_max_tokens_defaults_from_the_option_and_max_completion_tokens_wins() -> None:
    assert body_of(chat(*HELLO))["max_tokens"] == 4096
    assert body_of(chat(*HELLO), default_max_tokens=1000)["max_tokens"] == 1000
    both = chat(*HELLO, max_tokens=10, max_completion_tokens=20)
    assert body_of(both)["max_tokens"] == 20


def test_stop_sequences_top_k_through_extra_and_stream_flag() -> None:
    request = chat(*HELLO, stop=("\n\nHuman:", "END"), extra_json='{"top_k": 40, "stream": true}')
    body = body_of(request)
    assert body["stop_sequences"] == ["\n\nHuman:", "END"]
    assert body["top_k"] == 40 and isinstance(body["top_k"], int)
    assert "stream" not in body  # a unary call never streams, whatever the extras say
    assert body_of(request, stream=True)["stream"] is True


def test_typed_fields_win_over_extras() -> None:
    request = chat(*HELLO, temperature=0.2, extra_json='{"temperature": 1, "model": "x"}')
    body = body_of(request)
    assert body["temperature"] == 0.2 and body["model"] == "claude-sonnet-4-5"


PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452")).decode()


def test_images_base64_data_url_and_https_url() -> None:
    request = chat(
        Message(
            role="user",
            content=(
                ImagePart(url=f"data:image/png;base64,{PNG}", detail="high"),
                ImagePart(url="https://upload.wikimedia.org/ant.jpg"),
                TextPart("Compare these images."),
            ),
        )
    )
    assert body_of(request)["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/ant.jpg"}},
        {"type": "text", "text": "Compare these images."},
    ]


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "data:image/png,not-base64"])
def test_unusable_image_urls_are_rejected_with_param(url: str) -> None:
    request = chat(Message(role="user", content=(TextPart("x"), ImagePart(url=url))))
    with pytest.raises(RejectedError) as caught:
        body_of(request)
    assert caught.value.param == "messages[0].content[1].image_url.url"


def test_pdf_file_part_becomes_a_document_block() -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    request = chat(
        Message(
            role="user",
            content=(
                FilePart(filename="report.pdf", file_data=f"data:application/pdf;base64,{pdf}"),
                TextPart("Summarise this document."),
            ),
        )
    )
    assert body_of(request)["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
            "title": "report.pdf",
        },
        {"type": "text", "text": "Summarise this document."},
    ]


def test_plain_text_file_and_bare_base64_pdf() -> None:
    text = base64.b64encode(b"Grass is green.").decode()
    pdf = base64.b64encode(b"%PDF-1.7").decode()
    request = chat(
        Message(
            role="user",
            content=(
                FilePart(file_data=f"data:text/plain;base64,{text}"),
                FilePart(file_data=pdf),
            ),
        )
    )
    assert body_of(request)["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
        },
    ]


@pytest.mark.parametrize(
    "part",
    [
        AudioPart(data="UklGR", format="wav"),
        FilePart(file_id="file-abc123"),
        FilePart(file_data="data:image/tiff;base64,AAAA"),
    ],
)
def test_content_anthropic_cannot_take_is_unsupported(part: Any) -> None:
    with pytest.raises(UnsupportedError):
        body_of(chat(Message(role="user", content=(TextPart("x"), part))))


def _tools_body(**fields: Any) -> JSON:
    return body_of(chat(*HELLO, tools=(WEATHER, TIME), **fields))


def test_tools_carry_their_schema_unchanged_as_input_schema() -> None:
    body = _tools_body()
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "days": {"type": "integer", "maximum": 7},
                },
                "required": ["location"],
            },
        },
        {"name": "get_time", "input_schema": {"type": "object"}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice("auto"), {"type": "auto"}),
        (ToolChoice("none"), {"type": "none"}),
        (ToolChoice("required"), {"type": "any"}),
        (ToolChoice("function", "get_time"), {"type": "tool", "name": "get_time"}),
    ],
)
def test_tool_choice(choice: ToolChoice, expected: JSON) -> None:
    assert _tools_body(tool_choice=choice)["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_tool_use() -> None:
    assert _tools_body(parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    required = _tools_body(tool_choice=ToolChoice("required"), parallel_tool_calls=False)
    assert required["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    none = _tools_body(tool_choice=ToolChoice("none"), parallel_tool_calls=False)
    assert none["tool_choice"] == {"type": "none"}  # nothing to disable
    assert "tool_choice" not in body_of(chat(*HELLO, parallel_tool_calls=False))


CONVERSATION = (
    Message(role="user", content="Weather in Paris and the time in Tokyo?"),
    Message(
        role="assistant",
        content="I'll look both up.",
        tool_calls=(
            ToolCall(id="toolu_01A", name="get_weather", arguments='{"location": "Paris"}'),
            ToolCall(id="toolu_01B", name="get_time", arguments=""),
        ),
    ),
    Message(role="tool", content="15 degrees, raining", tool_call_id="toolu_01A"),
    Message(role="tool", content=(TextPart("09:30 JST"),), tool_call_id="toolu_01B"),
    Message(role="user", content="Thanks! Umbrella?"),
)


def test_tool_calls_become_tool_use_and_results_one_user_turn() -> None:
    body = body_of(chat(*CONVERSATION, tools=(WEATHER, TIME)))
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather in Paris and the time in Tokyo?"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "I'll look both up."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A",
                    "content": "15 degrees, raining",
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01B",
                    "content": [{"type": "text", "text": "09:30 JST"}],
                },
                {"type": "text", "text": "Thanks! Umbrella?"},
            ],
        },
    ]


def test_tool_results_lead_their_user_turn() -> None:
    body = body_of(
        chat(
            CONVERSATION[1],
            Message(role="user", content="(the user typed while the tool ran)"),
            CONVERSATION[2],
            CONVERSATION[3],
        )
    )
    kinds = [block["type"] for block in body["messages"][1]["content"]]
    assert kinds == ["tool_result", "tool_result", "text"]


def _call(cid: str, city: str = "Paris") -> ToolCall:
    return ToolCall(id=cid, name="get_weather", arguments=f'{{"location":"{city}"}}')


def _ids(body: JSON) -> list[str]:
    """The id of every tool_use and the tool_use_id of every tool_result, in order."""
    return [
        block.get("id") or block["tool_use_id"]
        for turn in body["messages"]
        for block in turn["content"]
        if block["type"] in ("tool_use", "tool_result")
    ]


# Another provider's conversation (Kimi-style ids), continued with Claude.
FOREIGN = (
    Message(role="user", content="Weather in Paris and Tokyo?"),
    Message(
        role="assistant",
        tool_calls=(
            _call("functions.get_weather:0"),
            _call("functions.get_weather:1", "Tokyo"),
        ),
    ),
    Message(role="tool", content="sunny", tool_call_id="functions.get_weather:0"),
    Message(role="tool", content="rain", tool_call_id="functions.get_weather:1"),
)


def test_foreign_tool_ids_are_replaced_the_same_for_a_call_and_its_result() -> None:
    body = body_of(chat(*FOREIGN, tools=(WEATHER,)))
    first, second = "functions_get_weather_0_79ac1aaab216", "functions_get_weather_1_26c478f3c75f"
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": first,
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": second,
                    "name": "get_weather",
                    "input": {"location": "Tokyo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": first, "content": "sunny"},
                {"type": "tool_result", "tool_use_id": second, "content": "rain"},
            ],
        },
    ]


def test_ids_that_fit_are_left_alone_beside_replaced_ones() -> None:
    later = (
        Message(role="assistant", tool_calls=(_call("toolu_01A"), _call("call_x-9"))),
        Message(role="tool", content="cloudy", tool_call_id="toolu_01A"),
        Message(role="tool", content="snow", tool_call_id="call_x-9"),
    )
    body = body_of(chat(*FOREIGN, *later, tools=(WEATHER,)))
    mapped = _ids(body_of(chat(*FOREIGN, tools=(WEATHER,))))
    # The longer history maps the foreign ids exactly as before (requests are stateless).
    assert _ids(body) == [*mapped, "toolu_01A", "call_x-9", "toolu_01A", "call_x-9"]


def test_different_ids_never_share_a_replacement() -> None:
    body = body_of(
        chat(
            Message(role="user", content="go"),
            Message(role="assistant", tool_calls=(_call("a.b"), _call("a:b"), _call(""))),
        )
    )
    # The same readable part ("a_b"), told apart by a digest of the original id.
    assert _ids(body) == ["a_b_2e7336dc8eba", "a_b_6783a31eabf6", "call_e3b0c44298fc"]


def test_a_replacement_never_takes_an_id_the_conversation_already_uses() -> None:
    squatter = "a_b_2e7336dc8eba"  # fits, and is exactly what "a.b" would become
    body = body_of(
        chat(
            Message(role="user", content="go"),
            Message(role="assistant", tool_calls=(_call("a.b"), _call(squatter))),
            Message(role="tool", content="one", tool_call_id="a.b"),
            Message(role="tool", content="two", tool_call_id=squatter),
        )
    )
    replaced = "a_b_2e7336dc8eba_2"
    assert _ids(body) == [replaced, squatter, replaced, squatter]


def test_a_long_foreign_id_keeps_a_bounded_readable_part() -> None:
    long_id = "tool:" + "x" * 200
    body = body_of(
        chat(
            Message(role="user", content="go"),
            Message(role="assistant", tool_calls=(_call(long_id),)),
        )
    )
    (replaced,) = _ids(body)
    readable, _, digest = replaced.rpartition("_")
    assert readable == "tool_" + "x" * 35 and len(digest) == 12


def test_tool_call_arguments_must_be_a_json_object() -> None:
    broken = Message(
        role="assistant", tool_calls=(ToolCall(id="t1", name="get_time", arguments="[1]"),)
    )
    with pytest.raises(RejectedError) as caught:
        body_of(chat(*HELLO, broken))
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


PERSON_SCHEMA = (
    '{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},'
    '"required":["name","age"]}'
)
PERSON = ResponseFormat(type="json_schema", name="person", schema_json=PERSON_SCHEMA, strict=True)


def test_json_schema_travels_as_a_forced_tool() -> None:
    call = build_request(
        chat(*HELLO, response_format=PERSON), "claude", stream=False, default_max_tokens=64
    )
    body = orjson.loads(orjson.dumps(call.body))
    assert call.format_tool == "person"
    assert body["tools"] == [
        {
            "name": "person",
            "description": "Give your final answer by calling this tool: its input is the answer.",
            "input_schema": orjson.loads(PERSON_SCHEMA),
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "person"}


def test_json_object_and_json_schema_beside_real_tools() -> None:
    call = build_request(
        chat(*HELLO, response_format=ResponseFormat(type="json_object")),
        "claude",
        stream=False,
        default_max_tokens=64,
    )
    assert call.format_tool == FORMAT_TOOL
    assert call.body["tools"][0]["input_schema"] == {"type": "object"}
    # With callable tools the model must call one of them or answer through the format tool.
    body = _tools_body(response_format=PERSON)
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time", "person"]
    assert body["tool_choice"] == {"type": "any"}
    with pytest.raises(RejectedError) as caught:
        body_of(chat(*HELLO, tools=(Tool(name="person"),), response_format=PERSON))
    assert caught.value.param == "response_format"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ],
)
def test_what_anthropic_cannot_honour_is_refused(fields: JSON, param: str) -> None:
    with pytest.raises(RejectedError) as caught:
        body_of(chat(*HELLO, **fields))
    assert caught.value.param == param


# --- responses ------------------------------------------------------------------------


def test_documented_text_message() -> None:
    message = {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi! My name is Claude."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503},
    }
    assert parse_message(message) == ChatResult(
        choices=(
            Choice(
                index=0,
                message=Message(role="assistant", content="Hi! My name is Claude."),
                finish_reason="stop",
            ),
        ),
        usage=Usage(prompt_tokens=2095, completion_tokens=503, total_tokens=2598),
    )


def test_documented_tool_use_message() -> None:
    message = {
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "stop_reason": "tool_use",
        "content": [
            {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"location": "San Francisco, CA", "unit": "celsius"},
            },
        ],
        "usage": {"input_tokens": 384, "output_tokens": 58},
    }
    choice = parse_message(message).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the current weather in San Francisco for you."
    assert choice.message.tool_calls == (
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9",
            name="get_weather",
            arguments='{"location":"San Francisco, CA","unit":"celsius"}',
        ),
    )


def test_format_tool_input_comes_back_as_content_not_a_tool_call() -> None:
    message = {
        "type": "message",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "person", "input": {"name": "Ada"}}
        ],
        "stop_reason": "tool_use",
    }
    choice = parse_message(message, "person").choices[0]
    assert choice.message.content == '{"name":"Ada"}'
    assert choice.message.tool_calls == ()
    assert choice.finish_reason == "stop"


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    message = {
        "type": "message",
        "content": [{"type": "text", "text": "one two"}],
        "stop_reason": stop_reason,
        "stop_sequence": "STOP" if stop_reason == "stop_sequence" else None,
    }
    assert parse_message(message).choices[0].finish_reason == finish


def test_usage_with_cache_reads_and_writes() -> None:
    usage = {
        "input_tokens": 50,
        "cache_creation_input_tokens": 248,
        "cache_read_input_tokens": 1800,
        "output_tokens": 503,
    }
    assert parse_usage(usage) == Usage(
        prompt_tokens=2098,
        completion_tokens=503,
        total_tokens=2601,
        cached_tokens=1800,
        cache_write_tokens=248,
    )


def test_thinking_stays_out_of_content_and_bad_shapes_are_bad_upstream() -> None:
    message = {
        "content": [
            {"type": "thinking", "thinking": "Let me think", "signature": "sig"},
            {"type": "text", "text": "42"},
        ],
        "stop_reason": "end_turn",
    }
    assert parse_message(message).choices[0].message.content == "42"
    broken_shapes: list[Any] = [{"content": "text"}, {"content": [{"type": "text"}]}, []]
    for broken in broken_shapes:
        with pytest.raises(BadUpstreamError):
            parse_message(broken)
    with pytest.raises(BadUpstreamError):
        parse_usage({"input_tokens": "12"})


# --- streams --------------------------------------------------------------------------


def translate(events: list[JSON], format_tool: str | None = None) -> list[ChatDelta]:
    translator = StreamTranslator(format_tool)
    deltas = [d for d in (translator.feed(e) for e in events) if d is not None]
    assert translator.finished and translator.done
    return deltas


def _start(usage: JSON) -> JSON:
    message: JSON = {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message"}
    message |= {"role": "assistant", "content": [], "model": "claude-sonnet-4-5"}
    return {"type": "message_start", "message": message | {"stop_reason": None, "usage": usage}}


def _stop(reason: str, usage: JSON) -> list[JSON]:
    return [
        {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}}
        | {"usage": usage},
        {"type": "message_stop"},
    ]


def test_documented_text_stream() -> None:
    events = [
        _start({"input_tokens": 25, "output_tokens": 1}),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
        {"type": "content_block_stop", "index": 0},
        *_stop("end_turn", {"output_tokens": 15}),
    ]
    assert translate(events) == [
        ChatDelta(choices=(ChoiceDelta(index=0, role="assistant", content="Hello"),)),
        ChatDelta(choices=(ChoiceDelta(index=0, content="!"),)),
        ChatDelta(
            choices=(ChoiceDelta(index=0, finish_reason="stop"),),
            usage=Usage(prompt_tokens=25, completion_tokens=15, total_tokens=40),
        ),
    ]


def _tool_block(index: int, call_id: str, name: str, fragments: list[str]) -> list[JSON]:
    head = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return [
        {"type": "content_block_start", "index": index, "content_block": head},
        *(
            {"type": "content_block_delta", "index": index}
            | {"delta": {"type": "input_json_delta", "partial_json": f}}
            for f in fragments
        ),
        {"type": "content_block_stop", "index": index},
    ]


def test_two_parallel_tool_calls_are_indexed_by_position_not_block_index() -> None:
    events = [
        _start(
            {
                "input_tokens": 472,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1024,
                "output_tokens": 2,
            }
        ),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Okay"},
        },
        {"type": "content_block_stop", "index": 0},
        *_tool_block(1, "toolu_01T1", "get_weather", ["", '{"location":', ' "Paris"}']),
        {"type": "ping"},
        *_tool_block(2, "toolu_01T2", "get_time", ['{"location": "Tokyo"}']),
        *_stop("tool_use", {"output_tokens": 89}),
    ]
    deltas = translate(events)
    calls = [call for d in deltas for c in d.choices for call in c.tool_calls]
    assert calls == [
        ToolCallDelta(index=0, id="toolu_01T1", name="get_weather", arguments=""),
        ToolCallDelta(index=0, arguments='{"location":'),
        ToolCallDelta(index=0, arguments=' "Paris"}'),
        ToolCallDelta(index=1, id="toolu_01T2", name="get_time", arguments=""),
        ToolCallDelta(index=1, arguments='{"location": "Tokyo"}'),
    ]
    assert deltas[0].choices[0].role == "assistant"
    assert deltas[0].choices[0].content == "Okay"
    assert deltas[-1] == ChatDelta(
        choices=(ChoiceDelta(index=0, finish_reason="tool_calls"),),
        usage=Usage(
            prompt_tokens=1496,
            completion_tokens=89,
            total_tokens=1585,
            cached_tokens=1024,
            cache_write_tokens=0,
        ),
    )


def test_streamed_format_tool_is_content() -> None:
    events = [
        _start({"input_tokens": 10, "output_tokens": 1}),
        *_tool_block(0, "toolu_9", "person", ['{"name": ', '"Ada"}']),
        *_stop("tool_use", {"output_tokens": 7}),
    ]
    deltas = translate(events, "person")
    assert [c.content for d in deltas for c in d.choices] == ['{"name": ', '"Ada"}', None]
    assert deltas[-1].choices[0].finish_reason == "stop"
    assert all(not c.tool_calls for d in deltas for c in d.choices)


def test_stop_sequence_and_later_usage_in_message_delta() -> None:
    events = [
        _start({"input_tokens": 3, "cache_read_input_tokens": 0, "output_tokens": 1}),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a b"}},
        {"type": "message_delta", "delta": {"stop_reason": "stop_sequence"}}
        | {"usage": {"input_tokens": 4, "cache_read_input_tokens": 6, "output_tokens": 2}},
        {"type": "message_stop"},
    ]
    assert translate(events)[-1] == ChatDelta(
        choices=(ChoiceDelta(index=0, finish_reason="stop"),),
        usage=Usage(prompt_tokens=10, completion_tokens=2, total_tokens=12, cached_tokens=6),
    )


def test_unknown_events_and_blocks_are_ignored() -> None:
    server_tool = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search"}
    events = [
        _start({"input_tokens": 1, "output_tokens": 1}),
        {"type": "content_block_start", "index": 0, "content_block": server_tool},
        {"type": "content_block_delta", "index": 0}
        | {"delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "some_future_event", "index": 7},
        *_stop("end_turn", {"output_tokens": 5}),
    ]
    assert [d.choices[0].finish_reason for d in translate(events)] == ["stop"]


def test_error_event_mid_stream() -> None:
    translator = StreamTranslator()
    assert translator.feed(_start({"input_tokens": 1, "output_tokens": 1})) is None
    assert translator.feed({"type": "ping"}) is None
    with pytest.raises(UpstreamStreamError) as caught:
        translator.feed(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
    err = stream_error("claude", caught.value.error_type, caught.value.message)
    assert err.status == 529 and err.retryable and not err.client_fault
    assert "overloaded_error" in err.message
    assert stream_error("claude", "invalid_request_error", "top_k: bad").param == "top_k"


def test_delta_for_a_block_that_never_started_is_bad_upstream() -> None:
    translator = StreamTranslator()
    with pytest.raises(BadUpstreamError):
        translator.feed(
            {
                "type": "content_block_delta",
                "index": 3,
                "delta": {"type": "text_delta", "text": "x"},
            }
        )


# --- errors ---------------------------------------------------------------------------


def _error_body(kind: str, message: str) -> bytes:
    error = {"type": "error", "error": {"type": kind, "message": message}}
    return orjson.dumps(error | {"request_id": "req_018EeWyXxfu5pfWkrYcMdjWG"})


def test_overloaded_529_is_retryable() -> None:
    err = status_error("claude", 529, _error_body("overloaded_error", "Overloaded"), {})
    assert err.status == 529 and err.retryable and not err.client_fault
    assert err.message == "claude answered HTTP 529: overloaded_error: Overloaded"


def test_invalid_request_names_the_openai_param() -> None:
    body = _error_body("invalid_request_error", "temperature: Input should be <= 1")
    err = status_error("claude", 400, body, {})
    assert err.client_fault and not err.retryable
    assert err.param == "temperature"


def test_rate_limit_carries_retry_after_and_auth_is_not_a_client_fault() -> None:
    limited = status_error(
        "claude", 429, _error_body("rate_limit_error", "slow down"), {"retry-after": "7"}
    )
    assert limited.retryable and limited.retry_after == 7.0
    auth = status_error("claude", 401, _error_body("authentication_error", "invalid x-api-key"), {})
    assert not auth.retryable and not auth.client_fault
    garbage = status_error("claude", 502, b"<html>Bad gateway</html>", {})
    assert garbage.retryable and "Bad gateway" in garbage.message


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("max_tokens: Field required", "max_tokens"),
        ("messages.1.content.0.image.source.base64.data: invalid base64", "messages"),
        ("stop_sequences: each must contain non-whitespace", "stop"),
        ("tools.0.input_schema: JSON schema is invalid", "tools"),
        ("Your credit balance is too low", None),
        ("thinking.budget_tokens: too small", None),
    ],
)
def test_param_of_anthropic_messages(message: str, param: str | None) -> None:
    assert param_of(message) == param


def test_messages_call_is_frozen() -> None:
    call = MessagesCall(body={})
    with pytest.raises(AttributeError):
        call.format_tool = "x"  # type: ignore[misc]
