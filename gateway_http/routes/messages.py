"""POST /v1/messages (JSON or server-sent events) and /v1/messages/count_tokens.

Anthropic's clients authenticate with `x-api-key` (Claude Code, the SDKs' default) or
`Authorization: Bearer`; either reaches the service as the one `authorization` it
checks. `anthropic-version` and `anthropic-beta` are accepted and need not be sent: the
gateway speaks one version of the API. Errors, before and after a stream's 200, are in
Anthropic's shape.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import messages_pb2_grpc

from gateway_http.errors import HttpError
from gateway_http.routes.base import AuthProbe, Call, Endpoint, Framing, GenerationEndpoint
from gateway_http.transcode.fields import JSON
from gateway_http.transcode.messages import (
    ParsedMessages,
    count_json,
    error_json,
    event_json,
    parse_count,
    parse_messages,
    response_json,
)
from gateway_http.wire import (
    cache_mode,
    call_metadata,
    chat_headers,
    header,
    header_timeout,
    read_json,
    send_json,
)

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MISSING_KEY = "Missing API key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'."


def event_frame(event: Any) -> bytes:
    name, data = event_json(event)
    frame = b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
    if name == "message_start":
        frame += PING  # as Anthropic's streams do, right after the start
    return frame


def _error_frame(rid: str) -> Any:
    def render(err: HttpError, first: Any) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(error_json(err, rid)) + b"\n\n"

    return render


def with_api_key(scope: Scope) -> Scope:
    """The scope with `x-api-key` as a Bearer `authorization`, when only it was sent."""
    if header(scope, b"authorization") is not None:
        return scope
    key = header(scope, b"x-api-key")
    if key is None:
        return scope
    return {**scope, "headers": [*scope["headers"], (b"authorization", b"Bearer " + key)]}


class AnthropicEndpoint(Endpoint):
    """An endpoint of the Anthropic door: its auth header, its error shape."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(with_api_key(scope), receive, send)

    async def send_error(self, send: Send, err: HttpError, rid: str) -> None:
        if err.status == 401 and err.message.startswith("Missing API key"):
            err = replace(err, message=MISSING_KEY)  # this door's clients send x-api-key
        await send_json(send, err.status, orjson.dumps(error_json(err, rid)), rid, err.headers())


class Messages(AnthropicEndpoint, GenerationEndpoint[ParsedMessages]):
    _stub: messages_pb2_grpc.MessagesServiceAsyncStub

    def parse(self, body: JSON, scope: Scope) -> ParsedMessages:
        parsed = parse_messages(body)
        mode = cache_mode(scope)
        if mode is not None:
            parsed.request.cache.mode = mode
        return parsed

    def stream(self, parsed: ParsedMessages, call: Call) -> tuple[Any, Framing]:
        stream = self._stub.Stream(parsed.request, metadata=call.metadata, timeout=call.timeout)
        return stream, Framing(render=event_frame, fail=_error_frame(call.rid), ping=PING)

    async def complete(self, send: Send, parsed: ParsedMessages, call: Call) -> None:
        response = await self._stub.Create(
            parsed.request, metadata=call.metadata, timeout=call.timeout
        )
        payload = orjson.dumps(response_json(response))
        await send_json(send, 200, payload, call.rid, chat_headers(response, call.started))


class CountTokens(AnthropicEndpoint):
    def __init__(self, probe: AuthProbe, stub: messages_pb2_grpc.MessagesServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        request = parse_count(await read_json(receive))
        response = await self._stub.CountTokens(
            request, metadata=call_metadata(scope, rid), timeout=header_timeout(scope)
        )
        await send_json(send, 200, orjson.dumps(count_json(response)), rid)
