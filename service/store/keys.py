"""The SQLite key store: hashed keys and their policies, managed by admins, read per request.

Lookups go through a short-lived in-memory cache so that the hot path does not touch
SQLite on every call; a change made by another process (the CLI) takes effect within
`cache_seconds`. Spending (`usage`) is written by the ledger, in the same transaction as
the generation it pays for.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from service.accounting.periods import Clock, periods_at, wall_clock
from service.auth.keys import hash_key, new_key, same_hash
from service.store.key_records import COUNT, HAS_ADMIN, KeySql, new_record, record_from_row
from service.store.key_records import POLICY_FIELDS as POLICY_FIELDS  # re-exported
from service.store.key_records import KeyPolicy as KeyPolicy
from service.store.key_records import KeyRecord as KeyRecord
from service.store.private import private_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    display TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
-- Spending per budget period (service/accounting/periods.py), written by the ledger in
-- the transaction of the generation it pays for.
CREATE TABLE IF NOT EXISTS key_usage (
    key_id TEXT NOT NULL,
    period TEXT NOT NULL,
    usage REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, period)
) WITHOUT ROWID;
"""
# Columns added after the first schema, with their SQL types (a simple forward migration).
POLICY_COLUMNS = {
    "is_admin": "INTEGER NOT NULL DEFAULT 0",
    "credit_limit": "REAL",
    "usage": "REAL NOT NULL DEFAULT 0",
    "rpm": "INTEGER",
    "tpm": "INTEGER",
    "max_concurrent": "INTEGER",
    "allowed_models": "TEXT",
    "expires_at": "REAL",
    "disabled": "INTEGER NOT NULL DEFAULT 0",
    "limit_reset": "TEXT",
}


SQL = KeySql("?")


class KeyStore:
    def __init__(
        self, path: Path, *, cache_seconds: float = 2.0, clock: Clock = wall_clock
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        private_database(path)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}
        for column, kind in POLICY_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {kind}")
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeyRecord, str]] = {}
        self._cache_seconds = cache_seconds
        self._clock = clock
        # Called with a key's id after it changed here (the Redis backend tells the
        # other replicas); called from whichever thread made the change.
        self.on_change: list[Callable[[str], None]] = []

    def forget(self) -> None:
        """Drop every cached lookup (a key changed elsewhere)."""
        self._cache.clear()

    def _changed(self, key_id: str) -> None:
        self._cache.clear()
        for listener in self.on_change:
            listener(key_id)

    def _periods(self) -> tuple[str, ...]:
        return periods_at(self._clock()).names()

    def _select(self, where: str, params: tuple[Any, ...]) -> list[KeyRecord]:
        """The keys matching `where`, each with its spending in the current periods."""
        periods = self._periods()
        with self._lock:
            rows = self._db.execute(SQL.select(where), (*periods, *params)).fetchall()
        return [record_from_row(row, periods) for row in rows]

    def close(self) -> None:
        self._db.close()

    def create(self, name: str, policy: KeyPolicy | None = None) -> tuple[KeyRecord, str]:
        """Create a key; the plain key is returned here once and never stored."""
        return self.insert(name, new_key(), policy)

    def insert(
        self, name: str, plain: str, policy: KeyPolicy | None = None
    ) -> tuple[KeyRecord, str]:
        """Store a key whose secret the caller chose (e.g. SWITCHYARD_ADMIN_KEY)."""
        record, params = new_record(name, plain, policy)
        with self._lock:
            self._db.execute(SQL.insert, params)
        return record, plain

    def list(self) -> list[KeyRecord]:
        return self._select("ORDER BY created_at", ())

    def get(self, key_id: str) -> KeyRecord | None:
        found = self._select(SQL.by_id, (key_id,))
        return found[0] if found else None

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute(COUNT).fetchone()
        return int(n)

    def has_admin(self) -> bool:
        with self._lock:
            row = self._db.execute(HAS_ADMIN).fetchone()
        return row is not None

    def find_by_secret(self, plain: str) -> KeyRecord | None:
        """The key with this secret, whatever its state (no cache)."""
        found = self._select(SQL.by_hash, (hash_key(plain),))
        return found[0] if found else None

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change policy fields (and `name`); returns the updated key, or None."""
        statement, params = SQL.update(key_id, changes)  # refuses unknown fields
        if changes:
            with self._lock:
                self._db.execute(statement, params)
            self._changed(key_id)
        return self.get(key_id)

    def add_credits(self, key_id: str, amount: float) -> KeyRecord | None:
        """Raise a key's credit limit by `amount` (a key with no limit gets one)."""
        with self._lock:
            self._db.execute(SQL.add_credits, (amount, key_id))
        self._changed(key_id)
        return self.get(key_id)

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(SQL.revoke, (time.time(), key_id))
        self._changed(key_id)
        return cursor.rowcount == 1

    def delete(self, key_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(SQL.delete, (key_id,))
        self._changed(key_id)
        return cursor.rowcount == 1

    def verify(self, plain: str) -> KeyRecord | None:
        """The active key whose hash matches `plain`, or None."""
        digest = hash_key(plain)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now and same_hash(cached[2], digest):
            record = cached[1]
            return record if record.active else None
        periods = self._periods()
        with self._lock:
            row = self._db.execute(SQL.verify, (*periods, digest)).fetchone()
        if row is None or not same_hash(row[-1], digest):
            return None
        record = record_from_row(row[:-1], periods)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, record, digest)
        return record if record.active else None
