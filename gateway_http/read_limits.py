"""How long and how much a client may take to send a request.

uvicorn waits for a request as long as its client likes: a head that stops half way, a
body that goes silent or trickles a byte at a time, holds a connection (and any task
waiting on the body) forever, and a head is buffered however large it grows. Here,
after nginx's `client_header_timeout` / `client_body_timeout` and Apache's
`mod_reqtimeout` (whose `MinRate` cuts the trickle nginx lets through):

- the head (request line and headers) must be complete within `header_timeout` of its
  first byte, or of the accept for a connection's first request;
- the body may not go silent for `body_timeout` between two reads, and must keep up an
  average of `body_min_rate` bytes a second after a grace of `body_timeout`;
- the head may not exceed `max_head_bytes`, counted as the bytes arrive.

A request that can still be answered gets 408 or 431 in the contract's error shape, with
`connection: close`; otherwise (a response already under way) the connection is closed.
After a refusal the connection lingers, discarding input, until the client closes or
`linger` seconds pass, so that a client still writing its request reads the answer
instead of a reset.

Time is kept by one timer per connection, armed only when a read leaves a request
incomplete, pushed back lazily (each read only notes its time; the timer re-arms itself
when it fires early) and cancelled when the request is complete. A request that arrives
in one read costs a few attribute stores and no clock read. Time during which the server
itself stopped reading (flow control, a pipelined request waiting its turn, a client
waiting for `100 Continue`) never counts against the client: its clock restarts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from gateway_http.errors import HttpError
from gateway_http.wire import request_id

log = logging.getLogger("switchyard.http")

# What a connection waits for, as of the end of its last read. WAIT: no request pending
# (between requests, or before the first); HEAD: a head has begun and is incomplete;
# BODY: the head is complete and the body is not; CLOSING: a refusal was sent, input is
# discarded until the close. Outside WAIT, the connection's timer is always armed.
WAIT, HEAD, BODY, CLOSING = range(4)

# A timer may fire a little before its time (clock resolution): within this, it is due.
_SLACK = 0.002


class ReadLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read timeouts and a cap on the request head.

    The limits are class attributes, so that a server (or a test) can run a subclass with
    other values. Defaults and why:

    - `header_timeout` 20 s, `body_timeout` 20 s: Apache's defaults (nginx uses 60 s,
      sized for browsers on slow links). A head is a few KB that a client writes at once;
      20 s covers several TCP retransmission back-offs (1 + 2 + 4 + 8 s) on a lossy link,
      and our clients are programs, not people typing.
    - `body_min_rate` 500 bytes/s: Apache's `MinRate`. Only a trickle falls under it: a
      32 MiB body (the largest we take) at that rate would take 18 hours.
    - `max_head_bytes` 64 KiB: the common servers' order of magnitude (nginx 4 x 8 KiB,
      Kestrel 32 KiB, Go 1 MiB); no API client of ours sends more than a few KB.
    - `linger` 5 s: nginx's `lingering_timeout`.
    """

    header_timeout: float = 20.0
    body_timeout: float = 20.0
    body_min_rate: float = 500.0
    max_head_bytes: int = 64 * 1024
    linger: float = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set here, not on first use, so that the instance keeps Python's compact
        # attribute layout (and uvicorn's own attributes their fast access).
        self._phase = WAIT
        # Bytes of the pending head seen so far (the reads that held only the head).
        self._head_bytes = 0
        self._accepted = 0.0
        self._started = 0.0  # when the current phase's clock started
        self._last_read = 0.0
        self._body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._held = False  # the server held the request up when the timer last fired

    # The connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._accepted = self.loop.time()
        self._arm(self._accepted + self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self) -> None:
        if self._phase == CLOSING:
            self.transport.close()  # a refused connection has nothing left to finish
        else:
            super().shutdown()

    def data_received(self, data: bytes) -> None:
        # What the parser has done is read from uvicorn's own state, without a callback
        # of ours per request: `scope` is the last request begun, `cycle` the last whose
        # head is complete (so `cycle.scope is scope` when no head is pending), and
        # `cycle.more_body` is cleared when its body is complete.
        before = self.cycle
        if self._phase != BODY and self._head_bytes + len(data) > self.max_head_bytes:
            self._receive_capped(data, before)
        else:
            super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and not cycle.more_body:
            # Every request read so far is whole: nothing to time (the common case).
            if self._timer is not None:
                self._whole()
            return
        self._partial(len(data), before)

    def _receive_capped(self, data: bytes, before: RequestResponseCycle | None) -> None:
        """Feed a read that may carry the head past its cap: up to the cap first, so that
        a head found still incomplete there is refused before any more of it is parsed."""
        if self._phase == CLOSING:
            return  # discarded: the refusal is sent
        room = self.max_head_bytes - self._head_bytes
        view = memoryview(data)
        if room > 0:
            super().data_received(view[:room])  # type: ignore[arg-type]
            if self.transport.is_closing():
                return  # refused by uvicorn (a malformed request)
        cycle = self.cycle
        if self._head_pending() and cycle is before:
            # No head was completed in these bytes: the head that began at or before the
            # start of this read is longer than the cap.
            log.info("refused a request head over %d bytes", self.max_head_bytes)
            self._refuse_head(
                HttpError(
                    431,
                    "invalid_request_error",
                    f"The request line and headers exceed {self.max_head_bytes} bytes.",
                )
            )
            return
        super().data_received(view[room:])  # type: ignore[arg-type]

    def _head_pending(self) -> bool:
        """Whether a request has begun whose head is not complete."""
        cycle = self.cycle
        return self.scope is not None and (cycle is None or cycle.scope is not self.scope)

    def _whole(self) -> None:
        """The requests read so far are whole: stop their clock."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = WAIT
        self._head_bytes = 0

    def _partial(self, size: int, before: RequestResponseCycle | None) -> None:
        """A read of `size` bytes left a request incomplete: note it and arm the timer.
        `before` is the cycle before the read: a head completed in it if it changed."""
        phase = self._phase
        if phase == CLOSING or self.scope is None:
            return  # refused; or nothing but blank lines yet (the accept's clock runs)
        now = self.loop.time()
        if self._head_pending():
            if phase == HEAD and self.cycle is before:  # the same head as before the read
                self._head_bytes += size
            else:
                # A head that began in this read: counted whole if it began where the read
                # did, else (after another request ended in the read) from the next read.
                began_at_start = phase == WAIT and self.cycle is before
                self._head_bytes = size if began_at_start else 0
                self._phase = HEAD
                self._started = now
                self._held = False
        elif self.cycle is not before or phase != BODY:  # a body that began in this read
            self._phase = BODY
            self._head_bytes = 0
            self._body_bytes = 0
            self._started = now
            self._held = False
        else:
            self._body_bytes += size
        self._last_read = now
        self._arm(self._due())

    def _due(self) -> float:
        """When the time for the current phase (HEAD, BODY or CLOSING) runs out."""
        if self._phase == CLOSING:
            return self._started + self.linger
        if self._phase == HEAD:
            due = self._started + self.header_timeout
            if self.cycle is None:  # the connection's first request: timed from the accept
                due = min(due, self._accepted + self.header_timeout)
            return due
        due = self._last_read + self.body_timeout
        if self.body_min_rate > 0:
            budget = self.body_timeout + self._body_bytes / self.body_min_rate
            due = min(due, self._started + budget)
        return due

    def _arm(self, due: float) -> None:
        """Have the timer fire by `due`: an earlier one is kept (it re-arms when it fires)."""
        timer = self._timer
        if timer is not None:
            if self._timer_due <= due:
                return
            timer.cancel()
        self._timer_due = due
        self._timer = self.loop.call_at(due, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        phase = self._phase
        if phase == WAIT:
            if self.cycle is None:
                self.transport.close()  # a connection that never sent a request
            return  # else idle between requests: uvicorn's keep-alive timer has it
        now = self.loop.time()
        waits = phase != CLOSING and self._server_waits()
        if waits or self._held:
            # The client cannot send, or waits for our go-ahead, or did until lately: its
            # clock restarts, so that it has a whole period once the server is ready.
            self._held = waits
            self._started = self._last_read = now
            self._body_bytes = 0
            self._arm(self._due())
            return
        due = self._due()
        if now + _SLACK < due:
            self._arm(due)
            return
        if phase == CLOSING:
            self.transport.close()  # lingered long enough
        elif phase == HEAD:
            log.info("request head not complete within %g s", self.header_timeout)
            self._refuse_head(
                HttpError(408, "timeout_error", "The request headers were not received in time.")
            )
        else:
            self._body_timed_out()

    def _server_waits(self) -> bool:
        """Whether the server, not the client, holds up the request: reading is paused
        (flow control, a pipelined request waiting its turn) or the client waits for
        `100 Continue`, which goes out when the app first asks for the body."""
        if self.flow.read_paused:
            return True
        cycle = self.cycle
        return self._phase == BODY and cycle is not None and cycle.waiting_for_100_continue

    # Refusals

    def _refuse_head(self, err: HttpError) -> None:
        """Answer a request whose head is incomplete, unless a response is under way."""
        previous = self.cycle
        if self.pipeline or (previous is not None and not previous.response_complete):
            self.transport.close()  # an answer now would land inside another response
            return
        self._refuse(err, request_id({"headers": self.headers or []}))

    def _body_timed_out(self) -> None:
        cycle = self.cycle
        if cycle.response_complete:
            # Answered without its whole body (uvicorn then never marks the body done):
            # whether the rest is slow or was never coming, the connection is done.
            self.transport.close()
            return
        log.info("request body stalled or below %g bytes/s", self.body_min_rate)
        if self.pipeline or cycle.response_started or cycle.disconnected:
            self.transport.close()  # this request's answer, or another's, is under way
            return
        # The app is waiting for the body (or has yet to ask): from here it reads
        # `http.disconnect`, and anything it sends is dropped.
        cycle.disconnected = True
        cycle.keep_alive = False
        cycle.message_event.set()
        self._refuse(
            HttpError(408, "timeout_error", "The request body was not received in time."),
            request_id({"headers": cycle.scope["headers"]}),
        )

    def _refuse(self, err: HttpError, rid: str) -> None:
        """Send `err` with `connection: close`, then linger until the client closes."""
        self._phase = CLOSING
        self._held = False
        self._head_bytes = self.max_head_bytes  # every later read is discarded
        self._unset_keepalive_if_required()
        body = err.render()
        head = [STATUS_LINE[err.status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\nx-request-id: %s\r\n\r\n" % (len(body), rid.encode())
        )
        head.append(body)
        transport = self.transport
        transport.write(b"".join(head))
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.flow.resume_reading()
        self._started = self.loop.time()
        self._arm(self._due())
