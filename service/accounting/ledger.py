"""The ledger: one row per generation, written with the key's spending, in one transaction.

Nothing on the request path waits for SQLite. A generation is first appended to a
memory-mapped journal (see journal.py: it survives the process being killed), then
handed to a writer thread that commits what has queued up, up to a tenth of a second's
worth at a time, in one transaction together with the keys' spending. The
journal is rotated, and a rotated file is deleted once everything in it is committed.
Whatever a dead process left in its journals (a journal nobody holds the lock of, see
journal.py) is replayed at start and, every RESCAN_SECONDS, while running, so that a
worker killed beside this one loses nothing either; replay is idempotent (a generation
id is written once, and only a new row adds to spending). On a clean shutdown the
writer drains its queue before it stops.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from service.accounting import usage_sqlite
from service.accounting.journal import JOURNAL_BYTES, Journal, orphan, records
from service.accounting.periods import periods_at
from service.store.private import private_database
from service.telemetry import metrics as metrics_module

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
    cancelled INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'ok',
    attempts INTEGER NOT NULL DEFAULT 1,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    billed_at REAL NOT NULL DEFAULT 0,
    cache TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS generations_key ON generations (key_id, created_at);
CREATE TABLE IF NOT EXISTS key_usage (
    key_id TEXT NOT NULL,
    period TEXT NOT NULL,
    usage REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, period)
) WITHOUT ROWID;
"""
# Added after the first release: a database made before gains them (old rows: ok, 1).
_ADDED_COLUMNS = {
    "status": "ALTER TABLE generations ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'",
    "attempts": "ALTER TABLE generations ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",
    "cached_tokens": "ALTER TABLE generations ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0",
    "cache_write_tokens": (
        "ALTER TABLE generations ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0"
    ),
    "billed_at": "ALTER TABLE generations ADD COLUMN billed_at REAL NOT NULL DEFAULT 0",
    # Old rows were not answered by the response cache.
    "cache": "ALTER TABLE generations ADD COLUMN cache TEXT NOT NULL DEFAULT ''",
}
MAX_BATCH = 512
MAX_QUEUE = 65_536
# How long the writer lets rows gather before a commit. The journal holds each row from
# the start and `get` sees queued rows, so this only sets how often SQLite commits. A
# commit costs about as much for one row as for fifty, and each wake-up of the writer
# trades the GIL with the event loop. Rows that come slowly are committed after the short
# window, so the writer runs in the gap after the answer that queued them, not in the
# middle of the next request. Rows that come fast (BUSY_ROWS within it) gather for the
# long one: with the gateway free to use both cores, that cut its CPU per request by
# about 10 % at saturation (issue 7 note). A backlog never waits for a window.
SHORT_WINDOW = 0.005
BATCH_WINDOW = 0.1
BUSY_ROWS = 16
# How often the writer looks for journals that a dead process left behind.
RESCAN_SECONDS = 5.0
# How old a journal still being made (`*.new`) must be before a scan takes it for a dead
# process's.
NEW_JOURNAL_GRACE = 10.0
# How soon a batch is tried again when the store is away (RETRY: a network database).
RETRY_SECONDS = 0.5


class StoreAway(Exception):  # noqa: N818 - a condition, not a failure of this code
    """Raised by `_commit` when the store cannot be reached: the batch waits for it."""


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
    # "ok", or the error reason (service/errors.py) of a call that failed after it was
    # admitted, or "cancelled" when the client left before any output. Last and with a
    # default, so journal lines written before it existed still load.
    status: str = "ok"
    attempts: int = 1  # upstream calls made, retries and fallbacks included
    # Prompt tokens read from / written to the upstream's prompt cache (in prompt_tokens).
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    # When its credit was reserved (wall clock): the budget periods it is billed to, so
    # that a generation reserved before midnight settles against the day it began in.
    # 0 (a journal line written before this field): its created_at.
    billed_at: float = 0.0
    cache: str = ""  # "" (the upstream answered) | hit | semantic-hit (the response cache)


_COLUMNS = tuple(f.name for f in fields(Generation))
COLUMNS = ", ".join(_COLUMNS)


def from_row(row: tuple[object, ...]) -> Generation:
    """A generation from a `SELECT COLUMNS` row (SQLite gives the flags back as ints).
    By name, not position: a column added later cannot shift the flags."""
    values: dict[str, Any] = dict(zip(_COLUMNS, row, strict=True))
    values["streamed"], values["cancelled"] = bool(values["streamed"]), bool(values["cancelled"])
    return Generation(**values)


def _row(g: Generation) -> tuple[object, ...]:
    """The row, flat (dataclasses.astuple deep-copies, which the writer need not pay for)."""
    return (
        g.id, g.key_id, g.model, g.provider, g.upstream_model, g.kind, g.created_at,
        g.prompt_tokens, g.completion_tokens, g.cost, g.latency_ms, g.generation_time_ms,
        g.finish_reason, g.streamed, g.cancelled, g.status, g.attempts, g.cached_tokens,
        g.cache_write_tokens, g.billed_at, g.cache,
    )  # fmt: skip


_INSERT = (
    f"INSERT OR IGNORE INTO generations ({', '.join(_COLUMNS)}) "  # noqa: S608 - fixed names
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_SPEND = "UPDATE api_keys SET usage = usage + ? WHERE id = ?"
_SPEND_IN = (
    "INSERT INTO key_usage (key_id, period, usage) VALUES (?, ?, ?) "
    "ON CONFLICT (key_id, period) DO UPDATE SET usage = usage + excluded.usage"
)
# Workers sharing credit holds (service/store/shared_sqlite.py): a hold stays until the
# generation it paid for is committed here, with its spending, in the same transaction.
_DROP_HOLD = "DELETE FROM credit_holds WHERE id = ?"
# A generation to commit, or a journal to delete once all before it is committed.
_Item = Generation | Journal | None


class Ledger:
    def __init__(
        self,
        path: Path,
        journal_bytes: int = JOURNAL_BYTES,
        rescan: float = RESCAN_SECONDS,
        *,
        shared_holds: bool = False,
    ) -> None:
        self._path = path
        self._shared_holds = shared_holds
        self._rescan = rescan
        self._journal_bytes = journal_bytes
        self._journals = path.parent / "ledger-journal"
        self._journals.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._setup()
        self._pending: dict[str, Generation] = {}  # queued, not yet committed
        self._pending_lock = threading.Lock()
        # Items for the writer. Bounded by `room`; appends and pops are thread-safe.
        self._items: deque[_Item] = deque()
        self._ready = threading.Event()  # set when items wait and the writer may sleep
        self._closing = threading.Event()  # cuts the batch windows short
        self._wake_scheduled = False
        self._journal = Journal(self._journals, self._journal_bytes)
        self._thread = threading.Thread(target=self._write, name="ledger", daemon=True)
        self._thread.start()
        self._reader_lock = threading.Lock()
        self._reader = self._open_reader()

    # --- the store (SQLite here; service/store/pg_ledger.py overrides these) ----------

    def _setup(self) -> None:
        """Make the schema, then replay what dead processes journaled."""
        private_database(self._path)
        setup = sqlite3.connect(self._path, isolation_level=None)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.executescript(SCHEMA)
        self._migrate(setup)
        self._adopt_orphans(setup)
        setup.close()

    def _open_writer(self) -> Any:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        return db

    def _open_reader(self) -> Any:
        return sqlite3.connect(self._path, check_same_thread=False)

    def _read(self, generation_id: str) -> tuple[Any, ...] | None:
        row = self._reader.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM generations WHERE id = ?",  # noqa: S608
            (generation_id,),
        ).fetchone()
        return tuple(row) if row is not None else None

    def _close_store(self) -> None:
        self._reader.close()

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Bring an older database up to date, in one transaction: workers that start
        together see either none of it or all of it."""
        db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(generations)")}
            for name, alter in _ADDED_COLUMNS.items():
                if name not in columns:
                    db.execute(alter)
            usage_sqlite.migrate(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- the request path ---------------------------------------------------------------

    def record_now(self, generation: Generation) -> None:
        """Journal the generation, then queue it for the writer; no wait for SQLite.

        Callers then wait for `room()`, so the queue goes past MAX_QUEUE by at most the
        requests in flight.
        """
        line = orjson.dumps(_row(generation)) + b"\n"
        if not self._journal.append(line):
            self._rotate()
            self._journal.append(line)
        with self._pending_lock:
            self._pending[generation.id] = generation
        self._push(generation)

    async def record(self, generation: Generation) -> None:
        """`record_now`, then wait for room (back-pressure) if the writer is behind."""
        self.record_now(generation)
        await self.room()

    async def room(self) -> None:
        # Never an unbounded queue. The writer is a thread, so the loop polls for room
        # (only when a whole queue behind) rather than being woken from it.
        while len(self._items) >= MAX_QUEUE:  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    def _push(self, item: _Item) -> None:
        self._items.append(item)
        if not self._ready.is_set() and not self._wake_scheduled:
            # Waking the writer switches threads on this core; done from the loop's next
            # turn, that happens after the answer being built has been written out.
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_scheduled = False
        self._ready.set()

    def _rotate(self) -> None:
        old = self._journal
        self._journal = Journal(self._journals, self._journal_bytes)
        old.close()
        # After every row of `old`, in queue order: deleted once those are committed.
        self._push(old)

    # --- the writer thread --------------------------------------------------------------

    def _write(self) -> None:
        db = self._open_writer()
        stopping = False
        next_scan = time.monotonic() + self._rescan
        while not stopping:
            if not self._ready.wait(max(0.0, next_scan - time.monotonic())):
                self._adopt_orphans(db)
                next_scan = time.monotonic() + self._rescan
                continue
            # The journal already holds the rows: gather a window's worth into one
            # commit rather than waking up (and committing) once per request.
            self._closing.wait(SHORT_WINDOW)
            if len(self._items) >= BUSY_ROWS:
                self._closing.wait(BATCH_WINDOW - SHORT_WINDOW)
            self._ready.clear()  # before draining: a later append sets it again
            # A backlog is committed batch after batch, never paced by the window.
            while self._items and not stopping:
                stopping = self._commit_batch(db)
        db.close()

    def _commit_batch(self, db: sqlite3.Connection) -> bool:
        """Commit up to MAX_BATCH queued items; True once the stop marker is taken."""
        batch: list[_Item] = []
        while self._items and len(batch) < MAX_BATCH:
            batch.append(self._items.popleft())
        generations = [g for g in batch if isinstance(g, Generation)]
        try:
            committed = bool(generations) and self._store(db, generations)
        except StoreAway:
            if self._closing.is_set():  # shutting down: the journal keeps them for next start
                return True
            # The store is away (a network database): keep the batch, in order, at the
            # head of the queue and try again shortly; the journal keeps it meanwhile.
            self._items.extendleft(reversed(batch))
            self._closing.wait(RETRY_SECONDS)
            return False
        if committed:
            with self._pending_lock:
                for g in generations:
                    self._pending.pop(g.id, None)
        for done in (j for j in batch if isinstance(j, Journal)):
            done.discard()
        metrics = metrics_module.ACTIVE
        if metrics is not None:  # once per commit, on the writer's thread
            metrics.ledger_backlog.set(len(self._pending))
        return None in batch

    def _store(self, db: sqlite3.Connection, generations: list[Generation]) -> bool:
        """Commit a batch to the store (service/store/pg_ledger.py: to PostgreSQL)."""
        if self._shared_holds:
            return self._commit(db, generations, shared_holds=True)
        return self._commit(db, generations)

    @staticmethod
    def _commit(
        db: sqlite3.Connection, generations: list[Generation], *, shared_holds: bool = False
    ) -> bool:
        try:
            db.execute("BEGIN IMMEDIATE")
            inserted = [g for g in generations if db.execute(_INSERT, _row(g)).rowcount == 1]
            for g in inserted:
                if g.cost:
                    db.execute(_SPEND, (g.cost, g.key_id))
                    for period in periods_at(g.billed_at or g.created_at).names():
                        db.execute(_SPEND_IN, (g.key_id, period, g.cost))
            if shared_holds:
                for g in generations:
                    db.execute(_DROP_HOLD, (g.id,))
            usage_sqlite.roll_up(db, inserted)
            db.execute("COMMIT")
            return True
        except sqlite3.Error as exc:  # the rows stay journaled: replayed on the next start
            log.error("ledger write failed for %d generations", len(generations), exc_info=exc)
            if db.in_transaction:
                db.execute("ROLLBACK")
            return False

    def _adopt_orphans(self, db: sqlite3.Connection) -> None:
        """Commit what dead processes journaled but may not have committed, then delete
        their journals (each one locked while it is read, committed and deleted)."""
        for stale in self._journals.glob("*.new"):  # killed before its first row
            # One just made may not be locked yet (the lock follows the open): a worker
            # starting beside this one lost its journal to this scan and died. A live
            # maker renames it within microseconds; only an old one is an orphan.
            try:
                if time.time() - stale.stat().st_mtime < NEW_JOURNAL_GRACE:
                    continue
            except FileNotFoundError:
                continue
            with orphan(stale) as ours:
                if ours:
                    stale.unlink(missing_ok=True)
        for file in sorted(self._journals.glob("*.jsonl")):
            with orphan(file) as ours:
                if not ours:
                    continue
                generations = []
                for line in records(file):
                    try:
                        generations.append(Generation(*orjson.loads(line)))
                    except (orjson.JSONDecodeError, TypeError):
                        log.warning("skipping a torn journal line in %s", file.name)
                try:
                    if generations and not self._store(db, generations):
                        continue  # kept for the next scan
                except StoreAway:
                    continue
                if generations:
                    log.info(
                        "replayed %d journaled generations from %s", len(generations), file.name
                    )
                file.unlink(missing_ok=True)

    # --- reads and shutdown -------------------------------------------------------------

    def get(self, generation_id: str) -> Generation | None:
        with self._pending_lock:
            pending = self._pending.get(generation_id)
        if pending is not None:
            return pending
        with self._reader_lock:
            row = self._read(generation_id)
        if row is None:
            return None
        return from_row(row)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (on this thread) until everything recorded so far is committed."""
        deadline = time.monotonic() + timeout
        while True:
            with self._pending_lock:
                if not self._pending:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def close(self) -> None:
        """Drain what is queued, then stop the writer and drop the (committed) journal."""
        self._items.append(None)
        self._closing.set()
        self._ready.set()
        self._thread.join(timeout=30)
        if not self._thread.is_alive() and not self._pending:
            self._journal.discard()
        else:  # rows may be uncommitted: the file stays, for the next start to replay
            self._journal.release()
        self._close_store()
