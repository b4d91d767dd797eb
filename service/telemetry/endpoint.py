"""`--metrics-port`: the Prometheus exposition on a port of its own, without a key.

For deployments where `/metrics` on the HTTP port (behind an admin key) does not fit:
a `--grpc-only` process has no HTTP port, and a scraper may not hold a key. It answers
`GET /metrics` (and nothing else) with what `/metrics` would, then closes the
connection. Bind it to an internal address: it names the models and providers served.
Under `--workers N` the parent binds the port and every worker serves from that socket
(as for the HTTP port): whichever answers adds up all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from service.telemetry.metrics import Metrics

MAX_HEAD = 8192
READ_TIMEOUT = 5.0


def _answer(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def serve_metrics(listening: socket.socket, metrics: Metrics) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        method, _, rest = head.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method == b"GET" and path == b"/metrics":
            body, content_type = metrics.render()
            writer.write(_answer("200 OK", content_type, body))
        else:
            writer.write(_answer("404 Not Found", "text/plain", b"only GET /metrics here\n"))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, sock=listening, limit=MAX_HEAD)
