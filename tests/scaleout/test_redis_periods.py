"""Per-period spending in Redis (RESERVE/SETTLE of service/store/redis_scripts.py) is
pruned as periods pass, and never while a hold or a late settle may still need it.

The scripts run on the real redis-server the suite starts; the period names are made
from timestamps the test picks, as the credit backend makes them from its clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from service.accounting.periods import periods_at
from service.store import redis_scripts as lua
from tests.fixtures.servers import RedisServer

TTL_MS = 600_000  # no hold lapses during a test
EPSILON = 1e-9
CENT = 0.01


class Scripts:
    def __init__(self, client: redis.Redis, via: str) -> None:
        self.client = client
        self.via = via
        self.reserve_script = client.register_script(lua.RESERVE)
        self.open_script = client.register_script(lua.OPEN)
        self.settle_script = client.register_script(lua.SETTLE)

    def reserve(self, key_id: str, hold: str, limit: float, period: str) -> bool:
        """Hold a cent as the client does (RESERVE, or OPEN with a generous rpm):
        an unseeded period is seeded with 0 and asked again."""
        args: list[str | int] = [hold, repr(CENT), repr(limit), period, "", TTL_MS]
        args.append(repr(EPSILON))
        held = self._reserve(key_id, args)
        if held == -1:
            args[4] = "0"
            held = self._reserve(key_id, args)
        return held == 1

    def _reserve(self, key_id: str, args: list[str | int]) -> int:
        if self.via == "RESERVE":
            return int(self.reserve_script(lua.credit_keys(key_id), args)[0])
        keys = lua.window_keys(key_id) + lua.credit_keys(key_id)
        admit: list[str | int] = [1_000_000, -1, -1, 1, uuid.uuid4().hex, TTL_MS, 60_000]
        admitted, held = self.open_script(keys, admit + args)
        assert admitted[0] == 1
        return int(held[0])

    def settle(self, key_id: str, hold: str, taken_at: datetime) -> None:
        periods = ["all", *periods_at(taken_at.timestamp()).names()]
        assert self.settle_script(lua.credit_keys(key_id), [hold, repr(CENT), *periods]) == 1

    def fields(self, key_id: str) -> tuple[set[str], set[str]]:
        spent, _, _, held = lua.credit_keys(key_id)
        return (
            {str(f) for f in self.client.hkeys(spent)},
            {str(f) for f in self.client.hkeys(held)},
        )

    def spent(self, key_id: str, period: str) -> float:
        value = self.client.hget(lua.credit_keys(key_id)[0], period)
        assert value is not None, f"{period} is no longer counted"
        return float(value)


@pytest.fixture(params=["RESERVE", "OPEN"])
def scripts(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Scripts]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield Scripts(client, request.param)
    client.close()


START = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reset", "step", "steps"),
    [("daily", timedelta(days=1), 400), ("weekly", timedelta(weeks=1), 60), ("monthly", None, 15)],
)
def test_a_key_used_for_over_a_year_keeps_two_periods_not_hundreds(
    scripts: Scripts, reset: str, step: timedelta | None, steps: int
) -> None:
    key_id = f"prune_{reset}"
    names: list[str] = []
    for i in range(steps):
        when = START + step * i if step else START.replace(year=2026 + i // 12, month=i % 12 + 1)
        period = periods_at(when.timestamp()).of(reset)
        assert period is not None
        assert scripts.reserve(key_id, f"h{i}", 0.02, period)
        scripts.settle(key_id, f"h{i}", when)
        names.append(period)
        assert scripts.spent(key_id, period) == pytest.approx(CENT)
    assert len(set(names)) == steps
    spent, held = scripts.fields(key_id)
    # The current period and the one before it (a late settle's), no older one.
    assert spent == set(names[-2:])
    assert held <= set(names[-2:])


def test_a_hold_taken_before_midnight_settles_against_its_day_after_it(scripts: Scripts) -> None:
    key_id = "prune_midnight"
    sunday = datetime(2026, 12, 6, 23, 59, 50, tzinfo=UTC)
    monday = datetime(2026, 12, 7, 0, 0, 1, tzinfo=UTC)
    day, next_day = periods_at(sunday.timestamp()).daily, periods_at(monday.timestamp()).daily
    for hold in ("a", "b"):
        assert scripts.reserve(key_id, hold, 0.03, day)
        scripts.settle(key_id, hold, sunday)
    assert scripts.reserve(key_id, "late", 0.03, day)
    assert not scripts.reserve(key_id, "over", 0.03, day)
    # After midnight: Monday's first request seeds Monday (and prunes what it may).
    assert scripts.reserve(key_id, "c", 0.03, next_day)
    scripts.settle(key_id, "c", monday)
    scripts.settle(key_id, "late", sunday)  # billed to Sunday, where it was reserved
    assert scripts.spent(key_id, day) == pytest.approx(0.03)
    assert scripts.spent(key_id, next_day) == pytest.approx(0.01)
    # A replica whose clock still says Sunday is refused Sunday's spent budget, not
    # reseeded with an empty one.
    assert not scripts.reserve(key_id, "behind", 0.03, day)


def test_a_period_with_a_hold_outstanding_is_kept_until_it_settles(scripts: Scripts) -> None:
    key_id = "prune_held"
    days = [START + timedelta(days=i) for i in range(5)]
    names = [periods_at(d.timestamp()).daily for d in days]
    assert scripts.reserve(key_id, "long", 1.0, names[0])  # a stream still running days on
    for i in (1, 2, 3):
        assert scripts.reserve(key_id, f"h{i}", 1.0, names[i])
        scripts.settle(key_id, f"h{i}", days[i])
    spent, held = scripts.fields(key_id)
    assert spent == {names[0], names[2], names[3]}  # day 1 pruned, day 0 still held
    assert names[0] in held
    scripts.settle(key_id, "long", days[0])
    assert scripts.spent(key_id, names[0]) == pytest.approx(CENT)
    assert scripts.reserve(key_id, "h4", 1.0, names[4])
    spent, held = scripts.fields(key_id)
    assert spent == {names[3], names[4]}
    assert held <= {names[3], names[4]}
