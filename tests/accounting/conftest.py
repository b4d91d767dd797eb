"""An in-thread gateway with priced models, a moderated model and keys made per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.store.keys import KeyPolicy
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.servers import PostgresServer, RedisServer

# A cent per request and nothing per token makes "credits for exactly 50" exact.
CONFIG = """
routing: {{retries: 0, breaker: {{failures: 100000, min_calls: 100000}}}}
moderation:
  kind: rules
  categories:
    violence: ["\\\\bkill\\\\b", "\\\\bexplode\\\\b"]
    fraud: ["steal (a|the) (card|identity)"]
providers:
  a: {{kind: openai, base_url: "{a}", api_key: upstream-secret}}
  b: {{kind: openai, base_url: "{b}", api_key: upstream-secret}}
models:
  - id: paid/request
    endpoints: [{{provider: a, model: echo, pricing: {{request: 0.01}}}}]
  - id: paid/tokens
    max_output_tokens: 100
    endpoints:
      - {{provider: a, model: slow, pricing: {{prompt: 0.000001, completion: 0.00001}}}}
  - id: paid/echo-tokens
    max_output_tokens: 100
    endpoints:
      - {{provider: a, model: echo, pricing: {{prompt: 0.000001, completion: 0.00001}}}}
  - id: paid/fallback
    endpoints:
      - {{provider: a, model: fail500, pricing: {{request: 1.0}}}}
      - {{provider: b, model: echo, pricing: {{request: 0.002}}}}
  - id: paid/broken
    endpoints: [{{provider: a, model: fail500, pricing: {{request: 0.01}}}}]
  - id: safe/chat
    moderated: true
    endpoints: [{{provider: a, model: echo, pricing: {{request: 0.01}}}}]
  - id: free/chat
    endpoints: [{{provider: b, model: echo}}]
  - id: paid/image
    endpoints: [{{provider: b, model: echo, pricing: {{image: 0.05}}}}]
"""


@pytest.fixture(scope="package")
def mocks() -> Iterator[tuple[MockOpenAI, MockOpenAI]]:
    a, b = MockOpenAI().start(), MockOpenAI().start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="package")
def accounted(
    mocks: tuple[MockOpenAI, MockOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalGateway]:
    a, b = mocks
    gateway = LocalGateway(
        CONFIG.format(a=a.base_url, b=b.base_url), tmp_path_factory.mktemp("accounting")
    ).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="package")
def accounted_postgres(
    mocks: tuple[MockOpenAI, MockOpenAI],
    tmp_path_factory: pytest.TempPathFactory,
    pg_server: PostgresServer,
) -> Iterator[LocalGateway]:
    """The same gateway with its keys and ledger in PostgreSQL (and Redis beside it), as
    a fleet's replica runs: the suites that must hold on both stores use both."""
    a, b = mocks
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    storage = (
        f"storage: {{database_url: '{pg_server.fresh_database()}', redis_url: '{redis.url}'}}\n"
    )
    try:
        gateway = LocalGateway(
            CONFIG.format(a=a.base_url, b=b.base_url) + storage,
            tmp_path_factory.mktemp("accounting-pg"),
        ).start()
        yield gateway
        gateway.stop()
    finally:
        redis.stop()


def new_key(gateway: LocalGateway, **policy: object) -> str:
    """A fresh key with this policy; its plain secret."""
    assert gateway.service is not None
    _, plain = gateway.service.keys.create("test", KeyPolicy(**policy))  # type: ignore[arg-type]
    return plain
