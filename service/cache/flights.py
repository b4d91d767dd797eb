"""Identical requests in flight at once are coalesced: one reaches the upstream.

The first miss for a key leads: it registers a future, calls the upstream and lands the
future with the entry it stored (or None when its answer was not cacheable, failed or
was cut). A request that misses while a leader is out waits for that future, bounded by
its own deadline, and is answered from the landed entry; when the leader lands None it
goes to the upstream itself.
"""

from __future__ import annotations

import asyncio

from service import errors
from service.cache.entry import Entry


class Flights:
    def __init__(self) -> None:
        self._out: dict[str, asyncio.Future[Entry | None]] = {}

    def __len__(self) -> int:
        return len(self._out)

    def lead(self, key: str) -> bool:
        """Take the lead for `key` if nobody has it; True when taken."""
        if key in self._out:
            return False
        self._out[key] = asyncio.get_running_loop().create_future()
        return True

    def land(self, key: str, entry: Entry | None) -> None:
        """The leader is done (with `entry`, or None): wake whoever waits."""
        future = self._out.pop(key, None)
        if future is not None and not future.done():
            future.set_result(entry)

    async def wait(self, key: str, deadline: float | None) -> Entry | None:
        """What the leader for `key` lands (None at once when there is none)."""
        future = self._out.get(key)
        if future is None:
            return None
        timeout = None
        if deadline is not None:
            timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            # Shielded: a waiter that gives up must not cancel the future others share.
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise errors.request_timeout() from None
