"""A Redis client for the limits' hot path: RESP over one asyncio connection, pipelined.

Why not redis-py here: every request of a limited key runs one script before its call
and queues two after it, and redis-py's asyncio client spends about 100 µs of CPU on
each EVALSHA (a pool checkout under a lock, command objects, its retry wrapper) around
some 20 µs of work: writing the command and reading the reply. Measured on the bench
machine, this client costs about 40 µs per call, round trip included.

Redis answers the commands of a connection in the order they came, so one connection
carries every caller's commands at once (the multiplexing of StackExchange.Redis):
a caller writes its command and waits for the reply at its place in the line; a
pipeline is one write and one wait for all of its replies. No pool, no checkout.
What callers send in one turn of the event loop leaves in one write at the turn's end
(auto-pipelining, as ioredis and redis-rs have it): on loopback a write also runs the
receiver's TCP path, and under load this took a further ~0.04 ms of CPU off each
request (A/B under wrk, 0.35 -> 0.30 ms), for one loop turn's wait. While a reply is
due the loop polls rather than sleeps, within a window learnt as for fast upstreams
(service/spin.py): at 50 req/s this took ~0.15 ms off the p50 that Redis adds.

Failures, as redis-py treats them: a reply later than `timeout` (the oldest command
still waiting sets the clock: replies come in order, so when it is late all are) or a
lost connection fails every waiting command with `UnreachableError` and closes the
connection; the next command connects again, within `connect_timeout`. A command that
timed out may still have run on the server, so callers retry only idempotent scripts.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import monotonic, perf_counter
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

from service.spin import Spinner, SpinWindow

# The longest the loop polls for a reply (the providers' `answer_poll` default); a
# Redis that answers later than this soon stops being polled for (service/spin.py).
ANSWER_POLL = 0.0005


class RedisError(Exception):
    """Anything that keeps a command from getting its answer."""


class ReplyError(RedisError):
    """Redis answered with an error (hiredis builds these for error replies)."""


class UnreachableError(RedisError):
    """The connection failed, was lost, or a reply did not come in time."""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA-1, run by EVALSHA (EVAL when the server lacks it)."""

    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Script:
        return cls(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())

    def command(self, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


@dataclass(frozen=True, slots=True)
class Address:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0


def parse_url(url: str) -> Address:
    """redis://[[user]:password@]host[:port][/db], rediss:// (TLS), unix:///path[?db=N]."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"expected redis://, rediss:// or unix://, not {parts.scheme}://")
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    path = parts.path.strip("/")
    db = query.get("db") or (path if parts.scheme != "unix" and path else "0")
    if not db.isdigit():
        raise ValueError(f"the Redis database must be a number, not {db!r}")
    return Address(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        path=parts.path if parts.scheme == "unix" else None,
        tls=parts.scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        db=int(db),
    )


class _Waiter:
    """One command or pipeline waiting for its replies."""

    __slots__ = ("future", "replies", "sent", "size")

    def __init__(self, future: asyncio.Future[Any], size: int, sent: float) -> None:
        self.future = future
        self.size = size  # 0: a single command, whose reply is the result itself
        self.replies: list[Any] = []
        self.sent = sent


class _Connection(asyncio.Protocol):
    """The replies of one connection, handed to the waiters in order; past them (a
    subscribed connection) to `on_push`."""

    def __init__(self, on_push: Callable[[Any], None] | None = None) -> None:
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiting: deque[_Waiter] = deque()
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] | None = None
        self.on_push = on_push
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                self._deliver(reply)
        except hiredis.ProtocolError:
            self.fail(UnreachableError("Redis sent something that is not RESP"))

    def _deliver(self, reply: Any) -> None:
        if not self.waiting:
            if self.on_push is None:
                raise hiredis.ProtocolError("a reply nobody asked for")
            self.on_push(reply)
            return
        waiter = self.waiting[0]
        if waiter.size:
            waiter.replies.append(reply)
            if len(waiter.replies) < waiter.size:
                return
            reply = waiter.replies
        self.waiting.popleft()
        if not waiter.future.done():  # its caller may have been cancelled
            waiter.future.set_result(reply)

    def send(self, data: bytes, size: int) -> asyncio.Future[Any]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append(_Waiter(future, size, monotonic()))
        if self._out is None:
            self._out = [data]
            loop.call_soon(self._flush)
        else:
            self._out.append(data)
        return future

    def _flush(self) -> None:
        """Write what this loop turn's callers sent, as one write (see the docstring)."""
        out, self._out = self._out, None
        if out and self.usable:
            assert self.transport is not None
            self.transport.write(b"".join(out))

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def fail(self, error: RedisError) -> None:
        """Fail every waiting command and close."""
        self._out = None
        while self.waiting:
            future = self.waiting.popleft().future
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.fail(UnreachableError(f"the connection to Redis was lost ({exc or 'closed'})"))
        if not self.closed.done():
            self.closed.set_result(None)


class RespClient:
    """One multiplexed connection for commands, and one per subscription."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 1.0,
        timeout: float = 2.0,
        answer_poll: float = ANSWER_POLL,
    ) -> None:
        self.address = parse_url(url)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._sources: dict[str, str] = {}  # sha -> source, for EVAL after a NOSCRIPT
        self._subscribed: list[_Connection] = []
        self._window = SpinWindow(answer_poll)  # how long a reply is worth polling for
        self._spinner: Spinner | None = None

    def script(self, source: str) -> Script:
        script = Script.of(source)
        self._sources[script.sha] = source
        return script

    # --- commands -------------------------------------------------------------------

    async def execute(self, *command: Any) -> Any:
        """One command's reply; ReplyError if it is an error."""
        reply = await self._send([command])
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        reply = await self._send([script.command(keys, args)])
        if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._send([("EVAL", script.source, len(keys), *keys, *args)])
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Every command's reply in order, errors as ReplyError values (not raised);
        EVALSHAs the server lacks are sent again as EVAL."""
        if not commands:
            return []
        replies: list[Any] = await self._send(commands, pipeline=True)
        again = [
            i
            for i, reply in enumerate(replies)
            if isinstance(reply, ReplyError)
            and str(reply).startswith("NOSCRIPT")
            and commands[i][1] in self._sources
        ]
        if again:
            evals = [("EVAL", self._sources[commands[i][1]], *commands[i][2:]) for i in again]
            for i, reply in zip(again, await self._send(evals, pipeline=True), strict=True):
                replies[i] = reply
        return replies

    async def _send(self, commands: Sequence[tuple[Any, ...]], pipeline: bool = False) -> Any:
        conn = self._conn
        if conn is None or not conn.usable:
            conn = await self._connect()
        data = b"".join(hiredis.pack_command(c) for c in commands)
        future = conn.send(data, len(commands) if pipeline else 0)
        loop = asyncio.get_running_loop()
        if self._watch is None:
            self._watch = loop.call_later(self.timeout, self._check)
        # While a reply is due within the learnt window, the loop polls instead of
        # sleeping in epoll (service/spin.py): Redis on the host or next to it answers
        # in about 0.1 ms, and the wake from a halted core cost more than that.
        window, spinner = self._window, None
        if window.seconds:
            spinner = self._spinner
            if spinner is None or spinner.loop is not loop:
                spinner = self._spinner = Spinner(loop)
            spinner.start(window.seconds)
        sent = perf_counter()
        try:
            return await future
        finally:
            if spinner is not None:
                spinner.stop()
            window.update(perf_counter() - sent)

    def _check(self) -> None:
        """The reply timeout, one timer for the connection (not one per command)."""
        self._watch = None
        conn = self._conn
        if conn is None or not conn.waiting:
            return
        late = monotonic() - conn.waiting[0].sent
        if late >= self.timeout:
            conn.fail(UnreachableError(f"Redis did not answer within {self.timeout:g} s"))
            return
        self._watch = asyncio.get_running_loop().call_later(self.timeout - late, self._check)

    # --- connections ----------------------------------------------------------------

    async def _connect(self) -> _Connection:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # callers arriving together share one attempt
            if self._conn is not None and self._conn.usable:
                return self._conn
            self._conn = await self._open()
            return self._conn

    async def _open(self, on_push: Callable[[Any], None] | None = None) -> _Connection:
        loop = asyncio.get_running_loop()
        where = self.address
        try:
            if where.path is not None:
                opening = loop.create_unix_connection(lambda: _Connection(on_push), where.path)
            else:
                tls = ssl.create_default_context() if where.tls else None
                opening = loop.create_connection(
                    lambda: _Connection(on_push), where.host, where.port, ssl=tls
                )
            _, conn = await asyncio.wait_for(opening, self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            raise UnreachableError(f"cannot connect to Redis: {why}") from None
        assert conn.transport is not None
        sock = conn.transport.get_extra_info("socket")
        if sock is not None and where.path is None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        hello: list[tuple[Any, ...]] = []
        if where.password is not None:
            auth = (where.username, where.password) if where.username else (where.password,)
            hello.append(("AUTH", *auth))
        if where.db:
            hello.append(("SELECT", where.db))
        if hello:
            data = b"".join(hiredis.pack_command(c) for c in hello)
            try:
                replies = await asyncio.wait_for(conn.send(data, len(hello)), self.timeout)
            except TimeoutError:
                conn.fail(UnreachableError("Redis did not answer AUTH/SELECT in time"))
                raise UnreachableError("Redis did not answer AUTH/SELECT in time") from None
            for reply in replies:
                if isinstance(reply, ReplyError):
                    conn.fail(UnreachableError(str(reply)))
                    raise reply
        return conn

    async def subscribe(self, channel: str, on_message: Callable[[bytes], None]) -> None:
        """Subscribe on a connection of its own; returns once subscribed, then calls
        `on_message` with each message's data. `closed()` tells when it is lost."""

        def push(reply: Any) -> None:
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                on_message(reply[2])

        conn = await self._open(push)
        command: tuple[Any, ...] = ("SUBSCRIBE", channel)
        try:
            await asyncio.wait_for(conn.send(hiredis.pack_command(command), 0), self.timeout)
        except TimeoutError:
            conn.fail(UnreachableError("Redis did not confirm the subscription in time"))
            raise UnreachableError("Redis did not confirm the subscription in time") from None
        self._subscribed.append(conn)

    async def subscription_lost(self) -> None:
        """Wait until the newest subscription's connection is lost."""
        if self._subscribed:
            conn = self._subscribed[-1]
            await conn.closed
            self._subscribed.remove(conn)

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for conn in [self._conn, *self._subscribed]:
            if conn is not None and conn.transport is not None:
                conn.transport.close()
        self._conn = None
        self._subscribed.clear()
