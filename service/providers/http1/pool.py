"""Keep-alive connections per origin, and the answer handed to the caller.

`Pool.post` returns once the answer's headers are in (the caller then reads the body
whole or as chunks) and bounds each stage by `Limits` and the caller's deadline. A
connection goes back to the pool only when its answer was read to the end and the
upstream allows reuse; an answer left unfinished closes its connection, which is also
how an upstream learns that nobody listens any more.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType
from urllib.parse import urlsplit

from service.providers.http1.connection import Connection
from service.providers.http1.errors import ConnectError, DisconnectedError, TransportError
from service.spin import Spinner, SpinWindow

USER_AGENT = "switchyard"


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds allowed for each stage of one call."""

    connect: float  # TCP connect and TLS handshake
    first_byte: float  # from the start of the call until the answer's headers
    idle: float  # between two reads of the body
    keepalive: float = 30.0  # an idle pooled connection older than this is not reused
    spin: float = 0.0  # the longest the loop polls for an answer's headers (spin.py)


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port
    head: bytes  # request line and Host header
    window: SpinWindow = field(compare=False)  # how long its answers are worth polling for


_TARGET_CACHE_SIZE = 256
# Header lines the current attempt adds to its request (the trace's `traceparent`, set
# by the engine's tracing for the attempt's task): b"" when tracing is off.
TRACE_HEADERS: ContextVar[bytes] = ContextVar("switchyard_trace_headers", default=b"")


def _target(url: str, spin: float) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    name = f"[{host}]" if ":" in host else host
    authority = name if port == default else f"{name}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if any(c in path for c in " \r\n\0"):
        raise ConnectError(f"a URL path may not contain spaces or control characters: {url!r}")
    head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n"
    return _Target((scheme, host, port), head.encode("latin-1"), SpinWindow(spin))


def _header_block(headers: Mapping[str, str]) -> bytes:
    lines = [f"User-Agent: {USER_AGENT}", "Accept-Encoding: gzip, deflate"]
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"invalid upstream header {name!r}")
        if name.lower() in ("content-length", "host", "transfer-encoding", "connection"):
            continue  # framing is ours to set
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class Response:
    """An answer whose headers are in. Use as `async with`; read the body once."""

    __slots__ = ("_conn", "_deadline", "_idle", "_pool", "headers", "status")

    def __init__(self, pool: Pool, conn: Connection, deadline: float, idle: float) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self._deadline = deadline
        self._idle = idle
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers  # names in lower case

    def _next_deadline(self) -> float:
        return min(self._deadline, asyncio.get_running_loop().time() + self._idle)

    async def read(self) -> bytes:
        """The whole body (decoded); the connection returns to the pool."""
        conn = self._live()
        while not conn.complete:
            if conn.error is not None:
                raise conn.error
            await conn.wait(self._next_deadline())
        if conn.error is not None:
            raise conn.error
        body = conn.take_all()
        self.close()
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in the pieces it arrives in."""
        conn = self._live()
        while True:
            chunk = conn.take()
            if chunk is not None:
                yield chunk
                continue
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                return
            await conn.wait(self._next_deadline())

    def close(self) -> None:
        """Back to the pool if the answer was read to its end; otherwise closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)

    def _live(self) -> Connection:
        if self._conn is None:
            raise TransportError("the answer was already read or closed")
        return self._conn

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Pool:
    """Pooled keep-alive connections for one caller's fixed set of request headers."""

    def __init__(
        self, headers: Mapping[str, str], limits: Limits, tls: ssl.SSLContext | None = None
    ) -> None:
        self._headers = _header_block(headers)
        self.limits = limits
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls = tls  # None: the system's trust store, made on first https use
        self._spinner: Spinner | None = None
        self._closed = False
        self.in_use = 0  # connections checked out right now

    async def post(
        self, url: str, body: bytes, deadline: float, *, stream: bool = False
    ) -> Response:
        """Send `body` and wait for the answer's headers; `deadline` is loop time.

        `stream`: the body will be read as it comes (`chunks()`), so it is paced by the
        reader rather than capped like a whole answer held in memory.
        """
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _TARGET_CACHE_SIZE:
                self._targets.clear()
            target = self._targets[url] = _target(url, self.limits.spin)
        head = b"%s%s%sContent-Length: %d\r\n\r\n" % (
            target.head,
            self._headers,
            TRACE_HEADERS.get(),
            len(body),
        )
        loop = asyncio.get_running_loop()
        limits = self.limits
        headers_by = min(deadline, loop.time() + limits.first_byte)
        for fresh in (False, True):
            conn, reused = await self._acquire(target.origin, headers_by, fresh=fresh)
            try:
                conn.send(head, body, streaming=stream)
                await self._await_head(conn, target.window, headers_by)
            except DisconnectedError:
                self.release(conn)
                # A pooled connection the upstream had just closed: nothing of ours was
                # read, so the request goes once more on a fresh connection.
                if reused and conn.received == 0:
                    continue
                raise
            except BaseException:
                self.release(conn)
                raise
            return Response(self, conn, deadline, limits.idle)
        raise DisconnectedError("the connection closed before an answer")  # pragma: no cover

    async def _await_head(self, conn: Connection, window: SpinWindow, deadline: float) -> None:
        """Wait for the answer's headers, the loop polling for them within `window`."""
        sent = perf_counter()
        spinner = None
        if window.seconds:
            loop = asyncio.get_running_loop()
            spinner = self._spinner
            if spinner is None or spinner.loop is not loop:
                spinner = self._spinner = Spinner(loop)
            spinner.start(window.seconds)
        try:
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(deadline)
        finally:
            if spinner is not None:
                spinner.stop()
        window.update(perf_counter() - sent)

    @property
    def polling(self) -> bool:
        """Whether the loop polls for an answer of this pool's right now (a probe)."""
        return self._spinner is not None and self._spinner.polling

    def poll_window(self, url: str) -> float:
        """Seconds the loop now polls for an answer from `url` (learnt; 0 before a call)."""
        target = self._targets.get(url)
        return target.window.seconds if target is not None else 0.0

    def release(self, conn: Connection) -> None:
        """Take back a checked-out connection: pooled if reusable, closed otherwise."""
        self.in_use -= 1
        conn.disarm()
        if self._closed or not conn.reusable():
            conn.close()
            return
        conn.busy = False
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.origin, []).append(conn)

    async def _acquire(
        self, origin: tuple[str, str, int], deadline: float, *, fresh: bool
    ) -> tuple[Connection, bool]:
        if self._closed:
            raise ConnectError("the upstream session is closed")
        idle = None if fresh else self._idle.get(origin)
        if idle:
            stale_before = asyncio.get_running_loop().time() - self.limits.keepalive
            while idle:
                conn = idle.pop()
                if conn.closed or conn.idle_since < stale_before:
                    conn.close()
                    continue
                self.in_use += 1
                return conn, True
        conn = await self._connect(origin, deadline)
        self.in_use += 1
        return conn, False

    async def _connect(self, origin: tuple[str, str, int], deadline: float) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if scheme == "https" else None
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self.limits.connect)):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, origin),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except TimeoutError:
            raise  # an OSError too, but the caller's business: a timeout, not a refusal
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            # Where it tried, for the log; the cause (`from exc`) says what happened.
            raise ConnectError(f"cannot connect to {scheme}://{host}:{port}") from exc
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def close(self) -> None:
        """Close idle connections; those in use close when their answers do."""
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
