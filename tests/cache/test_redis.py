"""The Redis backend: entries survive the trip through bytes, expire and purge in Redis,
and are shared by gateways (a hit on one for what another stored); an unreachable Redis
costs misses, never requests. Runs a private redis-server on a free loopback port."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from service.cache.codec import decode, encode
from service.cache.entry import Entry
from service.cache.redis_backend import RedisBackend
from service.domain.chat import (
    ChatResult,
    Choice,
    ChoiceLogprobs,
    Message,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
)
from tests.cache.conftest import admin_key, client, http, nonce, upstream_calls
from tests.fixtures.gateway import Gateway, free_port, start_gateway
from tests.fixtures.mock_openai import MockOpenAI

REDIS_SERVER = "/usr/bin/redis-server"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which(REDIS_SERVER) is None:
        raise RuntimeError(f"{REDIS_SERVER} is missing: apt-get install redis-server")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        probe = redis.Redis(port=port, socket_connect_timeout=1)
        while True:
            try:
                if probe.ping():
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not come up")
            time.sleep(0.1)
        probe.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def rich_entry(expires: float = 10.0**10, model: str = "m/x", partition: str = "k") -> Entry:
    logprobs = ChoiceLogprobs(
        content=(TokenLogprob("hi", -0.1, (104, 105), (TopLogprob("ho", -2.0, None),)),),
        refusal=None,
    )
    result = ChatResult(
        (
            Choice(0, Message("assistant", "hi"), "stop", logprobs, stop_sequence="###"),
            Choice(
                1,
                Message("assistant", None, tool_calls=(ToolCall("c1", "f", '{"a": 1}'),)),
                "tool_calls",
            ),
        ),
        Usage(3, 4, 7, None, 2),
        "fp_1",
    )
    return Entry(result, model, "prov", "up", partition, model, 1.0, expires)


def test_an_entry_comes_back_exactly() -> None:
    entry = rich_entry()
    assert decode(encode(entry)) == entry
    assert decode(b"[99]") is None and decode(b"not json") is None


def test_the_backend_stores_expires_and_purges(redis_url: str) -> None:
    async def run() -> None:
        backend = RedisBackend(redis_url, prefix=f"test-{nonce()}")
        try:
            now = time.time()
            await backend.put("k1|m/x|a", rich_entry(now + 60))
            assert await backend.get("k1|m/x|a") == rich_entry(now + 60)
            await backend.put(
                "k1|m/x|short", Entry(ChatResult(()), "m", "p", "u", "k1", "m", now, now + 0.2)
            )
            await asyncio.sleep(0.4)
            assert await backend.get("k1|m/x|short") is None  # Redis expired it
            odd = "m/*[x]?"  # glob characters in a model id are matched literally
            await backend.put(f"k1|{odd}|b", rich_entry(now + 60, odd, "k1"))
            await backend.put("k2|m/x|c", rich_entry(now + 60, "m/x", "k2"))
            await backend.put("k2|m/y|d", rich_entry(now + 60, "m/y", "k2"))
            assert await backend.purge(odd, None) == 1
            assert await backend.purge("m/x", "k2") == 1
            assert await backend.get("k2|m/y|d") is not None
            assert await backend.purge(None, None) == 2
        finally:
            await backend.aclose()

    asyncio.run(run())


def write_config(path: Path, upstream: str, redis_url: str) -> Path:
    path.write_text(
        f"""
providers:
  mock: {{kind: openai, base_url: {upstream}, api_key: upstream-secret, timeout: 20}}
cache: {{backend: redis, redis_url: "{redis_url}"}}
models:
  - id: cached/echo
    endpoints: [{{provider: mock, model: echo}}]
    cache: {{scope: shared}}
"""
    )
    return path


@pytest.fixture(scope="module")
def pair(
    redis_url: str, cache_upstream: MockOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway]]:
    tmp = tmp_path_factory.mktemp("redis-gateways")
    config = write_config(tmp / "switchyard.yaml", cache_upstream.base_url, redis_url)
    first = start_gateway(config, tmp / "a")
    second = start_gateway(config, tmp / "b")
    yield first, second
    first.stop()
    second.stop()


def ask(gateway: Gateway, text: str, **kwargs: Any) -> Any:
    return client(gateway).chat.completions.with_raw_response.create(
        model="cached/echo", messages=[{"role": "user", "content": text}], **kwargs
    )


def test_gateways_share_entries_through_redis(
    pair: tuple[Gateway, Gateway], cache_upstream: MockOpenAI
) -> None:
    first, second = pair
    word = nonce()
    filled = ask(first, f"shared {word}")
    assert filled.headers["x-switchyard-cache"] == "miss"
    elsewhere = ask(second, f"shared {word}", stream=True)
    assert elsewhere.headers["x-switchyard-cache"] == "hit"
    text = "".join(c.choices[0].delta.content or "" for c in elsewhere.parse() if c.choices)
    assert text == filled.parse().choices[0].message.content
    assert upstream_calls(cache_upstream, word) == 1
    status, body, _ = http(first, "DELETE", "/cache?model=cached/echo", admin_key(first))
    assert status == 200 and body["purged"] >= 1
    assert ask(second, f"shared {word}").headers["x-switchyard-cache"] == "miss"


def test_an_unreachable_redis_costs_misses_not_requests(
    cache_upstream: MockOpenAI, tmp_path: Path
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    gateway = start_gateway(
        write_config(tmp_path / "c.yaml", cache_upstream.base_url, dead), tmp_path / "d"
    )
    try:
        word = nonce()
        for _ in range(2):
            raw = ask(gateway, word)
            assert raw.headers["x-switchyard-cache"] == "miss"
            assert word in (raw.parse().choices[0].message.content or "")
        status, body, _ = http(gateway, "DELETE", "/cache", admin_key(gateway))
        assert status == 503, body
    finally:
        gateway.stop()
