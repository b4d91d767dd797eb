"""POST /v1/responses through every chat adapter, as the official `openai` SDK uses it.

`client.responses.create` and `client.responses.stream` on a real port, the mocks of
tests/fixtures behind the gateway; every Response and every stream event is validated
against OpenAI's published schema (shared/specs). The tool loops send the output items
back as input, the stateless way (store: false), reasoning items included: through the
Anthropic and Gemini mocks they pass only if the signatures survive the round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fixtures.flavors import Flavor, MockServer, discover
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import open_stream, request
from tests.fixtures.openai_schema import validate

FLAVORS = [f for f in discover() if f.chat]
CHAT = pytest.mark.parametrize("flavor", FLAVORS, ids=[f.name for f in FLAVORS])
TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": False,
    }
]
SCHEMA: Any = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def _config(flavor: Flavor, base_url: str) -> str:
    lines = ["providers:", f"  up: {flavor.provider_config(base_url)}", "models:"]
    for behaviour in ("echo", "tools", "json", "think"):
        lines.append(
            f"  - {{id: up/{behaviour}, endpoints: [{{provider: up, model: {behaviour}}}]}}"
        )
    return "\n".join(lines) + "\n"


class Pool:
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
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    running = Pool(tmp_path_factory)
    yield running
    running.stop()


def _sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)


def _raw(gateway: Gateway, **body: Any) -> Any:
    raw = _sdk(gateway).responses.with_raw_response.create(**body)
    payload = json.loads(raw.http_response.content)
    validate("Response", payload)
    return raw, payload


@CHAT
def test_text_in_text_out(pool: Pool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    raw, payload = _raw(
        gateway,
        model="up/echo",
        input="hello responses",
        instructions="Be brief.",
        max_output_tokens=64,
        store=False,
    )
    response = raw.parse()
    assert response.output_text == "echo: hello responses"
    assert response.status == "completed" and response.instructions == "Be brief."
    assert response.usage is not None and response.usage.total_tokens > 0
    assert payload["usage"]["cost"] >= 0
    assert raw.headers["x-switchyard-provider"] == "up"
    assert raw.headers["x-generation-id"] == response.id


@CHAT
def test_input_items_and_json_schema(pool: Pool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    _, payload = _raw(
        gateway,
        model="up/json",
        input=[
            {"role": "developer", "content": "Answer in JSON."},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Ada?"}],
            },
        ],
        text={"format": {"type": "json_schema", "name": "person", "schema": SCHEMA}},
    )
    message = payload["output"][-1]
    assert json.loads(message["content"][0]["text"]) == {"name": "Ada", "age": 36}
    assert payload["text"]["format"]["name"] == "person"


@CHAT
def test_function_tool_loop(pool: Pool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    client = _sdk(gateway)
    question: Any = [{"role": "user", "content": "weather in Paris?"}]
    first = client.responses.create(model="up/think", input=question, tools=TOOLS)
    validate("Response", first.model_dump(mode="json", exclude_unset=True))
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    follow_up: Any = [
        *question,
        *(item.model_dump(exclude_none=True) for item in first.output),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp": 21}'},
    ]
    second = client.responses.create(model="up/think", input=follow_up, tools=TOOLS)
    assert second.output_text == 'done: {"temp": 21}'


@CHAT
def test_tool_loop_with_reasoning_streamed(pool: Pool, flavor: Flavor) -> None:
    """Reasoning items (their encrypted_content) carry the signatures back upstream."""
    gateway = pool.get(flavor)
    client = _sdk(gateway)
    question: Any = [{"role": "user", "content": "weather in Paris?"}]
    with client.responses.stream(
        model="up/think", input=question, tools=TOOLS, reasoning={"effort": "high"}
    ) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    reasoning = [item for item in first.output if item.type == "reasoning"]
    if flavor.name in ("anthropic", "gemini"):
        assert reasoning and reasoning[0].encrypted_content
        summary = " ".join(s.text for r in reasoning for s in r.summary)
        assert summary == "The user said weather in Paris? so I think"
    calls = [item for item in first.output if item.type == "function_call"]
    follow_up: Any = [
        *question,
        *(item.model_dump(exclude_none=True) for item in first.output),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp": 21}'},
    ]
    with client.responses.stream(
        model="up/think", input=follow_up, tools=TOOLS, reasoning={"effort": "high"}
    ) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == 'done: {"temp": 21}'
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens > 0


@CHAT
def test_stream_events_match_the_schema(pool: Pool, flavor: Flavor) -> None:
    gateway = pool.get(flavor)
    conn, response = open_stream(
        gateway.base_url + "/responses",
        {"model": "up/echo", "input": "one two three four five", "stream": True},
        {"Authorization": f"Bearer {gateway.key}"},
    )
    try:
        assert response.status == 200
        assert response.getheader("x-switchyard-provider") == "up"
        raw = response.read().decode()
    finally:
        conn.close()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    events = []
    for frame in frames:
        name, data = frame.split("\n", 1)
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        validate("ResponseStreamEvent", event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:4]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "echo: one two three four five"
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == deltas
    final = events[-1]
    assert final["type"] == "response.completed"
    assert final["response"]["output"][0]["content"][0]["text"] == deltas
    assert final["response"]["usage"]["output_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"role": "wizard", "content": "hi"}]}, "input[0].role"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format.name"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"background": True}, "background"),
        ({"input": []}, "input"),
    ],
)
def test_stateful_and_unsupported_requests_are_clear_400s(
    pool: Pool, body: dict[str, Any], param: str
) -> None:
    gateway = pool.get(FLAVORS[0])
    payload = {"model": "up/echo", "input": "hi", **body}
    got = request(
        "POST",
        gateway.base_url + "/responses",
        payload,
        {"Authorization": f"Bearer {gateway.key}"},
    )
    answer = got.json()
    assert got.status == 400, answer
    assert answer["error"]["param"] == param
    assert answer["error"]["type"] == "invalid_request_error"


def test_a_bad_key_is_401_before_any_validation(pool: Pool) -> None:
    gateway = pool.get(FLAVORS[0])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=gateway.base_url, api_key="sk-wrong", max_retries=0
        ).responses.create(model="up/echo", input="hi", store=True)
