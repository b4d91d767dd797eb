"""A stream whose first token comes after the hold: its 200 goes out first, and its head
still names the generation, the provider and the gateway's overhead (issue 16, item 7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import open_stream, request, sse_events
from tests.fixtures.mock_openai import MockOpenAI

CONFIG = """
routing: {{retries: 0}}
providers:
  mock: {{kind: openai, base_url: "{url}", api_key: upstream-secret, timeout: 20}}
models:
  - id: mock/late
    endpoints: [{{provider: mock, model: slowfirst, supported_parameters: [temperature]}}]
"""


@pytest.fixture(scope="module")
def late_upstream() -> Iterator[MockOpenAI]:
    mock = MockOpenAI().start()
    mock.first_byte_delay = 1.5  # the hold below is 0.3 s
    yield mock
    mock.stop()


@pytest.fixture(scope="module", params=["inprocess", "grpc"])
def held(
    request: pytest.FixtureRequest,
    late_upstream: MockOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("hold")
    config = Path(folder / "switchyard.yaml")
    config.write_text(CONFIG.format(url=late_upstream.base_url), encoding="utf-8")
    gateway = start_gateway(
        config, folder / "data", channel=request.param, extra_args=("--stream-hold", "0.3")
    )
    yield gateway
    gateway.stop()


def test_a_late_stream_still_names_its_generation(held: Gateway) -> None:
    headers = {"Authorization": f"Bearer {held.key}"}
    body = {
        "model": "mock/late",
        "messages": [{"role": "user", "content": "late"}],
        "stream": True,
        "seed": 3,
    }
    conn, response = open_stream(held.base_url + "/chat/completions", body, headers)
    try:
        assert response.status == 200
        head = {k.lower(): v for k, v in response.getheaders()}
        events = sse_events(response)
    finally:
        conn.close()
    assert events[0] == ": PROCESSING", "the 200 was meant to leave before the first token"
    chunks = [json.loads(e) for e in events if e != "[DONE]" and not e.startswith(":")]
    assert head["x-generation-id"] == chunks[0]["id"]
    assert head["x-switchyard-provider"] == "mock" == chunks[0]["provider"]
    assert float(head["x-switchyard-overhead-ms"]) >= 0
    assert head["x-switchyard-dropped-params"] == "seed"
    assert head["x-request-id"]
    generation = request(
        "GET", held.base_url + f"/generation?id={head['x-generation-id']}", headers=headers
    )
    assert generation.status == 200, generation.body
