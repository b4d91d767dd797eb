"""The routing table: each preference changes which endpoint serves, or the test fails."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.http import RawResponse, request
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI

# Prices per token: cheap 1, mid 2, pricey 10 (USD per million prompt tokens).
CONFIG = """
routing: {{retries: 0, breaker: {{failures: 100000, min_calls: 100000}}}}
providers:
  cheap: {{kind: openai, base_url: "{cheap}", api_key: upstream-secret}}
  mid: {{kind: openai, base_url: "{mid}", api_key: upstream-secret}}
  pricey: {{kind: openai, base_url: "{pricey}", api_key: upstream-secret}}
models:
  - id: rt/chat
    endpoints:
      - provider: cheap
        model: echo
        pricing: {{prompt: 0.000001, completion: 0.000001}}
        quantization: int4
        may_store: true
        input_modalities: [text]
        supported_parameters: [temperature, max_tokens]
      - provider: mid
        model: echo
        pricing: {{prompt: 0.000002, completion: 0.000002}}
        quantization: fp8
        input_modalities: [text, image]
        supported_parameters: [temperature, max_tokens, tools, tool_choice]
      - provider: pricey
        model: echo
        pricing: {{prompt: 0.00001, completion: 0.00001}}
        quantization: fp16
        input_modalities: [text, image]
        supported_parameters: [temperature, max_tokens, tools, tool_choice, seed,
                               response_format, structured_outputs]
  - {{id: rt/broken, endpoints: [{{provider: cheap, model: fail500}}]}}
  - {{id: rt/refuses, endpoints: [{{provider: cheap, model: fail400}}]}}
  - {{id: rt/other, endpoints: [{{provider: mid, model: echo}}]}}
"""
TOOLS: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, MockOpenAI]]:
    mocks = {name: MockOpenAI().start() for name in ("cheap", "mid", "pricey")}
    yield mocks
    for mock in mocks.values():
        mock.stop()


@pytest.fixture(scope="module")
def routed(
    upstreams: dict[str, MockOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalGateway]:
    urls = {name: mock.base_url for name, mock in upstreams.items()}
    gateway = LocalGateway(CONFIG.format(**urls), tmp_path_factory.mktemp("routing")).start()
    yield gateway
    gateway.stop()


def chat(gateway: LocalGateway, **extra: Any) -> RawResponse:
    body = {"model": "rt/chat", "messages": [{"role": "user", "content": "hi"}], **extra}
    return request(
        "POST",
        gateway.base_url + "/chat/completions",
        body,
        {"Authorization": f"Bearer {gateway.key}"},
    )


def served(gateway: LocalGateway, **extra: Any) -> str:
    raw = chat(gateway, **extra)
    assert raw.status == 200, raw.body
    assert raw.headers["x-switchyard-provider"] == raw.json()["provider"]
    return str(raw.json()["provider"])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"provider": {"sort": "price"}}, "cheap"),
        ({"provider": {"order": ["pricey", "mid"]}}, "pricey"),
        ({"provider": {"only": ["mid"]}}, "mid"),
        ({"provider": {"ignore": ["cheap"], "sort": "price"}}, "mid"),
        ({"provider": {"quantizations": ["fp16"]}}, "pricey"),
        ({"provider": {"data_collection": "deny", "sort": "price"}}, "mid"),
        ({"provider": {"order": ["pricey", "mid", "cheap"], "max_price": {"prompt": 5}}}, "mid"),
        # Only `pricey` declares `seed`: by default (OpenRouter's) the others still serve,
        # with `seed` dropped; require_parameters makes it a requirement.
        ({"seed": 1, "provider": {"sort": "price"}}, "cheap"),
        ({"seed": 1, "provider": {"sort": "price", "require_parameters": True}}, "pricey"),
        # Hard requirements filter even without require_parameters.
        ({"tools": TOOLS, "provider": {"sort": "price", "require_parameters": False}}, "mid"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                },
                "provider": {"sort": "price", "require_parameters": False},
            },
            "pricey",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "see"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,AAAA"},
                            },
                        ],
                    }
                ],
                "provider": {"sort": "price"},
            },
            "mid",
        ),
        ({"model": "rt/chat:floor"}, "cheap"),
    ],
)
def test_preference_decides_the_endpoint(
    routed: LocalGateway, extra: dict[str, Any], expected: str
) -> None:
    assert served(routed, **extra) == expected


def test_throughput_and_latency_sorts(routed: LocalGateway) -> None:
    async def seed() -> None:
        engine = routed.service.engine  # type: ignore[union-attr]
        for key, tps, ms in (
            ("cheap:echo", 50, 10.0),
            ("mid:echo", 100, 90.0),
            ("pricey:echo", 900, 400.0),
        ):
            health = engine.health(key)
            health.throughput, health.latency_ms = tps, ms

    routed.run(seed())
    assert served(routed, model="rt/chat:nitro") == "pricey"
    assert served(routed, provider={"sort": "throughput"}) == "pricey"
    assert served(routed, provider={"sort": "latency"}) == "cheap"


def test_model_fallback_reports_what_served(routed: LocalGateway) -> None:
    raw = chat(routed, model="rt/broken", models=["rt/other"])
    assert raw.status == 200, raw.body
    body = raw.json()
    assert (body["model"], body["provider"]) == ("rt/other", "mid")
    raw = chat(routed, model="rt/broken", fallback_models=["rt/other"])
    assert raw.json()["model"] == "rt/other"
    assert chat(routed, model="rt/broken").status == 502  # without fallbacks


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_unsupported_parameters_are_dropped_and_named(
    routed: LocalGateway, upstreams: dict[str, MockOpenAI], stream: bool
) -> None:
    """`cheap` declares neither `seed` nor `reasoning`: it serves without them, and the
    response says which were dropped; a parameter it declares goes through."""
    cheap = upstreams["cheap"]
    cheap.clear()
    raw = chat(
        routed,
        seed=7,
        temperature=0.5,
        reasoning={"effort": "low"},
        provider={"only": ["cheap"]},
        stream=stream,
    )
    assert raw.status == 200, raw.body
    assert raw.headers["x-switchyard-dropped-params"] == "reasoning,seed"
    sent = cheap.requests[-1].body
    assert sent is not None
    assert "seed" not in sent and "reasoning" not in sent
    assert sent["temperature"] == 0.5
    # Declared by `pricey`: nothing to drop, no header.
    full = chat(routed, seed=7, provider={"only": ["pricey"]}, stream=stream)
    assert full.status == 200 and "x-switchyard-dropped-params" not in full.headers


def test_a_model_refused_upstream_falls_back_to_the_next_model(
    routed: LocalGateway, upstreams: dict[str, MockOpenAI]
) -> None:
    """An upstream 400 (a context-length error, say) is what `models` is for."""
    raw = chat(routed, model="rt/refuses", models=["rt/other"])
    assert raw.status == 200, raw.body
    assert (raw.json()["model"], raw.json()["provider"]) == ("rt/other", "mid")
    alone = chat(routed, model="rt/refuses")
    assert alone.status == 400 and alone.json()["error"]["param"] == "temperature"
    # Our own validation is no model's fault: it fails at once, nothing is sent.
    upstreams["mid"].clear()
    invalid = chat(routed, model="rt/refuses", models=["rt/other"], temperature="hot")
    assert invalid.status == 400 and invalid.json()["error"]["param"] == "temperature"
    assert upstreams["mid"].count("echo") == 0


def test_nothing_left_names_the_requirement(routed: LocalGateway) -> None:
    raw = chat(routed, tools=TOOLS, provider={"only": ["cheap"]})
    assert raw.status == 503
    error = raw.json()["error"]
    assert error["type"] == "service_unavailable"
    assert "'tools' parameter" in error["message"]
    raw = chat(routed, provider={"max_price": {"prompt": 0.5}})
    assert raw.status == 503 and "max_price" in raw.json()["error"]["message"]


def test_default_choice_is_weighted_by_inverse_square_price(routed: LocalGateway) -> None:
    """Weights 1 : 1/4 : 1/100 give shares of about 79 %, 20 % and 1 %."""
    counts = Counter(served(routed) for _ in range(300))
    assert 200 <= counts["cheap"] <= 270, counts
    assert 35 <= counts["mid"] <= 95, counts
    assert counts["pricey"] <= 12, counts


def test_models_list_carries_openrouter_fields(routed: LocalGateway) -> None:
    headers = {"Authorization": f"Bearer {routed.key}"}
    listing = request("GET", routed.base_url + "/models", headers=headers).json()["data"]
    model = next(m for m in listing if m["id"] == "rt/chat")
    assert model["pricing"] == {
        "prompt": "0.000001",
        "completion": "0.000001",
        "request": "0",
        "image": "0",
    }
    assert model["architecture"]["input_modalities"] == ["image", "text"]
    assert "structured_outputs" in model["supported_parameters"]
    assert model["providers"] == ["cheap", "mid", "pricey"]
    tools_only = request(
        "GET", routed.base_url + "/models?supported_parameters=tools", headers=headers
    ).json()["data"]
    assert [m["id"] for m in tools_only] == ["rt/chat"]
