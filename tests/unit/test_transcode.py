"""gateway_http/transcode: OpenAI JSON -> proto requests, proto results -> OpenAI JSON."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest
from switchyard.v1 import chat_pb2, common_pb2, embeddings_pb2

from gateway_http.errors import HttpError
from gateway_http.transcode import chat as transcode_chat
from gateway_http.transcode.chat import chunk_json, parse_chat, response_json
from gateway_http.transcode.embeddings import embeddings_json, parse_embeddings
from gateway_http.transcode.reasoning import REASONING_FIELDS
from gateway_http.transcode.rerank import parse_rerank
from gateway_http.transcode.routing import ROUTING_FIELDS

JSON = dict[str, Any]


def chat_body(**fields: Any) -> JSON:
    return {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields}


def bad(call: Any, body: JSON) -> HttpError:
    with pytest.raises(HttpError) as exc:
        call(body)
    assert exc.value.status == 400
    assert exc.value.type == "invalid_request_error"
    return exc.value


# --- parse_chat: errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": 5, "messages": []}, "model"),
        ({"model": "m"}, "messages"),
        (chat_body(messages="hi"), "messages"),
        (chat_body(messages={"role": "user"}), "messages"),
        (chat_body(messages=["hi"]), "messages[0]"),
        (chat_body(messages=[{"content": "hi"}]), "messages[0].role"),
        (chat_body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (chat_body(messages=[{"role": "user", "content": {"text": "x"}}]), "messages[0].content"),
        (
            chat_body(messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]),
            "messages[0].content[0].type",
        ),
        (
            chat_body(messages=[{"role": "user", "content": [{"text": "no type"}]}]),
            "messages[0].content[0].type",
        ),
        (
            chat_body(
                messages=[
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text"}]},
                ]
            ),
            "messages[1].content[1].text",
        ),
        (
            chat_body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "messages[0].content[0].image_url",
        ),
        (
            chat_body(
                messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]
            ),
            "messages[0].tool_calls[0].function.name",
        ),
        (chat_body(temperature="hot"), "temperature"),
        (chat_body(temperature=True), "temperature"),
        (chat_body(top_p=[0.5]), "top_p"),
        (chat_body(max_tokens=1.5), "max_tokens"),
        (chat_body(max_tokens="10"), "max_tokens"),
        (chat_body(max_tokens=2**31), "max_tokens"),
        (chat_body(n=False), "n"),
        (chat_body(seed=2**63), "seed"),
        (chat_body(seed=-(2**63) - 1), "seed"),
        (chat_body(seed="42"), "seed"),
        (chat_body(stop=5), "stop"),
        (chat_body(stop=["a", 1]), "stop[1]"),
        (chat_body(logit_bias=[1]), "logit_bias"),
        (chat_body(logit_bias={"50256": "-100"}), "logit_bias"),
        (chat_body(logprobs="yes"), "logprobs"),
        (chat_body(tools={"type": "function"}), "tools"),
        (chat_body(tools=[{"type": "function"}]), "tools[0].function"),
        (
            chat_body(tools=[{"function": {"name": "f", "parameters": [1]}}]),
            "tools[0].function.parameters",
        ),
        (chat_body(tool_choice={"type": "function"}), "tool_choice.function"),
        (chat_body(response_format="json"), "response_format"),
        (
            chat_body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
            "response_format.json_schema.name",
        ),
        (chat_body(stream="true"), "stream"),
        (chat_body(stream_options={"include_usage": 1}), "stream_options.include_usage"),
        (chat_body(timeout="soon"), "timeout"),
        (chat_body(timeout=0), "timeout"),
        (chat_body(timeout=86_401), "timeout"),
        (chat_body(provider={"order": "groq"}), "provider.order"),
        (chat_body(provider={"sort": "fastest"}), "provider.sort"),
        (chat_body(provider={"data_collection": "maybe"}), "provider.data_collection"),
        (chat_body(provider={"colour": 1}), "provider"),
        (chat_body(provider={"max_price": {"prompt": "x"}}), "provider.max_price.prompt"),
        (chat_body(provider={"allow_fallbacks": "no"}), "provider.allow_fallbacks"),
        (chat_body(models="a"), "models"),
        (chat_body(fallback_models=[1]), "fallback_models[0]"),
    ],
)
def test_parse_chat_errors_name_the_param(body: JSON, param: str) -> None:
    assert bad(parse_chat, body).param == param


def test_routing_fields_reach_the_proto() -> None:
    request = parse_chat(
        {
            "models": ["a/primary", "b/second"],
            "fallback_models": ["c/third"],
            "messages": [{"role": "user", "content": "hi"}],
            "provider": {
                "order": ["groq", "together"],
                "allow_fallbacks": False,
                "require_parameters": False,
                "data_collection": "deny",
                "only": ["groq"],
                "ignore": ["azure"],
                "sort": "price",
                "max_price": {"prompt": 1, "completion": 2.5},
                "quantizations": ["fp8"],
            },
        }
    ).request
    assert request.model == "a/primary"  # `models[0]` when `model` is absent
    assert list(request.models) == ["b/second", "c/third"]
    prefs = request.provider
    assert list(prefs.order) == ["groq", "together"]
    assert prefs.HasField("allow_fallbacks") and prefs.allow_fallbacks is False
    assert prefs.require_parameters is False
    assert (prefs.data_collection, prefs.sort) == ("deny", "price")
    assert (list(prefs.only), list(prefs.ignore)) == (["groq"], ["azure"])
    assert (prefs.max_price.prompt, prefs.max_price.completion) == (1.0, 2.5)
    assert not prefs.max_price.HasField("request")
    assert list(prefs.quantizations) == ["fp8"]
    assert "provider" not in (request.extra_json or "{}")


# --- parse_chat: values -----------------------------------------------------------------


def test_minimal_request() -> None:
    parsed = parse_chat(chat_body())
    assert parsed.stream is False
    assert parsed.timeout is None
    req = parsed.request
    assert req.model == "openai/gpt-4o"
    assert len(req.messages) == 1
    assert (req.messages[0].role, req.messages[0].WhichOneof("content")) == ("user", "text")
    assert req.messages[0].text == "hi"
    assert not req.HasField("temperature")
    assert not req.HasField("seed")
    assert req.extra_json == ""


def test_integral_floats_are_integers_and_int64_bounds_hold() -> None:
    req = parse_chat(chat_body(max_tokens=2.0, seed=2**63 - 1)).request
    assert req.max_tokens == 2
    assert req.seed == 2**63 - 1
    assert parse_chat(chat_body(seed=-(2**63))).request.seed == -(2**63)


def test_stop_as_string_and_list() -> None:
    assert list(parse_chat(chat_body(stop="END")).request.stop) == ["END"]
    assert list(parse_chat(chat_body(stop=["a", "b"])).request.stop) == ["a", "b"]
    assert list(parse_chat(chat_body(stop=None)).request.stop) == []


def test_unknown_top_level_keys_land_in_extra_json() -> None:
    body = chat_body(
        top_k=40,
        repetition_penalty=1.1,
        verbosity="low",
        min_p=None,  # null counts as absent
        temperature=0.5,
        usage={"include": True},
    )
    req = parse_chat(body).request
    assert orjson.loads(req.extra_json) == {
        "top_k": 40,
        "repetition_penalty": 1.1,
        "verbosity": "low",
    }
    assert req.temperature == 0.5


def test_timeout_and_stream_options() -> None:
    parsed = parse_chat(chat_body(timeout=30, stream=True, stream_options={"include_usage": True}))
    assert parsed.timeout == 30.0
    assert parsed.stream is True
    assert parsed.request.stream_options.include_usage is True
    assert parse_chat(chat_body(timeout=0.5)).timeout == 0.5


def test_content_parts_tools_and_formats() -> None:
    body = chat_body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {"type": "object", "maxItems": 3},
                    "strict": True,
                },
            }
        ],
        tool_choice={"type": "function", "function": {"name": "f"}},
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": False},
        },
        logit_bias={"50256": -100},
    )
    req = parse_chat(body).request
    parts = req.messages[0].parts.parts
    assert [p.WhichOneof("part") for p in parts] == ["text", "image_url", "input_audio"]
    assert (parts[1].image_url.url, parts[1].image_url.detail) == ("https://x/a.png", "low")
    assert req.messages[1].WhichOneof("content") is None
    assert req.messages[1].tool_calls[0].function.name == "f"
    assert req.messages[2].tool_call_id == "call_1"
    assert orjson.loads(req.tools[0].function.parameters_json) == {"type": "object", "maxItems": 3}
    assert req.tools[0].function.strict is True
    assert req.tool_choice.function_name == "f"
    assert req.response_format.json_schema.name == "out"
    assert req.response_format.json_schema.HasField("strict")
    assert req.response_format.json_schema.strict is False
    assert dict(req.logit_bias) == {"50256": -100.0}


def test_tool_choice_string_mode() -> None:
    req = parse_chat(chat_body(tool_choice="auto")).request
    assert req.tool_choice.WhichOneof("choice") == "mode"
    assert req.tool_choice.mode == "auto"


# --- response_json / chunk_json ---------------------------------------------------------


def test_response_json_with_tool_calls() -> None:
    response = chat_pb2.ChatResponse(
        id="chatcmpl-1", created=1700000000, model="openai/gpt-4o", provider="openai"
    )
    choice = response.choices.add(index=0, finish_reason="tool_calls")
    choice.message.role = "assistant"
    choice.message.tool_calls.add(
        id="call_1", type="function", function=chat_pb2.FunctionCall(name="f", arguments="{}")
    )
    response.usage.prompt_tokens = 3
    response.usage.completion_tokens = 4
    response.usage.total_tokens = 7
    response.usage.cached_tokens = 1
    assert response_json(response) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "openai/gpt-4o",
        "provider": "openai",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 1},
        },
    }


def test_response_json_with_text() -> None:
    response = chat_pb2.ChatResponse(id="x", model="m", system_fingerprint="fp_1")
    choice = response.choices.add(index=0, finish_reason="stop")
    choice.message.role = "assistant"
    choice.message.text = ""
    out = response_json(response)
    message = out["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "", "refusal": None}
    assert "tool_calls" not in message
    assert out["choices"][0]["logprobs"] is None
    assert out["system_fingerprint"] == "fp_1"
    assert "usage" not in out


def test_response_json_logprobs() -> None:
    response = chat_pb2.ChatResponse(id="x", model="m")
    choice = response.choices.add(index=0, finish_reason="stop")
    choice.message.text = "Hi"
    choice.logprobs.has_content = True
    token = choice.logprobs.content.add(token="Hi", logprob=-0.5, has_bytes=True)
    token.bytes.extend([72, 105])
    token.top_logprobs.add(token="Hi", logprob=-0.5)
    assert response_json(response)["choices"][0]["logprobs"] == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.5,
                "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": None}],
            }
        ],
        "refusal": None,
    }


def _chunk() -> chat_pb2.ChatChunk:
    chunk = chat_pb2.ChatChunk(id="chatcmpl-1", created=1, model="m", provider="p")
    choice = chunk.choices.add(index=0)
    choice.delta.role = "assistant"
    choice.delta.content = "Hel"
    return chunk


def test_chunk_json_shape() -> None:
    assert chunk_json(_chunk(), include_usage=False) == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "provider": "p",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "Hel"},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }


def test_chunk_json_usage_null_only_when_asked() -> None:
    assert "usage" not in chunk_json(_chunk(), include_usage=False)
    assert chunk_json(_chunk(), include_usage=True)["usage"] is None
    final = chat_pb2.ChatChunk(id="chatcmpl-1", created=1, model="m", provider="p")
    final.usage.CopyFrom(common_pb2.Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3))
    out = chunk_json(final, include_usage=True)
    assert out["choices"] == []
    assert out["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_chunk_json_tool_call_deltas() -> None:
    chunk = chat_pb2.ChatChunk(id="c", model="m")
    choice = chunk.choices.add(index=0, finish_reason="tool_calls")
    choice.delta.tool_calls.add(index=0, id="call_1", type="function", name="f", arguments="")
    choice.delta.tool_calls.add(index=1, arguments='{"a"')
    out = chunk_json(chunk, include_usage=False)["choices"][0]
    assert out["finish_reason"] == "tool_calls"
    assert out["delta"] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": ""},
            },
            {"index": 1, "function": {"arguments": '{"a"'}},
        ]
    }


# --- embeddings -------------------------------------------------------------------------


def emb_body(**fields: Any) -> JSON:
    return {"model": "openai/text-embedding-3-small", **fields}


def test_embeddings_input_shapes() -> None:
    req, encoding = parse_embeddings(emb_body(input="hello"))
    assert (list(req.texts), len(req.token_inputs), encoding) == (["hello"], 0, "float")

    req, _ = parse_embeddings(emb_body(input=["a", "b"]))
    assert (list(req.texts), len(req.token_inputs)) == (["a", "b"], 0)

    req, _ = parse_embeddings(emb_body(input=[1, 2, 3]))
    assert list(req.texts) == []
    assert [list(t.ids) for t in req.token_inputs] == [[1, 2, 3]]

    req, _ = parse_embeddings(emb_body(input=[[1, 2], [3]]))
    assert list(req.texts) == []
    assert [list(t.ids) for t in req.token_inputs] == [[1, 2], [3]]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (emb_body(), "input"),
        (emb_body(input=[]), "input"),
        (emb_body(input=[[]]), "input"),
        (emb_body(input=["a", 1]), "input"),
        (emb_body(input=[1.5]), "input"),
        (emb_body(input=[True]), "input"),
        (emb_body(input={"text": "a"}), "input"),
        (emb_body(input=[2**31]), "input"),
        (emb_body(input="a", encoding_format="int8"), "encoding_format"),
        (emb_body(input="a", encoding_format=1), "encoding_format"),
        (emb_body(input="a", dimensions="256"), "dimensions"),
        ({"input": "a"}, "model"),
    ],
)
def test_embeddings_errors(body: JSON, param: str) -> None:
    assert bad(parse_embeddings, body).param == param


def test_embeddings_options_and_extra() -> None:
    req, encoding = parse_embeddings(
        emb_body(input="a", encoding_format="base64", dimensions=256, user="u", truncate="END")
    )
    assert encoding == "base64"
    assert req.dimensions == 256
    assert req.user == "u"
    assert orjson.loads(req.extra_json) == {"truncate": "END"}


def _embed_response(values: list[float]) -> embeddings_pb2.EmbedResponse:
    response = embeddings_pb2.EmbedResponse(model="m", provider="p")
    response.data.add(index=0, values=values)
    response.usage.prompt_tokens = 2
    response.usage.total_tokens = 2
    return response


def test_embeddings_json_base64_decodes_to_float32() -> None:
    values = [0.5, -1.25, 0.1, 3.4028234663852886e38]
    out = embeddings_json(_embed_response(values), "base64")
    encoded = out["data"][0]["embedding"]
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    assert len(raw) == 4 * len(values)
    decoded = list(struct.unpack(f"<{len(values)}f", raw))
    assert decoded == list(struct.unpack("<4f", struct.pack("<4f", *values)))
    assert decoded[:2] == [0.5, -1.25]


def test_embeddings_json_float() -> None:
    out = embeddings_json(_embed_response([0.5, -1.25]), "float")
    assert out == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.25]}],
        "model": "m",
        "provider": "p",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }


# --- rerank -----------------------------------------------------------------------------


def rerank_body(**fields: Any) -> JSON:
    return {"model": "cohere/rerank-v3.5", "query": "capital of France", **fields}


def test_rerank_documents_as_strings_and_objects() -> None:
    req = parse_rerank(
        rerank_body(documents=["Paris", {"text": "Berlin"}], top_n=1, return_documents=True)
    )
    assert list(req.documents) == ["Paris", "Berlin"]
    assert req.query == "capital of France"
    assert req.top_n == 1
    assert req.return_documents is True
    assert req.extra_json == ""


def test_rerank_extra_and_defaults() -> None:
    req = parse_rerank(rerank_body(documents=["a"], max_chunks_per_doc=3))
    assert not req.HasField("top_n")
    assert req.return_documents is False
    assert orjson.loads(req.extra_json) == {"max_chunks_per_doc": 3}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "documents": ["a"]}, "query"),
        ({"model": "m", "query": 5, "documents": ["a"]}, "query"),
        (rerank_body(), "documents"),
        (rerank_body(documents="a"), "documents"),
        (rerank_body(documents=["a", 5]), "documents[1]"),
        (rerank_body(documents=[{"content": "a"}]), "documents[0].text"),
        (rerank_body(documents=["a"], top_n="1"), "top_n"),
        (rerank_body(documents=["a"], return_documents="yes"), "return_documents"),
    ],
)
def test_rerank_errors(body: JSON, param: str) -> None:
    assert bad(parse_rerank, body).param == param


def test_every_handled_chat_field_is_parsed() -> None:
    # parse_chat sends a body's fields to their setters, keeps `stream`, `timeout`, `usage`
    # and the routing fields for itself, and passes the rest upstream: a field named as
    # handled but parsed nowhere would be silently dropped.
    parsed_after = {"stream", "timeout", "usage"} | ROUTING_FIELDS | REASONING_FIELDS
    assert set(transcode_chat._SETTERS) | parsed_after == transcode_chat._HANDLED


# --- legacy function calling ----------------------------------------------------------


def test_function_messages_answer_the_latest_call_of_their_name() -> None:
    call = {"name": "f", "arguments": "{}"}
    parsed = parse_chat(
        chat_body(
            messages=[
                {"role": "assistant", "content": None, "function_call": call},
                {"role": "function", "name": "f", "content": "one"},
                {"role": "assistant", "content": None, "function_call": call},
                {"role": "function", "name": "f", "content": "two"},
            ]
        )
    )
    messages = parsed.request.messages
    assert [m.role for m in messages] == ["assistant", "tool", "assistant", "tool"]
    assert messages[0].tool_calls[0].id == messages[1].tool_call_id == "call_0"
    assert messages[2].tool_calls[0].id == messages[3].tool_call_id == "call_2"
    assert not messages[1].name


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].name"),
        ({"functions": [{"name": "f"}], "tools": [{"type": "function"}]}, "functions"),
        ({"function_call": "maybe"}, "function_call"),
    ],
)
def test_legacy_function_calling_errors(fields: JSON, param: str) -> None:
    assert bad(parse_chat, chat_body(**fields)).param == param
