"""Embedding and rerank requests and results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.domain.chat import Usage
from service.domain.routing import DEFAULT_ROUTING, Routing


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    model: str
    texts: tuple[str, ...] = ()
    token_inputs: tuple[tuple[int, ...], ...] = ()  # used instead of texts when non-empty
    dimensions: int | None = None
    user: str | None = None
    extra_json: str | None = None
    routing: Routing = DEFAULT_ROUTING


@dataclass(frozen=True, slots=True)
class EmbedResult:
    vectors: tuple[Sequence[float], ...]  # in input order
    usage: Usage


@dataclass(frozen=True, slots=True)
class RerankRequest:
    model: str
    query: str
    documents: tuple[str, ...]
    top_n: int | None = None
    return_documents: bool = False
    extra_json: str | None = None
    routing: Routing = DEFAULT_ROUTING


@dataclass(frozen=True, slots=True)
class RerankHit:
    index: int
    score: float


@dataclass(frozen=True, slots=True)
class RerankResult:
    hits: tuple[RerankHit, ...]  # best first, at most top_n
    total_tokens: int | None = None
    search_units: int | None = None
