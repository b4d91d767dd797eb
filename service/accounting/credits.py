"""Credit reservations: reserve the worst case before a call, settle the real cost after.

This is the in-process backend, for a gateway of one process (DESIGN §7): a check and
its increment run in one synchronous step on the event loop, so concurrent requests
cannot both pass a check that only one of them fits. Spending is persisted by the
ledger; what is only reserved lives in memory, so a killed process's reservations
simply lapse. Several processes share their holds through SQLite
(service/store/shared_sqlite.py) or Redis (service/store/redis_limits.py) instead.

A key with a `limit_reset` is budgeted per period (service/accounting/periods.py): its
limit is checked against what it spent in the current day, week or month, and a hold
counts against the period it was taken in, which is the one it settles against.
"""

from __future__ import annotations

from dataclasses import dataclass

from service import errors
from service.accounting.periods import Clock, Periods, periods_at, wall_clock
from service.store.keys import KeyRecord

EPSILON = 1e-12


@dataclass(slots=True)
class Reservation:
    key_id: str
    amount: float
    period: str | None = None  # the budget period it counts against (None: all time)
    taken_at: float = 0.0  # wall clock: the periods its cost is billed to
    hold_id: str = ""  # the generation it pays for (shared backends key their holds by it)
    open: bool = True
    shared: bool = False  # held in a shared store (else in this process)


@dataclass(frozen=True, slots=True)
class Spend:
    """What a key spent: in all, and in the current day, week and month (USD)."""

    total: float = 0.0
    daily: float = 0.0
    weekly: float = 0.0
    monthly: float = 0.0

    def of(self, period: str | None, periods: Periods) -> float:
        if period is None:
            return self.total
        return {periods.daily: self.daily, periods.weekly: self.weekly}.get(period, self.monthly)


def insufficient(amount: float, available: float) -> errors.GatewayError:
    return errors.GatewayError(
        "INSUFFICIENT_CREDITS",
        f"This request may cost up to ${amount:.6f}; the key has ${available:.6f} left.",
        metadata={"needed": f"{amount:.9f}", "available": f"{available:.9f}"},
    )


class Credits:
    def __init__(self, clock: Clock = wall_clock) -> None:
        # USD spent by (key id, period name or None for all time): as read, plus settled.
        self._spent: dict[tuple[str, str | None], float] = {}
        self._reserved: dict[tuple[str, str | None], float] = {}
        self._clock = clock

    def _seed(self, key: KeyRecord, periods: Periods) -> None:
        spent = self._spent
        spent.setdefault((key.id, None), key.usage)
        for name in periods.names():
            spent.setdefault((key.id, name), key.period_usage.get(name, 0.0))

    async def usage(self, key: KeyRecord) -> Spend:
        periods = periods_at(self._clock())
        self._seed(key, periods)
        spent = self._spent
        return Spend(
            spent[key.id, None],
            spent[key.id, periods.daily],
            spent[key.id, periods.weekly],
            spent[key.id, periods.monthly],
        )

    async def reserve(self, key: KeyRecord, amount: float, hold_id: str = "") -> Reservation:
        """Hold `amount` of the key's credit, or raise 402 if it cannot cover it."""
        now = self._clock()
        periods = periods_at(now)
        self._seed(key, periods)
        period = periods.of(key.policy.limit_reset)
        limit = key.policy.credit_limit
        slot = (key.id, period)
        if limit is not None:
            available = max(0.0, limit - self._spent[slot] - self._reserved.get(slot, 0.0))
            if amount > available + EPSILON:
                raise insufficient(amount, available)
        self._reserved[slot] = self._reserved.get(slot, 0.0) + amount
        return Reservation(key.id, amount, period, now, hold_id)

    def _close(self, reservation: Reservation) -> None:
        if reservation.open:
            reservation.open = False
            slot = (reservation.key_id, reservation.period)
            self._reserved[slot] = max(0.0, self._reserved.get(slot, 0.0) - reservation.amount)

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Charge the real cost (to the periods the hold was taken in), free the rest."""
        if reservation.open:
            self._close(reservation)
            key_id = reservation.key_id
            for name in (None, *periods_at(reservation.taken_at).names()):
                self._spent[key_id, name] = self._spent.get((key_id, name), 0.0) + cost

    def release(self, reservation: Reservation) -> None:
        self._close(reservation)
