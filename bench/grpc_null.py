"""A do-nothing ChatService on grpc.aio: the floor for the gRPC client scenarios.

Why: the gRPC load client is Python too, and it shares its core with the mock. Run
against this server (on the gateway's core, while no gateway runs), it shows what the
client and the gRPC transport alone can reach, so a gateway number near it says
"client-bound", not "gateway-bound". It answers canned messages, with no auth and no
upstream; streams are `--chunks` chunks `--chunk-delay-ms` apart, like the mock's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import grpc
from switchyard.v1 import chat_pb2, chat_pb2_grpc, common_pb2

from bench.mock_upstream import run_event_loop

_USAGE = common_pb2.Usage(prompt_tokens=12, completion_tokens=20, total_tokens=32)


class NullChat(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, chunks: int, delay: float) -> None:
        self._chunks = max(2, chunks)
        self._delay = delay
        message = chat_pb2.Message(role="assistant", text="Hello from the null server.")
        self._response = chat_pb2.ChatResponse(
            id="chatcmpl-null",
            created=1_700_000_000,
            model="null",
            choices=[chat_pb2.Choice(index=0, message=message, finish_reason="stop")],
            usage=_USAGE,
            provider="null",
        )

    async def Complete(  # noqa: N802 - the generated servicer's method name
        self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> chat_pb2.ChatResponse:
        return self._response

    async def Stream(  # noqa: N802 - the generated servicer's method name
        self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[chat_pb2.ChatChunk]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(self._chunks):
            if i:
                await asyncio.sleep(max(0.0, start + i * self._delay - loop.time()))
            delta = chat_pb2.Delta(role="assistant" if i == 0 else "", content=f" word{i}")
            finish = "stop" if i == self._chunks - 1 else ""
            choice = chat_pb2.ChunkChoice(index=0, delta=delta, finish_reason=finish)
            yield chat_pb2.ChatChunk(id="chatcmpl-null", model="null", choices=[choice])
        yield chat_pb2.ChatChunk(id="chatcmpl-null", model="null", usage=_USAGE)


async def serve(port: int, chunks: int, delay: float) -> None:
    server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(NullChat(chunks, delay), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"null gRPC ChatService on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    await server.stop(grace=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-delay-ms", type=float, default=5.0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(serve(args.port, args.chunks, args.chunk_delay_ms / 1000))


if __name__ == "__main__":
    main()
