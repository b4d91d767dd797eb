"""`switchyard.v1.ResponsesService`: the Responses API over the chat core.

Each call is converted to a chat request (responses_proto.py) and then goes exactly the
way a chat completion goes: the pipeline, the accounting gate, the engine's routing and
fallbacks, settlement at the served endpoint's prices and the ledger. Only the shapes
of the answer differ (responses_proto.py, responses_events.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from switchyard.v1 import responses_pb2, responses_pb2_grpc

from service.accounting.gate import Accounting
from service.domain.chat import Usage
from service.engine import Engine, Served, StreamTiming
from service.pipeline import Pipeline
from service.servicers.accounting_proto import rate_limits_to_proto
from service.servicers.base import Context, abort, begin
from service.servicers.chat import admit, announcer, excluded, produced
from service.servicers.responses_events import ResponseEvents
from service.servicers.responses_proto import request_from_proto, response_to_proto


class ResponsesServicer(responses_pb2_grpc.ResponsesServiceServicer):
    def __init__(self, pipeline: Pipeline, engine: Engine, accounting: Accounting) -> None:
        self._pipeline = pipeline
        self._engine = engine
        self._accounting = accounting

    async def Create(  # noqa: N802 - gRPC method name
        self, request: responses_pb2.ResponseRequest, context: Context
    ) -> responses_pb2.Response:
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
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
            out = response_to_proto(
                result, served, ticket.generation_id, int(time.time()), excluded(chat_request)
            )
            out.usage.SetInParent()
            out.usage.cost = price
            rate_limits_to_proto(self._accounting.limits(ticket), out.rate_limits)
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ResponsesService.Create")

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: responses_pb2.ResponseRequest, context: Context
    ) -> AsyncIterator[responses_pb2.ResponseEventBatch]:
        started = time.perf_counter()
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
            ticket = await admit(self._accounting, call, chat_request)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ResponsesService.Stream")
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
            rate_limits_to_proto(self._accounting.limits(ticket), head.rate_limits)
            async for delta in deltas:
                # The opening events wait in the batch for the first delta with output.
                if events.feed(delta):
                    yield events.take()
            usage = events.usage or produced(ticket, events.produced_chars)
            price = await self._accounting.settle(
                ticket, served, usage, finish_reason=events.finish_reason, streamed=True
            )
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
