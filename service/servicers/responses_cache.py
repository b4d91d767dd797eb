"""The Responses servicer's side of the response cache: answering a hit, unary or as
typed events.

A Responses request is looked up under the key of the chat request it becomes
(chat_cache.lookup), so it shares entries with chat completions and the Messages door,
and a hit passes the gate and is billed exactly as a chat hit (chat_cache.settle_hit);
only the answer's shape differs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from switchyard.v1 import responses_pb2

from service.accounting.gate import Accounting
from service.cache import Hit
from service.cache.entry import replay
from service.domain.chat import ChatRequest
from service.pipeline import CallContext
from service.servicers.accounting_proto import rate_limits_to_proto
from service.servicers.chat import excluded, moderated
from service.servicers.chat_cache import settle_hit
from service.servicers.responses_events import ResponseEvents
from service.servicers.responses_proto import response_to_proto


async def hit_response(
    accounting: Accounting, call: CallContext, request: ChatRequest, hit: Hit
) -> responses_pb2.Response:
    ticket, served, _usage, price = await settle_hit(
        accounting, call, request, hit, moderated(request)
    )
    out = response_to_proto(
        hit.entry.result, served, ticket.generation_id, int(time.time()), excluded(request)
    )
    out.cache = hit.kind
    out.usage.SetInParent()
    out.usage.cost = price
    out.usage.cache = hit.kind
    rate_limits_to_proto(accounting.limits(ticket), out.rate_limits)
    return out


async def hit_events(
    accounting: Accounting, call: CallContext, request: ChatRequest, hit: Hit
) -> AsyncIterator[responses_pb2.ResponseEventBatch]:
    """The events of a hit: billed first (the whole answer is known), then replayed."""
    ticket, served, usage, price = await settle_hit(
        accounting, call, request, hit, moderated(request), streamed=True
    )
    events = ResponseEvents(served, ticket.generation_id, int(time.time()), excluded(request))
    head = events.start()[0].response  # what the HTTP head needs, as on a live stream
    head.cache = hit.kind
    rate_limits_to_proto(accounting.limits(ticket), head.rate_limits)
    for delta in replay(hit.entry.result):
        if events.feed(delta):
            yield events.take()
    completed = events.finish(usage, price)[-1].response  # response.completed, usage in it
    completed.usage.cache = hit.kind
    yield events.take()
