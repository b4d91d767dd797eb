"""`switchyard.v1.RerankService`."""

from __future__ import annotations

from switchyard.v1 import rerank_pb2, rerank_pb2_grpc

from service import errors
from service.accounting.gate import Accounting
from service.accounting.pricing import rerank_worst_case
from service.domain.chat import Usage
from service.domain.embeddings import RerankRequest
from service.engine import Engine
from service.pipeline import Pipeline
from service.servicers.accounting_proto import rate_limits_to_proto
from service.servicers.base import Context, abort, begin
from service.servicers.routing_proto import routing_from_proto
from service.servicers.validate import at_least, json_text, required

MAX_DOCUMENTS = 1000


def request_from_proto(request: rerank_pb2.RerankRequest) -> RerankRequest:
    model = required(request.model, "model")
    query = required(request.query, "query")
    if not request.documents:
        raise errors.invalid_request("'documents' must not be empty.", "documents")
    if len(request.documents) > MAX_DOCUMENTS:
        raise errors.invalid_request(
            f"'documents' may hold at most {MAX_DOCUMENTS} items.", "documents"
        )
    return RerankRequest(
        model=model,
        query=query,
        documents=tuple(request.documents),
        top_n=at_least(request.top_n, 1, "top_n") if request.HasField("top_n") else None,
        return_documents=request.return_documents,
        extra_json=json_text(request.extra_json, "extra") if request.extra_json else None,
        routing=routing_from_proto(request.provider, request.HasField("provider"), request.models),
    )


class RerankServicer(rerank_pb2_grpc.RerankServiceServicer):
    def __init__(self, pipeline: Pipeline, engine: Engine, accounting: Accounting) -> None:
        self._pipeline = pipeline
        self._engine = engine
        self._accounting = accounting

    async def Rerank(  # noqa: N802 - gRPC method name
        self, request: rerank_pb2.RerankRequest, context: Context
    ) -> rerank_pb2.RerankResponse:
        try:
            call = begin(self._pipeline, context)
            rerank_request = request_from_proto(request)
            requested = [rerank_request.model, *rerank_request.routing.fallback_models]
            estimate = rerank_worst_case(rerank_request, self._accounting.models(requested))
            texts = [rerank_request.query, *rerank_request.documents]
            ticket = await self._accounting.open(call, "rerank", requested, estimate, texts)
            try:
                result, served = await self._engine.rerank(rerank_request, call)
            except BaseException as exc:
                self._accounting.abandon(ticket, exc)
                raise
            used = result.total_tokens or 0
            price = await self._accounting.settle(
                ticket,
                served,
                Usage(prompt_tokens=used, total_tokens=used),
                finish_reason="stop",
                units=result.search_units or 1,
            )
            out = rerank_pb2.RerankResponse(
                id=ticket.generation_id,
                model=served.model,
                provider=served.provider,
                upstream_ms=served.upstream_ms,
            )
            for hit in result.hits:
                item = out.results.add(index=hit.index, relevance_score=hit.score)
                if rerank_request.return_documents:
                    item.document = rerank_request.documents[hit.index]
            if result.total_tokens is not None:
                out.usage.total_tokens = result.total_tokens
            if result.search_units is not None:
                out.usage.search_units = result.search_units
            out.usage.cost = price
            rate_limits_to_proto(self._accounting.limits(ticket), out.rate_limits)
            return out
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "RerankService.Rerank")
