"""Three replicas, one Redis: the key's limits hold across them (issue 17, item 5).

Every burst is spread round-robin over the three gateways' ports, as a load balancer
spreads it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time

import aiohttp
import pytest

from tests.fixtures.fleet import HI, burst, create_key, key_info, unexpected, wait_for_usage
from tests.fixtures.http import request
from tests.scaleout.conftest import LEASE_TTL, Fleet


def ledger_rows(fleet: Fleet, key_id: str) -> tuple[int, float]:
    db = sqlite3.connect(fleet.data_dir / "switchyard.db")
    try:
        count, total = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM generations WHERE key_id = ?",
            (key_id,),
        ).fetchone()
    finally:
        db.close()
    return int(count), float(total)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_credit_for_exactly_50_under_300_at_once(fleet: Fleet, streamed: bool) -> None:
    # One kind per burst: in a mixed burst, which kind wins the 50 depends on which path
    # reaches the gate first on a loaded machine, and a kind could go untested.
    key = create_key(fleet.urls[0], fleet.admin, limit=0.5)
    outcomes = burst(fleet.urls, key.secret, 300, streamed_every=1 if streamed else 0)
    statuses = [o.status for o in outcomes]
    assert statuses.count(200) == 50, unexpected(outcomes)
    assert statuses.count(402) == 250
    if streamed:
        assert all(b"[DONE]" in o.body for o in outcomes if o.status == 200)
    info = wait_for_usage(fleet.urls[1], key, 0.5)
    assert info["usage"] == pytest.approx(0.5)
    deadline = time.monotonic() + 20
    while ledger_rows(fleet, key.id)[0] < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    rows, total = ledger_rows(fleet, key.id)
    assert rows == 50
    assert total == pytest.approx(0.5)  # the ledger sums to the spend


def test_rpm_30_under_120_at_once(fleet: Fleet) -> None:
    key = create_key(fleet.urls[0], fleet.admin, rpm=30)
    outcomes = burst(fleet.urls, key.secret, 120, "free/echo")
    statuses = [o.status for o in outcomes]
    assert statuses.count(200) == 30, sorted(set(statuses))
    assert statuses.count(429) == 90
    waits = [float(o.retry_after or "nan") for o in outcomes if o.status == 429]
    # The window opens a minute after its first request: somewhere within the minute.
    assert all(0 < w <= 60 for w in waits), waits
    assert min(waits) > 30  # the burst took seconds, not half a minute


async def _open_stream(session: aiohttp.ClientSession, url: str, secret: str) -> tuple[int, object]:
    body = {"model": "free/slow", "messages": HI, "stream": True}
    response = await session.post(
        url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
    )
    if response.status == 200:
        await response.content.readline()  # the stream is running
        return 200, response
    await response.read()
    response.release()
    return response.status, None


def test_concurrency_5_across_replicas_and_a_killed_replicas_leases_lapse(
    fleet: Fleet,
) -> None:
    key = create_key(fleet.urls[0], fleet.admin, max_concurrent=5)
    a, b, c = fleet.urls

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            on_c = await asyncio.gather(*(_open_stream(session, c, key.secret) for _ in range(3)))
            assert [s for s, _ in on_c] == [200, 200, 200]
            on_a = await asyncio.gather(*(_open_stream(session, a, key.secret) for _ in range(2)))
            assert [s for s, _ in on_a] == [200, 200]
            more = await asyncio.gather(
                *(_open_stream(session, url, key.secret) for url in (a, b, b, a))
            )
            assert [s for s, _ in more] == [429] * 4  # never more than 5 in flight
            # Replica C dies holding 3 streams; its leases lapse within the TTL, while
            # A's, renewed as they run, still count.
            os.kill(fleet.gateways[2].process.pid, signal.SIGKILL)
            fleet.gateways[2].process.wait(timeout=10)
            killed_at = time.monotonic()
            freed: list[object] = []
            while len(freed) < 3 and time.monotonic() < killed_at + LEASE_TTL + 10:
                status, response = await _open_stream(session, b, key.secret)
                if status == 200:
                    freed.append(response)
                else:
                    await asyncio.sleep(0.1)
            took = time.monotonic() - killed_at
            assert len(freed) == 3, "the dead replica's leases were never freed"
            assert took <= LEASE_TTL + 2.0, took
            assert took > LEASE_TTL - 1.5  # they were held until they expired
            status, _ = await _open_stream(session, a, key.secret)
            assert status == 429  # 2 on A + 3 on B: still five
            for _, response in (*on_a, *on_c):
                if response is not None:
                    response.close()  # type: ignore[attr-defined]
            for response in freed:
                response.close()  # type: ignore[attr-defined]

    try:
        asyncio.run(run())
    finally:
        # Later tests in this module use replica C again: start it over.
        from tests.fixtures.gateway import start_gateway

        dead = fleet.gateways[2]
        fleet.gateways[2] = start_gateway(fleet.config, fleet.data_dir, fresh=False, timeout=60)
        dead.stop()


def test_a_key_revoked_on_one_replica_is_refused_by_the_others_within_a_second(
    fleet: Fleet,
) -> None:
    key = create_key(fleet.urls[0], fleet.admin)
    a, b, c = fleet.urls
    for url in (b, c):  # cached there (for 30 s, without invalidation)
        assert key_info(url, key)["id"] == key.id
    deleted = request(
        "DELETE", a + f"/keys/{key.id}", headers={"Authorization": f"Bearer {fleet.admin}"}
    )
    assert deleted.status == 200, deleted.body
    revoked_at = time.monotonic()
    for url in (b, c):
        while True:
            answer = request("GET", url + "/key", headers={"Authorization": f"Bearer {key.secret}"})
            if answer.status == 401:
                break
            assert time.monotonic() - revoked_at < 1.0, f"{url} still accepts the revoked key"
            time.sleep(0.02)
    assert time.monotonic() - revoked_at < 1.0


def test_rate_and_credit_in_one_script_a_refused_request_leaves_no_trace(fleet: Fleet) -> None:
    """A key with both limits is admitted by one script (ADMIT then RESERVE, the first
    undone if the second refuses): 50 pass, and only those 50 count against the rpm."""
    key = create_key(fleet.urls[0], fleet.admin, limit=0.5, rpm=1000, max_concurrent=500)
    outcomes = burst(fleet.urls, key.secret, 300)
    statuses = [o.status for o in outcomes]
    assert statuses.count(200) == 50, unexpected(outcomes)
    assert statuses.count(402) == 250
    answer = request(
        "POST",
        fleet.urls[1] + "/chat/completions",
        {"model": "free/echo", "messages": HI},
        {"Authorization": f"Bearer {key.secret}"},
    )
    assert answer.status == 200, answer.body
    assert answer.headers["x-ratelimit-remaining-requests"] == str(1000 - 51)
