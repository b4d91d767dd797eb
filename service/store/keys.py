"""The SQLite key store: hashed keys, created and revoked by the CLI, read per request.

Lookups go through a short-lived in-memory cache so that the hot path does not touch
SQLite on every call; a revocation made by another process takes effect within
`cache_seconds`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from service.auth.keys import display_prefix, hash_key, new_key, same_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    display TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
"""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    display: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _record(row: tuple[str, str, str, float, float | None]) -> KeyRecord:
    return KeyRecord(id=row[0], name=row[1], display=row[2], created_at=row[3], revoked_at=row[4])


class KeyStore:
    def __init__(self, path: Path, *, cache_seconds: float = 2.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeyRecord, str]] = {}
        self._cache_seconds = cache_seconds

    def close(self) -> None:
        self._db.close()

    def create(self, name: str) -> tuple[KeyRecord, str]:
        """Create a key; the plain key is returned here once and never stored."""
        plain = new_key()
        record = KeyRecord(
            id="key_" + uuid.uuid4().hex[:16],
            name=name,
            display=display_prefix(plain),
            created_at=time.time(),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (id, name, key_hash, display, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.id, record.name, hash_key(plain), record.display, record.created_at),
            )
        return record, plain

    def list(self) -> list[KeyRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, display, created_at, revoked_at FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [_record(row) for row in rows]

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM api_keys").fetchone()
        return int(n)

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            self._cache.clear()
        return cursor.rowcount == 1

    def verify(self, plain: str) -> KeyRecord | None:
        """The active key whose hash matches `plain`, or None."""
        digest = hash_key(plain)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now and same_hash(cached[2], digest):
            return cached[1]
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, display, created_at, revoked_at, key_hash FROM api_keys "
                "WHERE key_hash = ?",
                (digest,),
            ).fetchone()
        if row is None or not same_hash(row[5], digest):
            return None
        record = _record(row[:5])
        if not record.active:
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, record, digest)
        return record
