"""Limits, credit holds and key invalidation shared by every replica, in Redis.

Each admission is one Lua script (service/store/redis_scripts.py) run in one round trip:
the rate window check-and-count with the concurrency lease, then the credit
check-and-hold. What follows a call (freeing the lease, reconciling tokens, settling or
releasing the hold) never makes an answer wait: it is queued for one writer task per
process, which sends what has gathered as one pipeline. Those scripts are idempotent
(they act on a lease or hold only while it is there), so the writer retries them after
a lost connection without counting anything twice.

Leases and holds carry an expiry and are renewed by this process while their request
runs: a replica that dies stops renewing, and its holds lapse within `lease_ttl`.

Where the balance lives: Redis holds the spending that admission checks against
(`sy:{id}:spent`), seeded from the database the first time a key (or a period) is
seen, and moved by each settle in the same script that frees the hold; the ledger
keeps the durable record. An atomic check in the database would cost a write
transaction per request on the request path; here it is a script in memory
(see the README's "Running several replicas").

Redis unreachable: `on_backend_error: closed` refuses generations with 503 and a
Retry-After, before anything is held or billed; `open` serves them and counts their
limits in this process alone (logged once per outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from service import errors
from service.accounting.backends import Backends, KeyStoreBackend, LedgerBackend
from service.accounting.credits import EPSILON, Credits, Reservation, Spend, insufficient
from service.accounting.limiter import (
    UNLIMITED,
    WINDOW,
    Admission,
    LimitState,
    RateLimiter,
    limited,
)
from service.accounting.periods import Clock, periods_at
from service.ids import random_hex
from service.store import redis_scripts as lua
from service.store.keys import KeyPolicy, KeyRecord
from service.store.resp import RedisError, ReplyError, RespClient, Script
from service.store.settings import StorageSettings

log = logging.getLogger("switchyard.redis")

MAX_QUEUE = 65_536  # deferred scripts waiting for the writer (oldest dropped past it)
MAX_BATCH = 512
DOWN_SECONDS = 1.0  # after a failed call, how long requests are refused without trying
WINDOW_MS = int(WINDOW * 1000)


class BackendDownError(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"Redis unreachable; retry in {wait:.1f} s")
        self.wait = wait


def unavailable(wait: float) -> errors.GatewayError:
    return errors.GatewayError(
        "NO_PROVIDER_AVAILABLE",
        "The gateway cannot reach its shared limits store; nothing was billed. Retry shortly.",
        metadata={"backend": "redis"},
        retry_after=max(0.1, wait),
    )


class RedisLink:
    """The connection (service/store/resp.py), the scripts, the writer, the renewals
    and the invalidation."""

    def __init__(self, settings: StorageSettings, keys: KeyStoreBackend) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.ttl_ms = int(settings.lease_ttl * 1000)
        self.client = RespClient(settings.redis_url, connect_timeout=1.0, timeout=2.0)
        scripts = (lua.ADMIT, lua.STATE, lua.FINISH, lua.RENEW, lua.RESERVE, lua.SETTLE)
        self.admit, self.state, self.finish, self.renew, self.reserve, self.settle = (
            self.client.script(s) for s in scripts
        )
        self.open = self.client.script(lua.OPEN)
        self._keys = keys
        # (queued at, the command): scripts after a call, key-change PUBLISHes.
        self._queue: deque[tuple[float, tuple[Any, ...]]] = deque()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.leases: dict[str, str] = {}  # lease uid -> its sorted set, while running
        self.holds: dict[str, str] = {}  # hold id -> its expiry set, while running
        self._down_until = 0.0
        self._outage_logged = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._keys.on_change.append(self._key_changed)
        for job in (self._write, self._renew, self._listen):
            self._tasks.append(asyncio.create_task(job(), name=f"redis-{job.__name__}"))
        try:
            await self.client.execute("PING")
        except RedisError as exc:
            log.warning("Redis is not reachable at start (%s); retrying as requests come", exc)

    # --- calls on the request path ------------------------------------------------------

    async def call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a script now; BackendDownError if Redis cannot be reached."""
        left = self._down_until - time.monotonic()
        if left > 0:
            raise BackendDownError(left)
        try:
            result = await self.client.evalsha(script, keys, args)
        except RedisError as exc:
            self._down_until = time.monotonic() + DOWN_SECONDS
            if not self._outage_logged:
                self._outage_logged = True
                log.error("Redis unreachable (%s): on_backend_error is %s", exc, self.mode)
            raise BackendDownError(DOWN_SECONDS) from None
        if self._outage_logged:
            self._outage_logged = False
            log.warning("Redis reachable again")
        return result

    @property
    def mode(self) -> str:
        return self.settings.on_backend_error

    def not_ready(self) -> str | None:
        """Readiness (service/lifecycle.py): with `on_backend_error: closed` a replica that
        cannot reach Redis refuses every generation, so it should get no traffic until it
        can again (`open` serves on, and stays ready). No I/O: what the last call saw."""
        if self.mode == "closed" and time.monotonic() < self._down_until:
            return "redis unreachable"
        return None

    def defer(self, script: Script | None, keys: list[str], args: list[Any]) -> None:
        """Queue a script (None: a PUBLISH) for the writer; never waits."""
        if len(self._queue) >= MAX_QUEUE:
            self._queue.popleft()
            log.error("the Redis writer is %d scripts behind; dropping the oldest", MAX_QUEUE)
        command = ("PUBLISH", keys[0], args[0]) if script is None else script.command(keys, args)
        self._queue.append((time.monotonic(), command))
        if self._wake is not None:
            self._wake.set()

    # --- the background tasks -----------------------------------------------------------

    async def _write(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if not await self._send_batch():
                    await asyncio.sleep(0.2)  # Redis is away: try again shortly

    async def _send_batch(self) -> bool:
        batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
        try:
            replies = await self.client.pipeline([command for _, command in batch])
        except RedisError as exc:
            # Idempotent scripts: put back what is still worth sending (a lease or hold
            # older than the TTL has lapsed in Redis by now).
            horizon = time.monotonic() - self.settings.lease_ttl
            self._queue.extendleft(reversed([item for item in batch if item[0] > horizon]))
            log.debug("Redis writer: %s; %d scripts wait", exc, len(self._queue))
            return False
        failed = [reply for reply in replies if isinstance(reply, ReplyError)]
        if failed:  # a script's own error: sending it again would fail again
            log.error("Redis refused %d queued scripts: %s", len(failed), failed[0])
        return True

    async def _renew(self) -> None:
        """Extend this process's leases and holds while their requests run."""
        every = max(0.2, self.settings.lease_ttl / 3)
        while True:
            await asyncio.sleep(every)
            groups: dict[str, list[str]] = {}
            for uid, where in (*self.leases.items(), *self.holds.items()):
                groups.setdefault(where, []).append(uid)
            if not groups:
                continue
            renewals = [
                self.renew.command([where], [self.ttl_ms, *ids]) for where, ids in groups.items()
            ]
            try:
                await self.client.pipeline(renewals)
            except RedisError as exc:
                log.debug("renewing leases failed: %s", exc)

    async def _listen(self) -> None:
        """Forget cached keys whenever one changes on any replica."""
        while True:
            try:
                await self.client.subscribe(lua.KEYS_CHANNEL, lambda _: self._keys.forget())
                self._keys.forget()  # whatever changed while we were not listening
                await self.client.subscription_lost()
            except RedisError:
                pass
            self._keys.forget()
            await asyncio.sleep(0.5)

    def _key_changed(self, key_id: str) -> None:
        """A key changed here (called from the thread that changed it): tell the others."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.defer, None, [lua.KEYS_CHANNEL], [key_id])

    async def aclose(self) -> None:
        """Send what is queued (a moment at most), then stop and disconnect."""
        deadline = time.monotonic() + 2.0
        while self._queue and time.monotonic() < deadline:
            if not await self._send_batch():
                break
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await task
        await self.client.aclose()


def _state(policy: KeyPolicy, count: int, tokens: int, oldest: int, now: int) -> LimitState:
    reset = max(0.0, (oldest + WINDOW_MS - now) / 1000) if count else 0.0
    state = LimitState()
    if policy.rpm is not None:
        state = LimitState(policy.rpm, max(0, policy.rpm - count), reset)
    if policy.tpm is not None:
        state = LimitState(
            state.limit_requests,
            state.remaining_requests,
            state.reset_requests,
            policy.tpm,
            max(0, policy.tpm - tokens),
            reset,
        )
    return state


def _none(value: int | None) -> int:
    return -1 if value is None else value


class RedisCounters:
    """rpm, tpm and concurrency per key, for every replica at once."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._local = RateLimiter()  # on_backend_error: open

    def args(self, policy: KeyPolicy, tokens: int) -> tuple[str, list[Any]]:
        """A new admission's lease id, and the ADMIT script's arguments."""
        uid = random_hex()
        args: list[Any] = [_none(policy.rpm), _none(policy.tpm), _none(policy.max_concurrent)]
        return uid, [*args, tokens, uid, self._link.ttl_ms, WINDOW_MS]

    async def admit(self, key_id: str, policy: KeyPolicy, tokens: int) -> Admission:
        if policy.rpm is None and policy.tpm is None and policy.max_concurrent is None:
            return Admission(key_id, None)
        uid, args = self.args(policy, tokens)
        try:
            reply = await self._link.call(self._link.admit, lua.window_keys(key_id), args)
        except BackendDownError as down:
            if self._link.mode == "open":
                return await self._local.admit(key_id, policy, tokens)
            raise unavailable(down.wait) from None
        return self.admitted(key_id, policy, tokens, uid, reply)

    def admitted(
        self, key_id: str, policy: KeyPolicy, tokens: int, uid: str, reply: Any
    ) -> Admission:
        """The admission ADMIT's reply grants, or the 429 it refuses with."""
        admitted, what, wait, count, total, oldest, now = reply
        state = _state(policy, int(count), int(total), int(oldest), int(now))
        if not admitted:
            what = what.decode() if isinstance(what, bytes) else str(what)
            limit = {"rpm": policy.rpm, "tpm": policy.tpm}.get(what, policy.max_concurrent)
            text = {"rpm": "requests per minute", "tpm": "tokens per minute"}
            raise limited(f"{limit} {text.get(what, 'concurrent requests')}", wait / 1000, state)
        if policy.max_concurrent is not None:
            self._link.leases[uid] = lua.window_keys(key_id)[1]
        return Admission(key_id, None, state, uid, tokens, shared=True)

    def finish(self, admission: Admission, tokens: int | None) -> None:
        if not admission.open:
            return
        admission.open = False
        if not admission.shared:
            self._local.finish(admission, tokens)
            return
        had_lease = self._link.leases.pop(admission.lease, None) is not None
        reconcile = tokens is not None and tokens != admission.tokens
        if had_lease or reconcile:
            args = [admission.lease, admission.tokens, tokens if reconcile else -1]
            self._link.defer(self._link.finish, lua.window_keys(admission.key_id), args)

    async def state(self, key_id: str, policy: KeyPolicy) -> LimitState:
        if policy.rpm is None and policy.tpm is None:
            return UNLIMITED
        try:
            win, _, tok = lua.window_keys(key_id)
            keys = [win, tok]
            count, total, oldest, now = await self._link.call(self._link.state, keys, [WINDOW_MS])
        except BackendDownError:
            return await self._local.state(key_id, policy)
        return _state(policy, int(count), int(total), int(oldest), int(now))


class RedisCredits:
    """Credit holds against the balance in Redis: reserve and settle are one script each."""

    def __init__(self, link: RedisLink, keys: KeyStoreBackend, clock: Clock) -> None:
        self._link = link
        self._keys = keys
        self._clock = clock
        self._local = Credits(clock)  # on_backend_error: open
        self._seeding: dict[tuple[str, str | None], asyncio.Future[float]] = {}

    def start(self, key: KeyRecord, amount: float, hold_id: str) -> Reservation:
        """The reservation to ask for (not yet held), for `args` and `held`."""
        now = self._clock()
        period = periods_at(now).of(key.policy.limit_reset)
        return Reservation(key.id, amount, period, now, hold_id or random_hex())

    def args(self, key: KeyRecord, reservation: Reservation, seed: str = "") -> list[Any]:
        """The RESERVE script's arguments (`seed`: the period's spending, when asked)."""
        return [
            reservation.hold_id,
            repr(reservation.amount),
            repr(key.policy.credit_limit),
            reservation.period or "all",
            seed,
            self._link.ttl_ms,
            repr(EPSILON),
        ]

    async def seed(self, key: KeyRecord, reservation: Reservation) -> str:
        return repr(await self._seed(key.id, reservation.period))

    def held(self, reservation: Reservation, reply: Any) -> Reservation:
        """The hold RESERVE's reply grants, or the 402 it refuses with."""
        held, available = reply
        if not held:
            raise insufficient(reservation.amount, max(0.0, float(available)))
        self._link.holds[reservation.hold_id] = lua.credit_keys(reservation.key_id)[2]
        reservation.shared = True
        return reservation

    async def reserve(self, key: KeyRecord, amount: float, hold_id: str = "") -> Reservation:
        reservation = self.start(key, amount, hold_id)
        if key.policy.credit_limit is None:  # nothing to hold: nothing to settle either
            reservation.open = False
            return reservation
        keys = lua.credit_keys(key.id)
        try:
            reply = await self._link.call(self._link.reserve, keys, self.args(key, reservation))
            if reply[0] == -1:  # Redis has no count for this period yet: seed it, fresh
                args = self.args(key, reservation, await self.seed(key, reservation))
                reply = await self._link.call(self._link.reserve, keys, args)
        except BackendDownError as down:
            if self._link.mode == "open":
                return await self._local.reserve(key, amount, hold_id)
            raise unavailable(down.wait) from None
        return self.held(reservation, reply)

    async def _seed(self, key_id: str, period: str | None) -> float:
        """The key's spending in `period` as the ledger has committed it (not as cached).

        Read once per process however many requests ask at once (a new key's first
        burst all finds Redis unseeded): the others wait for that one read."""
        slot = (key_id, period)
        pending = self._seeding.get(slot)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._seeding[slot] = future
        try:
            value = await self._read_seed(key_id, period)
        except BaseException:
            future.set_exception(BackendDownError(1.0))
            future.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            del self._seeding[slot]
        future.set_result(value)
        return value

    async def _read_seed(self, key_id: str, period: str | None) -> float:
        try:
            fresh = await asyncio.to_thread(self._keys.get, key_id)
        except Exception as exc:  # noqa: BLE001 - whichever store: it cannot be read now
            log.warning("cannot read the key's spending to seed Redis: %s", type(exc).__name__)
            raise BackendDownError(1.0) from None
        if fresh is None:
            return 0.0
        return fresh.usage if period is None else fresh.period_usage.get(period, 0.0)

    def _close(self, reservation: Reservation, periods: list[str], cost: float) -> None:
        reservation.open = False
        self._link.holds.pop(reservation.hold_id, None)
        args = [reservation.hold_id, repr(cost), *periods]
        self._link.defer(self._link.settle, lua.credit_keys(reservation.key_id), args)

    def settle(self, reservation: Reservation, cost: float) -> None:
        if not reservation.open:
            return
        if not reservation.shared:
            self._local.settle(reservation, cost)
            return
        self._close(reservation, ["all", *periods_at(reservation.taken_at).names()], cost)

    def release(self, reservation: Reservation) -> None:
        if not reservation.open:
            return
        if not reservation.shared:
            self._local.release(reservation)
            return
        self._close(reservation, [], 0.0)

    async def usage(self, key: KeyRecord) -> Spend:
        """As the ledger has it (the durable record), read fresh; as last read while the
        store is away."""
        try:
            fresh = await asyncio.to_thread(self._keys.get, key.id) or key
        except Exception as exc:  # noqa: BLE001 - whichever store: it cannot be read now
            log.warning("cannot read the key's spending: %s", type(exc).__name__)
            fresh = key
        periods = periods_at(self._clock())
        spent = fresh.period_usage
        return Spend(
            fresh.usage,
            spent.get(periods.daily, 0.0),
            spent.get(periods.weekly, 0.0),
            spent.get(periods.monthly, 0.0),
        )


class RedisGate:
    """Admission for a key with rate limits and a credit limit in one round trip: the
    OPEN script runs ADMIT then RESERVE and undoes the first if the second refuses."""

    def __init__(self, link: RedisLink, counters: RedisCounters, credits: RedisCredits) -> None:
        self._link = link
        self._counters = counters
        self._credits = credits

    async def admit_and_reserve(
        self, key: KeyRecord, tokens: int, amount: float, hold_id: str
    ) -> tuple[Admission, Reservation]:
        policy = key.policy
        limits = not (policy.rpm is None and policy.tpm is None and policy.max_concurrent is None)
        if not limits or policy.credit_limit is None:
            admission = await self._counters.admit(key.id, policy, tokens)
            try:
                return admission, await self._credits.reserve(key, amount, hold_id)
            except BaseException:
                self._counters.finish(admission, 0)
                raise
        keys = lua.window_keys(key.id) + lua.credit_keys(key.id)
        reservation = self._credits.start(key, amount, hold_id)
        try:
            uid, args = self._counters.args(policy, tokens)
            admitted, held = await self._link.call(
                self._link.open, keys, args + self._credits.args(key, reservation)
            )
            if admitted[0] and held[0] == -1:  # undone; seed the period and ask again
                seed = await self._credits.seed(key, reservation)
                uid, args = self._counters.args(policy, tokens)
                admitted, held = await self._link.call(
                    self._link.open, keys, args + self._credits.args(key, reservation, seed)
                )
        except BackendDownError as down:
            if self._link.mode != "open":
                raise unavailable(down.wait) from None
            admission = await self._counters.admit(key.id, policy, tokens)  # counted locally
            try:
                return admission, await self._credits.reserve(key, amount, hold_id)
            except BaseException:
                self._counters.finish(admission, 0)
                raise
        admission = self._counters.admitted(key.id, policy, tokens, uid, admitted)
        try:
            return admission, self._credits.held(reservation, held)
        except BaseException:
            # Undone in Redis already: only this process's bookkeeping to drop.
            self._link.leases.pop(uid, None)
            admission.open = False
            raise


def open_redis(
    settings: StorageSettings, keys: KeyStoreBackend, ledger: LedgerBackend, *, clock: Clock
) -> Backends:
    link = RedisLink(settings, keys)
    credits, counters = RedisCredits(link, keys, clock), RedisCounters(link)
    gate = RedisGate(link, counters, credits)
    return Backends(keys, ledger, credits, counters, (link,), gate)
