"""`switchyard.v1.MessagesService`: Anthropic's Messages API over the chat core.

Each call is translated (messages_proto.py) and served by the chat servicer itself, in
the same call context: the same pipeline, gate, engine, settlement and ledger row as a
chat completion, and the same statuses. Nothing here decides about keys, money or
routing. CountTokens asks the engine to count where the routed endpoint can.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from switchyard.v1 import chat_pb2, messages_pb2, messages_pb2_grpc

from service import errors
from service.accounting.gate import Accounting
from service.accounting.pricing import chat_prompt
from service.engine import Engine
from service.pipeline import Pipeline
from service.servicers.base import Context, abort, begin
from service.servicers.chat import ChatServicer
from service.servicers.chat_proto import request_from_proto
from service.servicers.messages_proto import EventBuilder, chat_request, response


class MessagesServicer(messages_pb2_grpc.MessagesServiceServicer):
    def __init__(
        self, pipeline: Pipeline, chat: ChatServicer, accounting: Accounting, engine: Engine
    ) -> None:
        self._pipeline = pipeline
        self._chat = chat
        self._accounting = accounting
        self._engine = engine

    async def _translate(
        self, request: messages_pb2.MessagesRequest, context: Context, method: str
    ) -> chat_pb2.ChatRequest:
        """The chat request; a request that cannot be one fails with its 400, unless the
        key is bad (a 401 first, as for every other call)."""
        try:
            return chat_request(request)
        except errors.GatewayError as exc:
            failure: Exception = exc
        try:
            begin(self._pipeline, context)
        except errors.GatewayError as exc:
            failure = exc
        await abort(context, failure, method)

    async def Create(  # noqa: N802 - gRPC method name
        self, request: messages_pb2.MessagesRequest, context: Context
    ) -> messages_pb2.MessagesResponse:
        translated = await self._translate(request, context, "MessagesService.Create")
        return response(await self._chat.Complete(translated, context))

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: messages_pb2.MessagesRequest, context: Context
    ) -> AsyncIterator[messages_pb2.MessagesEvent]:
        translated = await self._translate(request, context, "MessagesService.Stream")
        translated.stream_options.include_usage = True  # message_delta carries usage
        builder = EventBuilder()
        chunks: AsyncGenerator[chat_pb2.ChatChunk] = self._chat.Stream(translated, context)  # type: ignore[assignment]
        try:
            async for chunk in chunks:
                for event in builder.events(chunk):
                    yield event
        finally:
            await chunks.aclose()
        for event in builder.end():
            yield event

    async def CountTokens(  # noqa: N802 - gRPC method name
        self, request: messages_pb2.MessagesRequest, context: Context
    ) -> messages_pb2.CountTokensResponse:
        """The prompt's input tokens: counted by the endpoint that would serve the request
        when it can (Anthropic's count_tokens, a local model's tokenizer), else the
        gateway's own estimate (the one its limits reserve by). Nothing billed, but the
        key must be good and allowed the model, as for a generation."""
        try:
            call = begin(self._pipeline, context)
            domain = request_from_proto(chat_request(request))
            if not self._accounting.models([domain.model]):
                raise errors.model_not_found(domain.model)
            self._accounting.check_allowed(call.key, [domain.model])
            counted = await self._engine.count_tokens(domain, call)
            if counted is None:
                counted, _images = chat_prompt(domain)
            return messages_pb2.CountTokensResponse(input_tokens=counted)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "MessagesService.CountTokens")
