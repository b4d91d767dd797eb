"""The same client-visible contract, through every provider adapter (tests/fixtures/flavor_*).

Each flavor's mock speaks its provider's own wire format; the official `openai` SDK must
see the same OpenAI objects whichever adapter translated them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fixtures.flavors import Flavor, MockServer, discover
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import open_stream, request, sse_events
from tests.fixtures.openai_schema import validate

FLAVORS = discover()
TOOLS: Any = [
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


def _config(flavor: Flavor, base_url: str) -> str:
    lines = ["providers:", f"  up: {flavor.provider_config(base_url)}", "models:"]
    if flavor.chat:
        for behaviour in ("echo", "tools", "json"):
            lines.append(
                f"  - {{id: up/{behaviour}, endpoints: [{{provider: up, model: {behaviour}}}]}}"
            )
    if flavor.embed_model:
        lines.append(
            f"  - {{id: up/embed, capabilities: [embeddings], "
            f"endpoints: [{{provider: up, model: {flavor.embed_model}}}]}}"
        )
    if flavor.rerank_model:
        lines.append(
            f"  - {{id: up/rerank, capabilities: [rerank], "
            f"endpoints: [{{provider: up, model: {flavor.rerank_model}}}]}}"
        )
    return "\n".join(lines) + "\n"


class AdapterPool:
    """One mock and one gateway per flavor, started on first use, shared by the module."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._running: dict[str, tuple[MockServer, Gateway]] = {}

    def get(self, flavor: Flavor) -> Gateway:
        if flavor.name not in self._running:
            mock = flavor.start()
            config = self._tmp.mktemp(f"cfg-{flavor.name}") / "switchyard.yaml"
            config.write_text(_config(flavor, mock.base_url))
            gateway = start_gateway(config, self._tmp.mktemp(f"data-{flavor.name}"))
            self._running[flavor.name] = (mock, gateway)
        return self._running[flavor.name][1]

    def stop(self) -> None:
        for mock, gateway in self._running.values():
            gateway.stop()
            mock.stop()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdapterPool]:
    adapters = AdapterPool(tmp_path_factory)
    yield adapters
    adapters.stop()


def _params(flavors: list[Flavor]) -> pytest.MarkDecorator:
    """Parametrize over the flavors that offer a feature (no skips for the others)."""
    return pytest.mark.parametrize("flavor", flavors, ids=[f.name for f in flavors])


CHAT = _params([f for f in FLAVORS if f.chat])
IMAGES = _params([f for f in FLAVORS if f.chat and f.images])
EMBEDDINGS = _params([f for f in FLAVORS if f.embed_model])
RERANK = _params([f for f in FLAVORS if f.rerank_model])


def _sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)


@CHAT
def test_chat(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    raw = _sdk(gateway).chat.completions.with_raw_response.create(
        model="up/echo",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello adapter"},
        ],
        max_tokens=50,
    )
    body = json.loads(raw.http_response.content)
    validate("CreateChatCompletionResponse", body)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello adapter"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-switchyard-provider"] == "up"


@CHAT
def test_stream_with_usage(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    conn, response = open_stream(
        gateway.base_url + "/chat/completions",
        {
            "model": "up/echo",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "one two three four five"}],
        },
        {"Authorization": f"Bearer {gateway.key}"},
    )
    try:
        assert response.status == 200
        events = sse_events(response)
    finally:
        conn.close()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    *body, last = chunks
    assert all(c["usage"] is None for c in body)
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in body if c["choices"])
    assert text == "echo: one two three four five"
    finishes = [c["choices"][0]["finish_reason"] for c in body if c["choices"]]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])


def _check_calls(calls: Any, flavor: Flavor) -> None:
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
    ]
    ids = [c.id for c in calls]
    assert len(set(ids)) == 2 and all(ids)
    if not flavor.assigns_call_ids:
        assert ids == ["call_a", "call_b"]


@CHAT
def test_parallel_tool_calls(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    completion = _sdk(gateway).chat.completions.create(
        model="up/tools",
        messages=[{"role": "user", "content": "weather and time?"}],
        tools=TOOLS,
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    _check_calls(completion.choices[0].message.tool_calls, flavor)


@CHAT
def test_parallel_tool_calls_streamed(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    with _sdk(gateway).chat.completions.stream(
        model="up/tools",
        messages=[{"role": "user", "content": "weather and time?"}],
        tools=TOOLS,
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    _check_calls(final.choices[0].message.tool_calls, flavor)
    # On the wire: indexes by position, first delta of each call with id, type, name, "".
    conn, response = open_stream(
        gateway.base_url + "/chat/completions",
        {
            "model": "up/tools",
            "stream": True,
            "tools": TOOLS,
            "messages": [{"role": "user", "content": "weather and time?"}],
        },
        {"Authorization": f"Bearer {gateway.key}"},
    )
    try:
        chunks = [json.loads(e) for e in sse_events(response)[:-1]]
    finally:
        conn.close()
    deltas = [
        d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    firsts = [d for d in deltas if "id" in d]
    assert [d["index"] for d in firsts] == [0, 1]
    assert all(d["type"] == "function" and d["function"]["arguments"] == "" for d in firsts)


@CHAT
def test_json_schema(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    schema: Any = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    completion = _sdk(gateway).chat.completions.create(
        model="up/json",
        messages=[{"role": "user", "content": "a person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    assert json.loads(completion.choices[0].message.content or "") == {"name": "Ada", "age": 36}


@IMAGES
def test_image_part(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    png = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452")).decode()
    completion = _sdk(gateway).chat.completions.create(
        model="up/echo",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "echo: describe [images: 1]"


@EMBEDDINGS
def test_embeddings(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    sdk = _sdk(gateway)
    result = sdk.embeddings.create(model="up/embed", input=["first text", "second text"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == len(result.data[1].embedding) > 0
    assert result.data[0].embedding != result.data[1].embedding
    validate(
        "CreateEmbeddingResponse",
        request(
            "POST",
            gateway.base_url + "/embeddings",
            {"model": "up/embed", "input": "x", "encoding_format": "float"},
            {"Authorization": f"Bearer {gateway.key}"},
        ).json(),
    )
    if flavor.embed_dimensions:
        sized = sdk.embeddings.create(model="up/embed", input="x", dimensions=8)
        assert len(sized.data[0].embedding) == 8


@RERANK
def test_rerank(pool: AdapterPool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    raw = request(
        "POST",
        gateway.base_url + "/rerank",
        {
            "model": "up/rerank",
            "query": "capital of France",
            "documents": [
                "Berlin is in Germany",
                {"text": "Paris is the capital of France"},
                "Madrid is in Spain",
            ],
            "top_n": 2,
            "return_documents": True,
        },
        {"Authorization": f"Bearer {gateway.key}"},
    )
    assert raw.status == 200, raw.body
    results = raw.json()["results"]
    assert len(results) == 2 and results[0]["index"] == 1
    assert results[0]["document"] == {"text": "Paris is the capital of France"}
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
