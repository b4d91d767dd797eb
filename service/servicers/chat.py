"""`switchyard.v1.ChatService`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from switchyard.v1 import chat_pb2, chat_pb2_grpc

from service import errors
from service.engine import Engine, StreamTiming
from service.pipeline import Pipeline
from service.servicers.base import Context, abort, begin
from service.servicers.chat_proto import ChunkBuilder, request_from_proto, response_to_proto


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, pipeline: Pipeline, engine: Engine) -> None:
        self._pipeline = pipeline
        self._engine = engine

    async def Complete(  # noqa: N802 - gRPC method name
        self, request: chat_pb2.ChatRequest, context: Context
    ) -> chat_pb2.ChatResponse:
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
            result, served = await self._engine.chat(chat_request, call)
            return response_to_proto(result, served, _new_id(), int(time.time()))
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ChatService.Complete")

    async def Stream(  # noqa: N802 - gRPC method name
        self, request: chat_pb2.ChatRequest, context: Context
    ) -> AsyncIterator[chat_pb2.ChatChunk]:
        try:
            call = begin(self._pipeline, context)
            chat_request = request_from_proto(request)
            timing = StreamTiming()
            deltas, served = await self._engine.chat_stream(chat_request, call, timing)
            builder = ChunkBuilder(served, _new_id(), int(time.time()), chat_request.include_usage)
            sent = False
            async for delta in deltas:
                chunk = builder.chunk(delta)
                if chunk is not None:
                    if not sent:
                        chunk.upstream_ms = timing.first_delta_ms
                    sent = True
                    yield chunk
            if not sent:
                raise errors.upstream_error(served.provider, "The upstream stream was empty.")
            usage = builder.usage_chunk()
            if usage is not None:
                yield usage
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ChatService.Stream")
