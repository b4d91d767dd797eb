"""The official `openai` SDK, through a real gateway, against a real mock upstream.

Runs once per channel between the HTTP layer and the service (in-process and gRPC).
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import openai
import pytest

from tests.fixtures.gateway import Gateway
from tests.fixtures.http import open_stream, request, sse_events
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.openai_schema import validate

WEATHER_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
]


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)


def auth(gateway: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}


def last_body(mock: MockOpenAI, path: str) -> dict[str, Any]:
    bodies = [r.body for r in mock.requests if r.path == path and r.body is not None]
    assert bodies, f"the upstream saw no request to {path}"
    return bodies[-1]


# --- models ---------------------------------------------------------------------------


def test_models_list_and_retrieve(gateway: Gateway) -> None:
    sdk = client(gateway)
    ids = [m.id for m in sdk.models.list()]
    assert {"mock/echo", "mock/embed", "mock/rerank"} <= set(ids)

    model = sdk.models.retrieve("mock/echo")
    assert (model.id, model.owned_by, model.object) == ("mock/echo", "mock", "model")

    raw = request("GET", gateway.base_url + "/models", headers=auth(gateway))
    validate("ListModelsResponse", raw.json())
    echo = next(m for m in raw.json()["data"] if m["id"] == "mock/echo")
    assert echo["context_length"] == 8192
    assert echo["name"] == "Mock Echo"
    validate(
        "Model",
        request("GET", gateway.base_url + "/models/mock/embed", headers=auth(gateway)).json(),
    )

    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("mock/nope")


# --- chat -----------------------------------------------------------------------------


def test_chat_completion(gateway: Gateway, mock: MockOpenAI) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="mock/echo",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello world"},
        ],
        temperature=0.5,
        top_p=0.9,
        max_tokens=20,
        stop=["\n\n"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        logit_bias={"50256": -100},
        user="user-1",
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "mock/echo"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    assert raw.headers["x-switchyard-provider"] == "mock"
    assert raw.headers["x-request-id"]
    assert 0 <= float(raw.headers["x-switchyard-overhead-ms"]) < 1000
    validate("CreateChatCompletionResponse", json.loads(raw.http_response.content))

    sent = last_body(mock, "/v1/chat/completions")
    assert sent["model"] == "echo"  # the upstream's name, not ours
    assert sent["temperature"] == 0.5
    assert sent["top_p"] == 0.9
    assert sent["max_tokens"] == 20
    assert sent["stop"] == ["\n\n"]
    assert sent["seed"] == 7
    assert sent["user"] == "user-1"
    assert sent["logit_bias"] == {"50256": -100}
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "stream" not in sent
    upstream_auth = mock.requests[-1].headers["authorization"]
    assert upstream_auth == "Bearer upstream-secret"  # from ${MOCK_UPSTREAM_KEY:-...}


def _check_stream_invariants(chunks: list[dict[str, Any]], include_usage: bool) -> None:
    assert chunks, "no chunks"
    ids = {c["id"] for c in chunks}
    created = {c["created"] for c in chunks}
    assert len(ids) == 1 and len(created) == 1, "every chunk must share id and created"
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
        assert chunk["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:] if c["choices"])
    if include_usage:
        *body, last = chunks
        assert all(c["usage"] is None for c in body)
        assert last["choices"] == []
        assert last["usage"]["total_tokens"] > 0
    else:
        assert all("usage" not in c for c in chunks)
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_frames(gateway: Gateway, mock: MockOpenAI, include_usage: bool) -> None:
    body: dict[str, Any] = {
        "model": "mock/echo",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six seven"}],
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    conn, response = open_stream(gateway.base_url + "/chat/completions", body, auth(gateway))
    try:
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        assert response.getheader("x-request-id")
        assert response.getheader("x-switchyard-provider") == "mock"
        assert 0 <= float(response.getheader("x-switchyard-overhead-ms") or "-1") < 1000
        events = sse_events(response)
    finally:
        conn.close()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    _check_stream_invariants(chunks, include_usage)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: one two three four five six seven"
    # The gateway always asks the upstream for usage, whatever the client asked.
    assert last_body(mock, "/v1/chat/completions")["stream_options"] == {"include_usage": True}


def test_stream_with_sdk(gateway: Gateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "streaming through the sdk"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "echo: streaming through the sdk"
    assert usage is not None
    assert usage.completion_tokens == 5


def test_tool_calls(gateway: Gateway, mock: MockOpenAI) -> None:
    completion = client(gateway).chat.completions.create(
        model="mock/tools",
        messages=[{"role": "user", "content": "weather and time in Paris?"}],
        tools=WEATHER_TOOLS,
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [  # type: ignore[union-attr]
        ("call_a", "get_weather"),
        ("call_b", "get_time"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"city": "Paris"},
        {"city": "Tokyo"},
    ]
    sent = last_body(mock, "/v1/chat/completions")
    assert sent["tools"] == WEATHER_TOOLS
    assert sent["tool_choice"] == "auto"
    assert sent["parallel_tool_calls"] is True

    # The tool results go back up as a second turn, tool_call ids intact.
    follow_up = client(gateway).chat.completions.create(
        model="mock/echo",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [c.model_dump() for c in calls],  # type: ignore[misc]
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
            {"role": "user", "content": "thanks"},
        ],
    )
    assert follow_up.choices[0].message.content == "echo: thanks"
    sent = last_body(mock, "/v1/chat/completions")
    assert sent["messages"][1]["tool_calls"][1]["id"] == "call_b"
    assert sent["messages"][1]["content"] is None
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}


def test_legacy_function_calling(gateway: Gateway, mock: MockOpenAI) -> None:
    """OpenAI's deprecated `functions`, `function_call` and `function` role, still in its
    spec and still sent by old clients, arrive upstream as tools."""
    weather = WEATHER_TOOLS[0]["function"]
    completion = client(gateway).chat.completions.create(
        model="mock/echo",
        functions=[weather],
        function_call={"name": "get_weather"},
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {"role": "function", "name": "get_weather", "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
    )
    assert completion.choices[0].message.content == "echo: thanks"
    sent = last_body(mock, "/v1/chat/completions")
    assert sent["tools"] == [{"type": "function", "function": weather}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    call = sent["messages"][1]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}


def test_tool_calls_streamed(gateway: Gateway) -> None:
    sdk = client(gateway)
    with sdk.chat.completions.stream(
        model="mock/tools",
        messages=[{"role": "user", "content": "weather?"}],
        tools=WEATHER_TOOLS,
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.id for c in calls] == ["call_a", "call_b"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
    ]
    assert final.choices[0].finish_reason == "tool_calls"

    conn, response = open_stream(
        gateway.base_url + "/chat/completions",
        {
            "model": "mock/tools",
            "stream": True,
            "tools": WEATHER_TOOLS,
            "messages": [{"role": "user", "content": "weather?"}],
        },
        auth(gateway),
    )
    try:
        chunks = [json.loads(e) for e in sse_events(response)[:-1]]
    finally:
        conn.close()
    _check_stream_invariants(chunks, include_usage=False)
    deltas = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    firsts = [d for d in deltas if "id" in d]
    assert [d["index"] for d in firsts] == [0, 1]
    for first in firsts:
        assert first["type"] == "function"
        assert first["function"]["arguments"] == ""
        assert first["function"]["name"] in ("get_weather", "get_time")
    assert all("id" not in d and "name" not in d["function"] for d in deltas if d not in firsts)


def test_response_format_json_schema(gateway: Gateway, mock: MockOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    completion = client(gateway).chat.completions.create(
        model="mock/json",
        messages=[{"role": "user", "content": "a person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    assert json.loads(completion.choices[0].message.content or "") == {"name": "Ada", "age": 36}
    sent = last_body(mock, "/v1/chat/completions")["response_format"]
    assert sent == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True},
    }
    # Integers stay integers through the proto (JSON text, not Struct).
    assert isinstance(sent["json_schema"]["schema"]["properties"]["tags"]["maxItems"], int)


def test_image_url_part(gateway: Gateway, mock: MockOpenAI) -> None:
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    parts: list[Any] = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
    ]
    completion = client(gateway).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": parts}]
    )
    assert completion.choices[0].message.content == "echo: what is this [images: 1]"
    assert last_body(mock, "/v1/chat/completions")["messages"][0]["content"] == parts


def test_extra_parameters_pass_through(gateway: Gateway, mock: MockOpenAI) -> None:
    client(gateway).chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"top_k": 40, "repetition_penalty": 1.1},
    )
    sent = last_body(mock, "/v1/chat/completions")
    assert sent["top_k"] == 40
    assert isinstance(sent["top_k"], int)
    assert sent["repetition_penalty"] == 1.1


# --- embeddings -----------------------------------------------------------------------


def _upstream_vectors(mock: MockOpenAI, inputs: Any, **extra: Any) -> list[list[float]]:
    raw = request(
        "POST",
        mock.base_url + "/embeddings",
        {"model": "embed", "input": inputs, **extra},
        {"Authorization": f"Bearer {mock.api_key}", "Content-Type": "application/json"},
    )
    assert raw.status == 200
    return [item["embedding"] for item in raw.json()["data"]]


def _float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def test_embeddings_float(gateway: Gateway, mock: MockOpenAI) -> None:
    inputs = ["the quick brown fox", "jumps over"]
    raw = client(gateway).embeddings.with_raw_response.create(
        model="mock/embed", input=inputs, encoding_format="float"
    )
    body = json.loads(raw.http_response.content)
    validate("CreateEmbeddingResponse", body)
    result = raw.parse()
    expected = _upstream_vectors(mock, inputs)
    assert [d.embedding for d in result.data] == [_float32(v) for v in expected]
    assert [d.index for d in result.data] == [0, 1]
    assert result.usage.prompt_tokens == 6
    assert result.model == "mock/embed"


def test_embeddings_base64_is_the_sdk_default(gateway: Gateway, mock: MockOpenAI) -> None:
    result = client(gateway).embeddings.create(model="mock/embed", input="a single string")
    assert last_body(mock, "/v1/embeddings")["encoding_format"] == "float"
    raw = request(
        "POST",
        gateway.base_url + "/embeddings",
        {"model": "mock/embed", "input": "a single string", "encoding_format": "base64"},
        auth(gateway),
    )
    assert isinstance(raw.json()["data"][0]["embedding"], str)
    expected = _float32(_upstream_vectors(mock, ["a single string"])[0])
    assert result.data[0].embedding == expected


def test_embeddings_dimensions_and_tokens(gateway: Gateway, mock: MockOpenAI) -> None:
    sdk = client(gateway)
    result = sdk.embeddings.create(model="mock/embed", input=["abc"], dimensions=16)
    assert len(result.data[0].embedding) == 16
    assert last_body(mock, "/v1/embeddings")["dimensions"] == 16

    tokens = sdk.embeddings.create(model="mock/embed", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2
    assert last_body(mock, "/v1/embeddings")["input"] == [[1, 2, 3], [4, 5]]
    single = sdk.embeddings.create(model="mock/embed", input=[7, 8, 9])
    assert len(single.data) == 1
    assert last_body(mock, "/v1/embeddings")["input"] == [[7, 8, 9]]


# --- rerank ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_rerank(gateway: Gateway, mock: MockOpenAI, path: str) -> None:
    documents: list[Any] = [
        "Berlin is the capital of Germany.",
        {"text": "Paris is the capital of France."},
        "The capital of Spain is Madrid.",
    ]
    raw = request(
        "POST",
        gateway.http_url + path,
        {
            "model": "mock/rerank",
            "query": "capital of France",
            "documents": documents,
            "top_n": 2,
            "return_documents": True,
        },
        auth(gateway),
    )
    assert raw.status == 200, raw.body
    body = raw.json()
    assert body["model"] == "mock/rerank"
    assert body["id"]
    results = body["results"]
    assert next(r["index"] for r in results) == 1
    assert len(results) == 2
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results[0]["document"] == {"text": "Paris is the capital of France."}
    assert body["usage"]["total_tokens"] > 0
    sent = last_body(mock, "/v1/rerank")
    assert sent["documents"][1] == "Paris is the capital of France."
    assert sent["top_n"] == 2
    assert sent["model"] == "rerank"


def test_rerank_through_the_sdk_client(gateway: Gateway) -> None:
    body = client(gateway).post(
        "/rerank",
        cast_to=object,
        body={"model": "mock/rerank", "query": "germany", "documents": ["France", "Germany"]},
    )
    assert isinstance(body, dict)
    assert [r["index"] for r in body["results"]] == [1, 0]
    assert all("document" not in r for r in body["results"])
