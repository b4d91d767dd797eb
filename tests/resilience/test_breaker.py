"""The per-endpoint circuit breaker: what it counts, what it skips, and how it recovers.

The breaker counts one verdict per request and endpoint (Envoy's consecutive failures
across requests), skips an open endpoint only while the request has another candidate
(it never takes a model's last endpoints away), and lets one probe through after its
cool-down; a probe that ends without a verdict is given back.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.http import RawResponse, request
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI

COOLDOWN = 1.0
# The defaults that matter here: retries 2 (three attempts per endpoint), 3 failures.
CONFIG = """
routing:
  retries: 2
  backoff_base: 0.01
  backoff_max: 0.02
  retry_after_cap: 2
  breaker: {{failures: 3, cooldown: {cooldown}, min_calls: 1000}}
providers:
  a: {{kind: openai, base_url: "{a}", api_key: upstream-secret, timeout: 10}}
  b: {{kind: openai, base_url: "{b}", api_key: upstream-secret, timeout: 10}}
models:
  - {{id: one/switch, endpoints: [{{provider: a, model: switch}}]}}
  - {{id: pair/switch, endpoints: [{{provider: a, model: switch}}, {{provider: b, model: echo}}]}}
  - {{id: one/flaky, endpoints: [{{provider: a, model: flaky}}]}}
  - {{id: one/429, endpoints: [{{provider: a, model: fail429}}]}}
"""
PREFER_A = {"order": ["a", "b"]}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[MockOpenAI, MockOpenAI]]:
    a, b = MockOpenAI().start(), MockOpenAI().start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def gateway(
    upstreams: tuple[MockOpenAI, MockOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalGateway]:
    a, b = upstreams
    config = CONFIG.format(cooldown=COOLDOWN, a=a.base_url, b=b.base_url)
    local = LocalGateway(config, tmp_path_factory.mktemp("breaker")).start()
    yield local
    local.stop()


@pytest.fixture
def mocks(
    upstreams: tuple[MockOpenAI, MockOpenAI], gateway: LocalGateway
) -> Iterator[tuple[MockOpenAI, MockOpenAI]]:
    """Mocks with no history (`a` failing), and a gateway whose breakers are closed."""
    for mock in upstreams:
        mock.clear()
    a = upstreams[0]
    a.failing, a.switch_delay = True, 0.0
    gateway.reset_health()
    yield upstreams
    a.failing, a.switch_delay = True, 0.0


def chat(gateway: LocalGateway, model: str, **extra: Any) -> RawResponse:
    headers = {"Authorization": f"Bearer {gateway.key}", **extra.pop("headers", {})}
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], **extra}
    return request("POST", gateway.base_url + "/chat/completions", body, headers)


def open_a_circuit(gateway: LocalGateway, a: MockOpenAI) -> None:
    """Three requests fail at `a` (each then served by `b`): `a`'s circuit opens."""
    for _ in range(3):
        served = chat(gateway, "pair/switch", provider=PREFER_A)
        assert served.status == 200 and served.headers["x-switchyard-provider"] == "b"
    assert a.count("switch") == 9
    skipped = chat(gateway, "pair/switch", provider=PREFER_A)
    assert skipped.headers["x-switchyard-provider"] == "b"
    assert a.count("switch") == 9, "an open circuit must not reach the upstream"


def test_one_request_does_not_open_the_circuit(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    a, _ = mocks
    assert chat(gateway, "one/switch").status == 502  # three attempts, one failed request
    assert a.count("switch") == 3
    assert chat(gateway, "one/switch").status == 502, "one request opened the circuit"
    assert a.count("switch") == 6


def test_failures_across_requests_open_it_and_fallback_skips_it(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    a, b = mocks
    open_a_circuit(gateway, a)
    assert b.count("echo") == 4


def test_the_last_endpoint_of_a_model_is_never_ejected(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    """`one/switch` has only `a`, whose circuit is open: it is still tried, and heals it."""
    a, _ = mocks
    open_a_circuit(gateway, a)
    assert chat(gateway, "one/switch").status == 502  # tried anyway, not a 503
    assert a.count("switch") == 12
    a.failing = False
    assert chat(gateway, "one/switch").status == 200
    # The success closed the circuit: the pair prefers `a` again at once.
    assert chat(gateway, "pair/switch", provider=PREFER_A).headers["x-switchyard-provider"] == "a"


def test_probe_recovers_and_closes(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    a, _ = mocks
    open_a_circuit(gateway, a)
    time.sleep(COOLDOWN + 0.1)  # cool-down: one probe goes to `a`, fails, reopens it
    assert chat(gateway, "pair/switch", provider=PREFER_A).headers["x-switchyard-provider"] == "b"
    assert a.count("switch") == 10, "a failed probe is one attempt, not retried"
    assert chat(gateway, "pair/switch", provider=PREFER_A).headers["x-switchyard-provider"] == "b"
    assert a.count("switch") == 10
    a.failing = False
    time.sleep(COOLDOWN + 0.1)
    assert chat(gateway, "pair/switch", provider=PREFER_A).headers["x-switchyard-provider"] == "a"
    assert chat(gateway, "pair/switch", provider=PREFER_A).headers["x-switchyard-provider"] == "a"


def _probe_then_heal(gateway: LocalGateway, a: MockOpenAI) -> None:
    """After a probe that ended without a verdict, the next request probes again."""
    a.switch_delay = 0.0
    before = a.count("switch")
    served = chat(gateway, "pair/switch", provider=PREFER_A)
    assert served.status == 200
    assert served.headers["x-switchyard-provider"] == "a", "the endpoint stayed wedged"
    assert a.count("switch") == before + 1


def test_a_probe_that_times_out_is_released(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    a, _ = mocks
    open_a_circuit(gateway, a)
    a.failing, a.switch_delay = False, 2.0
    time.sleep(COOLDOWN + 0.1)
    timed_out = chat(
        gateway, "pair/switch", provider=PREFER_A, headers={"x-switchyard-timeout": "0.5"}
    )
    assert timed_out.status == 408, timed_out.body
    assert a.count("switch") == 10  # the probe reached `a`
    _probe_then_heal(gateway, a)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_probe_whose_client_hangs_up_is_released(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI], stream: bool
) -> None:
    a, _ = mocks
    open_a_circuit(gateway, a)
    a.failing, a.switch_delay = False, 30.0
    time.sleep(COOLDOWN + 0.1)
    body = (
        b'{"model": "pair/switch", "messages": [{"role": "user", "content": "ping"}], '
        b'"provider": {"order": ["a", "b"]}, "stream": ' + (b"true" if stream else b"false") + b"}"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {gateway.key}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 10
        while a.count("switch") < 10:  # the probe is at `a`: now hang up
            assert time.monotonic() < deadline, "the probe never reached the upstream"
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while a.disconnects < 1:  # the gateway cancelled its upstream call
        assert time.monotonic() < deadline, "the upstream call outlived its client"
        time.sleep(0.01)
    _probe_then_heal(gateway, a)


def test_a_successful_retry_is_a_success(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    a, _ = mocks
    a.flaky_failures = 2
    a._flaky_seen = 0  # the knob's counter
    for _ in range(3):
        a._flaky_seen = 0
        reply = chat(gateway, "one/flaky")
        assert reply.status == 200
        assert reply.json()["choices"][0]["message"]["content"] == "echo: ping"
    assert a.count("flaky") == 9  # two failures then a success, each time: never opened


def test_upstream_rate_limits_do_not_open_the_circuit(
    gateway: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    """An upstream's 429 (Retry-After 1 s) is retried, then reaches the client as 429."""
    a, _ = mocks
    for i in range(1, 3):
        limited = chat(gateway, "one/429")
        assert limited.status == 429, limited.body
        assert a.count("fail429") == 3 * i, "a 429 opened the circuit"
        error = limited.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert error["metadata"]["provider_name"] == "a"
        assert limited.headers["retry-after"] == "1"
