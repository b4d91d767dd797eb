"""Golden tests of the Gemini adapter's pure mapping, in both directions.

The upstream side of each case is shaped after the examples of Google's Gemini API
reference (generateContent, streamGenerateContent?alt=sse, function calling,
batchEmbedContents, error bodies).
"""

from __future__ import annotations

import itertools
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
    ChoiceLogprobs,
    FilePart,
    ImagePart,
    Message,
    ReasoningDetail,
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
from service.domain.embeddings import EmbedRequest
from service.providers.errors import FailureKind
from service.providers.gemini import convert, response
from service.providers.gemini.errors import blocked_error, event_error, status_error
from service.providers.gemini.schema import SchemaError, to_gemini
from service.providers.gemini.stream import StreamTranslator

JSON = dict[str, Any]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg=="
OURS_A, OURS_B = "call_" + "a" * 32, "call_" + "b" * 32
WEATHER = (
    '{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",'
    '"additionalProperties":false,"properties":{"city":{"type":"string",'
    '"description":"City name"},"unit":{"type":["string","null"],"enum":["c","f"]},'
    '"days":{"type":"array","items":{"type":"integer","format":"int32"},"maxItems":3}},'
    '"required":["city","ghost"]}'
)


def ids() -> Any:
    counter = itertools.count()
    return lambda: f"call_gen{next(counter)}"


def body_of(request: ChatRequest, fetched: dict[str, convert.Blob] | None = None) -> JSON:
    return convert.chat_body(request, fetched or {})


# --- requests -------------------------------------------------------------------------


def test_rich_request_golden() -> None:
    request = ChatRequest(
        model="up/gemini",
        messages=(
            Message(role="system", content="You are a weather bot."),
            Message(role="developer", content="Answer in English."),
            Message(
                role="user",
                content=(
                    TextPart("What is the weather in this photo's city and in Tokyo?"),
                    ImagePart(url=f"data:image/png;base64,{PNG}"),
                ),
            ),
            Message(
                role="assistant",
                content=None,
                tool_calls=(
                    ToolCall(id=OURS_A, name="get_weather", arguments='{"city": "Paris"}'),
                    ToolCall(id=OURS_B, name="get_weather", arguments='{"city": "Tokyo"}'),
                ),
            ),
            Message(role="tool", content='{"temp_c": 21}', tool_call_id=OURS_A),
            Message(role="tool", content="sunny, 25 C", tool_call_id=OURS_B),
            Message(role="user", content="Thanks! Which is warmer?"),
        ),
        temperature=0.2,
        top_p=0.9,
        max_tokens=100,
        max_completion_tokens=256,
        stop=("END", "STOP"),
        seed=7,
        n=2,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        user="ignored-by-gemini",
        tools=(Tool(name="get_weather", description="Weather in a city", parameters_json=WEATHER),),
        tool_choice=ToolChoice(mode="function", function="get_weather"),
        extra_json='{"top_k": 40, "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",'
        ' "threshold": "BLOCK_NONE"}], "store": true}',
    )
    assert body_of(request) == {
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is the weather in this photo's city and in Tokyo?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"content": "sunny, 25 C"},
                        }
                    },
                ],
            },
            {"role": "user", "parts": [{"text": "Thanks! Which is warmer?"}]},
        ],
        "systemInstruction": {
            "parts": [{"text": "You are a weather bot."}, {"text": "Answer in English."}]
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather in a city",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {
                                "city": {"type": "STRING", "description": "City name"},
                                "unit": {"type": "STRING", "nullable": True, "enum": ["c", "f"]},
                                "days": {
                                    "type": "ARRAY",
                                    "maxItems": 3,
                                    "items": {"type": "INTEGER", "format": "int32"},
                                },
                            },
                            "required": ["city"],
                        },
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {
            "topK": 40,
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 256,
            "seed": 7,
            "candidateCount": 2,
            "presencePenalty": 0.5,
            "frequencyPenalty": 0.25,
            "stopSequences": ["END", "STOP"],
        },
    }


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")],
)
def test_tool_choice_modes(mode: str, expected: str) -> None:
    request = ChatRequest(
        model="m",
        messages=(Message(role="user", content="hi"),),
        tools=(Tool(name="noop", parameters_json='{"type":"object","properties":{}}'),),
        tool_choice=ToolChoice(mode=mode),
    )
    body = body_of(request)
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": expected}}
    # A tool without arguments gets no `parameters` (Gemini refuses an empty OBJECT).
    assert body["tools"] == [{"functionDeclarations": [{"name": "noop"}]}]


def test_response_formats() -> None:
    base = ChatRequest(model="m", messages=(Message(role="user", content="a person"),))
    schema = '{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}'
    as_object = ChatRequest(**{**_fields(base), "response_format": ResponseFormat("json_object")})
    with_schema = ChatRequest(
        **{
            **_fields(base),
            "response_format": ResponseFormat("json_schema", name="p", schema_json=schema),
        }
    )
    assert body_of(as_object)["generationConfig"] == {"responseMimeType": "application/json"}
    assert body_of(with_schema)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"name": {"type": "STRING"}},
            "required": ["name"],
        },
    }
    assert "generationConfig" not in body_of(
        ChatRequest(**{**_fields(base), "response_format": ResponseFormat("text")})
    )


def _fields(request: ChatRequest) -> JSON:
    return {name: getattr(request, name) for name in request.__slots__}


def test_attachments_golden() -> None:
    request = ChatRequest(
        model="m",
        messages=(
            Message(
                role="user",
                content=(
                    ImagePart(url="gs://bucket/cat.jpg"),
                    ImagePart(url="https://example.com/dog.webp"),
                    FilePart(file_data="data:application/pdf;base64,JVBERi0=", filename="a.pdf"),
                    FilePart(file_id="files/abc-123", filename="notes.txt"),
                    FilePart(file_id="https://example.com/report.pdf"),
                    AudioPart(data="UklGRg==", format="wav"),
                ),
            ),
        ),
    )
    remote = convert.remote_attachments(request)
    assert remote == (
        convert.RemoteAttachment(
            "https://example.com/dog.webp", "messages[0].content[1].image_url.url", ("image/",)
        ),
        convert.RemoteAttachment(
            "https://example.com/report.pdf",
            "messages[0].content[4].file.file_id",
            convert.FILE_TYPES,
        ),
    )
    fetched = {
        "messages[0].content[1].image_url.url": convert.Blob("image/webp", "UklGRg=="),
        "messages[0].content[4].file.file_id": convert.Blob("application/pdf", "JVBERi0="),
    }
    assert body_of(request, fetched)["contents"][0]["parts"] == [
        {"fileData": {"fileUri": "gs://bucket/cat.jpg", "mimeType": "image/jpeg"}},
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {
            "fileData": {
                "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-123",
                "mimeType": "text/plain",
            }
        },
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            Message(role="user", content=(ImagePart(url="data:image/png;base64,@@@"),)),
            "messages[0].content[0].image_url.url",
        ),
        (
            Message(role="user", content=(ImagePart(url="ftp://example.com/a.png"),)),
            "messages[0].content[0].image_url.url",
        ),
        (
            Message(role="user", content=(FilePart(file_id="file-openai123"),)),
            "messages[0].content[0].file.file_id",
        ),
        (Message(role="tool", content="x", tool_call_id="nope"), "messages[0].tool_call_id"),
        (
            Message(role="assistant", tool_calls=(ToolCall(id="c", name="f", arguments="[1]"),)),
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_unmappable_requests_name_the_param(message: Message, param: str) -> None:
    with pytest.raises(convert.RequestError) as caught:
        body_of(ChatRequest(model="m", messages=(message,)))
    assert caught.value.param == param


def test_gemini_call_ids_are_sent_back_and_ours_are_not() -> None:
    request = ChatRequest(
        model="m",
        messages=(
            Message(role="user", content="go"),
            Message(
                role="assistant",
                tool_calls=(
                    ToolCall(id="gemini-id-1", name="f", arguments=""),
                    ToolCall(id=OURS_A, name="g", arguments="{}"),
                ),
            ),
            Message(role="tool", content="[1, 2]", tool_call_id="gemini-id-1"),
            Message(role="tool", content="ok", tool_call_id=OURS_A),
        ),
    )
    contents = body_of(request)["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "f", "args": {}, "id": "gemini-id-1"}},
        {"functionCall": {"name": "g", "args": {}}},
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "f", "response": {"content": "[1, 2]"}, "id": "gemini-id-1"}},
        {"functionResponse": {"name": "g", "response": {"content": "ok"}}},
    ]


def test_schema_conversion() -> None:
    schema = {
        "$defs": {"Pet": {"type": "object", "properties": {"kind": {"const": "cat"}}}},
        "type": "object",
        "properties": {
            "pet": {"$ref": "#/$defs/Pet"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "either": {"type": ["string", "integer"]},
            "email": {"type": "string", "format": "email", "default": "x"},
            "when": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": False,
    }
    assert to_gemini(schema) == {
        "type": "OBJECT",
        "properties": {
            "pet": {
                "type": "OBJECT",
                "properties": {"kind": {"type": "STRING", "enum": ["cat"]}},
            },
            "maybe": {"type": "INTEGER", "nullable": True},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
            "email": {"type": "STRING"},
            "when": {"type": "STRING", "format": "date-time"},
        },
    }
    recursive = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}}
    with pytest.raises(SchemaError, match="recursive"):
        to_gemini({**recursive, "$ref": "#/$defs/N"})


def test_embed_body() -> None:
    request = EmbedRequest(
        model="up/embed",
        texts=("first", "second"),
        dimensions=8,
        extra_json='{"taskType": "RETRIEVAL_QUERY", "encoding_format": "float"}',
    )
    assert convert.embed_body(request.texts, request, "gemini-embedding-001") == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "first"}]},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 8,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "second"}]},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 8,
            },
        ]
    }
    assert convert.model_path("tunedModels/mine") == "tunedModels/mine"


# --- responses ------------------------------------------------------------------------

USAGE = {
    "promptTokenCount": 10,
    "candidatesTokenCount": 7,
    "thoughtsTokenCount": 3,
    "cachedContentTokenCount": 4,
    "totalTokenCount": 20,
}
EXPECTED_USAGE = Usage(
    prompt_tokens=10, completion_tokens=10, total_tokens=20, cached_tokens=4, reasoning_tokens=3
)


def test_text_response_golden() -> None:
    answer = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "Let me think.", "thought": True},
                        {"text": "Once upon a time, "},
                        {"text": "a cat."},
                    ],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
                ],
            }
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "abc",
    }
    assert response.parse_response(answer) == ChatResult(
        choices=(
            Choice(
                index=0,
                message=Message(
                    role="assistant",
                    content="Once upon a time, a cat.",
                    reasoning="Let me think.",  # the thought summary, apart from the text
                    reasoning_details=(
                        ReasoningDetail(
                            type="reasoning.text",
                            text="Let me think.",
                            format="google-gemini-v1",
                        ),
                    ),
                ),
                finish_reason="stop",
            ),
        ),
        usage=EXPECTED_USAGE,
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),  # also what a stop sequence hit reports (the sequence is cut)
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    answer = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert response.parse_response(answer).choices[0].finish_reason == expected


def test_stop_sequence_hit() -> None:
    """Gemini stops before the sequence and reports STOP: the text ends without it."""
    answer = {
        "candidates": [
            {
                "content": {"parts": [{"text": "one, two, "}], "role": "model"},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9},
    }
    result = response.parse_response(answer)
    assert result.choices[0].message.content == "one, two, "
    assert result.choices[0].finish_reason == "stop"
    assert result.usage == Usage(prompt_tokens=5, completion_tokens=4, total_tokens=9)


def test_parallel_function_calls_response() -> None:
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_time", "args": {"city": "Tokyo"}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ]
    }
    message = response.parse_response(answer, ids()).choices[0]
    assert message.finish_reason == "tool_calls"
    assert message.message.tool_calls == (
        ToolCall(id="call_gen0", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="call_gen1", name="get_time", arguments='{"city":"Tokyo"}'),
    )
    assert message.message.content is None


def test_logprobs_response() -> None:
    answer = {
        "candidates": [
            {
                "content": {"parts": [{"text": "Hi"}]},
                "finishReason": "STOP",
                "logprobsResult": {
                    "topCandidates": [
                        {
                            "candidates": [
                                {"token": "Hi", "logProbability": -0.1},
                                {"token": "Hey", "logProbability": -2.5},
                            ]
                        }
                    ],
                    "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}],
                },
            }
        ]
    }
    assert response.parse_response(answer).choices[0].logprobs == ChoiceLogprobs(
        content=(
            TokenLogprob(
                token="Hi",
                logprob=-0.1,
                top_logprobs=(TopLogprob("Hi", -0.1), TopLogprob("Hey", -2.5)),
            ),
        )
    )


BLOCKED = {
    "promptFeedback": {
        "blockReason": "SAFETY",
        "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        ],
    },
    "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
}


def test_safety_block() -> None:
    with pytest.raises(response.PromptBlockedError) as caught:
        response.parse_response(BLOCKED)
    assert caught.value.reason == "SAFETY"
    err = blocked_error("gem", caught.value)
    assert err.kind is FailureKind.STATUS and err.status == 400 and err.param == "messages"
    assert err.client_fault and not err.retryable
    assert "blockReason SAFETY" in err.message
    assert "HARM_CATEGORY_DANGEROUS_CONTENT" in err.message
    assert "HARASSMENT" not in err.message


@pytest.mark.parametrize(
    "answer",
    [[], {"candidates": []}, {"candidates": [{"content": {"parts": "x"}}]}, {"candidates": [1]}],
)
def test_unreadable_answers(answer: Any) -> None:
    with pytest.raises(response.BadUpstreamError):
        response.parse_response(answer)


def test_embeddings_response() -> None:
    vectors, tokens = response.parse_embeddings(
        {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}, 2
    )
    assert vectors == [[0.1, 0.2], [0.3, 0.4]] and tokens == 0
    with pytest.raises(response.BadUpstreamError):
        response.parse_embeddings({"embeddings": [{"values": [0.1]}]}, 2)


# --- upstream errors ------------------------------------------------------------------


def _error(code: int, status: str, message: str, details: list[JSON] | None = None) -> bytes:
    error: JSON = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


def test_error_bodies() -> None:
    bad = status_error(
        "gem", 400, _error(400, "INVALID_ARGUMENT", "Invalid value at 'contents[0]'"), {}
    )
    assert bad.status == 400 and bad.client_fault
    assert bad.message == "gem answered HTTP 400: INVALID_ARGUMENT: Invalid value at 'contents[0]'"

    key = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
    invalid_key = status_error(
        "gem", 400, _error(400, "INVALID_ARGUMENT", "API key not valid.", [key]), {}
    )
    # What Gemini answered stays the status; that it is the gateway's key is apart from it.
    assert invalid_key.status == 400 and invalid_key.upstream_fault
    assert not invalid_key.client_fault and not invalid_key.retryable
    assert not bad.upstream_fault

    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
    limited = status_error("gem", 429, _error(429, "RESOURCE_EXHAUSTED", "quota", [retry]), {})
    assert limited.retry_after == 37.0 and limited.retryable

    internal = status_error("gem", 500, _error(500, "INTERNAL", "An internal error"), {})
    assert internal.retryable and not internal.client_fault

    html = status_error("gem", 502, b"<html>Bad Gateway</html>", {"Retry-After": "3"})
    assert html.message == "gem answered HTTP 502: <html>Bad Gateway</html>"
    assert html.retry_after == 3.0

    event = event_error("gem", {"error": {"code": 503, "message": "overloaded"}})
    assert event.status == 503 and event.retryable


# --- streams --------------------------------------------------------------------------


def chunk(parts: list[JSON], finish: str | None = None, usage: JSON | None = None) -> JSON:
    candidate: JSON = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: JSON = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}
    if usage:
        body["usageMetadata"] = usage
    return body


def run(chunks: list[Any]) -> list[ChatDelta]:
    translator = StreamTranslator(ids())
    deltas = [d for c in chunks for d in translator.feed(c)]
    return deltas + translator.finish()


def one(**fields: Any) -> ChatDelta:
    return ChatDelta(choices=(ChoiceDelta(index=0, **fields),))


def test_text_stream_golden() -> None:
    early = {"promptTokenCount": 10, "totalTokenCount": 10}
    assert run(
        [
            chunk([{"text": "Once upon "}], usage=early),
            chunk([{"text": "hmm", "thought": True}, {"text": "a time"}], usage=early),
            chunk([{"text": "."}], "STOP", USAGE),
        ]
    ) == [
        one(content="Once upon "),
        one(
            reasoning="hmm",
            reasoning_details=(
                ReasoningDetail(type="reasoning.text", text="hmm", format="google-gemini-v1"),
            ),
        ),
        one(content="a time"),
        one(content="."),
        one(finish_reason="stop"),
        ChatDelta(usage=EXPECTED_USAGE),
    ]


def test_parallel_function_calls_in_a_stream() -> None:
    """Distinct indexes 0..n-1 and ids, across chunks; id and name first, then arguments."""
    deltas = run(
        [
            chunk([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]),
            chunk(
                [
                    {"functionCall": {"name": "get_time", "args": {"city": "Tokyo"}}},
                    {"functionCall": {"name": "get_weather", "args": {}}},
                ],
                "STOP",
            ),
        ]
    )

    def call(**fields: Any) -> ChatDelta:
        return one(tool_calls=(ToolCallDelta(**fields),))

    assert deltas == [
        call(index=0, id="call_gen0", name="get_weather", arguments=""),
        call(index=0, arguments='{"city":"Paris"}'),
        call(index=1, id="call_gen1", name="get_time", arguments=""),
        call(index=1, arguments='{"city":"Tokyo"}'),
        call(index=2, id="call_gen2", name="get_weather", arguments=""),
        call(index=2, arguments="{}"),
        one(finish_reason="tool_calls"),
    ]


def test_stream_safety_finish_and_length() -> None:
    assert run([chunk([], "SAFETY")]) == [one(finish_reason="content_filter")]
    assert run([chunk([{"text": "abc"}], "MAX_TOKENS")])[-1] == one(finish_reason="length")


def test_stream_failures() -> None:
    with pytest.raises(response.PromptBlockedError):
        run([BLOCKED])
    with pytest.raises(response.BadUpstreamError, match="before it finished"):
        run([chunk([{"text": "cut"}])])
    error = {"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}
    with pytest.raises(response.UpstreamErrorEvent) as caught:
        run([chunk([{"text": "a"}]), error])
    assert caught.value.payload == error
