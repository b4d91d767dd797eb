"""OpenAICompatProvider.stream: how the end of an upstream's event stream is read.

Against a raw server on 127.0.0.1 that answers one streamed chat with the bytes a test
gives, then closes the connection (a close-delimited body).
"""

from __future__ import annotations

import asyncio

import pytest

from service.config import ProviderConfig
from service.domain.chat import ChatDelta, ChatRequest, Message
from service.providers.base import Attempt
from service.providers.errors import ProviderError
from service.providers.openai_compat.client import OpenAICompatProvider

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
HELLO = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


async def _stream(body: bytes) -> list[ChatDelta]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(HEAD + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ProviderConfig(name="up", kind="openai", base_url=f"http://127.0.0.1:{port}/v1")
    provider = OpenAICompatProvider(config)
    request = ChatRequest(model="m", messages=(Message(role="user", content="hi"),))
    try:
        return [d async for d in provider.stream(request, Attempt("m"))]
    finally:
        await provider.aclose()
        server.close()
        await server.wait_closed()


def stream(body: bytes) -> list[ChatDelta]:
    return asyncio.run(asyncio.wait_for(_stream(body), 5.0))


def test_a_last_event_without_its_blank_line_is_still_read() -> None:
    deltas = stream(HELLO + STOP + b"\n")
    assert [c.content for d in deltas for c in d.choices] == ["hi", None]
    assert deltas[-1].choices[0].finish_reason == "stop"


def test_done_ends_the_stream_whether_or_not_a_blank_line_follows_it() -> None:
    for done in (b"data: [DONE]\n\n", b"data: [DONE]"):
        deltas = stream(HELLO + done)
        assert [c.content for d in deltas for c in d.choices] == ["hi"], done


def test_a_stream_cut_before_its_finish_is_an_error() -> None:
    with pytest.raises(ProviderError, match="ended before it finished"):
        stream(HELLO)
