"""A fast mock OpenAI-compatible upstream for the benchmarks.

Why not tests/fixtures/mock_openai.py: that one (aiohttp, request recording, misbehaviour
on demand) costs more CPU per request than the gateway should, and here the mock shares
a core with the load client. A raw asyncio.Protocol with httptools' C parser and canned,
pre-encoded responses keeps its cost to tens of microseconds, so that the gateway, not
the mock, is what saturates.

POST /v1/chat/completions: a canned chat.completion, or with `"stream": true`, `--chunks`
SSE chunks `--chunk-delay-ms` apart, then a usage chunk (`choices: []`) and
`data: [DONE]`. Chunks are scheduled on absolute times from the request, so one late
tick does not push the rest back. A model named `name@CHUNKSxDELAY_MS` overrides both
for that request (the many-streams scenario uses it). GET /health answers 200. Any
Authorization is accepted. HTTP/1.1 keep-alive and pipelining are honoured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httptools
import orjson

CREATED = 1_700_000_000
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_CHUNKED_END = b"0\r\n\r\n"
_MAX_CACHED_MODELS = 64
_V = TypeVar("_V")


def _response(status: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
    return head % (status, content_type, len(body)) + body


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _sse(obj: object) -> bytes:
    return _chunked(b"data: " + orjson.dumps(obj) + b"\n\n")


_HEALTH = _response(b"200 OK", b'{"status":"ok"}')
_NOT_FOUND = _response(b"404 Not Found", b'{"error":{"message":"no such route"}}')
_BAD_REQUEST = _response(b"400 Bad Request", b'{"error":{"message":"bad request"}}')


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """The pre-encoded frames of one stream and the gap between them."""

    frames: tuple[bytes, ...]  # frames[-1] also carries the usage chunk, [DONE] and the end
    delay: float  # seconds


class Canned:
    """Responses built once per model name and cached (models are few)."""

    def __init__(self, chunks: int, delay_ms: float) -> None:
        self._chunks = max(2, chunks)
        self._delay_ms = delay_ms
        self._completions: dict[str, bytes] = {}
        self._streams: dict[str, StreamPlan] = {}

    def completion(self, model: str) -> bytes:
        cached = self._completions.get(model)
        if cached is None:
            cached = _response(b"200 OK", orjson.dumps(_completion_body(model)))
            self._remember(self._completions, model, cached)
        return cached

    def stream(self, model: str) -> StreamPlan:
        cached = self._streams.get(model)
        if cached is None:
            chunks, delay_ms = self._chunks, self._delay_ms
            if "@" in model:
                chunks, delay_ms = _parse_override(model.rsplit("@", 1)[1], chunks, delay_ms)
            cached = _stream_plan(model, chunks, delay_ms / 1000)
            self._remember(self._streams, model, cached)
        return cached

    @staticmethod
    def _remember(cache: dict[str, _V], key: str, value: _V) -> None:
        if len(cache) >= _MAX_CACHED_MODELS:
            cache.clear()
        cache[key] = value


def _parse_override(spec: str, chunks: int, delay_ms: float) -> tuple[int, float]:
    """`50x20` -> 50 chunks 20 ms apart; anything unparsable keeps the defaults."""
    count, _, delay = spec.partition("x")
    try:
        return max(2, int(count)), float(delay)
    except ValueError:
        return chunks, delay_ms


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}


def _completion_body(model: str) -> dict[str, object]:
    message = {
        "role": "assistant",
        "content": "Hello from the benchmark upstream. This is a canned reply.",
        "refusal": None,
    }
    return {
        "id": "chatcmpl-bench0000000000000000",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(),
    }


def _stream_plan(model: str, chunks: int, delay: float) -> StreamPlan:
    base = {
        "id": "chatcmpl-bench0000000000000000",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
    }

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse(base | {"choices": [choice]})

    frames = [chunk({"role": "assistant", "content": "Hello"})]
    frames += [chunk({"content": f" word{i}"}) for i in range(1, chunks - 1)]
    tail = chunk({}, "stop") + _sse(base | {"choices": [], "usage": _usage()})
    frames.append(tail + _chunked(b"data: [DONE]\n\n") + _CHUNKED_END)
    return StreamPlan(tuple(frames), delay)


@dataclass(slots=True)
class _Request:
    method: bytes
    url: bytes
    body: bytes
    keep_alive: bool


class MockProtocol(asyncio.Protocol):
    """One client connection: requests are answered in order, one stream at a time."""

    def __init__(self, canned: Canned) -> None:
        self._canned = canned
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = bytearray()
        self._body = bytearray()
        self._pending: deque[_Request] = deque()
        self._timers: list[asyncio.TimerHandle] = []
        self._streaming = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(_BAD_REQUEST)
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url.clear()
        self._body.clear()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        request = _Request(
            self._parser.get_method(),
            bytes(self._url),
            bytes(self._body),
            self._parser.should_keep_alive(),
        )
        self._pending.append(request)
        self._drain()

    # responses
    def _drain(self) -> None:
        while self._pending and not self._streaming and self._transport is not None:
            self._respond(self._pending.popleft())

    def _respond(self, request: _Request) -> None:
        path = request.url.split(b"?", 1)[0]
        if request.method == b"POST" and path == b"/v1/chat/completions":
            try:
                body = orjson.loads(request.body)
                model = str(body.get("model", "mock"))
                stream = body.get("stream") is True
            except (orjson.JSONDecodeError, AttributeError):
                self._finish(_BAD_REQUEST, request.keep_alive)
                return
            if stream:
                self._start_stream(self._canned.stream(model), request.keep_alive)
            else:
                self._finish(self._canned.completion(model), request.keep_alive)
        elif request.method == b"GET" and path == b"/health":
            self._finish(_HEALTH, request.keep_alive)
        else:
            self._finish(_NOT_FOUND, request.keep_alive)

    def _finish(self, data: bytes, keep_alive: bool) -> None:
        self._write(data)
        if not keep_alive:
            self._close()

    def _start_stream(self, plan: StreamPlan, keep_alive: bool) -> None:
        self._streaming = True
        loop = asyncio.get_running_loop()
        start = loop.time()
        self._write(_SSE_HEAD + plan.frames[0])
        last = len(plan.frames) - 1
        self._timers = [
            loop.call_at(start + i * plan.delay, self._tick, frame, i == last, keep_alive)
            for i, frame in enumerate(plan.frames[1:], start=1)
        ]

    def _tick(self, frame: bytes, last: bool, keep_alive: bool) -> None:
        self._write(frame)
        if last:
            self._timers.clear()
            self._streaming = False
            if keep_alive:
                self._drain()
            else:
                self._close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(host: str, port: int, canned: Canned) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MockProtocol(canned), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream listening on http://{host}:{port}/v1", flush=True)
    async with server:
        await stop.wait()


def run_event_loop(main: Coroutine[Any, Any, None], *, cyclic_gc: bool = True) -> None:
    """uvloop when it is installed (it is a gateway dependency), else asyncio.

    `cyclic_gc=False` (the mock and the load driver) runs without the cyclic garbage
    collector. Measured at 256 streams, the mock's own collections paused its loop for
    8-16 ms: it then sent a burst of ~100-200 overdue chunks at once, and that burst, not
    the gateway under test, set the inter-chunk p99 of both the direct and the gateway
    runs. Checked with DEBUG_SAVEALL: neither the mock nor the HTTP driver makes cycles
    per request (the mock breaks its timer cycle when a stream ends); what is left, one
    protocol-parser pair per closed connection, is small, and each process lives for
    one bounded run.
    """
    if not cyclic_gc:
        gc.collect()
        gc.freeze()
        gc.disable()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with the gateway
        asyncio.run(main)
    else:
        uvloop.run(main)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20, help="chunks per stream")
    parser.add_argument("--chunk-delay-ms", type=float, default=5.0, help="gap between chunks")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(
            serve(args.host, args.port, Canned(args.chunks, args.chunk_delay_ms)),
            cyclic_gc=False,
        )


if __name__ == "__main__":
    main()
