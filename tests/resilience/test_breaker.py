"""The per-endpoint circuit breaker opens, refuses fast, probes, and recovers."""

from __future__ import annotations

import time

from tests.fixtures.http import RawResponse, request
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI


def chat(local: LocalGateway, model: str) -> RawResponse:
    return request(
        "POST",
        local.base_url + "/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": "ping"}]},
        {"Authorization": f"Bearer {local.key}"},
    )


def test_breaker_opens_then_recovers(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI]
) -> None:
    a, _ = fresh
    a.failing = True
    try:
        assert chat(local, "br/switch").status == 502  # two failed attempts
        assert chat(local, "br/switch").status == 502  # the third failure opens it
        assert a.count("switch") == 3
        refused = chat(local, "br/switch")
        assert refused.status == 503
        assert refused.json()["error"]["type"] == "service_unavailable"
        assert 1 <= int(refused.headers["retry-after"]) <= 1
        assert a.count("switch") == 3, "an open circuit must not reach the upstream"

        time.sleep(1.1)  # the cool-down: one probe goes through, fails, and reopens it
        assert chat(local, "br/switch").status == 502
        assert a.count("switch") == 4
        assert chat(local, "br/switch").status == 503

        a.failing = False
        time.sleep(1.1)
        recovered = chat(local, "br/switch")
        assert recovered.status == 200, recovered.body
        assert chat(local, "br/switch").status == 200  # closed again
        assert a.count("switch") == 6
    finally:
        a.failing = True


def test_a_retry_can_succeed(local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI]) -> None:
    a, _ = fresh
    a.flaky_failures = 1
    a._flaky_seen = 0  # the knob's counter
    reply = chat(local, "br/flaky")
    assert reply.status == 200
    assert reply.json()["choices"][0]["message"]["content"] == "echo: ping"
    assert a.count("flaky") == 2
