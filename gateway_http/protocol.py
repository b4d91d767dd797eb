"""uvicorn's HTTP/1.1 protocol, sending each response's head with its first body bytes.

uvicorn writes a response's head and its body with two `transport.write` calls, and
uvloop sends each at once: every JSON answer (and every stream's first chunk) left as
two syscalls and two TCP segments, and the client woke for a head it could not use yet.
Here the head waits for the next write of the same response, and both go out in one
`writelines` (one writev). Measured on the benchmark's gateway (issue 7 note): one
syscall less per request, about 3 % less CPU per request at saturation.

Nothing waits on a client or the upstream: a head that no write follows in the same
step (a HEAD answer, a 204, a stream whose first chunk is late) is sent on the loop's
next turn, at the response's end, or before the connection closes, whichever is first.

The read timeouts and the cap on a request's head come with it (read_limits.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway_http.read_limits import ReadLimitedProtocol


class HeldHead(asyncio.Transport):
    """The transport one response is written to: its first write is held for the next.

    Only what uvicorn's request cycle calls is implemented (write, close, is_closing),
    with `get_extra_info` passed through; the connection itself stays with the protocol
    and its real transport.
    """

    __slots__ = ("_armed", "_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._head: bytes | None = None
        self._armed = True  # until the first write of the response

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
        elif self._armed:
            self._armed = False
            self._head = bytes(data)
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (no-op when none is held)."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class HttpProtocol(ReadLimitedProtocol):
    """uvicorn's httptools protocol, with read limits, whose request cycles write
    through a `HeldHead`."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # A new cycle still holds the connection's transport; an upgrade or a rejected
        # request leaves none, or the previous one (already wrapped).
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = HeldHead(self.transport)

    def on_response_complete(self) -> None:
        transport = self.cycle.transport if self.cycle is not None else None
        if isinstance(transport, HeldHead):
            transport.flush()  # before a keep-alive timer or a close can overtake it
        super().on_response_complete()
