"""The key store on PostgreSQL: the SQLite store's interface, shared by every replica.

Lookups are cached per process as with SQLite; a change made through any replica is
announced over Redis (service/store/redis_limits.py) and every replica drops its cache.
While PostgreSQL is unreachable, a key found in the cache is still served, however old
its entry: the database being away stops changes to keys too, so the cached record is
the last word there is. Connections come from a bounded pool (`storage.pool_size`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from service import errors
from service.accounting.periods import Clock, periods_at, wall_clock
from service.auth.keys import hash_key, new_key, same_hash
from service.store.key_records import (
    COUNT,
    HAS_ADMIN,
    KeyPolicy,
    KeyRecord,
    KeySql,
    new_record,
    record_from_row,
)
from service.store.pg_schema import upgrade_on

log = logging.getLogger("switchyard.postgres")

SQL = KeySql("%s")


def open_pool(url: str, size: int, timeout: float = 5.0) -> ConnectionPool:
    """A bounded pool; connections fail fast (a few seconds) when the server is away."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        timeout=timeout,
        kwargs={"connect_timeout": 3, "autocommit": True},
        # A connection is checked as it is taken: after PostgreSQL restarted, the pool's
        # old connections are dead, and a request must not be the one to find out.
        check=ConnectionPool.check_connection,
        open=True,
        name="switchyard",
    )


class PgKeyStore:
    def __init__(
        self,
        pool: ConnectionPool,
        *,
        cache_seconds: float = 2.0,
        clock: Clock = wall_clock,
    ) -> None:
        self._pool = pool
        with pool.connection() as conn:
            applied = upgrade_on(conn)
        if applied:
            log.info("PostgreSQL schema migrated to version %d", applied[-1])
        self._cache: dict[str, tuple[float, KeyRecord, str]] = {}
        self._cache_lock = threading.Lock()
        self._cache_seconds = cache_seconds
        self._clock = clock
        self.on_change: list[Callable[[str], None]] = []

    def close(self) -> None:
        self._pool.close()

    def forget(self) -> None:
        """Mark every cached lookup stale (kept, for when the database is away)."""
        with self._cache_lock:
            self._cache = {d: (0.0, record, h) for d, (_, record, h) in self._cache.items()}

    def _changed(self, key_id: str) -> None:
        self.forget()
        for listener in self.on_change:
            listener(key_id)

    def _select(self, where: str, params: tuple[Any, ...]) -> list[KeyRecord]:
        periods = periods_at(self._clock()).names()
        with self._pool.connection() as conn:
            rows = conn.execute(SQL.select(where), (*periods, *params)).fetchall()
        return [record_from_row(row, periods) for row in rows]

    def create(self, name: str, policy: KeyPolicy | None = None) -> tuple[KeyRecord, str]:
        return self.insert(name, new_key(), policy)

    def insert(
        self, name: str, plain: str, policy: KeyPolicy | None = None
    ) -> tuple[KeyRecord, str]:
        record, params = new_record(name, plain, policy)
        with self._pool.connection() as conn:
            conn.execute(SQL.insert, params)
        return record, plain

    def list(self) -> list[KeyRecord]:
        return self._select("ORDER BY created_at", ())

    def get(self, key_id: str) -> KeyRecord | None:
        found = self._select(SQL.by_id, (key_id,))
        return found[0] if found else None

    def count(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(COUNT).fetchone()
        return int(row[0]) if row else 0

    def has_admin(self) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute(HAS_ADMIN).fetchone()
        return row is not None

    def find_by_secret(self, plain: str) -> KeyRecord | None:
        found = self._select(SQL.by_hash, (hash_key(plain),))
        return found[0] if found else None

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        statement, params = SQL.update(key_id, changes)  # refuses unknown fields
        if changes:
            with self._pool.connection() as conn:
                conn.execute(statement, params)
            self._changed(key_id)
        return self.get(key_id)

    def add_credits(self, key_id: str, amount: float) -> KeyRecord | None:
        with self._pool.connection() as conn:
            conn.execute(SQL.add_credits, (amount, key_id))
        self._changed(key_id)
        return self.get(key_id)

    def revoke(self, key_id: str) -> bool:
        with self._pool.connection() as conn:
            cursor = conn.execute(SQL.revoke, (time.time(), key_id))
        self._changed(key_id)
        return cursor.rowcount == 1

    def delete(self, key_id: str) -> bool:
        with self._pool.connection() as conn:
            cursor = conn.execute(SQL.delete, (key_id,))
        self._changed(key_id)
        return cursor.rowcount == 1

    def verify(self, plain: str) -> KeyRecord | None:
        digest = hash_key(plain)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now and same_hash(cached[2], digest):
            return cached[1] if cached[1].active else None
        periods = periods_at(self._clock()).names()
        try:
            with self._pool.connection() as conn:
                row = conn.execute(SQL.verify, (*periods, digest)).fetchone()
        except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError) as exc:
            if cached is None or not same_hash(cached[2], digest):
                raise errors.GatewayError(
                    "NO_PROVIDER_AVAILABLE",
                    "The gateway cannot reach its key store to check this key. Retry shortly.",
                    metadata={"backend": "postgres"},
                    retry_after=1.0,
                ) from None
            log.warning("PostgreSQL unreachable (%s): serving a cached key", type(exc).__name__)
            return cached[1] if cached[1].active else None
        if row is None or not same_hash(row[-1], digest):
            return None
        record = record_from_row(row[:-1], periods)
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._cache_seconds, record, digest)
        return record if record.active else None
