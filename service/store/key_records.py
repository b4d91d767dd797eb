"""A key's record and its row in `api_keys`, written once for both key stores.

SQLite's store (service/store/keys.py) and PostgreSQL's (service/store/pg_keys.py) hold
the same table and differ only in their driver: the placeholder (`?` for sqlite3, `%s`
for psycopg) and how a connection is had. The records, the mapping between a record and
its row, and the statements (KeySql, made for one placeholder) live here, so that a
policy field added to one store cannot be missed by the other.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from service.auth.keys import display_prefix, hash_key


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


def record_from_row(row: tuple[Any, ...], periods: tuple[str, ...]) -> KeyRecord:
    """The record a row of `KeySql.select` (or `verify`, its hash cut off) holds."""
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


def column_value(name: str, value: Any) -> Any:
    """A policy field's value as its column stores it."""
    if name == "allowed_models":
        return json.dumps(list(value)) if value is not None else None
    if name in ("disabled", "is_admin"):
        return int(bool(value))
    return value


def new_record(
    name: str, plain: str, policy: KeyPolicy | None
) -> tuple[KeyRecord, tuple[Any, ...]]:
    """A new key's record, and the parameters of `KeySql.insert` that store it (hashed)."""
    policy = policy or KeyPolicy()
    record = KeyRecord(
        id="key_" + uuid.uuid4().hex[:16],
        name=name,
        display=display_prefix(plain),
        created_at=time.time(),
        policy=policy,
    )
    params = (
        record.id,
        record.name,
        hash_key(plain),
        record.display,
        record.created_at,
        *(column_value(f, getattr(policy, f)) for f in POLICY_FIELDS),
    )
    return record, params


COUNT = "SELECT COUNT(*) FROM api_keys"
HAS_ADMIN = "SELECT 1 FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL LIMIT 1"

# The statements as sqlite3 writes them (`?`); KeySql puts another driver's mark in.
_USAGE_IN = "(SELECT usage FROM key_usage WHERE key_id = api_keys.id AND period = ?)"
_COLUMNS = (
    "id, name, display, created_at, revoked_at, "
    + ", ".join(("usage", *POLICY_FIELDS))
    + f", {_USAGE_IN}, {_USAGE_IN}, {_USAGE_IN}"
)
_INSERT = (
    f"INSERT INTO api_keys (id, name, key_hash, display, created_at, {', '.join(POLICY_FIELDS)}) "  # noqa: S608 - fixed column names
    f"VALUES (?, ?, ?, ?, ?, {', '.join('?' for _ in POLICY_FIELDS)})"
)
_ADD_CREDITS = "UPDATE api_keys SET credit_limit = COALESCE(credit_limit, 0) + ? WHERE id = ?"
_REVOKE = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
_DELETE = "DELETE FROM api_keys WHERE id = ?"


class KeySql:
    """The statements on `api_keys`, with one driver's placeholder `mark`.

    A select's first parameters are the current periods' names (daily, weekly,
    monthly), for the spending in each beside the key's own columns."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.columns = _COLUMNS.replace("?", mark)
        # The key with a hash, and the hash (compared again, in constant time).
        self.verify = f"SELECT {self.columns}, key_hash FROM api_keys WHERE key_hash = {mark}"  # noqa: S608 - fixed text
        self.by_id = f"WHERE id = {mark}"
        self.by_hash = f"WHERE key_hash = {mark}"
        self.insert = _INSERT.replace("?", mark)
        self.add_credits = _ADD_CREDITS.replace("?", mark)
        self.revoke = _REVOKE.replace("?", mark)
        self.delete = _DELETE.replace("?", mark)

    def select(self, where: str) -> str:
        """The keys `where` (a fixed clause, e.g. `by_id`) says, with their spending."""
        return f"SELECT {self.columns} FROM api_keys {where}"  # noqa: S608 - fixed text

    def update(self, key_id: str, changes: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The statement and parameters that set `changes` (policy fields and `name`)."""
        unknown = set(changes) - {"name", *POLICY_FIELDS}
        if unknown:
            raise ValueError(f"unknown key fields: {sorted(unknown)}")
        sets = ", ".join(f"{name} = {self.mark}" for name in changes)
        return (
            f"UPDATE api_keys SET {sets} WHERE id = {self.mark}",  # noqa: S608 - checked names
            (*(column_value(k, v) for k, v in changes.items()), key_id),
        )
