"""Fault injection: two mock providers (`a` fails in the way under test, `b` is healthy)
behind an in-thread gateway that the tests can look inside."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI

FAULTS = (
    "fail500", "fail502", "fail503", "fail429", "fail400", "hang", "slowfirst",
    "garbage", "empty", "cut", "drop",
)  # fmt: skip


def resilience_config(a: str, b: str) -> str:
    models = "\n".join(
        f"  - {{id: fb/{fault}, endpoints: [{{provider: a, model: {fault}}}, "
        f"{{provider: b, model: echo}}]}}"
        for fault in FAULTS
    )
    return f"""
routing:
  retries: 1
  backoff_base: 0.01
  backoff_max: 0.02
  retry_after_cap: 2
  breaker: {{failures: 3, cooldown: 1.0, min_calls: 1000}}
providers:
  a: {{kind: openai, base_url: "{a}", api_key: upstream-secret, timeout: 10,
      first_byte_timeout: 0.5, idle_timeout: 0.5}}
  b: {{kind: openai, base_url: "{b}", api_key: upstream-secret, timeout: 10}}
models:
{models}
  - {{id: br/switch, endpoints: [{{provider: a, model: switch}}]}}
  - {{id: br/flaky, endpoints: [{{provider: a, model: flaky}}]}}
  - {{id: slow/model, timeout: 0.3, endpoints: [{{provider: b, model: hang}}]}}
"""


@pytest.fixture(scope="package")
def mocks() -> Iterator[tuple[MockOpenAI, MockOpenAI]]:
    a, b = MockOpenAI().start(), MockOpenAI().start()
    a.first_byte_delay = 1.0  # above a's first_byte_timeout of 0.5 s
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="package")
def local(
    mocks: tuple[MockOpenAI, MockOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalGateway]:
    a, b = mocks
    gateway = LocalGateway(
        resilience_config(a.base_url, b.base_url), tmp_path_factory.mktemp("resilience")
    ).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def fresh(
    mocks: tuple[MockOpenAI, MockOpenAI], local: LocalGateway
) -> tuple[MockOpenAI, MockOpenAI]:
    """Mocks with no history, and a gateway whose breakers are all closed."""
    for mock in mocks:
        mock.clear()
    local.reset_health()
    return mocks
