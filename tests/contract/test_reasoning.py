"""Reasoning through every chat adapter, as the official `openai` SDK sees it.

Each flavor's mock serves the shared "think" model (mock_openai.think_reply) in its own
provider's dialect: DeepSeek-style `reasoning_content`, Anthropic's signed thinking
blocks, Gemini 3's thought summaries and thought signatures. The Anthropic and Gemini
mocks refuse, as the real APIs do, a tool loop whose history lost the signatures, so
the loops below pass only if the signatures make the round trip through the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fixtures.flavors import Flavor, MockServer, discover
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.openai_schema import validate

FLAVORS = [f for f in discover() if f.chat]
CHAT = pytest.mark.parametrize("flavor", FLAVORS, ids=[f.name for f in FLAVORS])
# The providers whose upstream checks signatures on a returned tool call.
SIGNED = {"anthropic", "gemini"}
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
QUESTION: Any = [{"role": "user", "content": "weather in Paris?"}]


def _config(flavor: Flavor, base_url: str) -> str:
    return (
        "providers:\n"
        f"  up: {flavor.provider_config(base_url)}\n"
        "models:\n"
        "  - {id: up/think, reasoning: true, endpoints: [{provider: up, model: think}]}\n"
        "  - {id: up/plain, reasoning: false, endpoints: [{provider: up, model: echo}]}\n"
        # Claude's interleaved thinking (the Anthropic mock's alone).
        "  - {id: up/interleave, reasoning: true, endpoints: [{provider: up, model: interleave}]}\n"
    )


class Pool:
    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._running: dict[str, tuple[MockServer, Gateway]] = {}

    def get(self, flavor: Flavor) -> tuple[Any, Gateway]:
        if flavor.name not in self._running:
            mock = flavor.start()
            config = self._tmp.mktemp(f"cfg-{flavor.name}") / "switchyard.yaml"
            config.write_text(_config(flavor, mock.base_url))
            gateway = start_gateway(config, self._tmp.mktemp(f"data-{flavor.name}"))
            self._running[flavor.name] = (mock, gateway)
        return self._running[flavor.name]

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


def _last_body(mock: Any) -> dict[str, Any]:
    return dict(mock.requests[-1].body)


@CHAT
def test_reasoning_comes_back_with_its_tokens(pool: Pool, flavor: Flavor) -> None:
    mock, gateway = pool.get(flavor)
    raw = _sdk(gateway).chat.completions.with_raw_response.create(
        model="up/think", messages=QUESTION, reasoning_effort="low", max_tokens=3000
    )
    body = json.loads(raw.http_response.content)
    validate("CreateChatCompletionResponse", body)
    message = body["choices"][0]["message"]
    assert message["content"] == "echo: weather in Paris?"
    assert message["reasoning"] == "The user said weather in Paris? so I think"
    usage = body["usage"]
    reasoning_tokens = usage["completion_tokens_details"]["reasoning_tokens"]
    # Billed as output: the completion tokens include the reasoning.
    assert 0 < reasoning_tokens < usage["completion_tokens"]
    sent = _last_body(mock)
    if flavor.name == "openai":
        assert sent["reasoning_effort"] == "low"
    elif flavor.name == "anthropic":  # 20 % of max_tokens, at least Anthropic's 1024
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    elif flavor.name == "gemini":  # a Gemini 3 model: a level, not a budget
        thinking = sent["generationConfig"]["thinkingConfig"]
        assert thinking == {"thinkingLevel": "low", "includeThoughts": True}


@CHAT
def test_reasoning_streams_as_delta_reasoning(pool: Pool, flavor: Flavor) -> None:
    _, gateway = pool.get(flavor)
    stream = _sdk(gateway).chat.completions.create(
        model="up/think",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"reasoning": {"max_tokens": 2048}},
        max_tokens=4000,
    )
    chunks = [c.model_dump(exclude_unset=True) for c in stream]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert reasoning == "The user said weather in Paris? so I think"
    assert content == "echo: weather in Paris?"
    # The reasoning comes before the answer, as the upstream produced it.
    first_reasoning = next(i for i, d in enumerate(deltas) if d.get("reasoning"))
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert first_reasoning < first_content
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0


@CHAT
def test_exclude_keeps_the_thinking_but_not_its_text(pool: Pool, flavor: Flavor) -> None:
    mock, gateway = pool.get(flavor)
    client = _sdk(gateway)
    completion = client.chat.completions.create(
        model="up/think",
        messages=QUESTION,
        extra_body={"reasoning": {"effort": "medium", "exclude": True}},
    )
    message = completion.choices[0].message.model_dump()
    assert message["content"] == "echo: weather in Paris?"
    assert "reasoning" not in message
    assert all(d["type"] == "reasoning.encrypted" for d in message.get("reasoning_details", []))
    assert completion.usage is not None
    assert completion.usage.completion_tokens_details is not None
    assert (completion.usage.completion_tokens_details.reasoning_tokens or 0) > 0 or (
        flavor.name == "gemini"  # Gemini still thinks; only the summaries are off
    )
    if flavor.name == "gemini":
        thinking = _last_body(mock)["generationConfig"]["thinkingConfig"]
        assert thinking["includeThoughts"] is False
    stream: Any = client.chat.completions.create(
        model="up/think",
        messages=QUESTION,
        stream=True,
        extra_body={"reasoning": {"effort": "medium", "exclude": True}},
    )
    deltas = [c.choices[0].delta.model_dump() for c in stream if c.choices]
    assert not any(d.get("reasoning") for d in deltas)
    assert "".join(d.get("content") or "" for d in deltas) == "echo: weather in Paris?"


def _merged(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Streamed reasoning_details joined by index, as a client accumulates them: texts
    appended, other fields set by the piece that carries them."""
    merged: dict[int, dict[str, Any]] = {}
    for part in parts:
        entry = merged.setdefault(part["index"], {"type": part["type"], "index": part["index"]})
        for key, value in part.items():
            if key == "text":
                entry["text"] = entry.get("text", "") + (value or "")
            elif value is not None:
                entry[key] = value
    return [merged[k] for k in sorted(merged)]


def _tool_result(call_id: str) -> Any:
    return {"role": "tool", "tool_call_id": call_id, "content": '{"temp": 21}'}


@CHAT
@pytest.mark.parametrize("effort", ["high", None], ids=["reasoning", "default"])
def test_tool_loop_with_thinking(pool: Pool, flavor: Flavor, effort: str | None) -> None:
    """`default`: a client that asks for no reasoning at all; Gemini 3 thinks (and signs
    its calls) anyway, which is the two-step loop that used to fail with 400."""
    mock, gateway = pool.get(flavor)
    client = _sdk(gateway)
    extra: Any = {"reasoning_effort": effort} if effort else {}
    first = client.chat.completions.create(
        model="up/think", messages=QUESTION, tools=TOOLS, **extra
    )
    assistant = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert assistant.tool_calls is not None
    call = assistant.tool_calls[0]
    details = assistant.model_dump().get("reasoning_details") or []
    if flavor.name == "anthropic" and effort:
        assert details[0]["type"] == "reasoning.text" and details[0]["signature"]
        assert details[0]["format"] == "anthropic-claude-v1"
    if flavor.name == "gemini":
        signed = [d for d in details if d["type"] == "reasoning.encrypted"]
        assert [d["id"] for d in signed] == [call.id]
        assert signed[0]["format"] == "google-gemini-v1"
    # The client sends the assistant message back as it got it, details and all.
    returned: Any = assistant.model_dump(exclude_none=True)
    second = client.chat.completions.create(
        model="up/think",
        messages=[*QUESTION, returned, _tool_result(call.id)],
        tools=TOOLS,
        **extra,
    )
    assert second.choices[0].message.content == 'done: {"temp": 21}'
    sent = _last_body(mock)
    if flavor.name == "gemini":
        model_turn = next(c for c in sent["contents"] if c["role"] == "model")
        assert model_turn["parts"][-1]["thoughtSignature"] == signed[0]["data"]
    if flavor.name == "openai":  # DeepSeek refuses its reasoning sent back as input
        assert all("reasoning_content" not in m for m in sent["messages"])


@CHAT
def test_tool_loop_with_thinking_streamed(pool: Pool, flavor: Flavor) -> None:
    _, gateway = pool.get(flavor)
    client = _sdk(gateway)
    stream: Any = client.chat.completions.create(
        model="up/think", messages=QUESTION, tools=TOOLS, reasoning_effort="high", stream=True
    )
    deltas = [c.choices[0].delta.model_dump() for c in stream if c.choices]
    calls = [tc for d in deltas for tc in d.get("tool_calls") or []]
    call_id = calls[0]["id"]
    arguments = "".join(tc["function"].get("arguments") or "" for tc in calls)
    details = _merged([p for d in deltas for p in d.get("reasoning_details") or []])
    if flavor.name in SIGNED:
        assert details, "a signed provider's reasoning must come back to the client"
    assistant: Any = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": calls[0]["function"]["name"], "arguments": arguments},
            }
        ],
        "reasoning_details": details,
    }
    second: Any = client.chat.completions.create(
        model="up/think",
        messages=[*QUESTION, assistant, _tool_result(call_id)],
        tools=TOOLS,
        reasoning_effort="high",
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in second if c.choices)
    assert text == 'done: {"temp": 21}'


@pytest.mark.parametrize("flavor", [f for f in FLAVORS if f.name in SIGNED], ids=lambda f: f.name)
def test_a_loop_that_drops_the_signatures_is_refused_upstream(pool: Pool, flavor: Flavor) -> None:
    """The mocks enforce the rule the loops above pass: without the details, 400."""
    _, gateway = pool.get(flavor)
    client = _sdk(gateway)
    first = client.chat.completions.create(
        model="up/think", messages=QUESTION, tools=TOOLS, reasoning_effort="high"
    )
    assistant: Any = first.choices[0].message.model_dump(exclude_none=True)
    assistant.pop("reasoning_details")
    call_id = assistant["tool_calls"][0]["id"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="up/think",
            messages=[*QUESTION, assistant, _tool_result(call_id)],
            tools=TOOLS,
            reasoning_effort="high",
        )
    assert "signature" in str(caught.value) or "thinking" in str(caught.value)


@CHAT
def test_reasoning_is_dropped_where_the_catalog_says_no(pool: Pool, flavor: Flavor) -> None:
    mock, gateway = pool.get(flavor)
    raw = _sdk(gateway).chat.completions.with_raw_response.create(
        model="up/plain", messages=QUESTION, reasoning_effort="high"
    )
    assert raw.headers["x-switchyard-dropped-params"] == "reasoning"
    sent = _last_body(mock)
    assert "reasoning_effort" not in sent and "thinking" not in sent
    assert "thinkingConfig" not in (sent.get("generationConfig") or {})
    assert raw.parse().choices[0].message.content == "echo: weather in Paris?"
    with pytest.raises(openai.APIStatusError) as caught:
        _sdk(gateway).chat.completions.create(
            model="up/plain",
            messages=QUESTION,
            reasoning_effort="high",
            extra_body={"provider": {"require_parameters": True}},
        )
    assert caught.value.status_code == 503


def test_models_list_shows_reasoning_support(pool: Pool) -> None:
    _, gateway = pool.get(FLAVORS[0])
    models = {m.id: m.model_dump() for m in _sdk(gateway).models.list()}
    assert {"reasoning", "include_reasoning"} <= set(models["up/think"]["supported_parameters"])
    assert "reasoning" not in models["up/plain"]["supported_parameters"]
