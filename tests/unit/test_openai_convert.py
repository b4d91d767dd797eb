"""Golden tests for the OpenAI-compatible adapter's pure conversions (convert.py)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from service.domain.chat import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    Choice,
    ChoiceDelta,
    ChoiceLogprobs,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    TopLogprob,
    Usage,
)
from service.domain.embeddings import RerankHit, RerankResult
from service.providers.openai_compat.convert import (
    BadUpstreamError,
    chat_body,
    error_message,
    parse_chat_response,
    parse_chunk,
    parse_embeddings,
    parse_rerank,
)

JSON = dict[str, Any]

PARAMETERS = (
    '{"type":"object","properties":{"city":{"type":"string"},'
    '"days":{"type":"array","items":{"type":"integer"},"maxItems": 3}},'
    '"required":["city"]}'
)

RICH_REQUEST = ChatRequest(
    model="openai/gpt-4o",
    messages=(
        Message(role="system", content="You are a weather bot."),
        Message(
            role="user",
            content=(
                TextPart("What is the weather where this photo was taken?"),
                ImagePart(url="https://example.com/photo.jpg", detail="low"),
            ),
            name="alice",
        ),
        Message(
            role="assistant",
            content=None,
            tool_calls=(ToolCall(id="call_abc", name="get_weather", arguments='{"city":"Paris"}'),),
        ),
        Message(role="tool", content='{"temp_c": 21}', tool_call_id="call_abc"),
    ),
    temperature=0.2,
    top_p=0.9,
    max_tokens=256,
    stop=("END", "STOP"),
    seed=42,
    logit_bias={"50256": -100.0},
    user="user-123",
    parallel_tool_calls=False,
    tools=(
        Tool(
            name="get_weather",
            description="Current weather for a city",
            parameters_json=PARAMETERS,
            strict=True,
        ),
    ),
    tool_choice=ToolChoice(mode="function", function="get_weather"),
    response_format=ResponseFormat(
        type="json_schema",
        name="forecast",
        description="A forecast",
        schema_json='{"type":"object","properties":{"temp":{"type":"number"}}}',
        strict=True,
    ),
    include_usage=False,
    extra_json='{"top_k": 40}',
)

RICH_BODY: JSON = {
    "top_k": 40,
    "model": "gpt-4o-2024-08-06",
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/photo.jpg", "detail": "low"},
                },
            ],
            "name": "alice",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_abc"},
    ],
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 256,
    "seed": 42,
    "user": "user-123",
    "parallel_tool_calls": False,
    "stop": ["END", "STOP"],
    "logit_bias": {"50256": -100.0},
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "days": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                    },
                    "required": ["city"],
                },
                "strict": True,
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "forecast",
            "description": "A forecast",
            "schema": {"type": "object", "properties": {"temp": {"type": "number"}}},
            "strict": True,
        },
    },
}


def wire(body: JSON) -> JSON:
    """The body as the upstream receives it."""
    parsed: JSON = orjson.loads(orjson.dumps(body))
    return parsed


# --- chat_body --------------------------------------------------------------------------


def test_chat_body_golden() -> None:
    body = wire(chat_body(RICH_REQUEST, "gpt-4o-2024-08-06", stream=False))
    assert body == RICH_BODY


def test_schema_numbers_keep_their_json_type() -> None:
    body = wire(chat_body(RICH_REQUEST, "m", stream=False))
    max_items = body["tools"][0]["function"]["parameters"]["properties"]["days"]["maxItems"]
    assert max_items == 3
    assert type(max_items) is int


def test_chat_body_stream_asks_for_usage() -> None:
    body = wire(chat_body(RICH_REQUEST, "gpt-4o-2024-08-06", stream=True))
    assert body == {**RICH_BODY, "stream": True, "stream_options": {"include_usage": True}}


def test_minimal_chat_body() -> None:
    request = ChatRequest(model="a/b", messages=(Message(role="user", content="hi"),))
    assert wire(chat_body(request, "b", stream=False)) == {
        "model": "b",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_typed_fields_override_extra_json() -> None:
    request = ChatRequest(
        model="a/b",
        messages=(Message(role="user", content="hi"),),
        temperature=0.3,
        extra_json=orjson.dumps(
            {
                "temperature": 1.9,
                "model": "evil",
                "messages": [],
                "stream": True,
                "stream_options": {"include_usage": False},
                "top_k": 40,
            }
        ).decode(),
    )
    assert wire(chat_body(request, "b", stream=False)) == {
        "top_k": 40,
        "model": "b",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.3,
    }
    streamed = wire(chat_body(request, "b", stream=True))
    assert streamed["stream"] is True
    assert streamed["stream_options"] == {"include_usage": True}
    assert streamed["model"] == "b"


def test_tool_choice_modes_and_plain_response_formats() -> None:
    request = ChatRequest(
        model="a/b",
        messages=(Message(role="user", content="hi"),),
        tools=(Tool(name="f"),),
        tool_choice=ToolChoice(mode="required"),
        response_format=ResponseFormat(type="json_object"),
    )
    body = wire(chat_body(request, "b", stream=False))
    assert body["tool_choice"] == "required"
    assert body["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert body["response_format"] == {"type": "json_object"}


# --- parse_chat_response ----------------------------------------------------------------

# https://platform.openai.com/docs/api-reference/chat/object
OPENAI_EXAMPLE: JSON = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The image shows a wooden boardwalk path running through a lush "
                "green field or meadow.",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

TOOL_CALLS_EXAMPLE: JSON = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1699896916,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": '{\n"location": "Boston, MA"\n}',
                        },
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99},
}


def test_parse_openai_example_response() -> None:
    assert parse_chat_response(OPENAI_EXAMPLE) == ChatResult(
        choices=(
            Choice(
                index=0,
                message=Message(
                    role="assistant",
                    content="The image shows a wooden boardwalk path running through a lush "
                    "green field or meadow.",
                ),
                finish_reason="stop",
            ),
        ),
        usage=Usage(
            prompt_tokens=1117,
            completion_tokens=46,
            total_tokens=1163,
            cached_tokens=0,
            reasoning_tokens=0,
        ),
        system_fingerprint="fp_fc9f1d7035",
    )


def test_parse_tool_calls_response() -> None:
    assert parse_chat_response(TOOL_CALLS_EXAMPLE) == ChatResult(
        choices=(
            Choice(
                index=0,
                message=Message(
                    role="assistant",
                    content=None,
                    tool_calls=(
                        ToolCall(
                            id="call_abc123",
                            name="get_current_weather",
                            arguments='{\n"location": "Boston, MA"\n}',
                        ),
                    ),
                ),
                finish_reason="tool_calls",
            ),
        ),
        usage=Usage(prompt_tokens=82, completion_tokens=17, total_tokens=99),
    )


def test_missing_finish_reason_and_index_get_sensible_defaults() -> None:
    body: JSON = {
        "choices": [
            {"message": {"content": "a"}},
            {"message": {"tool_calls": [{"id": "c", "function": {"name": "f"}}]}},
        ]
    }
    result = parse_chat_response(body)
    assert [c.index for c in result.choices] == [0, 1]
    assert [c.finish_reason for c in result.choices] == ["stop", "tool_calls"]
    assert result.choices[1].message.tool_calls == (ToolCall(id="c", name="f", arguments=""),)
    assert result.usage is None


def test_content_parts_are_joined_to_text() -> None:
    body: JSON = {
        "choices": [
            {
                "message": {
                    "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]
                }
            }
        ]
    }
    assert parse_chat_response(body).choices[0].message.content == "Hello"


def test_parse_logprobs() -> None:
    body: JSON = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!"},
                "logprobs": {
                    "content": [
                        {
                            "token": "Hello",
                            "logprob": -0.31725305,
                            "bytes": [72, 101, 108, 108, 111],
                            "top_logprobs": [
                                {
                                    "token": "Hello",
                                    "logprob": -0.31725305,
                                    "bytes": [72, 101, 108, 108, 111],
                                },
                                {"token": "Hi", "logprob": -1.3190403, "bytes": None},
                            ],
                        }
                    ],
                    "refusal": None,
                },
                "finish_reason": "stop",
            }
        ]
    }
    assert parse_chat_response(body).choices[0].logprobs == ChoiceLogprobs(
        content=(
            TokenLogprob(
                token="Hello",
                logprob=-0.31725305,
                bytes=(72, 101, 108, 108, 111),
                top_logprobs=(
                    TopLogprob(token="Hello", logprob=-0.31725305, bytes=(72, 101, 108, 108, 111)),
                    TopLogprob(token="Hi", logprob=-1.3190403, bytes=None),
                ),
            ),
        ),
        refusal=None,
    )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ([], "response"),
        ({}, "choices"),
        ({"choices": []}, "choices"),
        ({"choices": {"0": {"message": {}}}}, "choices"),
        ({"choices": [None]}, r"choices\[0\]"),
        ({"choices": [{"index": 0, "finish_reason": "stop"}]}, r"choices\[0\]\.message"),
        (
            {
                "choices": [
                    {"message": {"tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}}
                ]
            },
            r"choices\[0\]\.message\.tool_calls\[0\]\.function\.name",
        ),
        (
            {"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]},
            r"choices\[0\]\.message\.tool_calls\[0\]\.function",
        ),
        ({"choices": [{"message": {"content": 5}}]}, r"choices\[0\]\.message\.content"),
        ({"choices": [{"index": "0", "message": {}}]}, r"choices\[0\]\.index"),
        ({"choices": [{"message": {}}], "usage": {"prompt_tokens": "9"}}, "usage.prompt_tokens"),
    ],
)
def test_garbage_responses_raise_bad_upstream(body: Any, where: str) -> None:
    with pytest.raises(BadUpstreamError, match=where):
        parse_chat_response(body)


# --- parse_chunk ------------------------------------------------------------------------

CHUNK_BASE: JSON = {
    "id": "chatcmpl-123",
    "object": "chat.completion.chunk",
    "created": 1694268190,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_44709d6fcb",
}


def chunk(**fields: Any) -> JSON:
    return {**CHUNK_BASE, **fields}


def test_parse_documented_text_chunks() -> None:
    first = chunk(
        choices=[
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ]
    )
    middle = chunk(
        choices=[
            {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}
        ]
    )
    last = chunk(choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
    assert [parse_chunk(c) for c in (first, middle, last)] == [
        ChatDelta(
            choices=(ChoiceDelta(index=0, role="assistant", content=""),),
            system_fingerprint="fp_44709d6fcb",
        ),
        ChatDelta(
            choices=(ChoiceDelta(index=0, content="Hello"),), system_fingerprint="fp_44709d6fcb"
        ),
        ChatDelta(
            choices=(ChoiceDelta(index=0, finish_reason="stop"),),
            system_fingerprint="fp_44709d6fcb",
        ),
    ]


def test_parse_tool_call_deltas() -> None:
    opening = chunk(
        choices=[
            {
                "index": 0,
                "delta": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ],
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": None,
            }
        ]
    )
    argument = chunk(
        choices=[
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"'}}]},
                "logprobs": None,
                "finish_reason": None,
            }
        ]
    )
    second_call = chunk(
        choices=[
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "f"}}
                    ]
                },
            }
        ]
    )
    done = chunk(
        choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]
    )
    deltas = [parse_chunk(c).choices for c in (opening, argument, second_call, done)]
    assert deltas == [
        (
            ChoiceDelta(
                index=0,
                role="assistant",
                tool_calls=(
                    ToolCallDelta(
                        index=0,
                        id="call_DdmO9pD3xa9XTPNJ32zg2hcA",
                        name="get_weather",
                        arguments="",
                    ),
                ),
            ),
        ),
        (ChoiceDelta(index=0, tool_calls=(ToolCallDelta(index=0, arguments='{"'),)),),
        (ChoiceDelta(index=0, tool_calls=(ToolCallDelta(index=1, id="call_2", name="f"),)),),
        (ChoiceDelta(index=0, finish_reason="tool_calls"),),
    ]


def test_parse_usage_only_chunk() -> None:
    body = chunk(
        choices=[],
        usage={
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    )
    assert parse_chunk(body) == ChatDelta(
        choices=(),
        usage=Usage(
            prompt_tokens=19,
            completion_tokens=10,
            total_tokens=29,
            cached_tokens=4,
            reasoning_tokens=2,
        ),
        system_fingerprint="fp_44709d6fcb",
    )


def test_chunk_usage_null_and_missing_choices() -> None:
    assert parse_chunk({"usage": None}) == ChatDelta()


def test_chunk_with_an_error_object_raises() -> None:
    with pytest.raises(BadUpstreamError, match="overloaded"):
        parse_chunk({"error": {"message": "Model is overloaded", "type": "server_error"}})


@pytest.mark.parametrize(
    "body",
    [
        "data",
        {"choices": {}},
        {"choices": ["x"]},
        {"choices": [{"delta": "x"}]},
        {"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]},
        {"choices": [{"delta": {"role": 1}}]},
    ],
)
def test_garbage_chunks_raise(body: Any) -> None:
    with pytest.raises(BadUpstreamError):
        parse_chunk(body)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"choices": [{"index": "0", "delta": {}}]}, r"choices\[0\]\.index"),
        ({"choices": [{"index": True, "delta": {}}]}, r"choices\[0\]\.index"),
        ({"choices": [{"delta": {"content": 5}}]}, r"choices\[0\]\.delta\.content"),
        ({"choices": [{"delta": {"refusal": []}}]}, r"choices\[0\]\.delta\.refusal"),
        ({"choices": [{"delta": {}, "finish_reason": 1}]}, r"choices\[0\]\.finish_reason"),
        ({"choices": [{"delta": {}}, {"delta": {"role": 2}}]}, r"choices\[1\]\.delta\.role"),
    ],
)
def test_garbage_in_plain_deltas_is_named(body: JSON, where: str) -> None:
    """Plain text deltas take a shortcut; a wrong type still gets the field-by-field
    check and its message."""
    with pytest.raises(BadUpstreamError, match=where):
        parse_chunk(body)


@pytest.mark.parametrize(
    "choice",
    [
        {"index": 0, "delta": {"role": "assistant", "content": ""}},
        {"index": 2, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "stop"},
        {"delta": {"refusal": "no"}},
        {"index": None, "delta": None},
        {"index": 0, "delta": {"content": None, "tool_calls": None}},
        {"index": 0, "delta": {"content": None, "tool_calls": []}},
        {"index": 0, "delta": {"content": [{"type": "text", "text": "parts"}]}},
        {
            "index": 0,
            "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
        },
        {
            "index": 0,
            "delta": {"content": "x"},
            "logprobs": {"content": [{"token": "x", "logprob": -0.5, "top_logprobs": []}]},
        },
    ],
)
def test_the_plain_delta_shortcut_agrees_with_the_full_check(choice: JSON) -> None:
    from service.providers.openai_compat import convert

    for position in (0, 3):  # a missing or null index is the choice's position
        full = convert._choice_delta(choice, position)
        shortcut = convert._text_delta(choice, position)
        assert shortcut is None or shortcut == full
    assert parse_chunk(chunk(choices=[choice])).choices == (convert._choice_delta(choice, 0),)


# --- parse_embeddings -------------------------------------------------------------------


def test_parse_float_embeddings_in_index_order() -> None:
    body: JSON = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.25, -1]},
            {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    result = parse_embeddings(body, 2)
    assert [list(v) for v in result.vectors] == [[0.0023064255, -0.009327292], [0.25, -1]]
    assert result.usage == Usage(prompt_tokens=8, completion_tokens=0, total_tokens=8)


def test_parse_base64_embeddings() -> None:
    values = [0.5, -1.25, 3.0, 1e-3]
    packed = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    expected = list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))
    body: JSON = {"data": [{"index": 0, "embedding": packed}], "usage": {"prompt_tokens": 3}}
    result = parse_embeddings(body, 1)
    assert list(result.vectors[0]) == expected
    assert list(result.vectors[0])[:3] == [0.5, -1.25, 3.0]
    assert result.usage.total_tokens == 3


def test_embeddings_without_usage() -> None:
    result = parse_embeddings({"data": [{"embedding": [1.0]}]}, 1)
    assert result.usage == Usage()


@pytest.mark.parametrize(
    ("body", "expected", "where"),
    [
        ({"data": [{"index": 0, "embedding": [1.0]}]}, 2, "expected 2 embeddings, got 1"),
        ({"data": [{"embedding": [1.0]}, {"embedding": [2.0]}]}, 1, "expected 1 embeddings"),
        (
            {"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]},
            2,
            r"data\[1\]\.index: 0 is out of range or repeated",
        ),
        ({"data": [{"index": 1, "embedding": [1.0]}]}, 1, "out of range"),
        ({"data": [{"index": -1, "embedding": [1.0]}]}, 1, "out of range"),
        ({"data": [{"index": 0, "embedding": "!!notbase64"}]}, 1, "invalid base64"),
        ({"data": [{"index": 0, "embedding": "AAAAAAA="}]}, 1, "not float32"),
        ({"data": [{"index": 0, "embedding": [1.0, "x"]}]}, 1, "expected numbers"),
        ({"data": [{"index": 0, "embedding": [True]}]}, 1, "expected numbers"),
        ({"data": [{"index": 0}]}, 1, "expected an array"),
        ({"data": {}}, 1, "data: expected an array"),
    ],
)
def test_bad_embeddings_raise(body: JSON, expected: int, where: str) -> None:
    with pytest.raises(BadUpstreamError, match=where):
        parse_embeddings(body, expected)


# --- parse_rerank -----------------------------------------------------------------------


def test_parse_rerank_sorts_by_score_and_applies_top_n() -> None:
    body: JSON = {
        "id": "r1",
        "results": [
            {"index": 0, "relevance_score": 0.1},
            {"index": 2, "relevance_score": 0.9},
            {"index": 1, "relevance_score": 0.5},
            {"index": 3, "relevance_score": 0.5},
        ],
        "usage": {"total_tokens": 42},
    }
    assert parse_rerank(body, documents=4, top_n=3) == RerankResult(
        hits=(RerankHit(2, 0.9), RerankHit(1, 0.5), RerankHit(3, 0.5)),
        total_tokens=42,
        search_units=None,
    )
    assert [h.index for h in parse_rerank(body, documents=4, top_n=None).hits] == [2, 1, 3, 0]


def test_parse_cohere_rerank_billing() -> None:
    body: JSON = {
        "id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf",
        "results": [
            {"index": 3, "relevance_score": 0.999071},
            {"index": 4, "relevance_score": 0.7867867},
            {"index": 0, "relevance_score": 0.32713068},
        ],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }
    result = parse_rerank(body, documents=5, top_n=None)
    assert result.search_units == 1
    assert result.total_tokens is None
    assert [h.index for h in result.hits] == [3, 4, 0]
    assert result.hits[0].score == 0.999071


@pytest.mark.parametrize(
    ("results", "where"),
    [
        ([{"index": 5, "relevance_score": 0.5}], r"results\[0\]\.index: 5 is out of range"),
        ([{"index": -1, "relevance_score": 0.5}], "out of range"),
        ([{"relevance_score": 0.5}], r"results\[0\]\.index"),
        ([{"index": 0, "relevance_score": "high"}], r"results\[0\]\.relevance_score"),
        ([{"index": 0, "relevance_score": True}], "relevance_score"),
        ({"index": 0}, "results: expected an array"),
    ],
)
def test_bad_rerank_results_raise(results: Any, where: str) -> None:
    with pytest.raises(BadUpstreamError, match=where):
        parse_rerank({"results": results}, documents=2, top_n=None)


# --- error_message ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (
            400,
            b'{"error": {"message": "Invalid value for \'temperature\'.", '
            b'"type": "invalid_request_error", "param": "temperature", "code": null}}',
            ("Invalid value for 'temperature'.", "temperature"),
        ),
        (
            401,
            b'{"error": {"message": "Incorrect API key provided.", '
            b'"type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}',
            ("Incorrect API key provided.", None),
        ),
        (400, b'{"error": {"message": null, "param": 3}}', ("HTTP 400", None)),
        (503, b'{"error": "model is loading"}', ("model is loading", None)),
        (422, b'{"message": "documents must not be empty"}', ("documents must not be empty", None)),
        (500, b"[1, 2]", ("HTTP 500", None)),
        (502, b"<html>Bad Gateway</html>\n", ("<html>Bad Gateway</html>", None)),
        (502, b"  upstream connect error  ", ("upstream connect error", None)),
        (502, b"", ("HTTP 502", None)),
        (504, b"   \n", ("HTTP 504", None)),
    ],
)
def test_error_message(status: int, payload: bytes, expected: tuple[str, str | None]) -> None:
    assert error_message(status, payload) == expected


def test_error_message_truncates_long_text() -> None:
    message, param = error_message(500, b"x" * 10_000)
    assert message == "x" * 500
    assert param is None
