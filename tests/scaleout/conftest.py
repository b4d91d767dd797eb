"""Three gateway processes sharing one Redis (and one data directory), a mock upstream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.fleet import config_text
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.servers import RedisServer

LEASE_TTL = 3.0


@dataclass
class Fleet:
    gateways: list[Gateway]
    redis: RedisServer
    upstream: MockOpenAI
    config: Path
    data_dir: Path

    @property
    def urls(self) -> list[str]:
        return [g.base_url for g in self.gateways]

    @property
    def admin(self) -> str:
        return (self.data_dir / "admin-key").read_text().strip()


def storage(redis: RedisServer, extra: str = "") -> str:
    # A key cache far longer than a second: only the invalidation can make a revoked
    # key fail on every replica within one.
    return (
        f"storage: {{redis_url: '{redis.url}', lease_ttl: {LEASE_TTL}, "
        f"key_cache_seconds: 30{extra}}}"
    )


def start_fleet(folder: Path, redis: RedisServer, upstream: MockOpenAI, extra: str = "") -> Fleet:
    config = folder / "config.yaml"
    config.write_text(config_text(upstream.base_url, storage(redis, extra)))
    data_dir = folder / "data"
    gateways: list[Gateway] = []
    try:
        for i in range(3):
            gateways.append(start_gateway(config, data_dir, fresh=i == 0, timeout=60))
    except BaseException:
        for gateway in gateways:
            gateway.stop()
        raise
    return Fleet(gateways, redis, upstream, config, data_dir)


@pytest.fixture(scope="package")
def upstream() -> Iterator[MockOpenAI]:
    mock = MockOpenAI().start()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, upstream: MockOpenAI
) -> Iterator[Fleet]:
    running = start_fleet(tmp_path_factory.mktemp("fleet"), redis_server, upstream)
    yield running
    for gateway in running.gateways:
        gateway.stop()
