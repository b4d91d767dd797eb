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
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from service import errors
from service.accounting.periods import Clock, periods_at, wall_clock
from service.auth.keys import display_prefix, hash_key, new_key, same_hash
from service.store.keys import POLICY_FIELDS, KeyPolicy, KeyRecord, _column_value, _record
from service.store.pg_schema import upgrade_on

log = logging.getLogger("switchyard.postgres")

_USAGE_IN = "(SELECT usage FROM key_usage WHERE key_id = api_keys.id AND period = %s)"
_COLUMNS = (
    "id, name, display, created_at, revoked_at, "
    + ", ".join(("usage", *POLICY_FIELDS))
    + f", {_USAGE_IN}, {_USAGE_IN}, {_USAGE_IN}"
)


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
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys {where}",  # noqa: S608 - fixed text
                (*periods, *params),
            ).fetchall()
        return [_record(row, periods) for row in rows]

    def create(self, name: str, policy: KeyPolicy | None = None) -> tuple[KeyRecord, str]:
        return self.insert(name, new_key(), policy)

    def insert(
        self, name: str, plain: str, policy: KeyPolicy | None = None
    ) -> tuple[KeyRecord, str]:
        policy = policy or KeyPolicy()
        record = KeyRecord(
            id="key_" + uuid.uuid4().hex[:16],
            name=name,
            display=display_prefix(plain),
            created_at=time.time(),
            policy=policy,
        )
        columns = ", ".join(POLICY_FIELDS)
        marks = ", ".join("%s" for _ in POLICY_FIELDS)
        with self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO api_keys (id, name, key_hash, display, created_at, {columns}) "  # noqa: S608 - fixed column names
                f"VALUES (%s, %s, %s, %s, %s, {marks})",
                (
                    record.id,
                    record.name,
                    hash_key(plain),
                    record.display,
                    record.created_at,
                    *(_column_value(f, getattr(policy, f)) for f in POLICY_FIELDS),
                ),
            )
        return record, plain

    def list(self) -> list[KeyRecord]:
        return self._select("ORDER BY created_at", ())

    def get(self, key_id: str) -> KeyRecord | None:
        found = self._select("WHERE id = %s", (key_id,))
        return found[0] if found else None

    def count(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()
        return int(row[0]) if row else 0

    def has_admin(self) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL LIMIT 1"
            ).fetchone()
        return row is not None

    def find_by_secret(self, plain: str) -> KeyRecord | None:
        found = self._select("WHERE key_hash = %s", (hash_key(plain),))
        return found[0] if found else None

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        allowed = {"name", *POLICY_FIELDS}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown key fields: {sorted(unknown)}")
        if changes:
            sets = ", ".join(f"{name} = %s" for name in changes)
            with self._pool.connection() as conn:
                conn.execute(
                    f"UPDATE api_keys SET {sets} WHERE id = %s",  # noqa: S608 - checked names
                    (*(_column_value(k, v) for k, v in changes.items()), key_id),
                )
            self._changed(key_id)
        return self.get(key_id)

    def add_credits(self, key_id: str, amount: float) -> KeyRecord | None:
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE api_keys SET credit_limit = COALESCE(credit_limit, 0) + %s WHERE id = %s",
                (amount, key_id),
            )
        self._changed(key_id)
        return self.get(key_id)

    def revoke(self, key_id: str) -> bool:
        with self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        self._changed(key_id)
        return cursor.rowcount == 1

    def delete(self, key_id: str) -> bool:
        with self._pool.connection() as conn:
            cursor = conn.execute("DELETE FROM api_keys WHERE id = %s", (key_id,))
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
                row = conn.execute(
                    f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE key_hash = %s",  # noqa: S608
                    (*periods, digest),
                ).fetchone()
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
        record = _record(row[:-1], periods)
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._cache_seconds, record, digest)
        return record if record.active else None
