"""Session fixtures: one mock upstream, and real gateways started against it.

The HTTP contract suite runs over both channels the HTTP layer can use (the default
in-process channel and a real loopback gRPC hop), through the `gateway` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import Gateway, free_port, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.servers import PostgresServer

CHANNELS = ("inprocess", "grpc")


def write_config(path: Path, upstream_url: str) -> Path:
    dead_port = free_port()  # nothing listens here: connections are refused
    path.write_text(
        f"""
# The contract suite checks one attempt at a time: no retries, a breaker that never
# opens. Resilience has its own suite (tests/resilience) with its own settings.
routing:
  retries: 0
  breaker: {{failures: 100000, min_calls: 100000}}
providers:
  mock:
    kind: openai
    base_url: {upstream_url}
    api_key: ${{MOCK_UPSTREAM_KEY:-upstream-secret}}
    timeout: 20
  dead:
    kind: openai
    base_url: http://127.0.0.1:{dead_port}/v1
    connect_timeout: 2
models:
  - id: mock/echo
    name: Mock Echo
    context_length: 8192
    endpoints: [{{provider: mock, model: echo}}]
  - id: mock/tools
    endpoints: [{{provider: mock, model: tools}}]
  - id: mock/json
    endpoints: [{{provider: mock, model: json}}]
  - id: mock/fail500
    endpoints: [{{provider: mock, model: fail500}}]
  - id: mock/fail400
    endpoints: [{{provider: mock, model: fail400}}]
  - id: mock/garbage
    endpoints: [{{provider: mock, model: garbage}}]
  - id: mock/hang
    endpoints: [{{provider: mock, model: hang}}]
  - id: mock/slow
    endpoints: [{{provider: mock, model: slow}}]
  - id: mock/cut
    endpoints: [{{provider: mock, model: cut}}]
  - id: mock/drop
    endpoints: [{{provider: mock, model: drop}}]
  - id: mock/empty
    endpoints: [{{provider: mock, model: empty}}]
  - id: mock/think
    reasoning: true
    endpoints: [{{provider: mock, model: think}}]
  - id: dead/chat
    endpoints: [{{provider: dead, model: anything}}]
  - id: mock/embed
    capabilities: [embeddings]
    endpoints: [{{provider: mock, model: embed}}]
  - id: mock/rerank
    capabilities: [rerank]
    endpoints: [{{provider: mock, model: rerank}}]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def upstream() -> Iterator[MockOpenAI]:
    mock = MockOpenAI().start()
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def config_file(upstream: MockOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("config") / "switchyard.yaml", upstream.base_url)


class GatewayPool:
    """Gateways started on first use and shared by the whole session."""

    def __init__(self, config: Path, tmp: pytest.TempPathFactory) -> None:
        self._config = config
        self._tmp = tmp
        self._started: dict[str, Gateway] = {}

    def get(self, channel: str) -> Gateway:
        if channel not in self._started:
            data_dir = self._tmp.mktemp(f"data-{channel}")
            self._started[channel] = start_gateway(self._config, data_dir, channel=channel)
        return self._started[channel]

    def stop(self) -> None:
        for gateway in self._started.values():
            gateway.stop()


@pytest.fixture(scope="session")
def gateways(config_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayPool]:
    pool = GatewayPool(config_file, tmp_path_factory)
    yield pool
    pool.stop()


@pytest.fixture(params=CHANNELS)
def gateway(request: pytest.FixtureRequest, gateways: GatewayPool) -> Gateway:
    """A running gateway, once per HTTP->service channel."""
    return gateways.get(request.param)


@pytest.fixture
def service(gateways: GatewayPool) -> Gateway:
    """A running gateway, for tests of the gRPC surface (the same in either mode)."""
    return gateways.get("inprocess")


@pytest.fixture(scope="session")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway on the embedded default: the built-in local models, no config file."""
    gateway = start_gateway(None, tmp_path_factory.mktemp("data-local"))
    yield gateway
    gateway.stop()


@pytest.fixture
def mock(upstream: MockOpenAI) -> MockOpenAI:
    upstream.clear()
    return upstream


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the suites that compare their stores (a database per test:
    `pg_server.fresh_database()`); started only if a test asks for it."""
    server = PostgresServer().start()
    yield server
    server.remove()
