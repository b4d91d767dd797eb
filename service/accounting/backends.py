"""The state behind accounting, as interfaces, and which implementation the config picks.

Three deployments, one gate (DESIGN §7):

- one process, embedded (the default, `make run`): SQLite for keys and the ledger, the
  limits and credit holds counted in process, each check-and-count one synchronous
  step on the event loop (service/accounting/credits.py, limiter.py);
- `--workers N` on one machine, embedded: the workers share their rate windows, leases
  and credit holds through atomic SQLite statements in the same database
  (service/store/shared_sqlite.py), so that no worker count multiplies a limit;
- several replicas: `storage.redis_url` moves the rate windows, concurrency leases
  (with a TTL), credit holds and the key-cache invalidation to Redis, one Lua script
  per check-and-count (service/store/redis_limits.py).

Admission (`admit`, `reserve`) may need a round trip, so it is awaited; what comes
after a call (`finish`, `settle`, `release`) never makes the answer wait: a shared
backend sends it from one writer task per process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from service.accounting.credits import Credits, Reservation, Spend
from service.accounting.ledger import Generation, Ledger
from service.accounting.limiter import Admission, LimitState, RateLimiter
from service.accounting.periods import Clock, wall_clock
from service.accounting.usage import EndpointUsage, GenerationFilter, Point
from service.store.keys import KeyPolicy, KeyRecord, KeyStore
from service.store.settings import StorageSettings


class KeyBackend(Protocol):
    def verify(self, plain: str) -> KeyRecord | None: ...

    def create(self, name: str, policy: KeyPolicy | None = None) -> tuple[KeyRecord, str]: ...

    def get(self, key_id: str) -> KeyRecord | None: ...

    def list(self) -> list[KeyRecord]: ...

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None: ...

    def add_credits(self, key_id: str, amount: float) -> KeyRecord | None: ...

    def delete(self, key_id: str) -> bool: ...


class KeyStoreBackend(KeyBackend, Protocol):
    """A whole key store, as `open_keys` and `Backends.keys` hand it out: SQLite's KeyStore
    or PostgreSQL's PgKeyStore. Beyond what the servicers ask (KeyBackend): the first-start
    keys (launcher), revoking (CLI), and the cache the shared limits invalidate."""

    # Called with a key's id after it changed through this store (Redis tells the others).
    on_change: list[Callable[[str], None]]

    def insert(
        self, name: str, plain: str, policy: KeyPolicy | None = None
    ) -> tuple[KeyRecord, str]: ...

    def count(self) -> int: ...

    def has_admin(self) -> bool: ...

    def find_by_secret(self, plain: str) -> KeyRecord | None: ...

    def revoke(self, key_id: str) -> bool: ...

    def forget(self) -> None:
        """Drop (or mark stale) every cached lookup: a key changed elsewhere."""
        ...

    def close(self) -> None: ...


class LedgerBackend(Protocol):
    async def record(self, generation: Generation) -> None:
        """Durably store the generation and add its cost to the key's spending."""
        ...

    async def room(self) -> None:
        """Return once the store has caught up enough (back-pressure after `record_now`)."""
        ...

    def record_now(self, generation: Generation) -> None:
        """`record` without the wait: callers then await `room()`."""
        ...

    def get(self, generation_id: str) -> Generation | None: ...

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything recorded so far is durable in the store."""
        ...

    def close(self) -> None: ...


class CreditBackend(Protocol):
    async def usage(self, key: KeyRecord) -> Spend:
        """What the key spent, in all and in the current day, week and month."""
        ...

    async def reserve(self, key: KeyRecord, amount: float, hold_id: str = "") -> Reservation:
        """Hold `amount` (one atomic check-and-hold), or raise 402."""
        ...

    def settle(self, reservation: Reservation, cost: float) -> None: ...

    def release(self, reservation: Reservation) -> None: ...


class CounterBackend(Protocol):
    async def admit(self, key_id: str, policy: KeyPolicy, tokens: int) -> Admission:
        """Count the request in (one atomic check-and-count), or raise 429."""
        ...

    def finish(self, admission: Admission, tokens: int | None) -> None: ...

    async def state(self, key_id: str, policy: KeyPolicy) -> LimitState: ...


class UsageBackend(Protocol):
    """Usage aggregated by the database that holds the ledger (the console's reads).

    Blocking calls: servicers run them in a worker thread. `key_id` None means every key.
    """

    def series(
        self, since: float, bucket_seconds: int, group_by: str = "", key_id: str | None = None
    ) -> dict[str, dict[float, Point]]: ...

    def endpoints(self, since: float, key_id: str | None = None) -> list[EndpointUsage]: ...

    def generations(self, f: GenerationFilter) -> list[Generation]: ...


class AdmissionBackend(Protocol):
    """Both admission steps at once, where a shared store can make them one round trip."""

    async def admit_and_reserve(
        self, key: KeyRecord, tokens: int, amount: float, hold_id: str
    ) -> tuple[Admission, Reservation]: ...


@dataclass
class Backends:
    keys: KeyStoreBackend
    ledger: LedgerBackend
    credits: CreditBackend
    limiter: CounterBackend
    # Connections to start once the event loop runs, and to close at shutdown.
    parts: tuple[Any, ...] = ()
    admission: AdmissionBackend | None = None  # admit + reserve in one step, if it can
    # The console's reads, where the ledger is not the local SQLite (which Service reads).
    usage: UsageBackend | None = None

    async def start(self) -> None:
        for part in self.parts:
            await part.start()

    async def aclose(self) -> None:
        for part in reversed(self.parts):
            await part.aclose()

    def not_ready(self) -> str | None:
        """Why a shared store keeps this process from taking traffic (None: nothing)."""
        for part in self.parts:
            check = getattr(part, "not_ready", None)
            problem = check() if check is not None else None
            if problem is not None:
                return str(problem)
        return None


def open_keys(settings: StorageSettings, database: Path) -> KeyStoreBackend:
    """The key store alone, uncached (the CLI's, and the launcher's for the first keys)."""
    if settings.database_url is not None:
        from service.store.pg_keys import PgKeyStore, open_pool

        pool = open_pool(settings.database_url, 2)
        return PgKeyStore(pool, cache_seconds=0)
    return KeyStore(database, cache_seconds=0)


def open_backends(
    settings: StorageSettings, database: Path, *, workers: int = 1, clock: Clock = wall_clock
) -> Backends:
    """The stores for this process, as the config and the worker count call for them."""
    if settings.database_url is not None:
        from service.store.pg_keys import PgKeyStore, open_pool
        from service.store.pg_ledger import PgLedger
        from service.store.pg_usage import PgUsage
        from service.store.redis_limits import open_redis

        pool = open_pool(settings.database_url, settings.pool_size)
        pg_keys = PgKeyStore(pool, cache_seconds=settings.key_cache_seconds, clock=clock)
        pg_ledger = PgLedger(pool, settings.database_url, database.parent)
        # The config check makes a database_url come with a redis_url. This ignore is the
        # last: open_redis still annotates SQLite's KeyStore and Ledger, not the
        # KeyStoreBackend and LedgerBackend protocols that PgKeyStore and PgLedger meet.
        stores = open_redis(settings, pg_keys, pg_ledger, clock=clock)
        stores.usage = PgUsage(pool)
        return stores
    keys = KeyStore(database, cache_seconds=settings.key_cache_seconds, clock=clock)
    if settings.redis_url is not None:
        from service.store.redis_limits import open_redis

        return open_redis(settings, keys, Ledger(database), clock=clock)
    if workers > 1:
        from service.store.shared_sqlite import SharedCounters, SharedCredits

        credits, counters = SharedCredits(database, keys, clock), SharedCounters(database)
        ledger = Ledger(database, shared_holds=True)  # after the holds' table exists
        return Backends(keys, ledger, credits, counters, (credits, counters))
    return Backends(keys, Ledger(database), Credits(clock), RateLimiter())
