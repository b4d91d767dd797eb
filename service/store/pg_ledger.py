"""The ledger on PostgreSQL: the same journal and writer thread, committing to PostgreSQL.

Everything of the SQLite ledger holds (service/accounting/ledger.py): a generation is
journaled on the request path before anything else, committed with its spending in one
transaction, and replayed from the journal of a process that died. While PostgreSQL is
unreachable the writer keeps its batch at the head of the queue and tries again every
half second; the rows wait in the journal (which survives the process), so none is lost,
and a generation id is inserted once (`ON CONFLICT DO NOTHING`), so none is doubled;
only the rows inserted are added to the usage rollups (pg_usage.py).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from service.accounting.ledger import _COLUMNS, Generation, Ledger, StoreAway, _row
from service.accounting.periods import periods_at
from service.store import pg_usage

_INSERT = (
    f"INSERT INTO generations ({', '.join(_COLUMNS)}) "  # noqa: S608 - fixed names
    f"VALUES ({', '.join('%s' for _ in _COLUMNS)}) ON CONFLICT (id) DO NOTHING RETURNING id"
)
_SPEND = "UPDATE api_keys SET usage = usage + %s WHERE id = %s"
_SPEND_IN = (
    "INSERT INTO key_usage (key_id, period, usage) VALUES (%s, %s, %s) "
    "ON CONFLICT (key_id, period) DO UPDATE SET usage = key_usage.usage + excluded.usage"
)
_AWAY = (psycopg.OperationalError, psycopg.InterfaceError)


class PgLedger(Ledger):
    """`pool` serves the reads; the writer thread keeps one connection of its own."""

    def __init__(self, pool: ConnectionPool, url: str, journal_dir: Path) -> None:
        self._pool = pool
        self._url = url
        # The journals live in the data directory (the ledger's `path` is only used for it).
        super().__init__(journal_dir / "postgres")

    def _setup(self) -> None:
        db = self._open_writer()
        try:
            self._adopt_orphans(db)
        finally:
            db.close()

    def _open_writer(self) -> Any:
        return _Writer(self._url)

    def _open_reader(self) -> Any:
        return None

    def _read(self, generation_id: str) -> tuple[Any, ...] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM generations WHERE id = %s",  # noqa: S608
                (generation_id,),
            ).fetchone()
        return tuple(row) if row is not None else None

    def _close_store(self) -> None:
        """The pool belongs to the key store, which closes it."""

    def _store(self, db: Any, generations: list[Generation]) -> bool:
        writer: _Writer = db
        try:
            conn = writer.connection()
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(_INSERT, [_row(g) for g in generations], returning=True)
                new: set[str] = set()
                while True:
                    found = cursor.fetchone()
                    if found is not None:
                        new.add(found[0])
                    if not cursor.nextset():
                        break
                spend: dict[str, float] = defaultdict(float)
                spend_in: dict[tuple[str, str], float] = defaultdict(float)
                for g in generations:
                    if g.id in new and g.cost:
                        spend[g.key_id] += g.cost
                        for period in periods_at(g.billed_at or g.created_at).names():
                            spend_in[g.key_id, period] += g.cost
                if spend:
                    cursor.executemany(_SPEND, [(v, k) for k, v in spend.items()])
                    cursor.executemany(_SPEND_IN, [(k, p, v) for (k, p), v in spend_in.items()])
                pg_usage.roll_up(cursor, sorted(new))  # the console's sums, same transaction
            return True
        except _AWAY as exc:
            writer.drop()
            raise StoreAway(str(exc)) from exc


class _Writer:
    """The writer thread's connection, made again after PostgreSQL went away."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, connect_timeout=3, autocommit=True)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        self.drop()
