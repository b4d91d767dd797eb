"""A reload's swap (Engine.swap): new calls route by the new config at once; a provider
left out is closed only after the calls that started before the swap have ended, a
stream counting until its last delta."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from service.config import parse_config
from service.domain.chat import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    Choice,
    ChoiceDelta,
    Message,
    Usage,
)
from service.engine import Engine, StreamTiming
from service.pipeline import CallContext
from service.providers.base import Attempt
from service.store.keys import KeyRecord


class Held:
    """A provider whose answers wait for the test's go-ahead; it notes when it is closed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.go = asyncio.Event()
        self.closed = False
        self.calls = 0

    async def complete(self, request: ChatRequest, attempt: Attempt) -> ChatResult:
        self.calls += 1
        await self.go.wait()
        message = Message(role="assistant", content=self.name)
        return ChatResult(choices=(Choice(0, message, "stop"),), usage=Usage(1, 1, 2))

    async def stream(self, request: ChatRequest, attempt: Attempt) -> AsyncIterator[ChatDelta]:
        self.calls += 1
        yield ChatDelta(choices=(ChoiceDelta(0, role="assistant", content="first"),))
        await self.go.wait()
        yield ChatDelta(choices=(ChoiceDelta(0, content="last", finish_reason="stop"),))

    async def aclose(self) -> None:
        self.closed = True


def config(timeout: int) -> Any:
    return parse_config(
        {
            "providers": {"p": {"kind": "openai", "base_url": "http://x", "timeout": timeout}},
            "models": [{"id": "m/a", "endpoints": [{"provider": "p", "model": "a"}]}],
        },
        env={},
    )


def call() -> CallContext:
    return CallContext("r", KeyRecord(id="k", name="k", display="k", created_at=0.0), None)


REQUEST = ChatRequest(model="m/a", messages=(Message(role="user", content="hi"),))


def test_a_replaced_provider_closes_after_its_calls() -> None:
    async def run() -> None:
        old, new = Held("old"), Held("new")
        engine = Engine(config(10), {"p": old})  # type: ignore[dict-item]
        unary = asyncio.ensure_future(engine.chat(REQUEST, call()))
        deltas, _ = await engine.chat_stream(REQUEST, call(), StreamTiming())
        for _ in range(100):  # the unary call reaches the provider within a few turns
            if old.calls == 2:
                break
            await asyncio.sleep(0)
        assert old.calls == 2
        engine.swap(config(11), {"p": new})  # type: ignore[dict-item]
        new.go.set()
        result, _ = await engine.chat(REQUEST, call())  # new calls: the new provider
        assert result.choices[0].message.content == "new"
        await asyncio.sleep(0.01)
        assert not old.closed, "closed under two calls in flight"
        old.go.set()
        first, _ = await unary
        assert first.choices[0].message.content == "old"
        await asyncio.sleep(0.01)
        assert not old.closed, "closed under a stream in flight"
        assert [d.choices[0].content async for d in deltas] == ["first", "last"]
        await asyncio.sleep(0.01)
        assert old.closed and not new.closed
        await engine.aclose()
        assert new.closed

    asyncio.run(run())


def test_an_unchanged_provider_is_kept() -> None:
    async def run() -> None:
        kept = Held("kept")
        kept.go.set()
        engine = Engine(config(10), {"p": kept})  # type: ignore[dict-item]
        engine.swap(config(10), {"p": kept})  # type: ignore[dict-item]
        await engine.chat(REQUEST, call())
        await asyncio.sleep(0.01)
        assert not kept.closed

    asyncio.run(run())
