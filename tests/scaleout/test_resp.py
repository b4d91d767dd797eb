"""The multiplexed Redis client of the limits and the cache (service/store/resp.py),
against a real redis-server and against loopback servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from service.store.resp import Address, ReplyError, RespClient, UnreachableError, parse_url
from tests.fixtures.servers import RedisServer

DEADLINE = 10.0


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


def test_concurrent_callers_on_one_connection_each_get_their_own_reply(
    redis_server: RedisServer,
) -> None:
    async def body() -> None:
        client = RespClient(redis_server.url)
        replies = await asyncio.gather(*(client.execute("ECHO", f"n{i}") for i in range(300)))
        assert replies == [f"n{i}".encode() for i in range(300)]
        assert client._conn is not None and len(client._subscribed) == 0
        pipelined = await client.pipeline([("SET", "resp:a", 1), ("INCR", "resp:a"), ("NOPE",)])
        assert pipelined[:2] == [b"OK", 2]
        assert isinstance(pipelined[2], ReplyError)  # in place, not raised
        with pytest.raises(ReplyError, match="unknown command"):
            await client.execute("NOPE")
        assert await client.execute("GET", "resp:a") == b"2"  # still in step
        await client.aclose()

    _run(body)


def test_a_cancelled_caller_leaves_the_replies_in_order(redis_server: RedisServer) -> None:
    async def body() -> None:
        client = RespClient(redis_server.url)
        blocked = asyncio.ensure_future(client.execute("BLPOP", "resp:empty", 0.3))
        await asyncio.sleep(0.05)
        blocked.cancel()
        # BLPOP's nil reply still comes first; it must not be taken for ECHO's.
        assert await client.execute("ECHO", "after") == b"after"
        await client.aclose()

    _run(body)


def test_scripts_run_again_as_eval_when_the_server_forgot_them(
    redis_server: RedisServer,
) -> None:
    async def body() -> None:
        client = RespClient(redis_server.url)
        double = client.script("return tonumber(ARGV[1]) * 2")
        assert await client.evalsha(double, [], [21]) == 42
        await client.execute("SCRIPT", "FLUSH")  # as after a restart of Redis
        assert await client.evalsha(double, [], [5]) == 10
        await client.execute("SCRIPT", "FLUSH")
        commands = [double.command([], [1]), ("ECHO", "x"), double.command([], [3])]
        assert await client.pipeline(commands) == [2, b"x", 6]
        broken = client.script("return redis.call('NOPE')")
        with pytest.raises(ReplyError):
            await client.evalsha(broken, [], [])
        await client.aclose()

    _run(body)


def test_password_and_database_from_the_url(redis_server: RedisServer) -> None:
    async def body() -> None:
        admin = RespClient(redis_server.url)
        await admin.execute("CONFIG", "SET", "requirepass", "s3cret")
        try:
            await admin.execute("AUTH", "s3cret")
            base = f"127.0.0.1:{redis_server.port}"
            authed = RespClient(f"redis://:s3cret@{base}/3")
            await authed.execute("SET", "resp:db", "three")
            assert await admin.execute("GET", "resp:db") is None  # db 0
            await admin.execute("SELECT", 3)
            assert await admin.execute("GET", "resp:db") == b"three"
            await authed.aclose()
            with pytest.raises(ReplyError, match=r"WRONGPASS|invalid password"):
                await RespClient(f"redis://:wrong@{base}/0").execute("PING")
            with pytest.raises(ReplyError, match="NOAUTH"):
                await RespClient(f"redis://{base}/0").execute("PING")
        finally:
            await admin.execute("CONFIG", "SET", "requirepass", "")
            await admin.aclose()

    _run(body)


async def _fake_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_silent_server_fails_every_waiting_command_and_the_next_reconnects() -> None:
    connections: list[int] = []

    async def body() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            if len(connections) > 1:  # the second connection answers PONG to anything
                while await reader.read(1024):
                    writer.write(b"+PONG\r\n")
                    await writer.drain()
                return
            await reader.read(1024)
            await asyncio.sleep(DEADLINE)

        server, port = await _fake_server(silent)
        client = RespClient(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        waiting = [client.execute("PING") for _ in range(5)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, UnreachableError) for r in results), results
        assert "did not answer within" in str(results[0])
        assert await client.execute("PING") == b"PONG"
        assert len(connections) == 2
        await client.aclose()
        server.close()

    _run(body)


def test_a_lost_connection_or_garbage_fails_the_waiting_commands() -> None:
    async def body() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)
            writer.close()

        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(DEADLINE)

        for handle, why in ((hang_up, "lost"), (garbage, "not RESP")):
            server, port = await _fake_server(handle)
            client = RespClient(f"redis://127.0.0.1:{port}/0", timeout=DEADLINE)
            with pytest.raises(UnreachableError, match=why):
                await client.execute("PING")
            await client.aclose()
            server.close()
        nobody = RespClient("redis://127.0.0.1:1/0", connect_timeout=DEADLINE)
        with pytest.raises(UnreachableError, match="cannot connect"):
            await nobody.execute("PING")

    _run(body)


def test_subscription_gets_messages_and_tells_when_it_is_lost(tmp_path: Any) -> None:
    server = RedisServer(tmp_path / "redis").start()
    got: list[bytes] = []

    async def body() -> None:
        listener, talker = RespClient(server.url), RespClient(server.url)
        await listener.subscribe("resp:chan", got.append)
        assert await talker.execute("PUBLISH", "resp:chan", "hello") == 1
        for _ in range(int(DEADLINE / 0.01)):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [b"hello"]
        lost = asyncio.ensure_future(listener.subscription_lost())
        await asyncio.sleep(0.05)
        assert not lost.done()
        await asyncio.to_thread(server.stop)
        await asyncio.wait_for(lost, DEADLINE)
        await listener.aclose()
        await talker.aclose()

    try:
        _run(body)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://h:7000/2", Address("h", 7000, db=2)),
        ("redis://u:p%40ss@h", Address("h", 6379, username="u", password="p@ss")),
        ("redis://:pw@h/0", Address("h", password="pw")),
        ("rediss://h", Address("h", tls=True)),
        ("unix:///run/redis.sock?db=4", Address(path="/run/redis.sock", db=4)),
    ],
)
def test_urls(url: str, address: Address) -> None:
    assert parse_url(url) == address


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://h", "expected redis://"), ("redis://h/zero", "must be a number")],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_the_loop_polls_for_a_fast_redis_and_stops_for_a_slow_one(
    redis_server: RedisServer,
) -> None:
    async def body() -> None:
        fast = RespClient(redis_server.url, answer_poll=0.05)
        for _ in range(5):
            await fast.execute("PING")
        assert fast._window.seconds > 0  # learnt: Redis answers within the limit
        pending = asyncio.ensure_future(fast.execute("BLPOP", "resp:none", 0.2))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert fast._spinner is not None and fast._spinner.polling
        await pending
        await fast.aclose()

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(1024):
                await asyncio.sleep(0.02)
                writer.write(b"+PONG\r\n")
                await writer.drain()

        server, port = await _fake_server(slow)
        lagging = RespClient(f"redis://127.0.0.1:{port}/0", answer_poll=0.001)
        lagging._window.seconds = 0.001
        for _ in range(12):
            await lagging.execute("PING")
        assert lagging._window.seconds == 0  # halved down to nothing: no CPU spent
        await lagging.aclose()
        server.close()

    _run(body)
