"""The load driver: `python -m bench.loadgen http|grpc ...` prints one JSON result line.

bench.run starts it as its own process pinned to the client core, with the same
arguments for the direct-to-mock and the through-the-gateway run, so both are measured
by the same code in the same way. `--rate` selects the open loop (latency at a fixed
rate), `--concurrency` the closed loop (throughput; with `--stream` and `--stagger`,
the many-concurrent-streams mode). gRPC calls go through the generated stubs on
grpc.aio, like any gRPC client of the service.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import orjson
from switchyard.v1 import chat_pb2, chat_pb2_grpc

from bench.drivers import Caller, CallError, Outcome, Recorder, closed_loop, open_loop, result
from bench.httpclient import Pool, build_request
from bench.mock_upstream import run_event_loop

PROMPT = "Say hello to the benchmark."
MAX_TOKENS = 32


def chat_body(model: str, *, stream: bool) -> dict[str, Any]:
    """The request every chat scenario sends (streaming asks for usage, as SDKs do)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def messages_body(model: str, *, stream: bool) -> dict[str, Any]:
    """The same request for Anthropic's Messages door (/v1/messages)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
    return body


def responses_body(model: str, *, stream: bool) -> dict[str, Any]:
    """The same request through the Responses API (POST /v1/responses)."""
    body: dict[str, Any] = {"model": model, "input": PROMPT, "max_output_tokens": MAX_TOKENS}
    if stream:
        body["stream"] = True
    return body


class HttpCaller:
    """POSTs pre-encoded bodies (cycled) over a keep-alive connection pool."""

    def __init__(
        self, pool: Pool, payloads: list[bytes], *, sse: bool, count_tokens: bool, timeout: float
    ) -> None:
        self._pool = pool
        self._payloads: Iterator[bytes] = itertools.cycle(payloads)
        self._sse = sse
        self._count_tokens = count_tokens
        self._timeout = timeout

    async def call(self) -> Outcome:
        payload = next(self._payloads)
        conn = await self._pool.acquire()
        reusable = False
        try:
            async with asyncio.timeout(self._timeout):
                reply = await conn.request(payload, sse=self._sse)
            reusable = True
        finally:
            self._pool.release(conn, reusable=reusable)
        if reply.status != 200:
            raise CallError(f"HTTP {reply.status}: {reply.body[:120]!r}")
        if reply.stream_error:
            raise CallError("an error event inside the stream")
        if self._sse and not reply.events:
            raise CallError("a stream without chunks")
        tokens = 0
        if self._count_tokens:
            usage = orjson.loads(reply.body).get("usage") or {}
            tokens = int(usage.get("completion_tokens", 0))
        return Outcome(reply.sent, reply.done, reply.events, tokens)


class GrpcCaller:
    """ChatService.Complete or .Stream through the generated stubs on one grpc.aio channel."""

    def __init__(
        self,
        stub: chat_pb2_grpc.ChatServiceAsyncStub,
        request: chat_pb2.ChatRequest,
        metadata: tuple[tuple[str, str], ...],
        *,
        stream: bool,
        timeout: float,
    ) -> None:
        self._stub = stub
        self._request = request
        self._metadata = metadata
        self._stream = stream
        self._timeout = timeout

    async def call(self) -> Outcome:
        sent = time.perf_counter()
        if not self._stream:
            response = await self._stub.Complete(
                self._request, metadata=self._metadata, timeout=self._timeout
            )
            return Outcome(sent, time.perf_counter(), [], response.usage.completion_tokens)
        events: list[float] = []
        async for chunk in self._stub.Stream(
            self._request, metadata=self._metadata, timeout=self._timeout
        ):
            if chunk.choices:  # the usage-only chunk is not a token
                events.append(time.perf_counter())
        if not events:
            raise CallError("a stream without chunks")
        return Outcome(sent, time.perf_counter(), events)


def grpc_request(model: str, *, stream: bool) -> chat_pb2.ChatRequest:
    request = chat_pb2.ChatRequest(
        model=model,
        messages=[chat_pb2.Message(role="user", text=PROMPT)],
        max_tokens=MAX_TOKENS,
    )
    if stream:
        request.stream_options.include_usage = True
    return request


async def drive(caller: Caller, args: argparse.Namespace) -> Recorder:
    if args.rate:
        return await open_loop(
            caller,
            rate=args.rate,
            warmup=args.warmup,
            duration=args.duration,
            grace=args.timeout,
        )
    return await closed_loop(
        caller,
        concurrency=args.concurrency,
        warmup=args.warmup,
        duration=args.duration,
        stagger=args.stagger,
    )


def _payloads(args: argparse.Namespace, host: str, port: int) -> list[bytes]:
    if args.body_file:
        bodies = orjson.loads(Path(args.body_file).read_bytes())
        if not isinstance(bodies, list) or not bodies:
            raise SystemExit("--body-file must hold a non-empty JSON list of request bodies")
    else:
        bodies = [chat_body(args.model, stream=args.stream)]
    return [build_request(host, port, args.path, orjson.dumps(b), args.key) for b in bodies]


async def run_http(args: argparse.Namespace) -> Recorder:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    pool = Pool(host, port)
    caller = HttpCaller(
        pool,
        _payloads(args, host, port),
        sse=args.stream,
        count_tokens=args.count_tokens,
        timeout=args.timeout,
    )
    try:
        return await drive(caller, args)
    finally:
        pool.close()


async def run_grpc(args: argparse.Namespace) -> Recorder:
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        caller = GrpcCaller(
            chat_pb2_grpc.ChatServiceStub(channel),
            grpc_request(args.model, stream=args.stream),
            (("authorization", f"Bearer {args.key}"),),
            stream=args.stream,
            timeout=args.timeout,
        )
        return await drive(caller, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.loadgen", description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    http = kinds.add_parser("http", help="an HTTP server (the gateway or the mock)")
    http.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    http.add_argument("--path", default="/v1/chat/completions")
    http.add_argument("--body-file", help="a JSON list of request bodies, sent in turn")
    http.add_argument("--count-tokens", action="store_true", help="sum usage.completion_tokens")
    rpc = kinds.add_parser("grpc", help="the gateway's gRPC port (ChatService)")
    rpc.add_argument("--target", required=True, help="127.0.0.1:PORT")
    for sub in (http, rpc):
        sub.add_argument("--key", default="bench")
        sub.add_argument("--model", default="chat")
        sub.add_argument("--stream", action="store_true")
        load = sub.add_mutually_exclusive_group(required=True)
        load.add_argument("--rate", type=float, help="open loop: requests per second")
        load.add_argument("--concurrency", type=int, help="closed loop: workers")
        sub.add_argument("--duration", type=float, default=10.0, help="measured seconds")
        sub.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds first")
        sub.add_argument("--stagger", type=float, default=0.0, help="closed loop: ramp seconds")
        sub.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
        sub.add_argument(
            "--raw", action="store_true", help="also print the samples (s), for pooling runs"
        )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    mode = "rate" if args.rate else "closed"
    runner = run_http if args.kind == "http" else run_grpc
    box: list[Recorder] = []

    async def go() -> None:
        box.append(await runner(args))

    wall, cpu = time.perf_counter(), time.process_time()
    run_event_loop(go(), cyclic_gc=False)
    cpu_pct = (time.process_time() - cpu) / (time.perf_counter() - wall) * 100
    name = f"{args.kind}-{mode}{'-stream' if args.stream else ''}"
    recorder = box[0]
    out = dataclasses.asdict(result(recorder, name, args.duration, cpu_pct))
    if args.raw:
        out["raw"] = {"latency": recorder.latencies, "ttft": recorder.ttfts, "gap": recorder.gaps}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
