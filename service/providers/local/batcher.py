"""Dynamic batching: concurrent embedding requests coalesced into one ONNX run.

Requests put their inputs on a bounded queue; one collector task takes what is there
(waiting about a millisecond after the first item for company, up to `max_batch`
inputs) and runs the batch on a dedicated thread, off the event loop. A full queue is
refused at once (the caller answers 503) rather than growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.telemetry import metrics as metrics_module

In = TypeVar("In")
Out = TypeVar("Out")


class QueueFull(Exception):  # noqa: N818 - reads as the condition it reports
    """The batcher's queue has no room for these inputs."""


@dataclass(slots=True)
class _Item(Generic[In, Out]):
    value: In
    future: asyncio.Future[Out]


class Batcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Sequence[Out]],
        *,
        max_batch: int = 64,
        wait: float = 0.001,
        max_queue: int = 4096,
        name: str = "batcher",
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._wait = wait
        self._queue: asyncio.Queue[_Item[In, Out]] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._collector: asyncio.Task[None] | None = None
        self.batches = 0
        self.name = name

    async def submit(self, values: Sequence[In]) -> list[Out]:
        """Results for `values`, in order. Raises QueueFull when there is no room."""
        if self._queue.maxsize - self._queue.qsize() < len(values):
            raise QueueFull
        if self._collector is None:
            self._collector = asyncio.get_running_loop().create_task(self._collect())
        loop = asyncio.get_running_loop()
        items = [_Item[In, Out](value, loop.create_future()) for value in values]
        for item in items:
            self._queue.put_nowait(item)
        try:
            return [await item.future for item in items]
        except asyncio.CancelledError:
            for item in items:
                item.future.cancel()  # the collector skips cancelled items
            raise

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self._wait
            while len(batch) < self._max_batch:
                if self._queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    await asyncio.sleep(min(remaining, self._wait))
                    if self._queue.empty():
                        break
                batch.append(self._queue.get_nowait())
            batch = [item for item in batch if not item.future.done()]
            metrics = metrics_module.ACTIVE
            if metrics is not None:  # once per batch, not per request
                metrics.local_queue.labels(self.name).set(self._queue.qsize())
                if batch:
                    metrics.local_batch.labels(self.name).observe(len(batch))
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run, [item.value for item in batch]
                )
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batches += 1
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)

    async def aclose(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        self._executor.shutdown(wait=False, cancel_futures=True)
