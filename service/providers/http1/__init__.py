"""A small HTTP/1.1 client for upstream calls: asyncio protocols and httptools' parser.

The gateway's upstream traffic is one shape: a POST of a JSON body to a known origin,
answered by JSON or by a server-sent event stream, over pooled keep-alive connections.
aiohttp serves that shape through a general client (cookies, redirects, multipart,
middlewares, a stream reader per response) and was the single largest cost in the
profile of a gateway request (DESIGN §9, issue 7). This package does only the shape above.
"""

from service.providers.http1.errors import (
    BrokenBodyError,
    ConnectError,
    DisconnectedError,
    MalformedResponseError,
    TransportError,
)
from service.providers.http1.pool import Limits, Pool, Response

__all__ = [
    "BrokenBodyError",
    "ConnectError",
    "DisconnectedError",
    "Limits",
    "MalformedResponseError",
    "Pool",
    "Response",
    "TransportError",
]
