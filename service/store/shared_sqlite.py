"""Limits and credit holds shared by the workers of one machine, through SQLite.

`--workers N` used to give each worker its own rate windows and credit holds, so that
a key with `rpm: 30` got 30 a minute per worker. Here every check-and-count is one
SQLite write transaction (`BEGIN IMMEDIATE`: the database's single writer lock), in the
database the workers already share, so the workers see one window per key.

Credit holds live in `credit_holds`, keyed by the generation they pay for, and stay
until the ledger commits that generation: its writer adds the cost to the key's
spending and deletes the hold in one transaction (service/accounting/ledger.py), so a
cost is never counted twice nor missing between the two. A reservation is then one
`INSERT ... SELECT ... WHERE` statement that checks the limit against spending plus
holds and adds the hold, or adds nothing.

All workers stop together (service/workers.py), so holds and leases left by a killed
gateway are cleared at its next start (`reset`), before any worker runs; its ledger
rows come back from its journals.

Keys with no limit never touch these tables. A statement takes tens of microseconds;
they run on the event loop rather than a thread, whose hand-off costs more than that.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from service.accounting.credits import EPSILON, Reservation, Spend, insufficient
from service.accounting.limiter import (
    UNLIMITED,
    WINDOW,
    Admission,
    LimitState,
    limited,
)
from service.accounting.periods import Clock, periods_at
from service.ids import random_hex
from service.store.keys import KeyPolicy, KeyRecord, KeyStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_events (
    key_id TEXT NOT NULL,
    at REAL NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_events_key ON rate_events (key_id, at);
-- The window's request count and token total per key, kept with the events, so that an
-- admission costs the events it prunes rather than a scan of the whole window.
CREATE TABLE IF NOT EXISTS rate_totals (
    key_id TEXT PRIMARY KEY,
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, key_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_key ON leases (key_id);
CREATE TABLE IF NOT EXISTS credit_holds (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    period TEXT,
    amount REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_holds_key ON credit_holds (key_id, period);
"""


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(SCHEMA)
    return db


def reset(path: Path) -> None:
    """Forget the holds and leases of a gateway that is no longer running (its start)."""
    db = _connect(path)
    try:
        db.execute("DELETE FROM leases")
        db.execute("DELETE FROM credit_holds")
    finally:
        db.close()


class SharedCounters:
    """rpm, tpm and concurrency per key, counted in SQLite for every worker at once."""

    def __init__(self, path: Path) -> None:
        self._db = _connect(path)

    async def admit(self, key_id: str, policy: KeyPolicy, tokens: int) -> Admission:
        if policy.rpm is None and policy.tpm is None and policy.max_concurrent is None:
            return Admission(key_id, None)
        db = self._db
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            refusal = self._check(key_id, policy, tokens, now)
            if refusal is not None:
                db.execute("ROLLBACK")
                raise refusal
            row = None
            if policy.rpm is not None or policy.tpm is not None:
                row = db.execute(
                    "INSERT INTO rate_events (key_id, at, tokens) VALUES (?, ?, ?)",
                    (key_id, now, tokens),
                ).lastrowid
                db.execute(
                    "INSERT INTO rate_totals (key_id, requests, tokens) VALUES (?, 1, ?) "
                    "ON CONFLICT (key_id) DO UPDATE SET requests = requests + 1, "
                    "tokens = tokens + excluded.tokens",
                    (key_id, tokens),
                )
            lease = ""
            if policy.max_concurrent is not None:
                lease = random_hex()
                db.execute("INSERT INTO leases (id, key_id) VALUES (?, ?)", (lease, key_id))
            state = self._state(key_id, policy, now)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        entry = [float(row), float(tokens)] if row is not None else None
        return Admission(key_id, entry, state, lease, tokens)

    def _check(self, key_id: str, policy: KeyPolicy, tokens: int, now: float) -> Exception | None:
        db = self._db
        if policy.rpm is not None or policy.tpm is not None:
            count, total, oldest = self._prune(key_id, now)
            if policy.rpm is not None and count >= policy.rpm:
                wait = (oldest or now) + WINDOW - now
                state = self._state(key_id, policy, now)
                return limited(f"{policy.rpm} requests per minute", wait, state)
            if policy.tpm is not None and total + tokens > policy.tpm:
                wait = self._token_wait(key_id, policy.tpm, tokens, total, now)
                state = self._state(key_id, policy, now)
                return limited(f"{policy.tpm} tokens per minute", wait, state)
        if policy.max_concurrent is not None:
            (held,) = db.execute(
                "SELECT COUNT(*) FROM leases WHERE key_id = ?", (key_id,)
            ).fetchone()
            if held >= policy.max_concurrent:
                state = self._state(key_id, policy, now)
                return limited(f"{policy.max_concurrent} concurrent requests", 1.0, state)
        return None

    def _prune(self, key_id: str, now: float) -> tuple[int, int, float | None]:
        """Drop the events that left the window; (requests, tokens, oldest) in it."""
        db = self._db
        horizon = now - WINDOW
        gone, freed = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM rate_events "
            "WHERE key_id = ? AND at <= ?",
            (key_id, horizon),
        ).fetchone()
        if gone:
            db.execute("DELETE FROM rate_events WHERE key_id = ? AND at <= ?", (key_id, horizon))
            db.execute(
                "UPDATE rate_totals SET requests = requests - ?, tokens = tokens - ? "
                "WHERE key_id = ?",
                (gone, freed, key_id),
            )
        row = db.execute(
            "SELECT requests, tokens, (SELECT MIN(at) FROM rate_events WHERE key_id = ?) "
            "FROM rate_totals WHERE key_id = ?",
            (key_id, key_id),
        ).fetchone()
        return (int(row[0]), int(row[1]), row[2]) if row is not None else (0, 0, None)

    def _token_wait(self, key_id: str, tpm: int, tokens: int, total: int, now: float) -> float:
        if tokens > tpm:
            return WINDOW
        rows = self._db.execute(
            "SELECT at, tokens FROM rate_events WHERE key_id = ? ORDER BY at", (key_id,)
        )
        for stamp, counted in rows:
            total -= counted
            if total + tokens <= tpm:
                return float(stamp) + WINDOW - now
        return WINDOW

    def finish(self, admission: Admission, tokens: int | None) -> None:
        if not admission.open:
            return
        admission.open = False
        if admission.lease:
            self._db.execute("DELETE FROM leases WHERE id = ?", (admission.lease,))
        if admission.entry is not None and tokens is not None and tokens != admission.tokens:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                changed = db.execute(
                    "UPDATE rate_events SET tokens = ? WHERE rowid = ?",
                    (tokens, int(admission.entry[0])),
                ).rowcount
                if changed:  # still in the window: its total follows
                    db.execute(
                        "UPDATE rate_totals SET tokens = tokens + ? WHERE key_id = ?",
                        (tokens - admission.tokens, admission.key_id),
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    async def state(self, key_id: str, policy: KeyPolicy) -> LimitState:
        return self._state(key_id, policy, time.time())

    def _state(self, key_id: str, policy: KeyPolicy, now: float) -> LimitState:
        if policy.rpm is None and policy.tpm is None:
            return UNLIMITED
        row = self._db.execute(
            "SELECT requests, tokens, (SELECT MIN(at) FROM rate_events WHERE key_id = ?) "
            "FROM rate_totals WHERE key_id = ?",
            (key_id, key_id),
        ).fetchone()
        count, total, oldest = row if row is not None else (0, 0, None)
        reset = max(0.0, oldest + WINDOW - now) if oldest is not None else 0.0
        state = LimitState()
        if policy.rpm is not None:
            state = LimitState(policy.rpm, max(0, policy.rpm - count), reset)
        if policy.tpm is not None:
            state = LimitState(
                state.limit_requests,
                state.remaining_requests,
                state.reset_requests,
                policy.tpm,
                max(0, int(policy.tpm - total)),
                reset,
            )
        return state

    async def start(self) -> None:
        """Nothing to connect: the database was opened with the process."""

    async def aclose(self) -> None:
        self._db.close()


# Spending is what the ledger committed: all time in api_keys, per period in key_usage.
_SPENT_ALL = "(SELECT usage FROM api_keys WHERE id = :key)"
_SPENT_IN = "(SELECT usage FROM key_usage WHERE key_id = :key AND period = :period)"
_HELD = "(SELECT SUM(amount) FROM credit_holds WHERE key_id = :key AND period IS :period)"


class SharedCredits:
    """Credit holds in SQLite: a reservation is one conditional INSERT."""

    def __init__(self, path: Path, keys: KeyStore, clock: Clock) -> None:
        self._db = _connect(path)
        self._keys = keys
        self._clock = clock

    def _reserve_sql(self, period: str | None) -> str:
        spent = _SPENT_ALL if period is None else _SPENT_IN
        return (
            "INSERT INTO credit_holds (id, key_id, period, amount) "
            "SELECT :id, :key, :period, :amount "
            f"WHERE :limit - COALESCE({spent}, 0) - COALESCE({_HELD}, 0) "
            "+ :epsilon >= :amount"
        )

    async def reserve(self, key: KeyRecord, amount: float, hold_id: str = "") -> Reservation:
        now = self._clock()
        period = periods_at(now).of(key.policy.limit_reset)
        reservation = Reservation(key.id, amount, period, now, hold_id)
        limit = key.policy.credit_limit
        if limit is None:
            reservation.open = False  # nothing held: nothing to settle or release
            return reservation
        values = {
            "id": hold_id or random_hex(),
            "key": key.id,
            "period": period,
            "amount": amount,
            "limit": limit,
            "epsilon": EPSILON,
        }
        reservation.hold_id = str(values["id"])
        if self._db.execute(self._reserve_sql(period), values).rowcount == 1:
            return reservation
        spent = _SPENT_ALL if period is None else _SPENT_IN
        (available,) = self._db.execute(
            f"SELECT :limit - COALESCE({spent}, 0) - COALESCE({_HELD}, 0)",
            values,
        ).fetchone()
        raise insufficient(amount, max(0.0, float(available)))

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Nothing to do now: the hold (the worst case) stays until the ledger commits
        the generation, which deletes it as it adds the real cost to the spending."""
        reservation.open = False

    def release(self, reservation: Reservation) -> None:
        if reservation.open:
            reservation.open = False
            self._db.execute("DELETE FROM credit_holds WHERE id = ?", (reservation.hold_id,))

    async def usage(self, key: KeyRecord) -> Spend:
        fresh = self._keys.get(key.id) or key
        periods = periods_at(self._clock())
        spent = fresh.period_usage
        return Spend(
            fresh.usage,
            spent.get(periods.daily, 0.0),
            spent.get(periods.weekly, 0.0),
            spent.get(periods.monthly, 0.0),
        )

    async def start(self) -> None:
        """Nothing to connect: the database was opened with the process."""

    async def aclose(self) -> None:
        self._db.close()
