"""Pure mapping between our embed/rerank types and TEI's JSON, in both directions.

TEI answers bare arrays: `/embed` a list of vectors, `/rerank` a list of `{index, score}`.
They are re-read as the OpenAI-compatible adapter's `data`/`results` shapes and parsed
there, which validates counts and indexes, orders hits best first and applies `top_n`
(TEI has no `top_n`: the cut is ours). TEI's bodies carry no usage; its servers report
the tokens they computed in the `x-compute-tokens` response header.

TEI serves exactly one model, so the upstream model name is not sent: it only labels
the route in our catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.domain.chat import Usage
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.http_json import JSON, merged_params
from service.providers.openai_compat import convert as openai_convert
from service.providers.openai_compat.convert import BadUpstreamError

# Adapter defaults: unit vectors (what OpenAI clients expect of cosine search) and
# truncation of over-long inputs instead of a 413/422 (TEI's own default is to refuse).
EMBED_DEFAULTS: JSON = {"normalize": True, "truncate": True}
RERANK_DEFAULTS: JSON = {"raw_scores": False, "truncate": True}
# Provider options copied into the request body, under request extras and typed fields.
EMBED_OPTIONS = ("normalize", "truncate", "truncation_direction", "prompt_name")
RERANK_OPTIONS = ("truncate", "truncation_direction")
TOKENS_HEADER = "x-compute-tokens"


def _options(options: Mapping[str, Any], names: tuple[str, ...]) -> JSON:
    return {name: options[name] for name in names if name in options}


def embed_body(request: EmbedRequest, options: Mapping[str, Any]) -> JSON:
    """`POST /embed`: texts, or token ids (TEI takes either); `dimensions` only when supported."""
    body = merged_params(request.extra_json, EMBED_DEFAULTS, _options(options, EMBED_OPTIONS))
    if request.token_inputs:
        body["inputs"] = [list(ids) for ids in request.token_inputs]
    else:
        body["inputs"] = list(request.texts)
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def rerank_body(request: RerankRequest, options: Mapping[str, Any]) -> JSON:
    """`POST /rerank`. Texts are never asked back: the gateway echoes documents itself."""
    body = merged_params(request.extra_json, RERANK_DEFAULTS, _options(options, RERANK_OPTIONS))
    body["query"] = request.query
    body["texts"] = list(request.documents)
    body["return_text"] = False
    return body


def computed_tokens(headers: Mapping[str, str]) -> int | None:
    """TEI's `x-compute-tokens` header, if the server sent a sane one."""
    value = headers.get(TOKENS_HEADER)
    try:
        tokens = int(value) if value is not None else None
    except ValueError:
        return None
    return tokens if tokens is not None and tokens >= 0 else None


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise BadUpstreamError("response: expected a bare JSON array")
    return value


def parse_embeddings(value: Any, expected: int, headers: Mapping[str, str]) -> EmbedResult:
    data = [{"index": i, "embedding": v} for i, v in enumerate(_array(value))]
    vectors = openai_convert.parse_embeddings({"data": data}, expected).vectors
    tokens = computed_tokens(headers) or 0
    return EmbedResult(vectors=vectors, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))


def parse_rerank(
    value: Any, documents: int, top_n: int | None, headers: Mapping[str, str]
) -> RerankResult:
    results = []
    for i, raw in enumerate(_array(value)):
        if not isinstance(raw, dict):
            raise BadUpstreamError(f"[{i}]: expected an object")
        results.append({"index": raw.get("index"), "relevance_score": raw.get("score")})
    ranked = openai_convert.parse_rerank({"results": results}, documents, top_n)
    return RerankResult(hits=ranked.hits, total_tokens=computed_tokens(headers))
