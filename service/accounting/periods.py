"""Budget periods: the UTC day, the Monday-to-Sunday week, the calendar month.

A key's `limit_reset` (daily, weekly, monthly) makes its credit limit a budget per
period, as OpenRouter's key API has it. Every backend keeps spending per period under
the names made here ("d:2026-12-04", "w:2026-11-30", "m:2026-12"), so that a period
is a plain string key in SQLite, PostgreSQL and Redis alike, and a reservation made
before midnight names (and settles against) the period it was made in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

RESETS = ("daily", "weekly", "monthly")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Periods:
    """The names of the periods that contain one instant."""

    daily: str
    weekly: str
    monthly: str

    def of(self, reset: str | None) -> str | None:
        """The period a key with this `limit_reset` is budgeted over (None: all time)."""
        if reset is None:
            return None
        return str(getattr(self, reset))

    def names(self) -> tuple[str, str, str]:
        return (self.daily, self.weekly, self.monthly)


def periods_at(when: float) -> Periods:
    day = datetime.fromtimestamp(when, UTC).date()
    monday = day - timedelta(days=day.weekday())
    return Periods(f"d:{day.isoformat()}", f"w:{monday.isoformat()}", f"m:{day:%Y-%m}")


def wall_clock() -> float:
    return time.time()


def period_of(reset: str | None, when: float) -> str | None:
    return periods_at(when).of(reset)
