"""Pure mapping between our embed/rerank types and Jina's JSON, in both directions.

Jina's answers are OpenAI/Cohere-shaped (`data[{index, embedding}]` with `usage`;
`results[{index, relevance_score}]` with `usage.total_tokens`), so they are parsed by
the OpenAI-compatible adapter's parsers. Jina's own part is the request: `task` (its
LoRA adapters, e.g. `retrieval.passage` / `retrieval.query`) and `dimensions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.domain.chat import Usage
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.http_json import JSON, merged_params
from service.providers.openai_compat import convert as openai_convert

# Provider options copied into the request body, under request extras and typed fields.
# No `task` by default: only some models have task adapters (v3 and later), so which one
# fits is the operator's choice (option `task`) or the client's (extra param `task`).
EMBED_OPTIONS = ("task", "late_chunking", "truncate", "normalized")
RERANK_OPTIONS = ("truncate",)


def _options(options: Mapping[str, Any], names: tuple[str, ...]) -> JSON:
    return {name: options[name] for name in names if name in options}


def embed_body(request: EmbedRequest, upstream_model: str, options: Mapping[str, Any]) -> JSON:
    """`POST /v1/embeddings`; token-id inputs must have been refused before (Jina takes text)."""
    body = merged_params(request.extra_json, _options(options, EMBED_OPTIONS))
    body["model"] = upstream_model
    body["input"] = list(request.texts)
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def rerank_body(request: RerankRequest, upstream_model: str, options: Mapping[str, Any]) -> JSON:
    """`POST /v1/rerank`; documents are not asked back: the gateway echoes them itself."""
    body = merged_params(request.extra_json, _options(options, RERANK_OPTIONS))
    body["model"] = upstream_model
    body["query"] = request.query
    body["documents"] = list(request.documents)
    if request.top_n is not None:
        body["top_n"] = request.top_n
    body["return_documents"] = False
    return body


def parse_embeddings(value: Any, expected: int) -> EmbedResult:
    result = openai_convert.parse_embeddings(value, expected)
    usage = result.usage
    if usage.total_tokens and not usage.prompt_tokens:  # Jina may report total_tokens only
        usage = Usage(prompt_tokens=usage.total_tokens, total_tokens=usage.total_tokens)
    return EmbedResult(vectors=result.vectors, usage=usage)


def parse_rerank(value: Any, documents: int, top_n: int | None) -> RerankResult:
    """Best first, at most `top_n`, with `usage.total_tokens`."""
    return openai_convert.parse_rerank(value, documents, top_n)
