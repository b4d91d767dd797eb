"""service/providers/http1/spin.py: the learnt poll window and the loop poller.

The poller's effect is that the loop does not sleep: measured here as the process's CPU
time over a wall-clock wait, which is near the wait while the loop polls and near zero
while it sleeps in epoll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop

from service.providers.http1.spin import SPIN_START, Spinner, SpinWindow

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


def cpu_share_over(loop: asyncio.AbstractEventLoop, seconds: float) -> float:
    """The process's CPU time over `seconds` of the loop waiting on a sleep, as a share."""

    async def wait() -> float:
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)

    return loop.run_until_complete(wait())


@pytest.mark.parametrize("kind", LOOPS)
def test_the_loop_polls_while_a_caller_waits_and_sleeps_once_it_stops(kind: str) -> None:
    loop = LOOPS[kind]()
    try:
        spinner = Spinner(loop)
        assert cpu_share_over(loop, 0.05) < 0.3  # idle: the loop sleeps
        spinner.start(10.0)
        assert spinner.polling
        assert cpu_share_over(loop, 0.05) > 0.6  # it never blocked in the wait
        spinner.stop()
        assert cpu_share_over(loop, 0.05) < 0.3
        assert not spinner.polling
    finally:
        loop.close()


@pytest.mark.parametrize("kind", LOOPS)
def test_polling_ends_with_the_window_even_if_nobody_stops_it(kind: str) -> None:
    loop = LOOPS[kind]()
    try:
        spinner = Spinner(loop)
        spinner.start(0.005)
        assert cpu_share_over(loop, 0.1) < 0.3  # 5 ms of polling, then sleep
        assert not spinner.polling
    finally:
        loop.close()


def test_one_callback_per_iteration_however_many_callers_wait() -> None:
    loop = uvloop.new_event_loop()
    scheduled = 0
    call_soon = loop.call_soon

    def counting(*args: object, **kwargs: object) -> asyncio.Handle:
        nonlocal scheduled
        if args[0] == spinner._tick:
            scheduled += 1
        return call_soon(*args, **kwargs)  # type: ignore[arg-type]

    try:
        spinner = Spinner(loop)
        loop.call_soon = counting  # type: ignore[method-assign]
        for _ in range(50):
            spinner.start(10.0)
        assert scheduled == 1
        loop.run_until_complete(asyncio.sleep(0))
        for _ in range(50):
            spinner.stop()
        loop.run_until_complete(asyncio.sleep(0.01))
        assert not spinner.polling
        ticks = scheduled
        loop.run_until_complete(asyncio.sleep(0.01))
        assert scheduled == ticks  # nothing left scheduled
    finally:
        loop.close()


def test_a_caller_left_waiting_keeps_the_loop_polling_for_the_latest_window() -> None:
    loop = uvloop.new_event_loop()
    try:
        spinner = Spinner(loop)
        spinner.start(10.0)
        spinner.start(0.001)
        spinner.stop()  # one of the two answered; the other's wait goes on
        assert cpu_share_over(loop, 0.05) > 0.6
        spinner.stop()
        loop.run_until_complete(asyncio.sleep(0.001))
        assert not spinner.polling
    finally:
        loop.close()
