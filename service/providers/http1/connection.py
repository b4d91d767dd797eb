"""One upstream connection: writes requests, parses answers, wakes the one task reading it.

The parser's callbacks run inside `data_received`; they only store what arrived and wake
the reader's future, so an answer costs one wake-up for its headers and one per later
read, with no task, queue or stream reader per response.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from typing import cast

import httptools

from service.providers.http1.errors import (
    BrokenBodyError,
    DisconnectedError,
    MalformedResponseError,
    TransportError,
)

# A stream's unread body above this pauses the socket until the reader catches up.
PAUSE_BYTES = 1 << 20
# A whole (non-streamed) answer above this is refused rather than held in memory.
MAX_BODY_BYTES = 256 << 20
# uvloop's time and timers move in whole milliseconds.
CLOCK_GRAIN = 0.001


class Connection(asyncio.Protocol):
    """State of the answer in flight; `Pool` and `Response` drive it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: tuple[str, str, int]) -> None:
        self._loop = loop
        self.origin = origin
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        # One timer per connection, not one per read: each read of a stream only moves
        # `_deadline` later, and the timer, when it fires early, re-arms for the rest.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._chunks: deque[bytes] = deque()
        self._decoder: zlib._Decompress | None = None
        self.closed = False
        self.busy = False  # a request was sent and its answer is not over
        self.idle_since = 0.0
        self.streaming = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received = 0
        self.error: TransportError | None = None
        self._chunks.clear()
        self._buffered = 0
        self._body_bytes = 0
        self._decoder = None
        self._framed = False  # Content-Length or chunked: end of stream is not end of body
        self._paused = False
        self.streaming = False

    # -- driven by Pool and Response --------------------------------------------------

    def send(self, head: bytes, body: bytes, *, streaming: bool) -> None:
        assert self._transport is not None
        self._reset()
        self.busy = True
        self.streaming = streaming
        self._transport.writelines((head, body))

    async def wait(self, deadline: float) -> None:
        """Until the parser has news; `TimeoutError` at `deadline` (loop time)."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._deadline = deadline
        if self._timer is None or self._timer_at > deadline + CLOCK_GRAIN:
            self._arm(deadline)
        try:
            await waiter
        finally:
            self._waiter = None

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._check_deadline)
        self._timer_at = when

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nobody waits now: the next `wait` arms a timer again
        now = self._loop.time()
        if now >= self._deadline:
            waiter.set_exception(TimeoutError())
        else:
            # Not sooner than the clock's grain: uvloop keeps time and timers in whole
            # milliseconds, so a shorter re-arm would fire again at once, and again, until
            # its clock ticks. A deadline is met at most one grain late.
            self._arm(max(self._deadline, now + CLOCK_GRAIN))

    def disarm(self) -> None:
        """Drop the deadline timer: the answer is over (pooled or closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def take(self) -> bytes | None:
        """The oldest unread body chunk, or None when nothing is buffered."""
        if not self._chunks:
            return None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < PAUSE_BYTES // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    def take_all(self) -> bytes:
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and self.error is None and not self.closed

    def close(self) -> None:
        self.closed = True
        self.busy = False
        self.disarm()
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raised in its own error; ours come first.
            cause = exc.__context__
            if isinstance(cause, TransportError):
                self._fail(cause)
            else:
                self._fail(MalformedResponseError(f"unparsable answer: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and not self.complete and self.error is None:
            if self.headers_done and not self._framed:
                self.complete = True  # a body delimited by the end of the connection
                self.keep_alive = False
            elif self.headers_done:
                self.error = BrokenBodyError("the connection closed in the middle of the body")
            else:
                self.error = DisconnectedError("the connection closed before an answer")
        self._wake()

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim answers (we send no Expect): wait for the real one
            self.headers = {}
            return
        self.status = status
        self.headers_done = True
        headers = self.headers
        self._framed = "content-length" in headers or "chunked" in (
            headers.get("transfer-encoding", "").lower()
        )
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(47)  # gzip or zlib-wrapped, detected
        elif encoding not in ("identity", ""):
            raise BrokenBodyError(f"unsupported content-encoding {encoding!r}")
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            # Bounded output: a small compressed read must not expand without limit.
            room = MAX_BODY_BYTES + 1 - (0 if self.streaming else self._body_bytes)
            try:
                body = self._decoder.decompress(body, max(room, 1))
            except zlib.error as exc:
                raise BrokenBodyError(f"undecodable body: {exc}") from None
            if self._decoder.unconsumed_tail:
                raise BrokenBodyError("the answer expands beyond the size limit")
        if not self.streaming:  # a stream is read as it comes: only whole answers are held
            self._body_bytes += len(body)
            if self._body_bytes > MAX_BODY_BYTES:
                raise BrokenBodyError("the answer exceeds the size limit")
        self._chunks.append(body)
        self._buffered += len(body)
        if self.streaming and not self._paused and self._buffered > PAUSE_BYTES:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:
            return  # the end of an interim answer
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
                self._buffered += len(tail)
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # -- internals ----------------------------------------------------------------------

    def _fail(self, error: TransportError) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
