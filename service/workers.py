"""`--workers N`: N processes, each a whole gateway on its own event loop, and a parent
that starts them, stops them, and stops them all when one dies.

The workers serve the HTTP port through one listening socket that the parent bound
(service/ports.py) and hands to each (multiprocessing passes its descriptor at spawn):
the kernel queues connections on it, and whichever worker is free accepts the next. The
gRPC port is bound by each worker with SO_REUSEPORT, after the parent has checked that
no one else holds it.

Ctrl-C reaches every process of the terminal's group, so the workers ignore SIGINT and
the parent alone decides: its first SIGINT or SIGTERM is passed on to the workers as
SIGTERM (each drains for the grace period), a second one as a second SIGTERM (each exits
at once), and the parent then exits 128 + the signal's number. SIGHUP (reload the
config) is passed on to every worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from service.shutdown import STOP_SIGNALS

log = logging.getLogger("switchyard")

# Past the grace period: what a worker still does after its servers stopped (settling
# the calls cut at the end, the ledger's last commit), before the parent kills it.
EXIT_MARGIN = 15.0
# After a second signal, how long a worker gets to leave before it is killed.
FORCED_EXIT_WAIT = 5.0


def _tell(children: list[BaseProcess], signum: int) -> None:
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signum)


def _wait_all(children: list[BaseProcess], until: float) -> None:
    for child in children:
        child.join(max(0.0, until - time.monotonic()))


def _kill_stragglers(children: list[BaseProcess]) -> None:
    for child in children:
        if child.is_alive():
            log.error("worker %s did not stop; killing it", child.pid)
            child.kill()
            child.join(5)


def run_workers(
    count: int,
    grace: float,
    target: Callable[..., None],
    args: tuple[Any, ...],
    listening: socket.socket | None,
) -> int:
    """Run `target(*args, listening)` in `count` spawned processes until a stop signal
    or until one of them exits; the parent's exit status."""
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = [
        context.Process(target=target, args=(*args, listening), name=f"switchyard-worker-{i}")
        for i in range(count)
    ]
    # Ignored across exec, SIGINT stays ignored in the workers from their first moment.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for child in children:
            child.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    if listening is not None:
        listening.close()  # the workers hold it now: the port lives as long as they do

    received: list[int] = []
    wake = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        wake.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    # SIGHUP (config reload) goes to every worker: each reloads its own copy.
    signal.signal(signal.SIGHUP, lambda signum, frame: _tell(children, signal.SIGHUP))
    while not received and all(child.is_alive() for child in children):
        wake.wait(0.5)
    if received:
        status = 0
        log.warning(
            "%s: stopping %d workers; each finishes its requests in flight, up to %g s "
            "(Ctrl-C again to exit now)",
            signal.Signals(received[0]).name,
            count,
            grace,
        )
    else:
        dead = next(child for child in children if not child.is_alive())
        status = dead.exitcode if dead.exitcode and dead.exitcode > 0 else 1
        log.error("worker %s exited with status %s; stopping the others", dead.pid, dead.exitcode)
    seen = len(received)
    _tell(children, signal.SIGTERM)
    deadline = time.monotonic() + grace + EXIT_MARGIN
    while any(child.is_alive() for child in children) and time.monotonic() < deadline:
        if len(received) > seen:  # the second signal: out at once
            _tell(children, signal.SIGTERM)
            _wait_all(children, time.monotonic() + FORCED_EXIT_WAIT)
            _kill_stragglers(children)
            return 128 + received[-1]
        wake.clear()
        wake.wait(0.2)
    _kill_stragglers(children)
    return status
