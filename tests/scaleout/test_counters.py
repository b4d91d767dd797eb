"""The shared counters themselves, without a gateway: the SQLite ones of `--workers` and
the Redis ones of replicas, checked for the same answers as the in-process limiter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from service import errors
from service.accounting.backends import CounterBackend
from service.accounting.limiter import RateLimiter
from service.store.keys import KeyPolicy, KeyStore
from service.store.redis_limits import RedisCounters, RedisLink
from service.store.settings import StorageSettings
from service.store.shared_sqlite import SharedCounters
from tests.fixtures.servers import RedisServer


@pytest.fixture(params=["in-process", "sqlite", "redis"])
def make_counters(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> Callable[[], AsyncIterator[CounterBackend]]:
    async def counters() -> AsyncIterator[CounterBackend]:
        if request.param == "in-process":
            yield RateLimiter()
        elif request.param == "sqlite":
            shared = SharedCounters(tmp_path / "switchyard.db")
            yield shared
            await shared.aclose()
        else:
            keys = KeyStore(tmp_path / "switchyard.db")
            link = RedisLink(StorageSettings(redis_url=redis_server.url, lease_ttl=5), keys)
            await link.start()
            yield RedisCounters(link)
            await link.aclose()
            keys.close()

    return counters


def _run(make: Callable[[], AsyncIterator[CounterBackend]], body: Any) -> None:
    async def main() -> None:
        async for counters in make():
            await body(counters)

    asyncio.run(main())


def test_tpm_counts_estimates_then_real_usage(
    make_counters: Callable[[], AsyncIterator[CounterBackend]],
) -> None:
    policy = KeyPolicy(tpm=1000)
    key = f"key_tpm_{id(make_counters)}"

    async def body(counters: CounterBackend) -> None:
        first = await counters.admit(key, policy, 600)
        assert first.state.remaining_tokens == 400
        with pytest.raises(errors.GatewayError) as refused:
            await counters.admit(key, policy, 500)
        assert refused.value.reason == "RATE_LIMITED"
        assert refused.value.retry_after is not None and 55 < refused.value.retry_after <= 60
        counters.finish(first, 100)  # it used 100, not the 600 estimated
        await asyncio.sleep(0.3)  # a shared backend's writer sends the reconcile
        second = await counters.admit(key, policy, 500)
        assert second.state.remaining_tokens == 400
        state = await counters.state(key, policy)
        assert state.remaining_tokens == 400

    _run(make_counters, body)


def test_concurrency_is_freed_by_finish_and_not_before(
    make_counters: Callable[[], AsyncIterator[CounterBackend]],
) -> None:
    policy = KeyPolicy(max_concurrent=2, rpm=100)
    key = f"key_conc_{id(make_counters)}"

    async def body(counters: CounterBackend) -> None:
        held = [await counters.admit(key, policy, 1) for _ in range(2)]
        with pytest.raises(errors.GatewayError):
            await counters.admit(key, policy, 1)
        counters.finish(held[0], 1)
        counters.finish(held[0], 1)  # twice is once
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            try:
                again = await counters.admit(key, policy, 1)
                break
            except errors.GatewayError:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        with pytest.raises(errors.GatewayError):
            await counters.admit(key, policy, 1)
        assert again.state.remaining_requests == 97  # 3 admitted in the window
        for admission in (held[1], again):
            counters.finish(admission, 1)

    _run(make_counters, body)
