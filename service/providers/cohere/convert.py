"""Pure mapping between our embed/rerank types and Cohere's v2 JSON, in both directions.

Cohere's rerank answer (`results[{index, relevance_score}]`, `meta.billed_units`) is the
shape the OpenAI-compatible adapter already parses, so it is parsed there; the embed
answer is re-read as OpenAI's `data` list for the same reason. Only what is Cohere's own
lives here: `input_type`, `embedding_types`, `output_dimension`, billed units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.domain.chat import Usage
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.http_json import JSON, merged_params
from service.providers.openai_compat import convert as openai_convert
from service.providers.openai_compat.convert import BadUpstreamError

# Embedding in bulk is mostly indexing documents; queries are the exception a client names
# (extra param `input_type: search_query`) or a provider sets (option `input_type`).
DEFAULT_INPUT_TYPE = "search_document"
# Provider options copied into the request body, under request extras and typed fields.
EMBED_OPTIONS = ("input_type", "truncate", "max_tokens")
RERANK_OPTIONS = ("max_tokens_per_doc",)


def _options(options: Mapping[str, Any], names: tuple[str, ...]) -> JSON:
    return {name: options[name] for name in names if name in options}


def embed_body(request: EmbedRequest, upstream_model: str, options: Mapping[str, Any]) -> JSON:
    """`POST /v2/embed`; token-id inputs must have been refused before (Cohere takes text)."""
    body = merged_params(
        request.extra_json, {"input_type": DEFAULT_INPUT_TYPE}, _options(options, EMBED_OPTIONS)
    )
    body["model"] = upstream_model
    body["texts"] = list(request.texts)
    body["embedding_types"] = ["float"]  # the only type our vectors carry
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions  # embed-v4 and newer; else Cohere's 400
    return body


def rerank_body(request: RerankRequest, upstream_model: str, options: Mapping[str, Any]) -> JSON:
    """`POST /v2/rerank`. No `return_documents` in v2: the gateway echoes documents itself."""
    body = merged_params(request.extra_json, _options(options, RERANK_OPTIONS))
    body["model"] = upstream_model
    body["query"] = request.query
    body["documents"] = list(request.documents)
    if request.top_n is not None:
        body["top_n"] = request.top_n
    return body


def _billed_input_tokens(body: JSON) -> int:
    meta = body.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    tokens = billed.get("input_tokens") if isinstance(billed, dict) else None
    if isinstance(tokens, int | float) and not isinstance(tokens, bool) and tokens >= 0:
        return int(tokens)
    return 0


def parse_embeddings(value: Any, expected: int) -> EmbedResult:
    """`embeddings.float` (one vector per text, in order) and `meta.billed_units.input_tokens`."""
    if not isinstance(value, dict):
        raise BadUpstreamError("response: expected an object")
    embeddings = value.get("embeddings")
    floats = embeddings.get("float") if isinstance(embeddings, dict) else None
    if not isinstance(floats, list):
        raise BadUpstreamError("embeddings.float: expected an array")
    as_openai = {"data": [{"index": i, "embedding": v} for i, v in enumerate(floats)]}
    vectors = openai_convert.parse_embeddings(as_openai, expected).vectors
    tokens = _billed_input_tokens(value)
    return EmbedResult(vectors=vectors, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))


def parse_rerank(value: Any, documents: int, top_n: int | None) -> RerankResult:
    """Best first, at most `top_n`, with `meta.billed_units.search_units`."""
    return openai_convert.parse_rerank(value, documents, top_n)
