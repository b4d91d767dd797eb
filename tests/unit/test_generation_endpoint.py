"""gateway_http/routes/base.py's GenerationEndpoint: the start every generation door
(chat completions, messages, responses) shares, driven as an ASGI app: the body is
transcoded by the door, the deadline is the body's or the header's, the call carries the
caller's key and the request id, a stream and a JSON answer go their own ways, and a
client that leaves cancels the call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Message, Scope, Send

from gateway_http.errors import HttpError
from gateway_http.routes.base import AuthProbe, Call, Framing, GenerationEndpoint
from gateway_http.transcode.fields import JSON
from gateway_http.wire import send_json


@dataclass
class Parsed:
    stream: bool
    timeout: float | None
    text: str


class Chunks:
    """A streaming call's stand-in: its messages, then its end."""

    def __init__(self, text: str) -> None:
        self._words = iter(text.split())

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> str:
        word = next(self._words, None)
        if word is None:
            raise StopAsyncIteration
        return word

    def cancel(self) -> bool:
        return False  # ended already


def fail(err: HttpError, first: Any) -> bytes:
    return b"data: error\n\n"


class Probe(AuthProbe):
    """Every key is good: the door's own refusals are what is tested."""

    def __init__(self) -> None:
        self.edge = None

    async def check(self, scope: Scope, rid: str, admin: bool = False) -> HttpError | None:
        return None


class Echo(GenerationEndpoint[Parsed]):
    """A door whose 'stub' is a name; it records what it was asked."""

    def __init__(self, block: bool = False) -> None:
        super().__init__(Probe(), "stub", hold=0.5, keepalive=15.0)
        self.calls: list[tuple[str, Parsed, Call]] = []
        self.block = block
        self.cancelled = False

    def parse(self, body: JSON, scope: Scope) -> Parsed:
        if not isinstance(body.get("text"), str):
            raise HttpError(400, "invalid_request_error", "'text' must be a string.", "text")
        return Parsed(bool(body.get("stream")), body.get("timeout"), body["text"])

    def stream(self, parsed: Parsed, call: Call) -> tuple[Any, Framing]:
        self.calls.append(("stream", parsed, call))
        render = lambda text: f"data: {text}\n\n".encode()  # noqa: E731
        return Chunks(parsed.text), Framing(render, fail, b"", head=lambda first, started: [])

    async def complete(self, send: Send, parsed: Parsed, call: Call) -> None:
        self.calls.append(("complete", parsed, call))
        if self.block:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        await send_json(send, 200, orjson.dumps({"text": parsed.text}), call.rid)


def scope(*headers: tuple[bytes, bytes]) -> Scope:
    base = [(b"authorization", b"Bearer sk-sy-k"), (b"x-request-id", b"req-1")]
    return {"type": "http", "method": "POST", "path": "/v1/x", "headers": [*base, *headers]}


async def serve(
    endpoint: Echo, body: JSON, *headers: tuple[bytes, bytes], leave: bool = False
) -> list[Message]:
    sent: list[Message] = []
    messages: list[Message] = [{"type": "http.request", "body": orjson.dumps(body)}]
    gone = asyncio.Event()

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if not leave:
            await gone.wait()  # the client stays until the answer is sent
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(endpoint(scope(*headers), receive, send), timeout=30)
    gone.set()
    return sent


def test_a_json_answer_with_the_bodys_deadline_the_key_and_the_request_id() -> None:
    endpoint = Echo()
    sent = asyncio.run(
        serve(endpoint, {"text": "hi", "timeout": 5}, (b"x-switchyard-timeout", b"9"))
    )
    [(way, parsed, call)] = endpoint.calls
    assert (way, parsed.text, call.timeout, call.rid) == ("complete", "hi", 5, "req-1")
    assert ("authorization", "Bearer sk-sy-k") in call.metadata
    assert ("x-request-id", "req-1") in call.metadata
    assert sent[0]["status"] == 200 and orjson.loads(sent[1]["body"]) == {"text": "hi"}


def test_a_stream_relayed_as_events_with_the_headers_deadline() -> None:
    endpoint = Echo()
    header = (b"x-switchyard-timeout", b"9")
    sent = asyncio.run(serve(endpoint, {"text": "hi there", "stream": True}, header))
    [(way, _, call)] = endpoint.calls
    assert (way, call.timeout) == ("stream", 9.0)
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream") in [
        (k, v.split(b";")[0]) for k, v in sent[0]["headers"]
    ]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body == b"data: hi\n\ndata: there\n\n"


def test_a_body_the_door_refuses_is_its_400_before_any_call() -> None:
    endpoint = Echo()
    sent = asyncio.run(serve(endpoint, {"text": 3}))
    assert endpoint.calls == []
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["error"]["param"] == "text"


def test_a_client_that_leaves_cancels_the_call() -> None:
    endpoint = Echo(block=True)
    sent = asyncio.run(serve(endpoint, {"text": "hi"}, leave=True))
    assert endpoint.cancelled and sent == []
