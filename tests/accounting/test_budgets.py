"""Budgets that reset (limit_reset): daily, weekly, monthly, exact at the boundary.

The clock is the test's: the stores and the credit backend read the wall time through
it, so midnight UTC comes when the test says, not after a sleep.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service import errors
from service.accounting.backends import Backends, open_backends
from service.accounting.gate import Accounting, Ticket
from service.accounting.periods import periods_at
from service.accounting.pricing import Estimate
from service.catalog import Pricing
from service.domain.chat import Usage
from service.engine import Served
from service.pipeline import CallContext
from service.store.keys import KeyPolicy, KeyRecord, KeyStore
from service.store.settings import StorageSettings

SERVED = Served(model="m", provider="p", upstream_model="u", pricing=Pricing(request=0.01))
USAGE = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
CENT = Estimate(0.01, 2, 0)


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


@pytest.fixture(params=[1, 2], ids=["one-process", "workers-sqlite"])
def stack(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Accounting, Backends, Clock]]:
    # Sunday 2026-12-06, ten seconds before midnight UTC: the day, the week end together.
    clock = Clock(datetime(2026, 12, 6, 23, 59, 50, tzinfo=UTC))
    settings = StorageSettings(key_cache_seconds=0)
    stores = open_backends(settings, tmp_path / "switchyard.db", workers=request.param, clock=clock)
    accounting = Accounting([], stores.ledger, credits=stores.credits, limiter=stores.limiter)
    yield accounting, stores, clock
    asyncio.run(stores.aclose())
    stores.ledger.close()
    stores.keys.close()


async def _open(accounting: Accounting, key: KeyRecord) -> Ticket:
    return await accounting.open(CallContext("r", key, None), "chat", ["m"], CENT, [])


async def _settle(accounting: Accounting, ticket: Ticket) -> None:
    await accounting.settle(ticket, SERVED, USAGE, finish_reason="stop")
    await asyncio.sleep(0)  # the booking runs on the loop's next turn


def test_a_daily_budget_spent_before_midnight_is_whole_after_it(
    stack: tuple[Accounting, Backends, Clock],
) -> None:
    accounting, stores, clock = stack
    key, _ = stores.keys.create("k", KeyPolicy(credit_limit=0.03, limit_reset="daily"))

    async def run() -> None:
        done = [await _open(accounting, key) for _ in range(2)]
        late = await _open(accounting, key)  # reserved before midnight, settled after
        with pytest.raises(errors.GatewayError) as refused:
            await _open(accounting, key)
        assert refused.value.reason == "INSUFFICIENT_CREDITS"
        for ticket in done:
            await _settle(accounting, ticket)
        clock.set(datetime(2026, 12, 7, 0, 0, 1, tzinfo=UTC))  # Monday: new day, new week
        await _settle(accounting, late)  # billed to Sunday, the day it was reserved in
        assert stores.ledger.flush()
        fresh = stores.keys.get(key.id)
        assert fresh is not None
        spend = await accounting.credits.usage(fresh)
        assert (spend.total, spend.daily, spend.weekly) == pytest.approx((0.03, 0.0, 0.0))
        assert spend.monthly == pytest.approx(0.03)  # still December
        # The whole daily budget is back: three more pass, the fourth does not.
        for _ in range(3):
            await _settle(accounting, await _open(accounting, fresh))
        with pytest.raises(errors.GatewayError):
            await _open(accounting, fresh)
        assert stores.ledger.flush()
        fresh = stores.keys.get(key.id)
        assert fresh is not None
        spend = await accounting.credits.usage(fresh)
        assert (spend.total, spend.daily, spend.weekly) == pytest.approx((0.06, 0.03, 0.03))

    asyncio.run(run())
    assert isinstance(stores.keys, KeyStore)  # the embedded default: SQLite
    db = sqlite3.connect(stores.keys.path)
    rows = dict(
        db.execute("SELECT period, usage FROM key_usage WHERE key_id = ?", (key.id,)).fetchall()
    )
    db.close()
    sunday, monday = periods_at(clock() - 3600), periods_at(clock())
    assert rows[sunday.daily] == pytest.approx(0.03)
    assert rows[monday.daily] == pytest.approx(0.03)
    assert rows[sunday.weekly] == pytest.approx(0.03)
    assert rows[monday.weekly] == pytest.approx(0.03)
    assert rows[monday.monthly] == pytest.approx(0.06)


def test_a_monthly_budget_holds_across_days_and_resets_with_the_month(
    stack: tuple[Accounting, Backends, Clock],
) -> None:
    accounting, stores, clock = stack
    key, _ = stores.keys.create("k", KeyPolicy(credit_limit=0.02, limit_reset="monthly"))

    async def run() -> None:
        await _settle(accounting, await _open(accounting, key))
        clock.set(datetime(2026, 12, 20, 12, tzinfo=UTC))
        await _settle(accounting, await _open(accounting, key))
        with pytest.raises(errors.GatewayError):
            await _open(accounting, key)  # a new day does not refill a monthly budget
        clock.set(datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC))  # exactly midnight: January
        await _settle(accounting, await _open(accounting, key))

    asyncio.run(run())


def test_periods_are_utc_days_monday_weeks_and_months() -> None:
    sunday_late = datetime(2026, 12, 6, 23, 59, 59, 999000, tzinfo=UTC).timestamp()
    monday = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    assert periods_at(sunday_late).names() == ("d:2026-12-06", "w:2026-11-30", "m:2026-12")
    assert periods_at(monday).names() == ("d:2026-12-07", "w:2026-12-07", "m:2026-12")
