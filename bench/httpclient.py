"""A minimal keep-alive HTTP/1.1 client on asyncio.Protocol and httptools.

Why not aiohttp or httpx: the load driver shares a core with the mock upstream, and
its own cost per request must stay far below the gateway's. A protocol callback per
read and a C parser keep it to tens of microseconds. Timestamps are taken in
`data_received`, the first moment Python sees the bytes, with `time.perf_counter`; the
send time is taken just before the request is written, so connection set-up and client
scheduling lag are never counted as server latency.

For server-sent events, each `data:` event that carries choices is timestamped on
arrival (usage-only chunks, comments and `[DONE]` are not: they are not tokens); of
Anthropic's named events (/v1/messages), each `content_block_delta`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import httptools


class HttpError(Exception):
    """The connection failed or closed before a complete response arrived."""


@dataclass(slots=True)
class Reply:
    status: int
    sent: float  # perf_counter just before the request was written
    done: float  # perf_counter when the last byte was parsed
    events: list[float] = field(default_factory=list)  # SSE: arrival of each choices event
    body: bytes = b""  # non-SSE bodies (and error bodies)
    stream_error: bool = False  # an in-stream error event (finish_reason "error")


def build_request(host: str, port: int, path: str, body: bytes, key: str) -> bytes:
    """A pre-encoded POST, sent as is for every request of a run."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Reply] | None = None
        self._reply: Reply | None = None
        self._sse = False
        self._buffer = bytearray()
        self._body: list[bytes] = []
        self._now = 0.0
        self.keep_alive = True

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    @property
    def usable(self) -> bool:
        return self.keep_alive and self._transport is not None and not self._transport.is_closing()

    async def request(self, payload: bytes, *, sse: bool) -> Reply:
        if self._transport is None or self._waiter is not None:
            raise HttpError("connection not ready")
        self._waiter = asyncio.get_running_loop().create_future()
        self._sse = sse
        self._buffer.clear()
        self._body.clear()
        self._reply = Reply(status=0, sent=time.perf_counter(), done=0.0)
        self._transport.write(payload)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._now = time.perf_counter()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"bad response: {exc}")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(f"connection closed: {exc or 'by peer'}")

    # httptools callbacks
    def on_headers_complete(self) -> None:
        if self._reply is not None:
            self._reply.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self._sse and self._reply is not None and self._reply.status == 200:
            self._scan_events(body, self._reply)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        reply, waiter = self._reply, self._waiter
        if reply is None or waiter is None or waiter.done():
            return
        reply.done = self._now
        reply.body = b"".join(self._body)
        waiter.set_result(reply)
        self._reply = None

    # helpers
    def _scan_events(self, body: bytes, reply: Reply) -> None:
        buffer = self._buffer
        buffer += body
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            event = bytes(buffer[start:end])
            start = end + 2
            if event.startswith(b"event: "):  # named events: /v1/messages, /v1/responses
                name = event[7 : event.find(b"\n")]
                if name == b"error":
                    reply.stream_error = True
                elif name in _TOKEN_EVENTS:
                    reply.events.append(self._now)
                continue
            if not event.startswith(b"data:") or event.startswith(b"data: [DONE]"):
                continue  # comments (keep-alives) and the terminator are not tokens
            if b'"finish_reason":"error"' in event:
                reply.stream_error = True
            if b'"choices":[]' not in event:
                reply.events.append(self._now)
        del buffer[:start]

    def _fail(self, message: str) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(message))


# The named events that carry tokens: Anthropic's text deltas, the Responses API's.
_TOKEN_EVENTS = frozenset({b"content_block_delta", b"response.output_text.delta"})


class Pool:
    """Idle keep-alive connections to one server; a new one is opened when none is idle."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[Connection] = []
        self._all: set[Connection] = set()

    async def acquire(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                return conn
            self._all.discard(conn)
        conn = await Connection.open(self.host, self.port)
        self._all.add(conn)
        return conn

    def release(self, conn: Connection, *, reusable: bool) -> None:
        if reusable and conn.usable:
            self._idle.append(conn)
        else:
            conn.close()
            self._all.discard(conn)

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()
