"""Server-sent events from an upstream body, parsed by hand.

aiohttp's line reader caps line length; a long content delta or a big tool-call
argument must not break a stream, so this splits the raw byte chunks itself, with an
explicit bound on how large one event may grow.

`EventParser` is synchronous so that a provider's own loop can call it per read: a
stream then costs no extra generator layer per chunk. Most reads carry exactly one
`data: ...` event; that shape is recognised without the line-by-line walk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

MAX_EVENT_BYTES = 8 * 1024 * 1024


class BrokenStreamError(ValueError):
    """The byte stream is not valid server-sent events."""


class EventParser:
    """Feed it the body's pieces as they come; it returns each event's `data` payload."""

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The payloads of the events this piece completes (comments and fields we do
        not use are skipped)."""
        if (
            not self._buffer
            and not self._data
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
            and not chunk.endswith(b"\r\n\n")
        ):  # one whole `data: ...\n\n` event: the common case
            value = chunk[6:-2]
            return [value] if value else []
        return self._feed_lines(chunk)

    def _feed_lines(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        buffer = self._buffer
        buffer += chunk
        data = self._data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if not line:
                if data:
                    out.append(b"\n".join(data))
                    data.clear()
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
        return out

    def end(self) -> list[bytes]:
        """The payload of a last event the body ended without a blank line after."""
        tail = bytes(self._buffer).strip()
        self._buffer.clear()
        data = self._data
        if tail.startswith(b"data:"):
            value = tail[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        out = [b"\n".join(data)] if data else []
        data.clear()
        return out


async def sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield the `data` payload of each event; comments and other fields are skipped."""
    parser = EventParser()
    async for chunk in chunks:
        for data in parser.feed(chunk):
            yield data
    for data in parser.end():
        yield data
