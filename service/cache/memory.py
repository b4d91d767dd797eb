"""The in-process cache backend: an LRU dictionary with a TTL per entry.

Bounded by a number of entries: the least recently used entry goes first. Expired
entries are dropped when they are read, and the oldest ones first when the bound is
reached, so nothing expired outlives the bound for long. Everything here is a plain
dictionary step on the event loop: no lock, nothing that waits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from service.cache.entry import Entry


class MemoryBackend:
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def purge(self, model: str | None, partition: str | None) -> int:
        doomed = [
            key
            for key, entry in self._entries.items()
            if (model is None or entry.requested_model == model or entry.model == model)
            and (partition is None or entry.partition == partition)
        ]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def aclose(self) -> None:
        self._entries.clear()
