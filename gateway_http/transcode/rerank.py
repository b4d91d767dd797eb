"""Rerank in the Cohere/Jina shape: `{model, query, documents, top_n, return_documents}`."""

from __future__ import annotations

import orjson
from switchyard.v1 import rerank_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.fields import (
    JSON,
    array,
    obj,
    opt_bool,
    opt_int,
    opt_str,
    req_str,
    string,
)
from gateway_http.transcode.routing import ROUTING_FIELDS, parse_routing

_HANDLED = frozenset({"model", "query", "documents", "top_n", "return_documents"}) | ROUTING_FIELDS


def parse_rerank(body: JSON) -> rerank_pb2.RerankRequest:
    out = rerank_pb2.RerankRequest(model=opt_str(body, "model") or "")
    parse_routing(body, out)
    if not out.model:
        raise bad_request("'model' is required.", "model")
    out.query = req_str(body, "query")
    documents = body.get("documents")
    if documents is None:
        raise bad_request("'documents' is required.", "documents")
    for i, doc in enumerate(array(documents, "documents")):
        if isinstance(doc, dict):
            out.documents.append(
                req_str(obj(doc, f"documents[{i}]"), "text", f"documents[{i}].text")
            )
        else:
            out.documents.append(string(doc, f"documents[{i}]"))
    top_n = opt_int(body, "top_n")
    if top_n is not None:
        out.top_n = top_n
    out.return_documents = bool(opt_bool(body, "return_documents"))
    extra = {k: v for k, v in body.items() if k not in _HANDLED and v is not None}
    if extra:
        out.extra_json = orjson.dumps(extra).decode()
    return out


def rerank_json(response: rerank_pb2.RerankResponse) -> JSON:
    results = []
    for result in response.results:
        item: JSON = {"index": result.index, "relevance_score": result.relevance_score}
        if result.HasField("document"):
            item["document"] = {"text": result.document}
        results.append(item)
    usage: JSON = {}
    if response.usage.HasField("total_tokens"):
        usage["total_tokens"] = response.usage.total_tokens
    if response.usage.HasField("search_units"):
        usage["search_units"] = response.usage.search_units
    return {
        "id": response.id,
        "model": response.model,
        "provider": response.provider,
        "results": results,
        "usage": usage,
    }
