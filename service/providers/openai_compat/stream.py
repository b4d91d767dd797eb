"""Server-sent events from an upstream body, parsed by hand.

aiohttp's line reader caps line length; a long content delta or a big tool-call
argument must not break a stream, so this splits the raw byte chunks itself, with an
explicit bound on how large one event may grow.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

MAX_EVENT_BYTES = 8 * 1024 * 1024


class BrokenStreamError(ValueError):
    """The byte stream is not valid server-sent events."""


async def sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield the `data` payload of each event; comments and other fields are skipped."""
    buffer = bytearray()
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                value = value[1:] if value.startswith(b" ") else value
                if value:  # an empty data line carries nothing
                    data.append(value)
            # ":" comments, "event:", "id:" and "retry:" lines carry nothing we use.
        del buffer[:start]
        if len(buffer) > MAX_EVENT_BYTES or sum(map(len, data)) > MAX_EVENT_BYTES:
            raise BrokenStreamError("an event exceeds the size limit")
    tail = bytes(buffer).strip()
    if tail.startswith(b"data:"):
        value = tail[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data)
