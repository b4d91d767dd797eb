"""Redis unreachable or restarted, as documented (README "Running several replicas"):

- `on_backend_error: closed` (the default): generations are refused with 503 and a
  Retry-After while Redis is away, nothing held or billed; served again once it is back;
- `open`: served, their limits counted in the process alone;
- Redis restarted (its data lost): spending is counted again from what the ledger
  committed, and no ledger row is lost or written twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fleet import HI, admin_key, burst, config_text, create_key, wait_for_usage
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import request
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.servers import RedisServer
from tests.scaleout.conftest import storage


def _gateway(folder: Path, redis: RedisServer, upstream: MockOpenAI, mode: str) -> Gateway:
    config = folder / "config.yaml"
    config.write_text(config_text(upstream.base_url, storage(redis, f", on_backend_error: {mode}")))
    return start_gateway(config, folder / "data", timeout=60)


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, upstream: MockOpenAI
) -> Iterator[tuple[Gateway, Gateway]]:
    closed = _gateway(tmp_path_factory.mktemp("closed"), redis_server, upstream, "closed")
    opened = _gateway(tmp_path_factory.mktemp("open"), redis_server, upstream, "open")
    yield closed, opened
    closed.stop()
    opened.stop()


def _chat(gateway: Gateway, secret: str) -> tuple[int, str | None, dict[str, object]]:
    answer = request(
        "POST",
        gateway.base_url + "/chat/completions",
        {"model": "paid/request", "messages": HI},
        {"Authorization": f"Bearer {secret}"},
    )
    return answer.status, answer.headers.get("retry-after"), answer.json()


def _ledger(gateway: Gateway, key_id: str) -> tuple[int, int, float]:
    """Rows, distinct generation ids, and the sum of their costs."""
    db = sqlite3.connect(gateway.data_dir / "switchyard.db")
    try:
        rows, ids, total = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT id), COALESCE(SUM(cost), 0) FROM generations "
            "WHERE key_id = ?",
            (key_id,),
        ).fetchone()
    finally:
        db.close()
    return int(rows), int(ids), float(total)


def test_redis_away_closed_refuses_without_billing_open_serves(
    gateways: tuple[Gateway, Gateway], redis_server: RedisServer
) -> None:
    closed, opened = gateways
    shut = create_key(closed.base_url, admin_key(closed.data_dir), limit=1, rpm=100)
    loose = create_key(opened.base_url, admin_key(opened.data_dir), limit=1, rpm=100)
    assert _chat(closed, shut.secret)[0] == 200
    assert _chat(opened, loose.secret)[0] == 200
    wait_for_usage(closed.base_url, shut, 0.01)
    redis_server.stop()
    try:
        for _ in range(3):
            status, retry_after, body = _chat(closed, shut.secret)
            assert status == 503, body
            assert retry_after is not None and float(retry_after) > 0
            assert body["error"]["type"] == "service_unavailable"  # type: ignore[index]
            assert _chat(opened, loose.secret)[0] == 200  # open: served, counted locally
        assert "Redis unreachable" in opened.log() and "open" in opened.log()
    finally:
        redis_server.start()  # the same port
    deadline = time.monotonic() + 20
    status = 0
    while status != 200 and time.monotonic() < deadline:
        status = _chat(closed, shut.secret)[0]
        time.sleep(0.2)
    assert status == 200, "the closed gateway did not serve again once Redis was back"
    info = wait_for_usage(closed.base_url, shut, 0.02)
    assert info["usage"] == pytest.approx(0.02)  # the refused ones were not billed
    rows, ids, total = _ledger(closed, shut.id)
    assert (rows, ids) == (2, 2)
    assert total == pytest.approx(0.02)


def test_redis_restarted_mid_load_counts_on_from_the_ledger(
    gateways: tuple[Gateway, Gateway], redis_server: RedisServer
) -> None:
    closed, _ = gateways
    key = create_key(closed.base_url, admin_key(closed.data_dir), limit=0.5)
    first = burst([closed.base_url], key.secret, 20)
    assert [o.status for o in first].count(200) == 20
    wait_for_usage(closed.base_url, key, 0.2)
    redis_server.stop()  # everything Redis counted is gone
    redis_server.start()
    deadline = time.monotonic() + 20
    outcomes = burst([closed.base_url], key.secret, 100)
    while any(o.status == 503 for o in outcomes) and time.monotonic() < deadline:
        # Refused while the gateway noticed the restart: nothing billed; try them again.
        retry = sum(1 for o in outcomes if o.status == 503)
        outcomes = [o for o in outcomes if o.status != 503]
        time.sleep(0.3)
        outcomes += burst([closed.base_url], key.secret, retry)
    statuses = [o.status for o in outcomes]
    assert statuses.count(200) == 30, sorted(set(statuses))  # 0.2 spent before: 0.3 left
    assert statuses.count(402) == 70
    info = wait_for_usage(closed.base_url, key, 0.5)
    assert info["usage"] == pytest.approx(0.5)
    rows, ids, total = _ledger(closed, key.id)
    assert (rows, ids) == (50, 50)  # none lost, none doubled
    assert total == pytest.approx(0.5)
