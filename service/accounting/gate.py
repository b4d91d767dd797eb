"""The accounting gate around every generation: before, allowed / moderated / limited /
reserved; after, priced, settled, and written to the ledger with the key's spending."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from service import errors
from service.accounting.backends import (
    AdmissionBackend,
    CounterBackend,
    CreditBackend,
    LedgerBackend,
)
from service.accounting.credits import Credits, Reservation
from service.accounting.ledger import Generation
from service.accounting.limiter import Admission, LimitState, RateLimiter
from service.accounting.pricing import Estimate, cost
from service.catalog import ModelConfig
from service.domain.chat import Usage
from service.engine import Served
from service.ids import random_hex
from service.moderation.base import Moderator, flagged_error
from service.pipeline import CallContext
from service.routing.router import split_variant
from service.store.keys import KeyRecord

log = logging.getLogger("switchyard.accounting")


def new_generation_id() -> str:
    return "gen-" + random_hex()


@dataclass(slots=True)
class Ticket:
    """One generation's passage through the gate."""

    call: CallContext
    kind: str
    generation_id: str
    reservation: Reservation
    admission: Admission
    estimate: Estimate
    started: float
    limits: LimitState  # as this request left them when it was admitted
    closed: bool = False  # settled or abandoned: whatever comes after is a no-op
    model: str = ""  # the model asked for (what a failed call is recorded under)


class Accounting:
    def __init__(
        self,
        models: Iterable[ModelConfig],
        ledger: LedgerBackend,
        moderator: Moderator | None = None,
        credits: CreditBackend | None = None,
        limiter: CounterBackend | None = None,
        admission: AdmissionBackend | None = None,
    ) -> None:
        self._models: Mapping[str, ModelConfig] = {m.id: m for m in models}
        self.ledger = ledger
        self.credits: CreditBackend = credits if credits is not None else Credits()
        self.limiter: CounterBackend = limiter if limiter is not None else RateLimiter()
        self._moderator = moderator
        self._admission = admission
        self._open = 0  # tickets neither settled nor abandoned (aclose waits for them)

    def set_models(self, models: Iterable[ModelConfig]) -> None:
        """The catalog after a reload: the prices of new calls (open ones keep theirs)."""
        self._models = {m.id: m for m in models}

    @property
    def in_flight(self) -> int:
        """Generations admitted and not yet settled, on every surface (what a shutdown
        waits for)."""
        return self._open

    def models(self, requested: Sequence[str]) -> list[ModelConfig]:
        found = (self._models.get(split_variant(m)[0]) for m in requested)
        return [m for m in found if m is not None]

    @staticmethod
    def check_allowed(key: KeyRecord, requested: Sequence[str]) -> None:
        globs = key.policy.allowed_models
        if globs is None:
            return
        for model in requested:
            base = split_variant(model)[0]
            if not any(fnmatch.fnmatchcase(base, g) for g in globs):
                raise errors.GatewayError(
                    "MODEL_NOT_ALLOWED",
                    f"This key may not use the model '{base}'.",
                    param="model",
                    metadata={"model": base},
                )

    async def open(
        self,
        call: CallContext,
        kind: str,
        requested: Sequence[str],
        estimate: Estimate,
        moderation_texts: Sequence[str],
    ) -> Ticket:
        """Admit a generation, or raise the contract error (403, 429, 402) that stops it."""
        record = call.record
        if record is not None:  # a configured id only: the label stays bounded
            model = self._models.get(split_variant(requested[0])[0]) if requested else None
            if model is not None:
                record.model = model.id
        self.check_allowed(call.key, requested)
        if self._moderator is not None and any(m.moderated for m in self.models(requested)):
            verdict = await self._moderator.check(moderation_texts)
            if verdict.flagged:
                raise flagged_error(verdict)
        generation_id = new_generation_id()
        if self._admission is not None:  # a shared store: both steps in one round trip
            admission, reservation = await self._admission.admit_and_reserve(
                call.key, estimate.tokens, estimate.worst_cost, generation_id
            )
        else:
            admission = await self.limiter.admit(call.key.id, call.key.policy, estimate.tokens)
            try:
                reservation = await self.credits.reserve(
                    call.key, estimate.worst_cost, generation_id
                )
            except BaseException:
                self.limiter.finish(admission, 0)
                raise
        self._open += 1
        return Ticket(
            call,
            kind,
            generation_id,
            reservation,
            admission,
            estimate,
            time.perf_counter(),
            admission.state,
            model=split_variant(requested[0])[0] if requested else "",
        )

    @staticmethod
    def limits(ticket: Ticket) -> LimitState:
        """The key's limits as of this request's admission (what its headers report)."""
        return ticket.limits

    def abandon(self, ticket: Ticket, error: BaseException | None = None) -> None:
        """The call failed: nothing is billed, every hold is released, and the failure
        is recorded in the ledger (at no cost) under the model asked for, with its
        error's reason as the status: what error rates and the console are made of."""
        if ticket.closed:
            return
        ticket.closed = True
        self.credits.release(ticket.reservation)
        self.limiter.finish(ticket.admission, 0)
        self._open -= 1
        if error is None:
            return
        attempts = 0
        if isinstance(error, errors.GatewayError):
            status, provider = error.reason, error.metadata.get("provider_name", "")
            attempts = int(error.metadata.get("attempts", "1" if provider else "0"))
        elif isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            status, provider = "cancelled", ""
        else:
            status, provider = "INTERNAL", ""
        elapsed = (time.perf_counter() - ticket.started) * 1000
        self.ledger.record_now(
            Generation(
                id=ticket.generation_id,
                key_id=ticket.call.key.id,
                model=ticket.model,
                provider=provider,
                upstream_model="",
                kind=ticket.kind,
                created_at=time.time(),
                prompt_tokens=0,
                completion_tokens=0,
                cost=0.0,
                latency_ms=elapsed,
                generation_time_ms=elapsed,
                finish_reason="error",
                streamed=False,
                cancelled=status == "cancelled",
                status=status,
                attempts=attempts,
            )
        )

    async def settle(
        self,
        ticket: Ticket,
        served: Served,
        usage: Usage,
        *,
        finish_reason: str,
        streamed: bool = False,
        cancelled: bool = False,
        units: int = 1,
        cache: str = "",
    ) -> float:
        """Price what was produced; bill it, release the rest and record the generation.

        Only the price is needed for the answer. The rest runs from the loop's next turn,
        after the answer has been written out: in a unary call that was about a quarter
        of the time between the upstream's answer and ours, measured on a core fresh from
        idle. Nothing is lost by waiting: the booking is scheduled before this call can be
        cancelled, and runs whatever happens to the call.

        `cache` names a response-cache hit: its usage is reported as the cached answer's,
        but no token of it is counted against the key's tokens per minute.
        """
        price = cost(
            served.pricing,
            usage.prompt_tokens,
            usage.completion_tokens,
            ticket.estimate.images,
            units,
            cached=usage.cached_tokens or 0,
            written=usage.cache_write_tokens or 0,
        )
        if ticket.closed:  # already billed (or released): never twice
            return price
        ticket.closed = True
        record = ticket.call.record
        if record is not None:
            record.model = served.model
            record.provider = served.provider
            record.tokens_in = usage.prompt_tokens
            record.tokens_out = usage.completion_tokens
            record.cost = price
            record.upstream_ms = served.upstream_ms
        elapsed = (time.perf_counter() - ticket.started) * 1000
        asyncio.get_running_loop().call_soon(
            self._book,
            ticket,
            served,
            usage,
            price,
            elapsed,
            finish_reason,
            streamed,
            cancelled,
            cache,
        )
        # Back-pressure: a caller waits while the ledger's writer is a whole queue behind
        # (its row, booked meanwhile, takes the queue past its bound by one at most).
        await self.ledger.room()
        return price

    def _book(
        self,
        ticket: Ticket,
        served: Served,
        usage: Usage,
        price: float,
        elapsed: float,
        finish_reason: str,
        streamed: bool,
        cancelled: bool,
        cache: str,
    ) -> None:
        self.credits.settle(ticket.reservation, price)
        self.limiter.finish(ticket.admission, 0 if cache else usage.total_tokens)
        self.ledger.record_now(
            Generation(
                id=ticket.generation_id,
                key_id=ticket.call.key.id,
                model=served.model,
                provider=served.provider,
                upstream_model=served.upstream_model,
                kind=ticket.kind,
                created_at=time.time(),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost=price,
                latency_ms=served.upstream_ms if streamed else elapsed,
                generation_time_ms=elapsed,
                finish_reason=finish_reason,
                streamed=streamed,
                cancelled=cancelled,
                attempts=served.attempts,
                cached_tokens=usage.cached_tokens or 0,
                cache_write_tokens=usage.cache_write_tokens or 0,
                billed_at=ticket.reservation.taken_at,
                cache=cache,
            )
        )
        self._open -= 1

    async def aclose(self, settle_within: float = 5.0) -> None:
        """Close the ledger once every generation still open has been billed or released.

        Called after the servers stopped: the calls they cut at shutdown are still
        settling (a cancelled stream is billed for what it produced) and must reach the
        ledger before it closes.
        """
        deadline = time.monotonic() + settle_within
        await asyncio.sleep(0)  # the bookings scheduled by the last settles run first
        while self._open and time.monotonic() < deadline:  # noqa: ASYNC110 - shutdown only
            await asyncio.sleep(0.01)
        if self._open:
            log.warning("%d generations were still open at shutdown; not billed", self._open)
        if self._moderator is not None:
            await self._moderator.aclose()
        await asyncio.to_thread(self.ledger.close)
