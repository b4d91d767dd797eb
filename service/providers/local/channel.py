"""A bounded hand-off of generated pieces from a worker thread to the event loop.

The generating thread blocks when `capacity` items are in flight (backpressure, no
unbounded growth); each item reaches the loop with one `call_soon_threadsafe` (no task
per token); `close()` tells the thread to stop at its next token.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class TokenChannel(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int = 64) -> None:
        self._loop = loop
        self._space = threading.Semaphore(capacity)
        self._items: asyncio.Queue[T] = asyncio.Queue()  # bounded by `_space`
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def put(self, item: T) -> bool:
        """Called by the producer thread; False once the consumer has gone away."""
        while not self._space.acquire(timeout=0.05):
            if self._closed.is_set():
                return False
        if self._closed.is_set():
            return False
        self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        return True

    async def get(self) -> T:
        item = await self._items.get()
        self._space.release()
        return item

    def close(self) -> None:
        self._closed.set()
