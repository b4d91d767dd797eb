"""POST /v1/embeddings."""

from __future__ import annotations

import time

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import embeddings_pb2_grpc

from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.transcode.embeddings import embeddings_json, parse_embeddings
from gateway_http.wire import (
    call_metadata,
    header_timeout,
    read_json,
    send_json,
    served_headers,
)


class Embeddings(Endpoint):
    def __init__(
        self, probe: AuthProbe, stub: embeddings_pb2_grpc.EmbeddingServiceAsyncStub
    ) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.perf_counter()
        request, encoding = parse_embeddings(await read_json(receive))
        response = await self._stub.Embed(
            request,
            metadata=call_metadata(scope, rid),
            timeout=header_timeout(scope),
        )
        payload = orjson.dumps(embeddings_json(response, encoding))
        await send_json(
            send,
            200,
            payload,
            rid,
            served_headers(response, started),
        )
