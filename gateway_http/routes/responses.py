"""POST /v1/responses (OpenAI's Responses API, stateless), as JSON or typed SSE events."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Scope, Send
from switchyard.v1 import responses_pb2, responses_pb2_grpc

from gateway_http.errors import HttpError
from gateway_http.routes.base import Call, Framing, GenerationEndpoint
from gateway_http.sse import KEEPALIVE
from gateway_http.transcode.fields import JSON
from gateway_http.transcode.responses import (
    ParsedResponse,
    events_json,
    parse_response_request,
    response_json,
)
from gateway_http.wire import cache_mode, chat_headers, send_json


def event_frame(payload: JSON) -> bytes:
    """A typed event: OpenAI names each after its data's `type`."""
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class _Events:
    """Frames one stream's events, and its error event if it fails after the 200."""

    def __init__(self, body: JSON) -> None:
        self._body = body
        self._sequence = 0

    def render(self, batch: responses_pb2.ResponseEventBatch) -> bytes:
        """One batch's events, framed together: sent in one write."""
        frames = [event_frame(payload) for payload in events_json(batch.events, self._body)]
        if batch.events:
            self._sequence = batch.events[-1].sequence_number + 1
        return b"".join(frames)

    def failed(self, err: HttpError, first: Any | None) -> bytes:
        error = err.body()["error"]
        return event_frame(
            {
                "type": "error",
                "sequence_number": self._sequence,
                "code": error["type"],
                "message": error["message"],
                "param": error["param"],
            }
        )


def _head(first: responses_pb2.ResponseEventBatch, started: float) -> list[tuple[bytes, bytes]]:
    return chat_headers(first.events[0].response, started)


class Responses(GenerationEndpoint[ParsedResponse]):
    _stub: responses_pb2_grpc.ResponsesServiceAsyncStub

    def parse(self, body: JSON, scope: Scope) -> ParsedResponse:
        parsed = parse_response_request(body)
        mode = cache_mode(scope)
        if mode is not None:
            parsed.request.cache.mode = mode
        return parsed

    def stream(self, parsed: ParsedResponse, call: Call) -> tuple[Any, Framing]:
        stream = self._stub.Stream(parsed.request, metadata=call.metadata, timeout=call.timeout)
        events = _Events(parsed.body)
        return stream, Framing(events.render, events.failed, ping=KEEPALIVE, head=_head)

    async def complete(self, send: Send, parsed: ParsedResponse, call: Call) -> None:
        response = await self._stub.Create(
            parsed.request, metadata=call.metadata, timeout=call.timeout
        )
        payload = orjson.dumps(response_json(response, parsed.body))
        await send_json(send, 200, payload, call.rid, chat_headers(response, call.started))
