"""A gateway whose models cache their answers, against its own mock upstream (so that
what reached the upstream can be counted without other suites' traffic)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.mock_openai import MockOpenAI

HIT_PRICE = 0.0001

CONFIG = """
routing:
  retries: 0
  breaker: {{failures: 100000, min_calls: 100000}}
providers:
  mock:
    kind: openai
    base_url: {url}
    api_key: upstream-secret
    timeout: 20
cache:
  max_entries: 1000
models:
  - id: cached/echo
    pricing: {{prompt: 0.000001, completion: 0.000002}}
    endpoints: [{{provider: mock, model: echo}}]
    cache: {{ttl: 60}}
    cache_hit_price: {hit_price}
  - id: cached/tools
    endpoints: [{{provider: mock, model: tools}}]
    cache: {{ttl: 60}}
  - id: cached/shared
    endpoints: [{{provider: mock, model: echo}}]
    cache: {{scope: shared}}
  - id: cached/optin
    endpoints: [{{provider: mock, model: echo}}]
    cache: {{default: skip}}
  - id: cached/short
    endpoints: [{{provider: mock, model: echo}}]
    cache: {{ttl: 1}}
  - id: cached/slow
    endpoints: [{{provider: mock, model: slowfirst}}]
    cache: true
  - id: cached/cut
    endpoints: [{{provider: mock, model: cut}}]
    cache: true
  - id: cached/semantic
    endpoints: [{{provider: mock, model: echo}}]
    cache: {{semantic: true}}
  - id: plain/echo
    endpoints: [{{provider: mock, model: echo}}]
"""


@pytest.fixture(scope="package")
def cache_upstream() -> Iterator[MockOpenAI]:
    mock = MockOpenAI().start()
    yield mock
    mock.stop()


class Pool:
    def __init__(self, config: Path, tmp: pytest.TempPathFactory) -> None:
        self._config = config
        self._tmp = tmp
        self._started: dict[str, Gateway] = {}

    def get(self, channel: str) -> Gateway:
        if channel not in self._started:
            data_dir = self._tmp.mktemp(f"cache-{channel}")
            self._started[channel] = start_gateway(self._config, data_dir, channel=channel)
        return self._started[channel]

    def stop(self) -> None:
        for gateway in self._started.values():
            gateway.stop()


@pytest.fixture(scope="package")
def cache_pool(
    cache_upstream: MockOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pool]:
    path = tmp_path_factory.mktemp("cache-config") / "switchyard.yaml"
    path.write_text(CONFIG.format(url=cache_upstream.base_url, hit_price=HIT_PRICE))
    pool = Pool(path, tmp_path_factory)
    yield pool
    pool.stop()


@pytest.fixture(params=("inprocess", "grpc"))
def gw(request: pytest.FixtureRequest, cache_pool: Pool) -> Gateway:
    """The caching gateway, once per HTTP->service channel."""
    return cache_pool.get(request.param)


@pytest.fixture
def gw1(cache_pool: Pool) -> Gateway:
    """The caching gateway (in-process channel only), for what channels do not change."""
    return cache_pool.get("inprocess")


def client(gateway: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key or gateway.key, max_retries=0)


def nonce() -> str:
    """A word that makes a prompt unique to one test (entries never leak between tests)."""
    return uuid.uuid4().hex[:12]


def upstream_calls(mock: MockOpenAI, word: str) -> int:
    """Chat requests that reached the upstream with `word` in their messages."""
    return sum(
        1
        for r in list(mock.requests)
        if r.path.endswith("/chat/completions")
        and word in json.dumps((r.body or {}).get("messages"))
    )


def admin_key(gateway: Gateway) -> str:
    return (gateway.data_dir / "admin-key").read_text().strip()


def http(
    gateway: Gateway, method: str, path: str, key: str, body: Any = None
) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        gateway.base_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null"), dict(err.headers)


def new_key(gateway: Gateway, **policy: Any) -> str:
    status, body, _ = http(
        gateway, "POST", "/keys", admin_key(gateway), {"name": nonce(), **policy}
    )
    assert status == 201, body
    return str(body["key"])
