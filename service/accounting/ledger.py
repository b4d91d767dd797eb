"""The ledger: one row per generation, written with the key's spending, in one transaction.

A single writer thread owns the write connection and commits whatever has queued up
in one transaction (group commit), so the cost of a commit is shared by every request
that arrived meanwhile, and nothing touches SQLite on the event loop. A request waits
for its row to be committed before its last byte goes out: a generation the client
saw complete is in the ledger even if the process is killed the next instant. On a
clean shutdown the writer drains the queue before it stops.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from dataclasses import dataclass, fields
from pathlib import Path

log = logging.getLogger("switchyard.ledger")

SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_ms REAL NOT NULL,
    generation_time_ms REAL NOT NULL,
    finish_reason TEXT NOT NULL,
    streamed INTEGER NOT NULL,
    cancelled INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS generations_key ON generations (key_id, created_at);
"""
MAX_BATCH = 512
MAX_QUEUE = 65_536


@dataclass(frozen=True, slots=True)
class Generation:
    id: str
    key_id: str
    model: str
    provider: str
    upstream_model: str
    kind: str
    created_at: float
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_ms: float
    generation_time_ms: float
    finish_reason: str
    streamed: bool
    cancelled: bool


_COLUMNS = tuple(f.name for f in fields(Generation))


def _row(g: Generation) -> tuple[object, ...]:
    """The row, flat (dataclasses.astuple deep-copies, which the writer need not pay for)."""
    return (
        g.id, g.key_id, g.model, g.provider, g.upstream_model, g.kind, g.created_at,
        g.prompt_tokens, g.completion_tokens, g.cost, g.latency_ms, g.generation_time_ms,
        g.finish_reason, g.streamed, g.cancelled,
    )  # fmt: skip


_INSERT = (
    f"INSERT OR REPLACE INTO generations ({', '.join(_COLUMNS)}) "  # noqa: S608 - fixed names
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_Item = tuple[Generation, asyncio.Future[None], asyncio.AbstractEventLoop] | None


class Ledger:
    def __init__(self, path: Path) -> None:
        self._path = path
        setup = sqlite3.connect(path)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.executescript(SCHEMA)
        setup.close()
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=MAX_QUEUE)
        self._thread = threading.Thread(target=self._write, name="ledger", daemon=True)
        self._thread.start()
        self._reader = sqlite3.connect(path, check_same_thread=False)
        self._reader_lock = threading.Lock()

    async def record(self, generation: Generation) -> None:
        """Queue the row (and the key's spending) and wait until it is committed.

        The row is queued before the first await, so a caller cancelled while waiting
        (a client that left) still has its generation written, once.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        while True:
            try:
                self._queue.put_nowait((generation, done, loop))
                break
            except queue.Full:  # back-pressure, never an unbounded queue
                await asyncio.sleep(0.001)
        await asyncio.shield(done)

    def _write(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a process kill
        db.execute("PRAGMA busy_timeout=5000")
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [item for item in batch if item is not None]
            stopping = len(items) < len(batch)
            if items:
                self._commit(db, items)
        db.close()

    @staticmethod
    def _commit(
        db: sqlite3.Connection,
        items: list[tuple[Generation, asyncio.Future[None], asyncio.AbstractEventLoop]],
    ) -> None:
        error: Exception | None = None
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_INSERT, [_row(g) for g, _, _ in items])
            db.executemany(
                "UPDATE api_keys SET usage = usage + ? WHERE id = ?",
                [(g.cost, g.key_id) for g, _, _ in items if g.cost],
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("ledger write failed for %d generations", len(items), exc_info=exc)
            error = exc
            if db.in_transaction:
                db.execute("ROLLBACK")
        for _, done, loop in items:
            loop.call_soon_threadsafe(_resolve, done, error)

    def get(self, generation_id: str) -> Generation | None:
        with self._reader_lock:
            row = self._reader.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM generations WHERE id = ?",  # noqa: S608
                (generation_id,),
            ).fetchone()
        if row is None:
            return None
        values = list(row)
        values[-2], values[-1] = bool(values[-2]), bool(values[-1])
        return Generation(*values)

    def close(self) -> None:
        """Drain what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._reader.close()


def _resolve(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
