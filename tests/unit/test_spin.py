"""service/spin.py: the learnt poll window and the loop poller.

The poller's effect is that the loop does not sleep: seen here as its callback running
again and again while a sleep is pending, and not at all once it stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop

from service.spin import SPIN_START, Spinner, SpinWindow

LIMIT = 0.0005

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


# --- the window ---------------------------------------------------------------------------


def test_fast_answers_grow_the_window_by_doubling_up_to_the_limit() -> None:
    window = SpinWindow(LIMIT)
    seen = []
    for _ in range(6):
        window.update(0.00045)  # later than the window, within the limit
        seen.append(window.seconds)
    assert seen == [SPIN_START, 2 * SPIN_START, 4 * SPIN_START, 8 * SPIN_START, LIMIT, LIMIT]


def test_an_answer_within_the_window_keeps_it() -> None:
    window = SpinWindow(LIMIT)
    for _ in range(3):
        window.update(0.0003)
    assert window.seconds == 4 * SPIN_START
    window.update(0.0001)
    assert window.seconds == 4 * SPIN_START


def test_slow_answers_halve_the_window_down_to_nothing() -> None:
    window = SpinWindow(LIMIT)
    for _ in range(5):
        window.update(0.00045)
    assert window.seconds == LIMIT
    seen = []
    for _ in range(6):
        window.update(0.02)  # an LLM's answer: far beyond the limit
        seen.append(window.seconds)
    assert seen == [LIMIT / 2, LIMIT / 4, LIMIT / 8, 0.0, 0.0, 0.0]


def test_a_slow_upstream_is_never_polled_for() -> None:
    window = SpinWindow(LIMIT)
    for _ in range(20):
        window.update(0.005)
    assert window.seconds == 0.0


def test_a_zero_limit_never_polls() -> None:
    window = SpinWindow(0.0)
    for waited in (0.0, 0.00001, 0.0001, 0.001):
        window.update(waited)
        assert window.seconds == 0.0


# --- the poller ---------------------------------------------------------------------------
#
# What the poller does is keep one callback ready on the loop, so that the loop's next poll
# returns at once instead of sleeping. The tests watch that state (the callback's
# rescheduling, counted as the loop runs) rather than the CPU clock, which a busy machine
# bends.


class Ticks:
    """Counts the poller's callbacks as the loop schedules them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spinner: Spinner) -> None:
        self.count = 0
        call_soon = loop.call_soon

        def counting(*args: object, **kwargs: object) -> asyncio.Handle:
            if args[0] == spinner._tick:
                self.count += 1
            return call_soon(*args, **kwargs)  # type: ignore[arg-type]

        loop.call_soon = counting  # type: ignore[method-assign]


def keeps_ticking(loop: asyncio.AbstractEventLoop, ticks: Ticks, deadline: float = 10.0) -> bool:
    """Whether the loop runs the poller again and again while a sleep is pending: more
    than 20 callbacks within one 50 ms sleep (a loop asleep in epoll runs none), tried
    until `deadline` so that a descheduled process is not taken for a sleeping loop."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        before = ticks.count
        loop.run_until_complete(asyncio.sleep(0.05))
        if ticks.count - before > 20:
            return True
    return False


def ticks_during_sleep(loop: asyncio.AbstractEventLoop, ticks: Ticks) -> int:
    before = ticks.count
    loop.run_until_complete(asyncio.sleep(0.05))
    return ticks.count - before


@pytest.mark.parametrize("kind", LOOPS)
def test_the_loop_polls_while_a_caller_waits_and_sleeps_once_it_stops(kind: str) -> None:
    loop = LOOPS[kind]()
    try:
        spinner = Spinner(loop)
        ticks = Ticks(loop, spinner)
        assert ticks_during_sleep(loop, ticks) == 0  # idle: nothing keeps the loop awake
        spinner.start(10.0)
        assert spinner.polling
        assert keeps_ticking(loop, ticks), "the loop slept while a caller waited"
        spinner.stop()
        loop.run_until_complete(asyncio.sleep(0))
        assert not spinner.polling
        assert ticks_during_sleep(loop, ticks) == 0
    finally:
        loop.close()


@pytest.mark.parametrize("kind", LOOPS)
def test_polling_ends_with_the_window_even_if_nobody_stops_it(kind: str) -> None:
    loop = LOOPS[kind]()
    try:
        spinner = Spinner(loop)
        ticks = Ticks(loop, spinner)
        spinner.start(0.005)
        deadline = time.monotonic() + 10
        while spinner.polling:  # 5 ms of polling, then it lets the loop sleep
            assert time.monotonic() < deadline, "polling outlived its window"
            loop.run_until_complete(asyncio.sleep(0.01))
        assert ticks.count > 0
        assert ticks_during_sleep(loop, ticks) == 0
    finally:
        loop.close()


def test_one_callback_per_iteration_however_many_callers_wait() -> None:
    loop = uvloop.new_event_loop()
    try:
        spinner = Spinner(loop)
        ticks = Ticks(loop, spinner)
        for _ in range(50):
            spinner.start(10.0)
        assert ticks.count == 1
        loop.run_until_complete(asyncio.sleep(0))
        for _ in range(50):
            spinner.stop()
        loop.run_until_complete(asyncio.sleep(0.01))
        assert not spinner.polling
        assert ticks_during_sleep(loop, ticks) == 0  # nothing left scheduled
    finally:
        loop.close()


def test_a_caller_left_waiting_keeps_the_loop_polling_for_the_latest_window() -> None:
    loop = uvloop.new_event_loop()
    try:
        spinner = Spinner(loop)
        ticks = Ticks(loop, spinner)
        spinner.start(10.0)
        spinner.start(0.001)
        spinner.stop()  # one of the two answered; the other's wait goes on
        assert keeps_ticking(loop, ticks)
        assert spinner.polling
        spinner.stop()
        loop.run_until_complete(asyncio.sleep(0.001))
        assert not spinner.polling
    finally:
        loop.close()
