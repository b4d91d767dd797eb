"""service/providers/openai_compat/stream.py: `sse_data`, fed arbitrary byte chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from service.providers.openai_compat import stream
from service.providers.openai_compat.stream import BrokenStreamError, sse_data


async def _chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


async def _collect(parts: Iterable[bytes]) -> list[bytes]:
    return [event async for event in sse_data(_chunks(parts))]


def events(*parts: bytes) -> list[bytes]:
    return asyncio.run(_collect(parts))


STREAM = (
    b": keep-alive comment\n"
    b"\n"
    b"event: message\n"
    b'data: {"id":"1","choices":[{"delta":{"content":"H\xc3\xa9llo"}}]}\n'
    b"\n"
    b"id: 7\n"
    b"retry: 1000\n"
    b'data: {"id":"2"}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    b'{"id":"1","choices":[{"delta":{"content":"H\xc3\xa9llo"}}]}',
    b'{"id":"2"}',
    b"[DONE]",
]


def test_whole_stream_in_one_chunk() -> None:
    assert events(STREAM) == EXPECTED


def test_split_at_every_byte_position() -> None:
    for i in range(len(STREAM) + 1):
        assert events(STREAM[:i], STREAM[i:]) == EXPECTED, f"split at byte {i}"


def test_split_at_every_pair_of_positions() -> None:
    sample = b'data: {"a":1}\r\n\r\ndata: b\r\n\r\n'
    for i in range(len(sample) + 1):
        for j in range(i, len(sample) + 1):
            assert events(sample[:i], sample[i:j], sample[j:]) == [b'{"a":1}', b"b"], (i, j)


def test_one_byte_at_a_time() -> None:
    assert events(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_empty_chunks_are_harmless() -> None:
    assert events(b"", b"data: x\n", b"", b"\n", b"") == [b"x"]


def test_crlf_line_endings() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert events(crlf) == EXPECTED
    for i in range(len(crlf) + 1):
        assert events(crlf[:i], crlf[i:]) == EXPECTED, f"split at byte {i}"


def test_comments_and_other_fields_are_skipped() -> None:
    assert events(
        b":comment\n: another\nevent: ping\n\n",  # an event without data yields nothing
        b"event: completion\nid: 3\ndata: payload\n\n",
    ) == [b"payload"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert events(b"data: first\ndata: second\ndata:third\n\n") == [b"first\nsecond\nthird"]


def test_data_without_a_space_keeps_only_one_space_stripped() -> None:
    assert events(b"data:x\n\ndata:  two spaces\n\n") == [b"x", b" two spaces"]


def test_final_event_without_trailing_blank_line() -> None:
    assert events(b"data: a\n\ndata: last\n") == [b"a", b"last"]
    assert events(b"data: a\n\ndata: last") == [b"a", b"last"]
    assert events(b"data: a\n\ndata: x\ndata: last") == [b"a", b"x\nlast"]
    assert events(b"data: last\r\n") == [b"last"]


def test_no_events() -> None:
    assert events() == []
    assert events(b": only a comment\n\n") == []


def test_oversized_event_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MAX_EVENT_BYTES", 64)
    with pytest.raises(BrokenStreamError):
        events(b"data: " + b"x" * 100)  # one unterminated line
    with pytest.raises(BrokenStreamError):
        # complete lines, but one event that never ends
        events(*(b"data: " + b"y" * 20 + b"\n" for _ in range(10)))


def test_oversized_event_raises_before_reading_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MAX_EVENT_BYTES", 64)
    consumed: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(1000):
            consumed.append(i)
            yield b"z" * 32

    async def run() -> None:
        async for _ in sse_data(endless()):
            pass

    with pytest.raises(BrokenStreamError):
        asyncio.run(run())
    assert len(consumed) < 10


def test_the_limit_is_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MAX_EVENT_BYTES", 64)
    many = b"".join(b"data: " + str(i).encode() * 10 + b"\n\n" for i in range(10))
    assert len(many) > 64
    assert events(many) == [str(i).encode() * 10 for i in range(10)]


def test_reads_of_one_whole_event_each() -> None:
    """The common shape (one `data: ...` event per read) takes a shortcut; it must give
    what the line-by-line walk gives, whatever came before it."""
    assert events(b'data: {"a":1}\n\n', b"data: [DONE]\n\n") == [b'{"a":1}', b"[DONE]"]
    assert events(b"data: \n\n", b"data: x\n\n") == [b"x"]  # empty data carries nothing
    assert events(b"data: x\r\n\n") == [b"x"]
    assert events(b"data: b\n", b"data: a\n\n") == [b"b\na"]  # pending data lines
    assert events(b"data: x", b"data: y\n\n") == [b"xdata: y"]  # a pending partial line
    assert events(b"data: a\n\ndata: b\n\n") == [b"a", b"b"]
    assert events(b"data:  a\n\n") == [b" a"]


def test_the_parser_fed_directly() -> None:
    parser = stream.EventParser()
    assert parser.feed(b"data: one\n\n") == [b"one"]
    assert parser.feed(b"data: tw") == []
    assert parser.feed(b"o\n\ndata: thr") == [b"two"]
    assert parser.end() == [b"thr"]
    assert parser.end() == []
    assert parser.feed(b"data: four\n\n") == [b"four"]  # usable again after end()
