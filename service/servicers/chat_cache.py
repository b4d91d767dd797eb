"""The chat servicer's side of the response cache: the lookup, and answering a hit,
unary or streamed. The Responses servicer looks up and bills hits the same way
(responses_cache.py), under the key of the chat request it serves.

A hit passes the same gate as any generation (allowed models, moderation, the key's
requests per minute, credits), with an estimate of no tokens and the model's
`cache_hit_price` as its whole cost; it is settled as a hit, so the ledger and
/v1/generation say so and no token counts against the key's tokens per minute.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from switchyard.v1 import chat_pb2

from service.accounting.gate import Accounting, Ticket
from service.accounting.pricing import Estimate
from service.cache import Hit, Plan, ResponseCache
from service.cache.cache import check_mode
from service.cache.entry import replay
from service.catalog import Pricing
from service.domain.chat import ChatRequest, Usage
from service.engine import Served
from service.pipeline import CallContext
from service.servicers.accounting_proto import rate_limits_to_proto
from service.servicers.chat_proto import ChunkBuilder, response_to_proto


async def lookup(
    cache: ResponseCache | None,
    accounting: Accounting,
    call: CallContext,
    mode: str,
    request: ChatRequest,
) -> tuple[Plan | None, Hit | None]:
    """The cache's plan for `request` (its `mode`: "" | use | skip | refresh), and its
    answer when it has one. A miss that may fill the cache leads its key's flight: the
    caller must release the plan."""
    if cache is None:
        check_mode(mode)
        return None, None
    plan = cache.plan(request, call.key.id, mode)
    if plan is None:
        return None, None
    # Only a key allowed the model may see its cached answers (or wait on them).
    accounting.check_allowed(call.key, [request.model])
    return plan, await cache.find(plan, call.deadline)


async def _open(
    accounting: Accounting, call: CallContext, request: ChatRequest, hit: Hit, texts: list[str]
) -> tuple[Ticket, Served]:
    estimate = Estimate(worst_cost=hit.price, tokens=0, prompt_tokens=0)
    ticket = await accounting.open(call, "chat", [request.model], estimate, texts)
    entry = hit.entry
    served = Served(
        model=entry.model,
        provider=entry.provider,
        upstream_model=entry.upstream_model,
        pricing=Pricing(request=hit.price),
        attempts=0,  # no upstream call
    )
    return ticket, served


def _finish_reason(hit: Hit) -> str:
    choices = hit.entry.result.choices
    return choices[0].finish_reason if choices else ""


async def settle_hit(
    accounting: Accounting,
    call: CallContext,
    request: ChatRequest,
    hit: Hit,
    texts: list[str],
    *,
    streamed: bool = False,
) -> tuple[Ticket, Served, Usage, float]:
    """A hit through the gate and billed as one: its ticket, what served it (the entry),
    its usage and its price."""
    ticket, served = await _open(accounting, call, request, hit, texts)
    usage = hit.entry.usage()
    price = await accounting.settle(
        ticket,
        served,
        usage,
        finish_reason=_finish_reason(hit),
        streamed=streamed,
        cache=hit.kind,
    )
    return ticket, served, usage, price


async def hit_response(
    accounting: Accounting, call: CallContext, request: ChatRequest, hit: Hit, texts: list[str]
) -> chat_pb2.ChatResponse:
    ticket, served, _usage, price = await settle_hit(accounting, call, request, hit, texts)
    out = response_to_proto(hit.entry.result, served, ticket.generation_id, int(time.time()))
    out.cache = hit.kind
    out.usage.SetInParent()
    out.usage.cost = price
    out.usage.cache = hit.kind
    rate_limits_to_proto(accounting.limits(ticket), out.rate_limits)
    return out


async def hit_chunks(
    accounting: Accounting, call: CallContext, request: ChatRequest, hit: Hit, texts: list[str]
) -> AsyncIterator[chat_pb2.ChatChunk]:
    """The stream of a hit: billed first (the whole answer is known), then replayed."""
    ticket, served, usage, price = await settle_hit(
        accounting, call, request, hit, texts, streamed=True
    )
    builder = ChunkBuilder(served, ticket.generation_id, int(time.time()), request.include_usage)
    first = True
    for delta in replay(hit.entry.result):
        chunk = builder.chunk(delta)
        if chunk is None:
            continue
        if first:
            chunk.cache = hit.kind
            rate_limits_to_proto(accounting.limits(ticket), chunk.rate_limits)
            first = False
        yield chunk
    final = builder.usage_chunk(usage, price)
    if final is not None:
        final.usage.cache = hit.kind
        yield final
