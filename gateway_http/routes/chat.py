"""POST /v1/chat/completions, as JSON or as server-sent events."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Scope, Send
from switchyard.v1 import chat_pb2_grpc

from gateway_http.routes.base import Call, Framing, GenerationEndpoint
from gateway_http.sse import DONE, KEEPALIVE, error_frame, frame
from gateway_http.transcode.chat import ParsedChat, chunk_json, parse_chat, response_json
from gateway_http.transcode.fields import JSON
from gateway_http.wire import cache_mode, chat_headers, send_json


class ChatCompletions(GenerationEndpoint[ParsedChat]):
    _stub: chat_pb2_grpc.ChatServiceAsyncStub

    def parse(self, body: JSON, scope: Scope) -> ParsedChat:
        parsed = parse_chat(body)
        mode = cache_mode(scope)
        if mode is not None:
            parsed.request.cache.mode = mode
        return parsed

    def stream(self, parsed: ParsedChat, call: Call) -> tuple[Any, Framing]:
        stream = self._stub.Stream(parsed.request, metadata=call.metadata, timeout=call.timeout)
        usage, cost = parsed.request.stream_options.include_usage, parsed.usage_include
        render = lambda chunk: frame(chunk_json(chunk, usage, cost))  # noqa: E731
        return stream, Framing(render, error_frame, ping=KEEPALIVE, done=DONE)

    async def complete(self, send: Send, parsed: ParsedChat, call: Call) -> None:
        response = await self._stub.Complete(
            parsed.request, metadata=call.metadata, timeout=call.timeout
        )
        payload = orjson.dumps(response_json(response, parsed.usage_include))
        await send_json(send, 200, payload, call.rid, chat_headers(response, call.started))
