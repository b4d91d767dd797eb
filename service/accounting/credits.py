"""Credit reservations: reserve the worst case before a call, settle the real cost after.

The embedded default keeps balances in process (DESIGN §7): a check and its increment
run in one synchronous step on the event loop, so concurrent requests cannot both
pass a check that only one of them fits. Spending is persisted by the ledger; what is
only reserved lives in memory, so a killed process's reservations simply lapse.
"""

from __future__ import annotations

from dataclasses import dataclass

from service import errors
from service.store.keys import KeyRecord

EPSILON = 1e-12


@dataclass(slots=True)
class Reservation:
    key_id: str
    amount: float
    open: bool = True


class Credits:
    def __init__(self) -> None:
        self._spent: dict[str, float] = {}  # USD spent, as persisted plus since settled
        self._reserved: dict[str, float] = {}

    def spent(self, key: KeyRecord) -> float:
        return self._spent.setdefault(key.id, key.usage)

    def available(self, key: KeyRecord) -> float | None:
        limit = key.policy.credit_limit
        if limit is None:
            return None
        return max(0.0, limit - self.spent(key) - self._reserved.get(key.id, 0.0))

    def reserve(self, key: KeyRecord, amount: float) -> Reservation:
        """Hold `amount` of the key's credit, or raise 402 if it cannot cover it."""
        available = self.available(key)
        if available is not None and amount > available + EPSILON:
            raise errors.GatewayError(
                "INSUFFICIENT_CREDITS",
                f"This request may cost up to ${amount:.6f}; the key has ${available:.6f} left.",
                metadata={"needed": f"{amount:.9f}", "available": f"{available:.9f}"},
            )
        self._reserved[key.id] = self._reserved.get(key.id, 0.0) + amount
        return Reservation(key.id, amount)

    def _close(self, reservation: Reservation) -> None:
        if reservation.open:
            reservation.open = False
            left = self._reserved.get(reservation.key_id, 0.0) - reservation.amount
            self._reserved[reservation.key_id] = max(0.0, left)

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Charge the real cost and give back the rest of the hold."""
        if reservation.open:
            self._close(reservation)
            self._spent[reservation.key_id] = self._spent.get(reservation.key_id, 0.0) + cost

    def release(self, reservation: Reservation) -> None:
        self._close(reservation)
