"""Stopping on SIGTERM or Ctrl-C: what is waited for, for how long, and the way out at once.

The first SIGTERM or SIGINT stops the gateway taking new work and lets the requests in
flight finish for up to the grace period (`--shutdown-grace`, 30 s by default), and the
log says how many there are and for how long they may run. What is still running then
is ended the way an upstream failure would be (a 503, a stream's error chunk, gRPC
UNAVAILABLE) and billed for what it produced. A second signal exits at once with status
128 + its number (130 for Ctrl-C), as a shell reports a death by that signal; the rows
the ledger had journalled are replayed at the next start (accounting/journal.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger("switchyard")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def waiting_for(http_requests: int | None, generations: int | None) -> str:
    """'2 HTTP requests and 1 generation in flight' (None: not served by this process)."""
    parts = []
    if http_requests is not None:
        parts.append(_plural(http_requests, "HTTP request"))
    if generations is not None:
        parts.append(_plural(generations, "generation"))
    return " and ".join(parts) + " in flight" if parts else "nothing in flight"


def exit_now(signum: int, what: str) -> NoReturn:
    """The second signal: leave at once, saying what is left behind."""
    log.warning("%s again: exiting now, cutting %s", signal.Signals(signum).name, what)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


class StopSignals:
    """The first of `signals` asks for a graceful stop (`wait` returns it); the next one
    exits at once (`describe` says what that cuts)."""

    def __init__(
        self, describe: Callable[[], str], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
    ) -> None:
        self._describe = describe
        self._signals = signals
        self._first: asyncio.Future[int] | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        for sig in self._signals:
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, signum: int) -> None:
        assert self._first is not None
        if self._first.done():
            exit_now(signum, self._describe())
        self._first.set_result(signum)

    async def wait(self) -> int:
        """The number of the first stop signal, once it comes."""
        assert self._first is not None
        return await self._first
