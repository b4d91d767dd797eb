"""service/providers/http1: the upstream HTTP/1.1 client, against a scripted server.

Each test runs one event loop holding both ends: an asyncio server on 127.0.0.1 whose
handler reads each request (head, then Content-Length bytes) and answers with raw bytes
written by the test, and a `Pool` posting to it. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop

from service.providers.http1 import (
    BrokenBodyError,
    ConnectError,
    DisconnectedError,
    Limits,
    MalformedResponseError,
    Pool,
)
from service.providers.http1 import connection as http1_connection

LIMITS = Limits(connect=1.0, first_byte=1.0, idle=1.0)
HEADERS = {"Authorization": "Bearer sk-test", "X-Trace": "t-1"}
PAYLOAD = b'{"model":"m","input":"hi"}'


# --- the scripted server ----------------------------------------------------------------


@dataclass
class Request:
    connection: int  # 1 for the first connection the server accepted
    line: str
    head: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Scripted:
    """What the server saw."""

    url: str  # scheme://127.0.0.1:port
    port: int
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    eof: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, connection: int) -> list[Request]:
        return [r for r in self.requests if r.connection == connection]


class Peer:
    """The server's end of one accepted connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Scripted
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.server = server
        server.connections += 1
        self.index = server.connections

    async def request(self) -> Request | None:
        """The next request on this connection, or None once the client closed it."""
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.server.eof.set()  # the client closed the connection
            return None
        head = raw.decode("latin-1")
        line, *fields = head[:-4].split("\r\n")
        headers = {}
        for text in fields:
            name, _, value = text.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(self.index, line, head, headers, body)
        self.server.requests.append(request)
        return request

    async def send(self, *data: bytes) -> None:
        for part in data:
            self.writer.write(part)
        await self.writer.drain()

    async def until_eof(self) -> None:
        """Wait until the client closes the connection."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.server.eof.set()

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[Peer], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Scripted]:
    tasks: set[asyncio.Task[object]] = set()
    scripted: Scripted | None = None

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and scripted is not None
        tasks.add(task)
        try:
            await handler(Peer(reader, writer, scripted))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: tests assert on what the client saw
        except asyncio.CancelledError:
            pass  # stopped at the end of the test (a cancelled task here logs on 3.11)
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scripted = Scripted(f"{'https' if tls else 'http'}://127.0.0.1:{port}", port)
    try:
        yield scripted
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
    assert [o for o in outcomes if isinstance(o, BaseException)] == []  # a handler's bug


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


def sized(body: bytes, *headers: str) -> bytes:
    return answer(body, f"Content-Length: {len(body)}", *headers)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = answer(b"", "Transfer-Encoding: chunked")
LAST_CHUNK = b"0\r\n\r\n"


def always(raw: bytes) -> Handler:
    """Answer every request on every connection with `raw`."""

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(raw)

    return handler


def soon(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


def now() -> float:
    return asyncio.get_running_loop().time()


async def fetch(pool: Pool, url: str) -> tuple[int, dict[str, str], bytes]:
    async with await pool.post(url, PAYLOAD, soon()) as response:
        return response.status, dict(response.headers), await response.read()


async def closed_by_client(server: Scripted) -> None:
    await asyncio.wait_for(server.eof.wait(), 1.0)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run a test's scenario in a fresh loop; a hang fails it after 5 s."""

    async def bounded() -> None:
        async with asyncio.timeout(5.0):
            await scenario()

    asyncio.run(bounded())


# --- answers and what is sent -----------------------------------------------------------


def test_content_length_answer_and_the_request_sent() -> None:
    raw = answer(
        b'{"ok":true}',
        "Content-Type: application/json",
        "X-Dup: a",
        "X-Dup: b",
        "Content-Length: 11",
        status="201 Created",
    )

    async def scenario() -> None:
        # Framing headers in the configuration are the client's to set: dropped.
        pool = Pool({**HEADERS, "Content-Length": "999", "Connection": "close"}, LIMITS)
        async with serve(always(raw)) as server:
            status, headers, body = await fetch(pool, server.url + "/path?q=1")
            pool.close()
        assert status == 201 and body == b'{"ok":true}'
        assert headers["content-type"] == "application/json" and "Content-Type" not in headers
        assert headers["x-dup"] == "a, b"
        [request] = server.requests
        assert request.line == "POST /path?q=1 HTTP/1.1"
        assert request.headers["host"] == f"127.0.0.1:{server.port}"
        assert request.headers["content-length"] == str(len(PAYLOAD))
        assert request.head.lower().count("content-length:") == 1
        assert "connection" not in request.headers
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.headers["x-trace"] == "t-1"
        assert request.body == PAYLOAD

    run(scenario)


def test_keep_alive_reuses_one_connection() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(sized(b"ok"))) as server:
            for _ in range(2):
                async with await pool.post(server.url + "/", PAYLOAD, soon()) as response:
                    assert pool.in_use == 1
                    assert await response.read() == b"ok"
                assert pool.in_use == 0
            pool.close()
        assert server.connections == 1 and len(server.on(1)) == 2

    run(scenario)


def test_an_idle_connection_older_than_keepalive_is_not_reused() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, Limits(connect=1.0, first_byte=1.0, idle=1.0, keepalive=0.05))
        async with serve(always(sized(b"ok"))) as server:
            await fetch(pool, server.url)
            await asyncio.sleep(0.1)
            await fetch(pool, server.url)
            await closed_by_client(server)  # the expired one was closed, not leaked
            pool.close()
        assert server.connections == 2

    run(scenario)


def test_chunked_body_is_reassembled_by_read() -> None:
    raw = CHUNKED_HEAD + chunk(b"hello ") + chunk(b"chunked ") + chunk(b"world") + LAST_CHUNK

    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(raw)) as server:
            assert (await fetch(pool, server.url))[2] == b"hello chunked world"
            assert (await fetch(pool, server.url))[2] == b"hello chunked world"
            pool.close()
        assert server.connections == 1  # a chunked answer read to its end is reusable

    run(scenario)


def test_chunks_arrive_as_they_are_written() -> None:
    async def scenario() -> None:
        headers_seen, first_seen = asyncio.Event(), asyncio.Event()
        waited: list[bool] = []

        async def after(event: asyncio.Event) -> None:
            try:
                await asyncio.wait_for(event.wait(), 1.0)
                waited.append(True)
            except TimeoutError:
                waited.append(False)

        async def handler(peer: Peer) -> None:
            await peer.request()
            # Each part is written only once the client holds the one before.
            await peer.send(CHUNKED_HEAD)
            await after(headers_seen)
            await peer.send(chunk(b"first"))
            await after(first_seen)
            await peer.send(chunk(b"second"), LAST_CHUNK)
            await peer.until_eof()

        pool = Pool(HEADERS, LIMITS)
        pieces: list[bytes] = []
        async with serve(handler) as server:
            async with await pool.post(server.url, PAYLOAD, soon()) as response:
                headers_seen.set()
                async for piece in response.chunks():
                    pieces.append(piece)
                    first_seen.set()
            pool.close()
        assert waited == [True, True]
        assert pieces[0] == b"first" and b"".join(pieces) == b"firstsecond"

    run(scenario)


def test_close_delimited_body() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(answer(b"part one, ", "Content-Type: text/plain"))
            await asyncio.sleep(0.02)
            await peer.send(b"part two")
            peer.close()

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            assert (await fetch(pool, server.url))[2] == b"part one, part two"
            assert pool.in_use == 0
            assert (await fetch(pool, server.url))[2] == b"part one, part two"
            pool.close()
        assert server.connections == 2

    run(scenario)


def test_connection_close_answer_is_not_reused() -> None:
    async def scenario() -> None:
        # The server would read another request on the same connection: only the
        # header says not to send one.
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(sized(b"bye", "Connection: close"))) as server:
            await fetch(pool, server.url)
            await fetch(pool, server.url)
            await closed_by_client(server)
            pool.close()
        assert server.connections == 2 and len(server.on(1)) == 1 and len(server.on(2)) == 1

    run(scenario)


# --- content encodings ------------------------------------------------------------------


def test_gzip_body_is_decoded() -> None:
    text = b'{"choices":[{"text":"compressible"}]}' * 200
    packed = gzip.compress(text)

    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(sized(packed, "Content-Encoding: gzip"))) as server:
            status, _, body = await fetch(pool, server.url)
            pool.close()
        assert status == 200 and body == text
        assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"

    run(scenario)


def test_deflate_stream_is_decoded_by_chunks() -> None:
    text = b"data: token\n\n" * 500
    packed = zlib.compress(text)
    raw = answer(b"", "Transfer-Encoding: chunked", "Content-Encoding: deflate")
    half = len(packed) // 2
    raw += chunk(packed[:half]) + chunk(packed[half:]) + LAST_CHUNK

    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(raw)) as server:
            async with await pool.post(server.url, PAYLOAD, soon()) as response:
                body = b"".join([piece async for piece in response.chunks()])
            pool.close()
        assert body == text

    run(scenario)


def test_unknown_content_encoding_is_a_broken_body() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(sized(b"\x8b\x02\x80hi\x03", "Content-Encoding: br"))) as server:
            with pytest.raises(BrokenBodyError):
                async with await pool.post(server.url, PAYLOAD, soon()) as response:
                    await response.read()
            assert pool.in_use == 0
            pool.close()

    run(scenario)


def test_undecodable_gzip_is_a_broken_body() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        raw = sized(b"this is not gzip at all", "Content-Encoding: gzip")
        async with serve(always(raw)) as server:
            with pytest.raises(BrokenBodyError):
                async with await pool.post(server.url, PAYLOAD, soon()) as response:
                    await response.read()
            pool.close()

    run(scenario)


# --- broken and malformed answers -------------------------------------------------------


def test_close_before_any_answer_is_disconnected() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            peer.close()

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            with pytest.raises(DisconnectedError):
                await pool.post(server.url, PAYLOAD, soon())
            assert pool.in_use == 0
            pool.close()
        # A fresh connection is not retried: the upstream may have acted on the request.
        assert server.connections == 1 and len(server.requests) == 1

    run(scenario)


def test_close_inside_a_sized_body_is_a_broken_body() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(answer(b"0123456789", "Content-Length: 100"))
            peer.close()

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            async with await pool.post(server.url, PAYLOAD, soon()) as response:
                assert response.status == 200
                with pytest.raises(BrokenBodyError):
                    await response.read()
            assert pool.in_use == 0
            pool.close()

    run(scenario)


def test_close_inside_a_chunked_body_is_a_broken_body() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(CHUNKED_HEAD, chunk(b"first"), b"10\r\nonly half")
            peer.close()

        pool = Pool(HEADERS, LIMITS)
        pieces: list[bytes] = []
        async with serve(handler) as server:
            async with await pool.post(server.url, PAYLOAD, soon()) as response:
                with pytest.raises(BrokenBodyError):
                    async for piece in response.chunks():
                        pieces.append(piece)
            pool.close()
        assert b"".join(pieces).startswith(b"first")

    run(scenario)


def test_close_inside_a_capitalised_chunked_body_is_a_broken_body() -> None:
    # Transfer codings are case-insensitive (RFC 9112 §7); the parser decodes "Chunked".
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(answer(b"", "Transfer-Encoding: Chunked"), chunk(b"first"))
            peer.close()

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            async with await pool.post(server.url, PAYLOAD, soon()) as response:
                with pytest.raises(BrokenBodyError):
                    await response.read()
            pool.close()

    run(scenario)


def test_garbage_is_malformed() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(b"hello\r\n\r\n")) as server:
            with pytest.raises(MalformedResponseError):
                await pool.post(server.url, PAYLOAD, soon())
            assert pool.in_use == 0
            await closed_by_client(server)
            pool.close()

    run(scenario)


def test_interim_100_continue_is_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n" + sized(b"real", "X-Real: yes")

    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            while await peer.request() is not None:
                await peer.send(raw[:40])  # the interim answer and the start of the real one
                await asyncio.sleep(0.01)
                await peer.send(raw[40:])

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            for _ in range(2):
                status, headers, body = await fetch(pool, server.url)
                assert status == 200 and body == b"real"
                assert headers["x-real"] == "yes" and "x-interim" not in headers
            pool.close()
        assert server.connections == 1

    run(scenario)


# --- stale pooled connections -----------------------------------------------------------


def test_a_pooled_connection_closed_while_idle_is_replaced() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(sized(b"ok"))
            if peer.index == 1:
                await asyncio.sleep(0.02)
                peer.close()  # the upstream's idle timeout, between two requests
                return
            await peer.until_eof()

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            assert (await fetch(pool, server.url))[2] == b"ok"
            await asyncio.sleep(0.1)
            assert (await fetch(pool, server.url))[2] == b"ok"
            pool.close()
        assert server.connections == 2

    run(scenario)


def test_a_request_crossing_the_upstream_close_is_sent_again() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(sized(b"ok"))
            if await peer.request() is not None and peer.index == 1:
                peer.close()  # closed as the second request arrived: nothing answered
                return
            await peer.send(sized(b"ok"))
            await peer.until_eof()

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            await fetch(pool, server.url)
            assert (await fetch(pool, server.url))[2] == b"ok"
            assert pool.in_use == 0
            pool.close()
        assert server.connections == 2 and len(server.on(1)) == 2 and len(server.on(2)) == 1

    run(scenario)


def two_pooled_then_dropped(fresh: bytes | None) -> Handler:
    """Connections 1 and 2 answer once, then drop their next request unanswered; later
    connections answer `fresh`, or drop their request too when it is None."""

    async def handler(peer: Peer) -> None:
        if peer.index <= 2:
            await peer.request()
            await peer.send(sized(b"ok"))
        await peer.request()
        if peer.index <= 2 or fresh is None:
            peer.close()
            return
        await peer.send(fresh)
        await peer.until_eof()

    return handler


async def pool_two_connections(pool: Pool, url: str) -> None:
    first = await pool.post(url, PAYLOAD, soon())
    second = await pool.post(url, PAYLOAD, soon())  # while the first is out: a second one
    assert await first.read() == b"ok" and await second.read() == b"ok"


def test_a_request_is_sent_at_most_twice() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(two_pooled_then_dropped(None)) as server:
            await pool_two_connections(pool, server.url)
            with pytest.raises(DisconnectedError):
                await pool.post(server.url, PAYLOAD, soon())
            assert pool.in_use == 0
            pool.close()
        assert len(server.requests[2:]) <= 2

    run(scenario)


def test_the_second_attempt_goes_on_a_fresh_connection() -> None:
    # pool.py, Pool.post: "...so the request goes once more on a fresh connection."
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(two_pooled_then_dropped(sized(b"fresh"))) as server:
            await pool_two_connections(pool, server.url)
            assert (await fetch(pool, server.url))[2] == b"fresh"
            pool.close()
        assert len(server.requests[2:]) == 2 and server.requests[-1].connection == 3

    run(scenario)


def test_bytes_on_an_idle_connection_discard_it() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(sized(b"ok"))
            if peer.index == 1:  # then, unasked, the start of another answer
                await asyncio.sleep(0.02)
                await peer.send(b"HTTP/1.1 200 OK\r\nContent-Le")
            while await peer.request() is not None:
                await peer.send(sized(b"ok"))

        pool = Pool(HEADERS, LIMITS)
        async with serve(handler) as server:
            assert (await fetch(pool, server.url))[2] == b"ok"
            await asyncio.sleep(0.1)
            assert (await fetch(pool, server.url))[2] == b"ok"
            await closed_by_client(server)
            pool.close()
        assert server.connections == 2 and len(server.on(1)) == 1

    run(scenario)


# --- timeouts and cancellation ----------------------------------------------------------


async def silent(peer: Peer) -> None:
    await peer.request()
    await peer.until_eof()


def test_no_answer_times_out_at_first_byte() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, Limits(connect=1.0, first_byte=0.2, idle=1.0))
        async with serve(silent) as server:
            start = now()
            with pytest.raises(TimeoutError):
                await pool.post(server.url, PAYLOAD, soon())
            elapsed = now() - start
            assert pool.in_use == 0
            await closed_by_client(server)
            pool.close()
        assert 0.19 <= elapsed < 1.2

    run(scenario)


def test_a_stalled_body_times_out_at_idle() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(answer(b"abc", "Content-Length: 10"))
            await peer.until_eof()

        pool = Pool(HEADERS, Limits(connect=1.0, first_byte=1.0, idle=0.2))
        async with serve(handler) as server:
            async with await pool.post(server.url, PAYLOAD, soon()) as response:
                start = now()
                with pytest.raises(TimeoutError):
                    await response.read()
                elapsed = now() - start
            assert pool.in_use == 0
            await closed_by_client(server)
            pool.close()
        assert 0.19 <= elapsed < 1.2

    run(scenario)


def test_a_stream_outliving_the_idle_limit_times_out_only_when_it_stalls() -> None:
    """One timer per connection: it fires early while reads keep coming, and re-arms."""

    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(CHUNKED_HEAD)
            for _ in range(12):  # 0.6 s of reads, three times the idle limit
                await peer.send(chunk(b"."))
                await asyncio.sleep(0.05)
            await peer.until_eof()  # then silence

        pool = Pool(HEADERS, Limits(connect=1.0, first_byte=1.0, idle=0.2))
        async with serve(handler) as server:
            received = 0
            last = now()
            async with await pool.post(server.url, PAYLOAD, soon(), stream=True) as response:
                with pytest.raises(TimeoutError):
                    async for piece in response.chunks():
                        received += len(piece)
                        last = now()
            stalled = now() - last
            assert pool.in_use == 0
            await closed_by_client(server)
            pool.close()
        assert received == 12
        assert 0.19 <= stalled < 0.6

    run(scenario)


def test_a_deadline_between_clock_ticks_does_not_spin() -> None:
    """uvloop keeps time in whole milliseconds: a timer re-armed for less than that fires
    again at once, over and over, until its clock ticks."""
    checks = 0

    class Counting(http1_connection.Connection):
        def _check_deadline(self) -> None:
            nonlocal checks
            checks += 1
            super()._check_deadline()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        conn = Counting(loop, ("http", "127.0.0.1", 1))
        for offset in (0.0504, 0.0207):
            start = loop.time()
            with pytest.raises(TimeoutError):
                await conn.wait(start + offset)
            assert loop.time() >= start + offset

    uvloop.run(scenario())
    assert checks <= 6  # at most three firings per deadline, not hundreds


def test_the_deadline_bounds_a_dripping_body() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(CHUNKED_HEAD)

            async def drip() -> None:
                while True:
                    await peer.send(chunk(b"."))
                    await asyncio.sleep(0.05)

            dripping = asyncio.create_task(drip())
            try:
                await peer.until_eof()
            finally:
                dripping.cancel()

        pool = Pool(HEADERS, Limits(connect=1.0, first_byte=1.0, idle=1.0))
        async with serve(handler) as server:
            start = now()
            async with await pool.post(server.url, PAYLOAD, start + 0.3) as response:
                with pytest.raises(TimeoutError):
                    await response.read()
            elapsed = now() - start
            assert pool.in_use == 0
            await closed_by_client(server)
            pool.close()
        assert 0.29 <= elapsed < 0.8  # the deadline, well before the 1 s idle limit

    run(scenario)


def test_cancelling_a_reader_closes_the_connection() -> None:
    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(answer(b"abc", "Content-Length: 10"))
            await peer.until_eof()

        pool = Pool(HEADERS, LIMITS)
        reading = asyncio.Event()

        async def reader(url: str) -> bytes:
            async with await pool.post(url, PAYLOAD, soon()) as response:
                reading.set()
                return await response.read()

        async with serve(handler) as server:
            task = asyncio.create_task(reader(server.url))
            await asyncio.wait_for(reading.wait(), 1.0)
            await asyncio.sleep(0.05)
            assert pool.in_use == 1 and not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool.in_use == 0
            await closed_by_client(server)
            pool.close()

    run(scenario)


# --- polling for fast answers (spin.py) -------------------------------------------------

POLLING = Limits(connect=1.0, first_byte=1.0, idle=1.0, spin=0.005)


def by_path(slow: dict[str, float], *, stall_after: int | None = None) -> Handler:
    """Answer `ok` at once, or after `slow[path]` seconds; go silent after N requests."""

    async def handler(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            if stall_after is not None and len(peer.server.requests) > stall_after:
                await peer.until_eof()
                return
            await asyncio.sleep(slow.get(request.line.split()[1], 0.0))
            await peer.send(sized(b"ok"))

    return handler


def test_the_poll_window_is_learnt_per_url() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, POLLING)
        async with serve(by_path({"/slow": 0.02})) as server:
            fast, slow = server.url + "/fast", server.url + "/slow"
            assert pool.poll_window(fast) == pool.poll_window(slow) == 0.0
            for _ in range(8):
                assert (await fetch(pool, fast))[2] == b"ok"
                assert (await fetch(pool, slow))[2] == b"ok"
            pool.close()
        assert 0 < pool.poll_window(fast) <= POLLING.spin
        assert pool.poll_window(slow) == 0.0  # 20 ms answers are not worth polling for

    run(scenario)


def test_no_polling_when_the_limit_is_zero() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(by_path({})) as server:
            for _ in range(8):
                await fetch(pool, server.url)
            pool.close()
        assert LIMITS.spin == 0.0 and pool.poll_window(server.url) == 0.0

    run(scenario)


def test_an_upstream_turning_slow_stops_being_polled_for() -> None:
    async def scenario() -> None:
        slow: dict[str, float] = {}
        pool = Pool(HEADERS, POLLING)
        async with serve(by_path(slow)) as server:
            for _ in range(8):
                await fetch(pool, server.url + "/")
            assert pool.poll_window(server.url + "/") > 0
            slow["/"] = 0.01
            for _ in range(8):
                await fetch(pool, server.url + "/")
            pool.close()
        assert pool.poll_window(server.url + "/") == 0.0

    run(scenario)


def test_the_loop_polls_for_a_due_answer_within_the_window_and_times_out_as_usual() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, Limits(connect=1.0, first_byte=0.2, idle=1.0, spin=0.005))
        async with serve(by_path({}, stall_after=8)) as server:
            for _ in range(8):
                await fetch(pool, server.url)
            window = pool.poll_window(server.url)
            assert window > 0
            start = now()
            call = asyncio.create_task(pool.post(server.url, PAYLOAD, soon()))
            await asyncio.sleep(0)
            await asyncio.sleep(0)  # the request is out; its answer is due
            assert pool.polling
            await asyncio.sleep(window + 0.002)
            assert not pool.polling  # the window is over: the loop sleeps until the timeout
            with pytest.raises(TimeoutError):
                await call
            elapsed = now() - start
            assert pool.in_use == 0
            pool.close()
        assert 0.19 <= elapsed < 1.2

    run(scenario)


# --- refusals ---------------------------------------------------------------------------


def test_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        with pytest.raises(ConnectError):
            await pool.post(f"http://127.0.0.1:{port}/v1", PAYLOAD, soon())
        assert pool.in_use == 0
        pool.close()

    run(scenario)


def test_bad_urls_and_headers_are_refused() -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(sized(b"ok"))) as server:
            with pytest.raises(ConnectError):
                await pool.post(f"ftp://127.0.0.1:{server.port}/file", PAYLOAD, soon())
            with pytest.raises(ConnectError):
                await pool.post(server.url + "/a path", PAYLOAD, soon())
            assert pool.in_use == 0
            pool.close()
            with pytest.raises(ConnectError):  # a closed pool makes no new connection
                await pool.post(server.url, PAYLOAD, soon())
        assert server.connections == 0

    run(scenario)
    with pytest.raises(ValueError, match="invalid upstream header"):
        Pool({"X-Evil": "a\r\nInjected: yes"}, LIMITS)


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "/usr/bin/openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_tls_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        trusting = ssl.create_default_context(cafile=str(certificate[0]))
        pool = Pool(HEADERS, LIMITS, tls=trusting)
        async with serve(always(sized(b"secret")), tls=server_tls(certificate)) as server:
            assert server.url.startswith("https://")
            status, headers, body = await fetch(pool, server.url + "/v1")
            assert status == 200 and headers == {"content-length": "6"} and body == b"secret"
            assert (await fetch(pool, server.url + "/v1"))[2] == b"secret"
            pool.close()
        assert server.connections == 1
        assert server.requests[0].headers["host"] == f"127.0.0.1:{server.port}"

    run(scenario)


def test_tls_with_an_untrusted_certificate(certificate: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)  # the system's trust store
        async with serve(always(sized(b"secret")), tls=server_tls(certificate)) as server:
            with pytest.raises(ConnectError):
                await pool.post(server.url, PAYLOAD, soon())
            assert pool.in_use == 0
            pool.close()
        assert server.requests == []

    run(scenario)


# --- flow control and size --------------------------------------------------------------


def test_a_large_stream_read_slowly_arrives_intact() -> None:
    data = os.urandom(3 << 20)
    assert len(data) > 2 * http1_connection.PAUSE_BYTES

    async def scenario() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(answer(b"", f"Content-Length: {len(data)}"))
            for at in range(0, len(data), 64 << 10):
                await peer.send(data[at : at + (64 << 10)])
            await peer.until_eof()

        pool = Pool(HEADERS, LIMITS)
        pieces: list[bytes] = []
        async with serve(handler) as server:
            async with await pool.post(server.url, PAYLOAD, soon()) as response:
                async for piece in response.chunks():
                    pieces.append(piece)
                    # A slow reader: the first pause lets more than PAUSE_BYTES pile up.
                    await asyncio.sleep(0.2 if len(pieces) == 1 else 0.002)
            assert pool.in_use == 0
            pool.close()
        assert len(pieces) > 1 and b"".join(pieces) == data

    run(scenario)


def test_a_whole_answer_over_the_size_limit_is_a_broken_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http1_connection, "MAX_BODY_BYTES", 1000)

    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(sized(b"x" * 1001))) as server:
            with pytest.raises(BrokenBodyError):
                await fetch(pool, server.url)
            pool.close()

    run(scenario)


def test_a_streamed_answer_is_not_capped_like_a_whole_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # connection.py: MAX_BODY_BYTES bounds "a whole (non-streamed) answer"; a body posted
    # with stream=True is consumed as it arrives and is not held in memory.
    monkeypatch.setattr(http1_connection, "MAX_BODY_BYTES", 1000)
    data = b"data: x\n\n" * 1000

    async def scenario() -> None:
        pool = Pool(HEADERS, LIMITS)
        async with serve(always(sized(data))) as server:
            async with await pool.post(server.url, PAYLOAD, soon(), stream=True) as response:
                streamed = b"".join([piece async for piece in response.chunks()])
            pool.close()
        assert streamed == data

    run(scenario)
