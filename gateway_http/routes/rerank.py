"""POST /v1/rerank (and /rerank, where Cohere- and Jina-style clients look)."""

from __future__ import annotations

import time

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import rerank_pb2_grpc

from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.transcode.rerank import parse_rerank, rerank_json
from gateway_http.wire import (
    call_metadata,
    header_timeout,
    read_json,
    send_json,
    served_headers,
)


class Rerank(Endpoint):
    def __init__(self, probe: AuthProbe, stub: rerank_pb2_grpc.RerankServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.perf_counter()
        request = parse_rerank(await read_json(receive))
        response = await self._stub.Rerank(
            request,
            metadata=call_metadata(scope, rid),
            timeout=header_timeout(scope),
        )
        payload = orjson.dumps(rerank_json(response))
        await send_json(
            send,
            200,
            payload,
            rid,
            served_headers(response, started),
        )
