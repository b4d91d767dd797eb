"""Rate limits per key: rpm under a burst, tpm, concurrency, and the headers."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp

from tests.accounting.conftest import new_key
from tests.fixtures.http import RawResponse, open_stream, request
from tests.fixtures.local_gateway import LocalGateway

HI = [{"role": "user", "content": "hi"}]


def post(gateway: LocalGateway, key: str, body: dict[str, Any]) -> RawResponse:
    return request(
        "POST", gateway.base_url + "/chat/completions", body, {"Authorization": f"Bearer {key}"}
    )


def test_rpm_under_a_burst(accounted: LocalGateway) -> None:
    """100 at once with rpm = 30: exactly 30 pass; the rest are told when to come back."""
    key = new_key(accounted, rpm=30)
    started = time.monotonic()

    async def burst() -> list[tuple[int, dict[str, str], Any]]:
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "free/chat", "messages": HI}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one() -> tuple[int, dict[str, str], Any]:
                async with session.post(
                    accounted.base_url + "/chat/completions", json=body, headers=headers
                ) as response:
                    return response.status, dict(response.headers), await response.json()

            return await asyncio.gather(*(one() for _ in range(100)))

    results = asyncio.run(burst())
    statuses = [status for status, _, _ in results]
    assert (statuses.count(200), statuses.count(429)) == (30, 70)
    elapsed = time.monotonic() - started
    for status, headers, body in results:
        if status == 429:
            assert body["error"]["type"] == "rate_limit_error"
            retry = int(headers["Retry-After"])
            assert 60 - elapsed - 1 <= retry <= 60, retry  # when the first request ages out
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert headers["x-ratelimit-limit-requests"] == "30"
    remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for s, h, _ in results if s == 200)
    assert remaining == list(range(30))  # each admitted request saw one fewer


def test_headers_count_down(accounted: LocalGateway) -> None:
    key = new_key(accounted, rpm=5, tpm=100_000)
    seen = []
    for _ in range(5):
        raw = post(accounted, key, {"model": "free/chat", "messages": HI})
        assert raw.status == 200
        seen.append(int(raw.headers["x-ratelimit-remaining-requests"]))
        assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert seen == [4, 3, 2, 1, 0]
    refused = post(accounted, key, {"model": "free/chat", "messages": HI})
    assert refused.status == 429 and int(refused.headers["retry-after"]) >= 59


def test_tokens_per_minute(accounted: LocalGateway) -> None:
    """The estimate is reserved up front: a request that cannot fit is refused."""
    key = new_key(accounted, tpm=200)
    big = [{"role": "user", "content": "x" * 3000}]  # ~1000 estimated tokens
    refused = post(accounted, key, {"model": "free/chat", "messages": big})
    assert refused.status == 429
    assert "tokens per minute" in refused.json()["error"]["message"]
    assert (
        post(accounted, key, {"model": "free/chat", "messages": HI, "max_tokens": 50}).status == 200
    )


def test_concurrent_requests(accounted: LocalGateway) -> None:
    key = new_key(accounted, max_concurrent=1)
    conn, response = open_stream(
        accounted.base_url + "/chat/completions",
        {"model": "paid/tokens", "messages": HI, "stream": True},
        {"Authorization": f"Bearer {key}"},
    )
    try:
        assert response.status == 200
        second = post(accounted, key, {"model": "free/chat", "messages": HI})
        assert second.status == 429
        assert "concurrent" in second.json()["error"]["message"]
    finally:
        conn.sock.close()
        conn.close()
    deadline = time.monotonic() + 5
    while post(accounted, key, {"model": "free/chat", "messages": HI}).status != 200:
        assert time.monotonic() < deadline, "the slot was not freed"
        time.sleep(0.1)
    assert threading.active_count() >= 1
