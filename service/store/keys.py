"""The SQLite key store: hashed keys and their policies, managed by admins, read per request.

Lookups go through a short-lived in-memory cache so that the hot path does not touch
SQLite on every call; a change made by another process (the CLI) takes effect within
`cache_seconds`. Spending (`usage`) is written by the ledger, in the same transaction as
the generation it pays for.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from service.accounting.periods import Clock, periods_at, wall_clock
from service.auth.keys import display_prefix, hash_key, new_key, same_hash
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


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What a key may do. None means "no limit"."""

    credit_limit: float | None = None  # USD
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    allowed_models: tuple[str, ...] | None = None  # globs; None = every model
    expires_at: float | None = None  # unix time
    disabled: bool = False
    is_admin: bool = False
    limit_reset: str | None = None  # daily | weekly | monthly: the limit is per period


POLICY_FIELDS = tuple(f.name for f in fields(KeyPolicy))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    display: str
    created_at: float
    revoked_at: float | None = None
    policy: KeyPolicy = KeyPolicy()
    usage: float = 0.0  # USD spent, as of the last read
    # USD spent in the periods current at the last read, by period name ("d:2026-12-04").
    period_usage: Mapping[str, float] = field(default_factory=dict, compare=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.policy.disabled and not self.expired

    @property
    def expired(self) -> bool:
        expires = self.policy.expires_at
        return expires is not None and expires <= time.time()


_USAGE_IN = "(SELECT usage FROM key_usage WHERE key_id = api_keys.id AND period = ?)"
_COLUMNS = (
    "id, name, display, created_at, revoked_at, "
    + ", ".join(("usage", *POLICY_FIELDS))
    + f", {_USAGE_IN}, {_USAGE_IN}, {_USAGE_IN}"
)


def _record(row: tuple[Any, ...], periods: tuple[str, ...]) -> KeyRecord:
    key_id, name, display, created_at, revoked_at, usage, *rest = row
    policy, spent = rest[: len(POLICY_FIELDS)], rest[len(POLICY_FIELDS) :]
    values = dict(zip(POLICY_FIELDS, policy, strict=True))
    values["disabled"] = bool(values["disabled"])
    values["is_admin"] = bool(values["is_admin"])
    models = values["allowed_models"]
    values["allowed_models"] = tuple(json.loads(models)) if models is not None else None
    period_usage = {p: float(u or 0.0) for p, u in zip(periods, spent, strict=True)}
    return KeyRecord(
        key_id, name, display, created_at, revoked_at, KeyPolicy(**values), usage, period_usage
    )


def _column_value(name: str, value: Any) -> Any:
    if name == "allowed_models":
        return json.dumps(list(value)) if value is not None else None
    if name in ("disabled", "is_admin"):
        return int(bool(value))
    return value


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
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys {where}",  # noqa: S608 - fixed text
                (*periods, *params),
            ).fetchall()
        return [_record(row, periods) for row in rows]

    def close(self) -> None:
        self._db.close()

    def create(self, name: str, policy: KeyPolicy | None = None) -> tuple[KeyRecord, str]:
        """Create a key; the plain key is returned here once and never stored."""
        return self.insert(name, new_key(), policy)

    def insert(
        self, name: str, plain: str, policy: KeyPolicy | None = None
    ) -> tuple[KeyRecord, str]:
        """Store a key whose secret the caller chose (e.g. SWITCHYARD_ADMIN_KEY)."""
        policy = policy or KeyPolicy()
        record = KeyRecord(
            id="key_" + uuid.uuid4().hex[:16],
            name=name,
            display=display_prefix(plain),
            created_at=time.time(),
            policy=policy,
        )
        columns = ", ".join(POLICY_FIELDS)
        marks = ", ".join("?" for _ in POLICY_FIELDS)
        with self._lock:
            self._db.execute(
                f"INSERT INTO api_keys (id, name, key_hash, display, created_at, {columns}) "  # noqa: S608 - fixed column names
                f"VALUES (?, ?, ?, ?, ?, {marks})",
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
        found = self._select("WHERE id = ?", (key_id,))
        return found[0] if found else None

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM api_keys").fetchone()
        return int(n)

    def has_admin(self) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL LIMIT 1"
            ).fetchone()
        return row is not None

    def find_by_secret(self, plain: str) -> KeyRecord | None:
        """The key with this secret, whatever its state (no cache)."""
        found = self._select("WHERE key_hash = ?", (hash_key(plain),))
        return found[0] if found else None

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change policy fields (and `name`); returns the updated key, or None."""
        allowed = {"name", *POLICY_FIELDS}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown key fields: {sorted(unknown)}")
        if changes:
            sets = ", ".join(f"{name} = ?" for name in changes)
            with self._lock:
                self._db.execute(
                    f"UPDATE api_keys SET {sets} WHERE id = ?",  # noqa: S608 - checked names
                    (*(_column_value(k, v) for k, v in changes.items()), key_id),
                )
            self._changed(key_id)
        return self.get(key_id)

    def add_credits(self, key_id: str, amount: float) -> KeyRecord | None:
        """Raise a key's credit limit by `amount` (a key with no limit gets one)."""
        with self._lock:
            self._db.execute(
                "UPDATE api_keys SET credit_limit = COALESCE(credit_limit, 0) + ? WHERE id = ?",
                (amount, key_id),
            )
        self._changed(key_id)
        return self.get(key_id)

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        self._changed(key_id)
        return cursor.rowcount == 1

    def delete(self, key_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
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
            row = self._db.execute(
                f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE key_hash = ?",  # noqa: S608
                (*periods, digest),
            ).fetchone()
        if row is None or not same_hash(row[-1], digest):
            return None
        record = _record(row[:-1], periods)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, record, digest)
        return record if record.active else None
