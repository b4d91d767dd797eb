"""gateway_http/read_limits.py on the server the gateway runs (uvicorn on uvloop, real
sockets), with a bare app: the head cap counts bytes exactly across reads, and the clocks
never blame a client for the server's own waiting. (The whole gateway's answers to slow
and oversized clients: tests/integration/test_slow_clients.py.)"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from gateway_http.protocol import HttpProtocol
from service.launcher import UvicornServer, http_config


class Limited(HttpProtocol):
    header_timeout = 0.5
    body_timeout = 0.5
    max_head_bytes = 1024
    linger = 1.0


ENDINGS: list[str] = []  # how the app's reads ended, when not with a body


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the length of the body it read; /late reads it 1.5 s late (beyond
    every timeout above), /gone records how its read ended."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/late":
        await asyncio.sleep(1.5)
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            ENDINGS.append("disconnect")
            return
        size += len(message["body"])
        if not message["more_body"]:
            break
    body = b"%d" % size
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def run(scenario: Callable[[int], Awaitable[None]], protocol: type = Limited) -> None:
    async def serve() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        config = http_config(_app)
        config.http = protocol
        server = UvicornServer(config)
        serving = asyncio.get_running_loop().create_task(server.serve([sock]))
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(scenario(sock.getsockname()[1]), 30)
        finally:
            server.should_exit = True
            await serving

    uvloop.run(serve())


async def _answers(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """The status lines and bodies of `count` answers (each with a content-length)."""
    out = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        out.append(head.split(b"\r\n")[0] + b" " + body)
    return out


def _head(size: int, path: bytes = b"/", extra: bytes = b"") -> bytes:
    """A GET head of exactly `size` bytes (request line to the blank line)."""
    base = b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"X-Pad: \r\n\r\n"
    pad = size - len(base)
    assert pad >= 0
    return base.replace(b"X-Pad: ", b"X-Pad: " + b"a" * pad)


async def _new_tasks(before: set[asyncio.Task[Any]], settle: float = 5.0) -> list[str]:
    """Tasks not in `before` still running, once they have had `settle` s to end."""
    deadline = asyncio.get_running_loop().time() + settle
    while True:
        others = [repr(t.get_coro()) for t in asyncio.all_tasks() - before if not t.done()]
        if not others or asyncio.get_running_loop().time() > deadline:
            return others
        await asyncio.sleep(0.02)


def test_the_head_cap_counts_bytes_exactly_across_reads() -> None:
    async def scenario(port: int) -> None:
        for pieces in (1, 7):
            # A head of exactly the cap is served, in one read or in several.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = _head(1024)
            step = -(-len(head) // pieces)
            for start in range(0, len(head), step):
                writer.write(head[start : start + step])
                await writer.drain()
                await asyncio.sleep(0.02)
            assert await _answers(reader, 1) == [b"HTTP/1.1 200 OK 0"]
            # One byte more, on the same keep-alive connection, is refused (and closed).
            head = _head(1025)
            for start in range(0, len(head), step):
                writer.write(head[start : start + step])
                await asyncio.sleep(0.02)
            answer = await asyncio.wait_for(reader.read(), 10)
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
            assert b'"type":"invalid_request_error"' in answer
            writer.close()

    run(scenario)


def test_a_head_that_begins_after_a_body_in_one_read_is_not_refused() -> None:
    async def scenario(port: int) -> None:
        # The body's last 2,000 bytes and the first half of the next head arrive in one
        # read, the head's second half in the next: only the head (1,000 bytes) counts
        # against the cap (1,024), not the body before it.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b"x" * 300_000
        head = _head(1000)
        for _ in range(2):  # twice: the second time on a connection that has been used
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
            writer.write(body[:-2000])
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(body[-2000:] + head[:500])
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(head[500:])
            assert await _answers(reader, 2) == [b"HTTP/1.1 200 OK 300000", b"HTTP/1.1 200 OK 0"]
        writer.close()

    run(scenario)


def test_stalled_heads_and_bodies_get_408_and_the_app_ends() -> None:
    async def scenario(port: int) -> None:
        ENDINGS.clear()
        before = asyncio.all_tasks()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: half-way\r\nAcc")
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        assert b"x-request-id: half-way\r\n" in answer
        assert b'"type":"timeout_error"' in answer
        writer.close()
        # A chunked body silent after its first chunk: the app reading it is told the
        # client is gone and ends.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
        assert b"connection: close\r\n" in answer
        writer.close()
        assert await _new_tasks(before) == []
        assert ENDINGS == ["disconnect"]

    run(scenario)


class Patient(Limited):
    body_timeout = 1.0


def test_time_the_server_is_not_reading_is_not_held_against_the_client() -> None:
    async def scenario(port: int) -> None:
        # A body larger than uvicorn buffers before it stops reading, for an app that
        # asks for it only after the body timeout has passed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b"x" * 4_000_000
        writer.write(b"POST /late HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        writer.write(body)
        assert await _answers(reader, 1) == [b"HTTP/1.1 200 OK 4000000"]
        # A client that waits for `100 Continue`, which goes out when the app first asks
        # for the body, 1.5 s after the head, then takes 0.6 s of its 1 s to send it: its
        # time counts from the go-ahead, not from the timer's last look.
        writer.write(
            b"POST /late HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await asyncio.sleep(0.6)
        writer.write(b"abc")
        assert await _answers(reader, 1) == [b"HTTP/1.1 200 OK 3"]
        writer.close()

    run(scenario, Patient)
