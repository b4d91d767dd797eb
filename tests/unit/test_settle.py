"""Settling a generation: the price at once, the booking on the loop's next turn, once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.accounting import ledger as ledger_module
from service.accounting.gate import Accounting, Ticket
from service.accounting.ledger import Ledger
from service.accounting.pricing import Estimate
from service.catalog import Pricing
from service.domain.chat import Usage
from service.engine import Served
from service.pipeline import CallContext
from service.store.keys import KeyPolicy, KeyRecord, KeyStore

SERVED = Served(model="m", provider="p", upstream_model="u", pricing=Pricing(prompt=0.01))
USAGE = Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Accounting, Ledger, KeyStore, KeyRecord]]:
    keys = KeyStore(tmp_path / "switchyard.db", cache_seconds=0)
    key, _ = keys.create("k", KeyPolicy(credit_limit=1.0, max_concurrent=1))
    ledger = Ledger(tmp_path / "switchyard.db")
    yield Accounting([], ledger), ledger, keys, key
    ledger.close()
    keys.close()


async def _open(accounting: Accounting, key: KeyRecord) -> Ticket:
    call = CallContext(request_id="r", key=key, deadline=None)
    return await accounting.open(call, "chat", ["m"], Estimate(0.5, 10, 3), [])


def test_the_price_comes_at_once_and_the_booking_on_the_next_turn(
    setup: tuple[Accounting, Ledger, KeyStore, KeyRecord],
) -> None:
    accounting, ledger, _, key = setup

    async def run() -> None:
        ticket = await _open(accounting, key)
        price = await accounting.settle(ticket, SERVED, USAGE, finish_reason="stop")
        assert price == pytest.approx(0.03)
        # Not booked yet: the answer is written first.
        assert ticket.reservation.open
        assert (await accounting.credits.usage(key)).total == 0.0
        assert ledger.get(ticket.generation_id) is None
        await asyncio.sleep(0)
        assert not ticket.reservation.open
        assert (await accounting.credits.usage(key)).total == pytest.approx(0.03)
        row = ledger.get(ticket.generation_id)
        assert row is not None and row.cost == pytest.approx(0.03)
        assert row.finish_reason == "stop" and row.prompt_tokens == 3
        # The concurrency slot is free again: a second request is admitted.
        await _open(accounting, key)

    asyncio.run(run())


def test_a_settle_cancelled_while_the_ledger_is_behind_still_books_once(
    setup: tuple[Accounting, Ledger, KeyStore, KeyRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accounting, ledger, keys, key = setup

    async def run() -> Ticket:
        ticket = await _open(accounting, key)
        monkeypatch.setattr(ledger_module, "MAX_QUEUE", 0)  # the writer is "always behind"
        settling = asyncio.get_running_loop().create_task(
            accounting.settle(ticket, SERVED, USAGE, finish_reason="stop")
        )
        await asyncio.sleep(0.02)
        assert not settling.done(), "back-pressure: the caller waits for room"
        settling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await settling
        monkeypatch.setattr(ledger_module, "MAX_QUEUE", 65_536)
        return ticket

    ticket = asyncio.run(run())
    assert not ticket.reservation.open
    assert asyncio.run(accounting.credits.usage(key)).total == pytest.approx(0.03)
    assert ledger.flush()
    assert keys.get(key.id).usage == pytest.approx(0.03)  # type: ignore[union-attr]


def test_close_waits_for_the_calls_still_settling(tmp_path: Path) -> None:
    """At shutdown the servers cut the calls in flight, which then bill what they
    produced: the ledger must still take those rows (issue 16, item 9)."""
    keys = KeyStore(tmp_path / "switchyard.db", cache_seconds=0)
    key, _ = keys.create("k")
    accounting = Accounting([], Ledger(tmp_path / "switchyard.db"))

    async def run() -> Ticket:
        ticket = await _open(accounting, key)
        closing = asyncio.get_running_loop().create_task(accounting.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done(), "the ledger closed with a generation still open"
        await accounting.settle(ticket, SERVED, USAGE, finish_reason="cancelled", cancelled=True)
        await closing
        return ticket

    ticket = asyncio.run(run())
    keys.close()
    reopened = Ledger(tmp_path / "switchyard.db")
    try:
        row = reopened.get(ticket.generation_id)
        assert row is not None and row.finish_reason == "cancelled"
    finally:
        reopened.close()


def test_a_settle_after_an_abandon_books_nothing(
    setup: tuple[Accounting, Ledger, KeyStore, KeyRecord],
) -> None:
    accounting, ledger, _, key = setup

    async def run() -> Ticket:
        ticket = await _open(accounting, key)
        accounting.abandon(ticket)
        await accounting.settle(ticket, SERVED, USAGE, finish_reason="stop")
        accounting.abandon(ticket)
        await asyncio.sleep(0)
        return ticket

    ticket = asyncio.run(run())
    assert ledger.get(ticket.generation_id) is None
    assert asyncio.run(accounting.credits.usage(key)).total == 0.0
