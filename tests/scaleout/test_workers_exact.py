"""`--workers 2` on the embedded default: limits are the key's, not each worker's.

Both workers accept from one listening socket, so a burst is spread over them; before
the workers shared their windows and holds (service/store/shared_sqlite.py), a key
with credit for 50 requests got up to 100 and `rpm: 30` let 60 through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fleet import admin_key, burst, config_text, create_key, wait_for_usage
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.mock_openai import MockOpenAI


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    upstream = MockOpenAI().start()
    folder = tmp_path_factory.mktemp("workers")
    config = folder / "config.yaml"
    config.write_text(config_text(upstream.base_url))
    gateway = start_gateway(config, folder / "data", extra_args=("--workers", "2"), timeout=60)
    # Both workers up and accepting (a first burst may all land on the one awake).
    burst([gateway.base_url], gateway.key, 100, "free/echo")
    yield gateway
    gateway.stop()
    upstream.stop()


def _pids_serving(gateway: Gateway) -> int:
    """How many worker processes the gateway runs (the race must cross them)."""
    children = Path(f"/proc/{gateway.process.pid}/task/{gateway.process.pid}/children")
    return len(children.read_text().split())


def test_credit_for_exactly_50_across_two_workers(two_workers: Gateway) -> None:
    assert _pids_serving(two_workers) >= 2
    key = create_key(two_workers.base_url, admin_key(two_workers.data_dir), limit=0.5)
    outcomes = burst([two_workers.base_url], key.secret, 200)
    statuses = [o.status for o in outcomes]
    assert statuses.count(200) == 50, sorted(set(statuses))
    assert statuses.count(402) == 150
    info = wait_for_usage(two_workers.base_url, key, 0.5)
    assert info["usage"] == pytest.approx(0.5)
    assert info["limit_remaining"] == pytest.approx(0.0)


def test_rpm_30_across_two_workers(two_workers: Gateway) -> None:
    key = create_key(two_workers.base_url, admin_key(two_workers.data_dir), rpm=30)
    outcomes = burst([two_workers.base_url], key.secret, 120, "free/echo")
    statuses = [o.status for o in outcomes]
    assert statuses.count(200) == 30, sorted(set(statuses))
    assert statuses.count(429) == 90
    waits = [float(o.retry_after or "nan") for o in outcomes if o.status == 429]
    assert all(0 < w <= 60 for w in waits), waits
