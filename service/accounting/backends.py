"""The state behind accounting, as interfaces (DESIGN §7).

The embedded default implements them with SQLite (keys, ledger) and in-process counters
(credits held, rate windows). A shared deployment can add PostgreSQL and Redis
implementations of the same interfaces without touching the gate or the servicers; a
Redis counter must keep each check-and-count atomic (one Lua script per admission).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from service.accounting.credits import Reservation
from service.accounting.ledger import Generation
from service.accounting.limiter import Admission, LimitState
from service.accounting.usage import EndpointUsage, GenerationFilter, Point
from service.store.keys import KeyPolicy, KeyRecord


class KeyBackend(Protocol):
    def verify(self, plain: str) -> KeyRecord | None: ...

    def create(self, name: str, policy: KeyPolicy | None = None) -> tuple[KeyRecord, str]: ...

    def get(self, key_id: str) -> KeyRecord | None: ...

    def list(self) -> list[KeyRecord]: ...

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None: ...

    def add_credits(self, key_id: str, amount: float) -> KeyRecord | None: ...

    def delete(self, key_id: str) -> bool: ...


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
    def spent(self, key: KeyRecord) -> float: ...

    def reserve(self, key: KeyRecord, amount: float) -> Reservation: ...

    def settle(self, reservation: Reservation, cost: float) -> None: ...

    def release(self, reservation: Reservation) -> None: ...


class CounterBackend(Protocol):
    def admit(self, key_id: str, policy: KeyPolicy, tokens: int) -> Admission: ...

    def finish(self, admission: Admission, tokens: int | None) -> None: ...

    def state(self, key_id: str, policy: KeyPolicy) -> LimitState: ...


class UsageBackend(Protocol):
    """Usage aggregated by the database that holds the ledger (the console's reads).

    Blocking calls: servicers run them in a worker thread. `key_id` None means every key.
    """

    def series(
        self, since: float, bucket_seconds: int, group_by: str = "", key_id: str | None = None
    ) -> dict[str, dict[float, Point]]: ...

    def endpoints(self, since: float, key_id: str | None = None) -> list[EndpointUsage]: ...

    def generations(self, f: GenerationFilter) -> list[Generation]: ...
