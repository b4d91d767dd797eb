"""`switchyard.v1.ResponsesService`: the Responses API over the chat core.

Each call is converted to a chat request (responses_proto.py) and then goes exactly the
way a chat completion goes: the response cache (under the chat request's key), the
pipeline, the accounting gate, the engine's routing and fallbacks, settlement at the
served endpoint's prices and the ledger. Only the shapes of the answer differ
(responses_proto.py, responses_events.py, responses_cache.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from switchyard.v1 import responses_pb2, responses_pb2_grpc

from service.accounting.gate import Accounting
from service.cache import MISS, Plan, ResponseCache
from service.cache.entry import Assembler
from service.domain.chat import Usage
from service.engine import Engine, Served, StreamTiming
from service.pipeline import Pipeline
from service.servicers.accounting_proto import rate_limits_to_proto
from service.servicers.base import Context, abort, begin
from service.servicers.chat import admit, announcer, excluded, produced
from service.servicers.chat_cache import lookup
from service.servicers.responses_cache import hit_events, hit_response
from service.servicers.responses_events import ResponseEvents
from service.servicers.responses_proto import request_from_proto, response_to_proto


def _served(served: Served) -> tuple[str, str, str]:
    return served.model, served.provider, served.upstream_model


class ResponsesServicer(responses_pb2_grpc.ResponsesServiceServicer):
    def __init__(
        self,
        pipeline: Pipeline,
        engine: Engine,
        accounting: Accounting,
        cache: ResponseCache | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._engine = engine
        self._accounting = accounting
        self._cache = cache

    def _release(self, plan: Plan | None) -> None:
        if plan is not None and self._cache is not None:
            self._cache.release(plan)

    async def Create(  # noqa: N802 - gRPC method name
        self, request: responses_pb2.ResponseRequest, context: Context
    ) -> responses_pb2.Response:
        plan: Plan | None = None
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
            plan, hit = await lookup(
                self._cache, self._accounting, call, request.cache.mode, chat_request
            )
            if hit is not None:
                return await hit_response(self._accounting, call, chat_request, hit)
            ticket = await admit(self._accounting, call, chat_request)
            try:
                result, served = await self._engine.chat(chat_request, call)
            except BaseException:
                self._accounting.abandon(ticket)
                raise
            usage = result.usage or Usage()
            price = await self._accounting.settle(
                ticket,
                served,
                usage,
                finish_reason=result.choices[0].finish_reason if result.choices else "",
            )
            if plan is not None and self._cache is not None:
                await self._cache.fill(plan, result, _served(served), usage)
            out = response_to_proto(
                result, served, ticket.generation_id, int(time.time()), excluded(chat_request)
            )
            out.cache = MISS
            out.usage.SetInParent()
            out.usage.cost = price
            rate_limits_to_proto(self._accounting.limits(ticket), out.rate_limits)
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ResponsesService.Create")
        finally:
            self._release(plan)

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: responses_pb2.ResponseRequest, context: Context
    ) -> AsyncIterator[responses_pb2.ResponseEventBatch]:
        started = time.perf_counter()
        plan: Plan | None = None
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
            plan, hit = await lookup(
                self._cache, self._accounting, call, request.cache.mode, chat_request
            )
            if hit is None:
                ticket = await admit(self._accounting, call, chat_request)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            self._release(plan)
            await abort(context, exc, "ResponsesService.Stream")
        if hit is not None:
            try:
                async for batch in hit_events(self._accounting, call, chat_request, hit):
                    yield batch
            except Exception as exc:  # noqa: BLE001 - every failure ends as a status
                await abort(context, exc, "ResponsesService.Stream")
            return
        # A miss that may fill the cache gathers the answer as it streams.
        assembler = Assembler() if plan is not None else None
        served: Served | None = None
        events: ResponseEvents | None = None
        try:
            timing = StreamTiming()
            announce = announcer(context, self._accounting, ticket, started)
            deltas, served = await self._engine.chat_stream(chat_request, call, timing, announce)
            events = ResponseEvents(
                served, ticket.generation_id, int(time.time()), excluded(chat_request)
            )
            # The stream is committed (the engine held it until real output): the first
            # batch carries what the HTTP head needs, as a chat stream's first chunk does.
            head = events.start()[0].response
            head.upstream_ms = timing.first_delta_ms
            head.cache = MISS
            rate_limits_to_proto(self._accounting.limits(ticket), head.rate_limits)
            async for delta in deltas:
                if assembler is not None:
                    assembler.add(delta)
                # The opening events wait in the batch for the first delta with output.
                if events.feed(delta):
                    yield events.take()
            usage = events.usage or produced(ticket, events.produced_chars)
            price = await self._accounting.settle(
                ticket, served, usage, finish_reason=events.finish_reason, streamed=True
            )
            if plan is not None and assembler is not None and self._cache is not None:
                # Only a stream that ended cleanly gets here: a cut or failed one never fills.
                await self._cache.fill(plan, assembler.result(usage), _served(served), usage)
            events.finish(usage, price)
            yield events.take()
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away mid-stream: bill what was generated, once.
            if served is not None and events is not None and not ticket.closed:
                await self._accounting.settle(
                    ticket,
                    served,
                    events.usage or produced(ticket, events.produced_chars),
                    finish_reason="cancelled",
                    streamed=True,
                    cancelled=True,
                )
            else:
                self._accounting.abandon(ticket)
            raise
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            self._accounting.abandon(ticket)
            await abort(context, exc, "ResponsesService.Stream")
        finally:
            self._release(plan)
