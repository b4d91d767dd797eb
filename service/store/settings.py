"""The `storage:` section of the config: where the shared state lives.

Unset, the gateway is embedded (SQLite in the data directory; see
service/accounting/backends.py). `redis_url` (or SWITCHYARD_REDIS_URL, which wins)
shares the limits, holds and key invalidation between replicas; `database_url` (or
SWITCHYARD_DATABASE_URL) moves keys, spending and the ledger to PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

ON_BACKEND_ERROR = ("closed", "open")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    # Keys, spending and the ledger on PostgreSQL, shared by replicas on any host
    # (SWITCHYARD_DATABASE_URL wins); needs redis_url for the limits.
    database_url: str | None = None
    redis_url: str | None = None
    # Redis unreachable: "closed" refuses generations (503 + Retry-After, nothing
    # billed); "open" serves them and counts their limits in this process alone.
    on_backend_error: str = "closed"
    lease_ttl: float = 30.0  # seconds a crashed replica's leases and holds outlive it
    key_cache_seconds: float = 2.0  # how long a key lookup is cached (Redis: until changed)
    pool_size: int = 16  # PostgreSQL connections per process, at most
