"""Open- and closed-loop load engines, independent of the transport they drive.

Open loop (a fixed rate): requests are sent on a fixed schedule whether or not earlier
ones have answered, so a slow server cannot slow the client down and hide its own
latency (coordinated omission); how far the client fell behind its schedule is
reported as `max_send_lag_ms`. Closed loop (a fixed concurrency): each worker sends its
next request when the previous one answers, which measures throughput.

Requests begun during the warm-up are sent but not recorded. Every loop is bounded:
nothing new starts after the measured window, and each call has its own timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from bench.httpclient import HttpError
from bench.stats import Summary, summarize


class CallError(Exception):
    """A call that completed but not successfully (a non-200, an in-stream error...)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: float  # perf_counter when the request left
    done: float  # perf_counter when the response (or stream) ended
    events: list[float]  # streaming: arrival of each chunk that carries choices
    tokens: int = 0  # completion tokens, when the caller counts them


class Caller(Protocol):
    async def call(self) -> Outcome: ...


CALL_ERRORS = (CallError, HttpError, OSError, TimeoutError, grpc.RpcError)
_MAX_ERROR_SAMPLES = 5


@dataclass(slots=True)
class Recorder:
    """Collects the measured outcomes of one run."""

    t_measure: float  # perf_counter when the warm-up ends
    t_end: float  # perf_counter when the measured window ends
    ok: int = 0
    in_window: int = 0  # successes that ended inside the measured window (throughput)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    tokens: int = 0
    max_lag: float = 0.0
    first_sent: float = float("inf")  # of measured successes: their busy span, for rates
    last_done: float = 0.0

    async def run(self, caller: Caller, measured: bool) -> bool:
        try:
            outcome = await caller.call()
        except CALL_ERRORS as exc:
            if measured:
                self.errors += 1
                if len(self.error_samples) < _MAX_ERROR_SAMPLES:
                    self.error_samples.append(f"{type(exc).__name__}: {exc}"[:200])
            return False
        # Throughput counts every call that ends inside the window, however early it began:
        # counting only calls begun after the warm-up would lose about one call per worker,
        # a large bias when calls last a second (streams). Latencies are for measured calls.
        if self.t_measure <= outcome.done <= self.t_end:
            self.in_window += 1
        if measured:
            self.ok += 1
            self.latencies.append(outcome.done - outcome.sent)
            events = outcome.events
            if events:
                self.ttfts.append(events[0] - outcome.sent)
                self.gaps.extend(b - a for a, b in itertools.pairwise(events))
            self.tokens += outcome.tokens
            self.first_sent = min(self.first_sent, outcome.sent)
            self.last_done = max(self.last_done, outcome.done)
        return True


@dataclass(frozen=True, slots=True)
class Result:
    """What one load run prints, as JSON, for bench.run to collect."""

    mode: str
    duration_s: float
    requests: int
    errors: int
    error_samples: list[str]
    rps: float
    tokens: int
    tokens_per_s: float  # over the busy span, first measured send to last measured end
    max_send_lag_ms: float
    latency: Summary | None
    ttft: Summary | None
    gap: Summary | None
    client_cpu_pct: float  # this driver's own CPU use: near 100 means client-bound


def result(recorder: Recorder, mode: str, duration: float, client_cpu_pct: float) -> Result:
    span = recorder.last_done - recorder.first_sent
    return Result(
        mode=mode,
        duration_s=duration,
        requests=recorder.ok,
        errors=recorder.errors,
        error_samples=recorder.error_samples,
        rps=recorder.in_window / duration,
        tokens=recorder.tokens,
        tokens_per_s=recorder.tokens / span if span > 0 else 0.0,
        max_send_lag_ms=recorder.max_lag * 1000,
        latency=summarize(recorder.latencies),
        ttft=summarize(recorder.ttfts),
        gap=summarize(recorder.gaps),
        client_cpu_pct=client_cpu_pct,
    )


async def open_loop(
    caller: Caller, *, rate: float, warmup: float, duration: float, grace: float
) -> Recorder:
    """`rate` calls per second on a fixed schedule; the first `warmup` seconds unrecorded.

    After the last send, stragglers get `grace` seconds (their own timeout) to finish.
    """
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    recorder = Recorder(t_measure=t0 + warmup, t_end=t0 + warmup + duration)
    warm_count = round(warmup * rate)
    total = warm_count + round(duration * rate)
    start = loop.time()
    tasks: set[asyncio.Task[bool]] = set()
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        measured = i >= warm_count
        if measured:
            recorder.max_lag = max(recorder.max_lag, loop.time() - due)
        task = loop.create_task(recorder.run(caller, measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=grace + 1)
    for task in tasks:  # only if a call outlived its own timeout
        task.cancel()
    return recorder


async def closed_loop(
    caller: Caller, *, concurrency: int, warmup: float, duration: float, stagger: float = 0.0
) -> Recorder:
    """`concurrency` workers back to back; worker i starts `stagger * i / concurrency` late."""
    t0 = time.perf_counter()
    recorder = Recorder(t_measure=t0 + warmup, t_end=t0 + warmup + duration)

    async def worker(index: int) -> None:
        if stagger:
            await asyncio.sleep(stagger * index / concurrency)
        while (now := time.perf_counter()) < recorder.t_end:
            if not await recorder.run(caller, now >= recorder.t_measure):
                await asyncio.sleep(0.01)  # no hot spin against a failing server

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return recorder
