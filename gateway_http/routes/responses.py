"""POST /v1/responses (OpenAI's Responses API, stateless), as JSON or typed SSE events."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import responses_pb2, responses_pb2_grpc

from gateway_http.errors import HttpError
from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.sse import KEEPALIVE, relay
from gateway_http.transcode.fields import JSON
from gateway_http.transcode.responses import events_json, parse_response_request, response_json
from gateway_http.wire import (
    ClientWatch,
    call_metadata,
    chat_headers,
    header_timeout,
    read_json,
    send_json,
)


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


class Responses(Endpoint):
    def __init__(
        self,
        probe: AuthProbe,
        stub: responses_pb2_grpc.ResponsesServiceAsyncStub,
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
        body = await read_json(receive)
        parsed = parse_response_request(body)
        timeout = parsed.timeout or header_timeout(scope)
        metadata = call_metadata(scope, rid)
        async with ClientWatch(receive):
            if parsed.stream:
                call = self._stub.Stream(parsed.request, metadata=metadata, timeout=timeout)
                events = _Events(body)
                await relay(
                    send,
                    call,
                    rid=rid,
                    hold=self._hold,
                    keepalive=self._keepalive,
                    started=started,
                    render=events.render,
                    fail=events.failed,
                    done=b"",
                    ping=KEEPALIVE,
                    head=_head,
                )
                return
            response = await self._stub.Create(parsed.request, metadata=metadata, timeout=timeout)
            payload = orjson.dumps(response_json(response, body))
            await send_json(send, 200, payload, rid, chat_headers(response, started))
