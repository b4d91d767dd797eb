"""The provider interface: what the core asks of an adapter.

An adapter receives domain requests plus an `Attempt` (which upstream model, and until
when), talks to its upstream, and raises `ProviderError` for every failure, so that
the core can decide about retries, fallbacks and the error contract in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from service.domain.chat import ChatDelta, ChatRequest, ChatResult
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult


@dataclass(frozen=True, slots=True)
class Attempt:
    upstream_model: str
    deadline: float | None = None  # event-loop time by which the whole request must end


class Provider(Protocol):
    name: str

    async def complete(self, request: ChatRequest, attempt: Attempt) -> ChatResult: ...

    def stream(self, request: ChatRequest, attempt: Attempt) -> AsyncIterator[ChatDelta]:
        """Deltas as the upstream sends them; closing the iterator closes the upstream call."""
        ...

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult: ...

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that can count a chat prompt's input tokens exactly, as its model
    will (Anthropic's count_tokens endpoint, a local model's own tokenizer)."""

    async def count_tokens(self, request: ChatRequest, attempt: Attempt) -> int: ...
