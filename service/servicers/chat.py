"""`switchyard.v1.ChatService`: each call passes the accounting gate, then the engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from switchyard.v1 import chat_pb2, chat_pb2_grpc

from service.accounting.gate import Accounting, Ticket
from service.accounting.limiter import headers_metadata
from service.accounting.pricing import chat_worst_case, tokens_for_chars
from service.cache import MISS, Hit, Plan, ResponseCache
from service.cache.entry import Assembler
from service.domain.chat import ChatRequest, Message, TextPart, Usage
from service.engine import Engine, Served, StreamTiming
from service.pipeline import CallContext, Pipeline
from service.servicers.accounting_proto import rate_limits_to_proto
from service.servicers.base import Context, abort, begin
from service.servicers.chat_cache import hit_chunks, hit_response, lookup
from service.servicers.chat_proto import ChunkBuilder, request_from_proto, response_to_proto


def _texts(message: Message) -> list[str]:
    content = message.content
    if isinstance(content, str):
        return [content]
    if isinstance(content, tuple):
        return [p.text for p in content if isinstance(p, TextPart)]
    return []


async def admit(accounting: Accounting, call: CallContext, request: ChatRequest) -> Ticket:
    """Open a chat generation at the gate: its worst case, and the texts to moderate."""
    requested = [request.model, *request.routing.fallback_models]
    estimate = chat_worst_case(request, accounting.models(requested))
    texts = moderated(request)
    record = call.record
    if record is not None and record.prompt is not None:  # access_log.log_bodies
        record.prompt = "\n".join(texts)
    return await accounting.open(call, "chat", requested, estimate, texts)


def produced(ticket: Ticket, chars: int) -> Usage:
    """Usage when the upstream reported none (a cut stream): our own estimate."""
    prompt = ticket.estimate.prompt_tokens
    completion = tokens_for_chars(chars)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def announcer(
    context: Context, accounting: Accounting, ticket: Ticket, started: float
) -> Callable[[Served], Awaitable[None]]:
    """The engine's `announce` for a stream: before the first attempt, what a client may
    need before any output. A stream whose 200 leaves before its first token (the HTTP
    hold) still names its generation, provider and limits (initial metadata -> headers)."""

    async def announce(trying: Served) -> None:
        overhead = (time.perf_counter() - started) * 1000
        metadata = [
            ("x-generation-id", ticket.generation_id),
            ("x-switchyard-provider", trying.provider),
            ("x-switchyard-overhead-ms", f"{overhead:.3f}"),
            ("x-switchyard-cache", MISS),
            *headers_metadata(accounting.limits(ticket)).items(),
        ]
        if trying.dropped:
            metadata.append(("x-switchyard-dropped-params", ",".join(trying.dropped)))
        await context.send_initial_metadata(metadata)

    return announce


def moderated(request: ChatRequest) -> list[str]:
    """The texts moderation reads: every turn's but the assistant's."""
    return [t for m in request.messages if m.role != "assistant" for t in _texts(m)]


def _served(served: Served) -> tuple[str, str, str]:
    return served.model, served.provider, served.upstream_model


def excluded(request: ChatRequest) -> bool:
    """Whether the client asked not to see the reasoning text (`reasoning.exclude`)."""
    return request.reasoning is not None and request.reasoning.exclude


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
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

    async def _lookup(
        self, call: CallContext, proto: chat_pb2.ChatRequest, request: ChatRequest
    ) -> tuple[Plan | None, Hit | None]:
        return await lookup(self._cache, self._accounting, call, proto.cache.mode, request)

    def _release(self, plan: Plan | None) -> None:
        if plan is not None and self._cache is not None:
            self._cache.release(plan)

    async def Complete(  # noqa: N802 - gRPC method name
        self, request: chat_pb2.ChatRequest, context: Context
    ) -> chat_pb2.ChatResponse:
        plan: Plan | None = None
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
            plan, hit = await self._lookup(call, request, chat_request)
            if hit is not None:
                texts = moderated(chat_request)
                return await hit_response(self._accounting, call, chat_request, hit, texts)
            ticket = await admit(self._accounting, call, chat_request)
            try:
                result, served = await self._engine.chat(chat_request, call)
            except BaseException as exc:
                self._accounting.abandon(ticket, exc)
                raise
            usage = result.usage or Usage()
            record = call.record
            if record is not None and record.prompt is not None and result.choices:
                record.completion = "".join(_texts(result.choices[0].message))
            price = await self._accounting.settle(
                ticket,
                served,
                usage,
                finish_reason=result.choices[0].finish_reason if result.choices else "",
            )
            if plan is not None and self._cache is not None:
                await self._cache.fill(plan, result, _served(served), usage)
            out = response_to_proto(
                result,
                served,
                ticket.generation_id,
                int(time.time()),
                excluded(chat_request),
            )
            out.cache = MISS
            usage_out = out.usage
            usage_out.SetInParent()
            usage_out.cost = price
            rate_limits_to_proto(self._accounting.limits(ticket), out.rate_limits)
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ChatService.Complete")
        finally:
            self._release(plan)

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: chat_pb2.ChatRequest, context: Context
    ) -> AsyncIterator[chat_pb2.ChatChunk]:
        started = time.perf_counter()
        plan: Plan | None = None
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
            plan, hit = await self._lookup(call, request, chat_request)
            if hit is None:
                ticket = await admit(self._accounting, call, chat_request)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            self._release(plan)
            await abort(context, exc, "ChatService.Stream")
        if hit is not None:
            try:
                texts = moderated(chat_request)
                async for cached in hit_chunks(self._accounting, call, chat_request, hit, texts):
                    yield cached
            except Exception as exc:  # noqa: BLE001 - every failure ends as a status
                await abort(context, exc, "ChatService.Stream")
            return
        # A miss that may fill the cache gathers the answer as it streams.
        assembler = Assembler() if plan is not None else None
        served: Served | None = None
        builder: ChunkBuilder | None = None

        announce = announcer(context, self._accounting, ticket, started)

        try:
            timing = StreamTiming()
            deltas, served = await self._engine.chat_stream(chat_request, call, timing, announce)
            builder = ChunkBuilder(
                served,
                ticket.generation_id,
                int(time.time()),
                chat_request.include_usage,
                excluded(chat_request),
            )
            first = True
            record = call.record
            said: list[str] | None = (
                [] if record is not None and record.prompt is not None else None
            )
            async for delta in deltas:
                if said is not None:
                    said.extend(c.content for c in delta.choices if c.content)
                if assembler is not None:
                    assembler.add(delta)
                chunk = builder.chunk(delta)
                if chunk is not None:
                    if first:
                        chunk.cache = MISS
                        if record is not None:
                            record.ttft = time.perf_counter() - started
                        chunk.upstream_ms = timing.first_delta_ms
                        rate_limits_to_proto(self._accounting.limits(ticket), chunk.rate_limits)
                        if served.dropped:
                            chunk.dropped_parameters.extend(served.dropped)
                        first = False
                    yield chunk
            usage = builder.usage or produced(ticket, builder.produced_chars)
            if record is not None and said is not None:
                record.completion = "".join(said)
            price = await self._accounting.settle(
                ticket, served, usage, finish_reason=builder.finish_reason, streamed=True
            )
            if plan is not None and assembler is not None and self._cache is not None:
                # Only a stream that ended cleanly gets here: a cut or failed one never fills.
                await self._cache.fill(plan, assembler.result(usage), _served(served), usage)
            final = builder.usage_chunk(usage, price)
            if final is not None:
                yield final
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away mid-stream: bill what was generated, once.
            if served is not None and builder is not None and not ticket.closed:
                await self._accounting.settle(
                    ticket,
                    served,
                    builder.usage or produced(ticket, builder.produced_chars),
                    finish_reason="cancelled",
                    streamed=True,
                    cancelled=True,
                )
            else:
                self._accounting.abandon(ticket, asyncio.CancelledError())
            raise
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            self._accounting.abandon(ticket, exc)
            await abort(context, exc, "ChatService.Stream")
        finally:
            self._release(plan)
