"""`switchyard.v1.EmbeddingService`."""

from __future__ import annotations

from switchyard.v1 import embeddings_pb2, embeddings_pb2_grpc

from service import errors
from service.accounting.gate import Accounting
from service.accounting.pricing import embed_worst_case
from service.domain.embeddings import EmbedRequest
from service.engine import Engine
from service.pipeline import Pipeline
from service.servicers.accounting_proto import rate_limits_to_proto
from service.servicers.base import Context, abort, begin
from service.servicers.chat_proto import usage_to_proto
from service.servicers.routing_proto import routing_from_proto
from service.servicers.validate import at_least, json_text, required

MAX_INPUTS = 2048


def request_from_proto(request: embeddings_pb2.EmbedRequest) -> EmbedRequest:
    model = required(request.model, "model")
    if request.texts and request.token_inputs:
        raise errors.invalid_request("Send either texts or token ids, not both.", "input")
    count = len(request.texts) or len(request.token_inputs)
    if count == 0:
        raise errors.invalid_request("'input' must not be empty.", "input")
    if count > MAX_INPUTS:
        raise errors.invalid_request(f"'input' may hold at most {MAX_INPUTS} items.", "input")
    for i, text in enumerate(request.texts):
        if not text:
            raise errors.invalid_request(f"'input[{i}]' must not be empty.", "input")
    for i, ids in enumerate(request.token_inputs):
        if not ids.ids:
            raise errors.invalid_request(f"'input[{i}]' must not be empty.", "input")
    return EmbedRequest(
        model=model,
        texts=tuple(request.texts),
        token_inputs=tuple(tuple(t.ids) for t in request.token_inputs),
        dimensions=at_least(request.dimensions, 1, "dimensions")
        if request.HasField("dimensions")
        else None,
        user=request.user or None,
        extra_json=json_text(request.extra_json, "extra") if request.extra_json else None,
        routing=routing_from_proto(request.provider, request.HasField("provider"), request.models),
    )


class EmbeddingServicer(embeddings_pb2_grpc.EmbeddingServiceServicer):
    def __init__(self, pipeline: Pipeline, engine: Engine, accounting: Accounting) -> None:
        self._pipeline = pipeline
        self._engine = engine
        self._accounting = accounting

    async def Embed(  # noqa: N802 - gRPC method name
        self, request: embeddings_pb2.EmbedRequest, context: Context
    ) -> embeddings_pb2.EmbedResponse:
        try:
            call = begin(self._pipeline, context)
            embed_request = request_from_proto(request)
            requested = [embed_request.model, *embed_request.routing.fallback_models]
            estimate = embed_worst_case(embed_request, self._accounting.models(requested))
            ticket = await self._accounting.open(
                call, "embeddings", requested, estimate, embed_request.texts
            )
            try:
                result, served = await self._engine.embed(embed_request, call)
                if embed_request.dimensions is not None and any(
                    len(v) != embed_request.dimensions for v in result.vectors
                ):
                    raise errors.upstream_error(
                        served.provider, "The upstream ignored 'dimensions'.", None
                    )
            except BaseException as exc:
                self._accounting.abandon(ticket, exc)
                raise
            price = await self._accounting.settle(
                ticket, served, result.usage, finish_reason="stop"
            )
            out = embeddings_pb2.EmbedResponse(
                id=ticket.generation_id,
                model=served.model,
                provider=served.provider,
                upstream_ms=served.upstream_ms,
            )
            for i, vector in enumerate(result.vectors):
                out.data.add(index=i, values=vector)
            usage_to_proto(result.usage, out.usage)
            out.usage.cost = price
            rate_limits_to_proto(self._accounting.limits(ticket), out.rate_limits)
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "EmbeddingService.Embed")
