"""The thinnest forwarder: the floor for what any gateway built like ours adds.

Why: "added latency" mixes two things, the price of the stack every request crosses
(uvicorn's HTTP/1.1 protocol on uvloop, the upstream client, two more loopback hops
and the wake-ups of both cores) and the price of the gateway's own layers (routing,
auth, accounting, the in-process channel and its protos). This forwarder has only the
first: a bare ASGI callable under `switchyard serve`'s own uvicorn settings (`http_config`),
posting each body unchanged through the gateway's own upstream client
(service/providers/http1, with the same answer polling) and returning the answer's
bytes. Run on the gateway's core in the same scenarios, its numbers split the two.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvloop

from service.config import ANSWER_POLL
from service.launcher import UvicornServer, http_config
from service.providers.http1 import Limits, Pool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_LIMITS = Limits(connect=5.0, first_byte=60.0, idle=60.0, spin=ANSWER_POLL)


class Forwarder:
    """POST /v1/chat/completions (any path, in fact) → the upstream's same path."""

    def __init__(self, upstream: str) -> None:
        self._url = upstream.rstrip("/") + "/v1/chat/completions"
        self._pool: Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if self._pool is None:
            self._pool = Pool({"Content-Type": "application/json"}, _LIMITS)
        deadline = asyncio.get_running_loop().time() + 60.0
        async with await self._pool.post(self._url, body, deadline) as answer:
            status, data = answer.status, await answer.read()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args(argv)
    server = UvicornServer(http_config(Forwarder(args.upstream), port=args.port))
    uvloop.run(server.serve())  # until SIGTERM (its default action: no handler here)


if __name__ == "__main__":
    main()
