"""The built-in chat model (SmolLM2-135M on llama.cpp) through the official SDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import open_stream, request
from tests.fixtures.scrape import scrape

MODEL = "local/smollm2-135m-instruct"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)


def ask(text: str) -> Any:
    return [{"role": "user", "content": text}]


def test_plain_chat(local_gateway: Gateway) -> None:
    reply = sdk(local_gateway).chat.completions.create(
        model=MODEL,
        messages=ask("What is the capital of France?"),
        max_tokens=24,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == MODEL


def test_max_tokens_and_stop(local_gateway: Gateway) -> None:
    client = sdk(local_gateway)
    capped = client.chat.completions.create(
        model=MODEL,
        messages=ask("Write a long story about a dragon."),
        max_completion_tokens=5,
        temperature=0,
    )
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage is not None and capped.usage.completion_tokens == 5
    free = client.chat.completions.create(
        model=MODEL,
        messages=ask("Count from one to ten in words."),
        max_tokens=40,
        temperature=0,
    )
    text = free.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 3, text
    stop_word = words[2]
    stopped = client.chat.completions.create(
        model=MODEL,
        messages=ask("Count from one to ten in words."),
        max_tokens=40,
        temperature=0,
        stop=[stop_word],
    )
    cut = stopped.choices[0].message.content or ""
    assert stop_word not in cut and text.startswith(cut.rstrip())
    assert stopped.choices[0].finish_reason == "stop"


def test_streamed_chat_matches_unstreamed(local_gateway: Gateway) -> None:
    client = sdk(local_gateway)
    kwargs: Any = {
        "model": MODEL,
        "messages": ask("Name three colours."),
        "max_tokens": 20,
        "temperature": 0,
        "seed": 3,
    }
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_seed_determinism(local_gateway: Gateway) -> None:
    client = sdk(local_gateway)
    outputs = {
        client.chat.completions.create(
            model=MODEL,
            messages=ask("Tell me a fun fact."),
            max_tokens=30,
            temperature=0,
            seed=42,
        )
        .choices[0]
        .message.content
        for _ in range(3)
    }
    assert len(outputs) == 1
    sampled = [
        client.chat.completions.create(
            model=MODEL,
            messages=ask("Tell me a fun fact."),
            max_tokens=30,
            temperature=0.9,
            seed=seed,
        )
        .choices[0]
        .message.content
        for seed in (7, 7, 8)
    ]
    assert sampled[0] == sampled[1]  # same seed, same sample even when temperature > 0


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_output_is_enforced(local_gateway: Gateway, stream: bool) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer", "minimum": 0},
            "landmarks": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        },
        "required": ["city", "population", "landmarks"],
        "additionalProperties": False,
    }
    kwargs: Any = {
        "model": MODEL,
        "messages": ask("Describe Paris as JSON."),
        "max_tokens": 200,
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
    }
    client = sdk(local_gateway)
    if stream:
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(**kwargs, stream=True)
            if c.choices
        )
    else:
        text = client.chat.completions.create(**kwargs).choices[0].message.content or ""
    jsonschema.validate(json.loads(text), schema)


def test_json_object_output(local_gateway: Gateway) -> None:
    reply = sdk(local_gateway).chat.completions.create(
        model=MODEL,
        messages=ask('Return a JSON object with a key "name" set to "Tom".'),
        max_tokens=100,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "function", "function": {"name": "get_time"}}, "get_time"),
        ("required", None),
    ],
)
def test_forced_tool_call(local_gateway: Gateway, tool_choice: Any, expected: str | None) -> None:
    reply = sdk(local_gateway).chat.completions.create(
        model=MODEL,
        messages=ask("What's the weather in Paris, in celsius?"),
        tools=[WEATHER, TIME],
        tool_choice=tool_choice,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call: Any = calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name in ("get_weather", "get_time")
    if expected is not None:
        assert call.function.name == expected
    schema = (WEATHER if call.function.name == "get_weather" else TIME)["function"]["parameters"]
    jsonschema.validate(json.loads(call.function.arguments), schema)


def test_streamed_tool_call(local_gateway: Gateway) -> None:
    with sdk(local_gateway).chat.completions.stream(
        model=MODEL,
        messages=ask("Weather in Oslo?"),
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
    ) as stream:
        final = stream.get_final_completion()
    calls: Any = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert calls[0].function.name == "get_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER["function"]["parameters"])


def test_tool_choice_none_answers_in_text(local_gateway: Gateway) -> None:
    reply = sdk(local_gateway).chat.completions.create(
        model=MODEL,
        messages=ask("Say hi."),
        tools=[WEATHER],
        tool_choice="none",
        max_tokens=10,
        temperature=0,
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content


def test_unsupported_modalities_and_params(local_gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {local_gateway.key}"}
    image = request(
        "POST",
        local_gateway.base_url + "/chat/completions",
        {
            "model": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                    ],
                }
            ],
        },
        headers,
    )
    assert image.status == 503
    assert "image input" in image.json()["error"]["message"]
    assert image.json()["error"]["type"] == "service_unavailable"
    audio = request(
        "POST",
        local_gateway.base_url + "/chat/completions",
        {
            "model": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                    ],
                }
            ],
        },
        headers,
    )
    assert audio.status == 503 and "audio input" in audio.json()["error"]["message"]
    several = request(
        "POST",
        local_gateway.base_url + "/chat/completions",
        {"model": MODEL, "messages": ask("hi"), "n": 2},
        headers,
    )
    assert several.status == 400 and several.json()["error"]["param"] == "n"


def test_deadline_cuts_a_long_generation(local_gateway: Gateway) -> None:
    started = time.monotonic()
    raw = request(
        "POST",
        local_gateway.base_url + "/chat/completions",
        {
            "model": MODEL,
            "messages": ask("Write a very long essay."),
            "max_tokens": 1500,
            "timeout": 0.3,
        },
        {"Authorization": f"Bearer {local_gateway.key}"},
    )
    assert raw.status == 408, raw.body
    assert time.monotonic() - started < 5


@pytest.fixture(scope="module")
def small_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = tmp_path_factory.mktemp("queue") / "switchyard.yaml"
    config.write_text(
        """
providers:
  local: {kind: local, queue: 1}
models:
  - id: local/smollm2-135m-instruct
    endpoints: [{provider: local, model: smollm2-135m-instruct}]
"""
    )
    gateway = start_gateway(Path(config), tmp_path_factory.mktemp("data-queue"))
    yield gateway
    gateway.stop()


def test_full_queue_answers_503_with_retry_after(small_queue: Gateway) -> None:
    """One generation runs, one waits; any further request is refused at once."""
    body = {
        "model": MODEL,
        "messages": ask("Write a long story."),
        "max_tokens": 150,
        "temperature": 0,
        "logit_bias": {"2": -100},  # no <|im_end|>: every generation runs its full length
    }
    headers = {"Authorization": f"Bearer {small_queue.key}"}
    statuses: list[int] = []
    refused: list[dict[str, Any]] = []

    def call() -> None:
        raw = request(
            "POST", small_queue.base_url + "/chat/completions", body, headers, timeout=120
        )
        statuses.append(raw.status)
        if raw.status == 503:
            refused.append({"retry": raw.headers.get("retry-after"), **raw.json()["error"]})

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [200, 200, 503, 503], statuses
    assert all(r["retry"] and int(r["retry"]) >= 1 for r in refused)
    assert all("busy" in r["message"] for r in refused)


def test_disconnect_frees_the_model(small_queue: Gateway) -> None:
    """A client that leaves mid-stream stops its generation: the next one starts at once."""
    headers = {"Authorization": f"Bearer {small_queue.key}"}
    conn, response = open_stream(
        small_queue.base_url + "/chat/completions",
        {
            "model": MODEL,
            "messages": ask("Write a very long story."),
            "max_tokens": 1500,
            "stream": True,
            "temperature": 0.8,
        },
        headers,
    )
    assert response.status == 200
    response.readline()
    conn.sock.close()
    conn.close()
    started = time.monotonic()
    raw = request(
        "POST",
        small_queue.base_url + "/chat/completions",
        {"model": MODEL, "messages": ask("hi"), "max_tokens": 3},
        headers,
    )
    assert raw.status == 200
    assert time.monotonic() - started < 5, "the abandoned generation kept the model busy"


def test_logit_bias_applies_and_usage_still_counts(local_gateway: Gateway) -> None:
    """A bias of -100 on end-of-turn makes the model run to max_tokens, and the
    completion tokens are still counted."""
    reply = sdk(local_gateway).chat.completions.create(
        model=MODEL,
        messages=ask("Say hi."),
        max_tokens=12,
        temperature=0,
        logit_bias={"2": -100},
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 12


def test_the_local_models_queues_and_batches_are_measured(local_gateway: Gateway) -> None:
    """After a chat and an embedding on the built-in models, /metrics shows their queues
    (empty again) and the embedder's batch sizes."""
    sdk(local_gateway).chat.completions.create(
        model="local/smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=4,
    )
    sdk(local_gateway).embeddings.create(
        model="local/all-minilm-l6-v2", input=["one sentence", "and another"]
    )
    samples = scrape(local_gateway)
    queue = "switchyard_local_queue_depth"
    assert ("smollm2-135m-instruct", 0.0) in {
        (labels.get("model"), value) for name, labels, value in samples.samples if name == queue
    }
    assert samples.value("switchyard_local_batch_size_count", model="minilm") >= 1
    assert samples.value("switchyard_local_batch_size_sum", model="minilm") >= 2
    assert samples.value("switchyard_local_queue_depth", model="minilm") == 0
