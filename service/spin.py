"""Polling the event loop, briefly, while a fast upstream's (or Redis's) answer is due.

Why: in front of a fast upstream (a local embedding or rerank server, another gateway
on the host) an answer comes back in 0.1-0.3 ms. If the loop blocks in epoll for that
wait, its core halts; on a virtual machine whose guest halt polling is off, the wake-up
and the caches lost to the halt come back as latency on the rest of the request. While
such an answer is due, `Spinner` keeps one callback scheduled, so the loop polls with a
zero timeout instead of sleeping: the kernel's haltpoll idea, in user space and only
for the wait on an upstream's response headers (service/providers/http1/pool.py) and on
a Redis reply (service/store/resp.py). In the benchmark (issue 7) it took
about 0.08 ms off the 0.8-0.9 ms the gateway added at 50 req/s (interleaved A/B runs).

How long to poll is learnt per upstream URL, as haltpoll learns its window: an answer
that came within the window keeps it; one that came later, but within the provider's
`answer_poll` limit, doubles it; one later than the limit halves it, down to nothing.
So an upstream that takes milliseconds (any LLM) stops being polled for after a few
calls and costs no CPU, and no call polls for longer than the limit.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

# Where a growing window starts.
SPIN_START = 0.00005


class SpinWindow:
    """How long to poll for one origin's next answer, learnt from its last ones."""

    __slots__ = ("limit", "seconds")

    def __init__(self, limit: float) -> None:
        self.limit = limit  # the longest poll; 0: never poll
        self.seconds = 0.0

    def update(self, waited: float) -> None:
        """Adjust to an answer that took `waited` seconds from the request's send."""
        if waited <= self.seconds:
            return
        if waited <= self.limit:
            self.seconds = min(self.limit, max(SPIN_START, self.seconds * 2))
        else:
            half = self.seconds / 2
            self.seconds = half if half >= SPIN_START else 0.0


class Spinner:
    """Keeps one event loop polling while at least one caller waits within its window.

    One callback per loop iteration however many callers wait, and none at all once
    they are answered or their windows are over.
    """

    __slots__ = ("_scheduled", "_until", "_waiting", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiting = 0
        self._until = 0.0
        self._scheduled = False

    def start(self, seconds: float) -> None:
        """A caller begins a wait worth polling for `seconds`; pair with `stop`."""
        self._waiting += 1
        self._until = max(self._until, perf_counter() + seconds)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._tick)

    def stop(self) -> None:
        self._waiting -= 1

    @property
    def polling(self) -> bool:
        return self._scheduled

    def _tick(self) -> None:
        # A ready callback makes the loop's next poll return at once rather than sleep.
        if self._waiting and perf_counter() < self._until:
            self.loop.call_soon(self._tick)
        else:
            self._scheduled = False
