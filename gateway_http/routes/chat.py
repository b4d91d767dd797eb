"""POST /v1/chat/completions, as JSON or as server-sent events."""

from __future__ import annotations

import time

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import chat_pb2_grpc

from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.sse import stream_chat
from gateway_http.transcode.chat import parse_chat, response_json
from gateway_http.wire import (
    ClientWatch,
    call_metadata,
    chat_headers,
    header,
    header_timeout,
    read_json,
    send_json,
)


class ChatCompletions(Endpoint):
    def __init__(
        self,
        probe: AuthProbe,
        stub: chat_pb2_grpc.ChatServiceAsyncStub,
        *,
        hold: float,
        keepalive: float,
    ) -> None:
        super().__init__(probe)
        self._stub = stub
        self._hold = hold
        self._keepalive = keepalive

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.perf_counter()
        parsed = parse_chat(await read_json(receive))
        cache_mode = header(scope, b"x-switchyard-cache")
        if cache_mode is not None:
            parsed.request.cache.mode = cache_mode.decode("latin-1").strip().lower()
        timeout = parsed.timeout or header_timeout(scope)
        metadata = call_metadata(scope, rid)
        async with ClientWatch(receive):
            if parsed.stream:
                call = self._stub.Stream(parsed.request, metadata=metadata, timeout=timeout)
                await stream_chat(
                    send,
                    call,
                    rid=rid,
                    include_usage=parsed.request.stream_options.include_usage,
                    include_cost=parsed.usage_include,
                    hold=self._hold,
                    keepalive=self._keepalive,
                    started=started,
                )
                return
            response = await self._stub.Complete(parsed.request, metadata=metadata, timeout=timeout)
            payload = orjson.dumps(response_json(response, parsed.usage_include))
            await send_json(
                send,
                200,
                payload,
                rid,
                chat_headers(response, started),
            )
