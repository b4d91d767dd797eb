"""One embed or rerank request split into the batches an upstream accepts, sent concurrently.

Upstreams cap how many inputs one call may carry (Cohere's v2 embed: 96 texts; TEI: its
`--max-client-batch-size`, 32 by default) and refuse larger calls outright. A client's
request is not bound by those caps, so the adapter cuts it into batches of the
provider's `batch_size` and puts the answers back together as if one call had served it:
vectors in input order, usage summed, rerank hits ranked over all documents.

The batches run concurrently, but at most `MAX_IN_FLIGHT` at a time (a fixed set of
workers, not a task per batch), all under the one deadline of the attempt. The first
batch to fail fails the request with its own error, and the batches still running are
cancelled, which closes their upstream connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from service.config import ConfigError, ProviderConfig
from service.domain.chat import Usage
from service.domain.embeddings import EmbedResult, RerankHit, RerankResult

T = TypeVar("T")
# Batches of one request in flight at once: enough to overlap their round trips without
# one large request taking every connection an upstream will give us.
MAX_IN_FLIGHT = 4


def batch_size(config: ProviderConfig, default: int) -> int:
    """The provider's `batch_size` option (inputs per upstream call), checked at start-up."""
    value = config.options.get("batch_size", default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"config.providers.{config.name}.batch_size: expected a positive integer")
    return value


def spans(count: int, size: int) -> list[tuple[int, int]]:
    """[start, end) of each batch of `count` inputs cut every `size` (one span when empty)."""
    return [(start, min(start + size, count)) for start in range(0, count, size)] or [(0, 0)]


async def run_batches(
    batches: Sequence[tuple[int, int]],
    call: Callable[[int, int], Awaitable[T]],
    in_flight: int = MAX_IN_FLIGHT,
) -> list[T]:
    """`call(start, end)` for every batch, at most `in_flight` at once; results in order."""
    if len(batches) == 1:
        return [await call(*batches[0])]
    results: list[T | None] = [None] * len(batches)
    pending = iter(range(len(batches)))  # shared: each worker takes the next batch

    async def worker() -> None:
        for i in pending:
            results[i] = await call(*batches[i])

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(in_flight, len(batches))):
                group.create_task(worker())
    except BaseExceptionGroup as failed:
        # The first failure cancelled the others; it alone is the request's error.
        raise failed.exceptions[0] from None
    return [r for r in results if r is not None]


def merged_embeddings(parts: Sequence[EmbedResult]) -> EmbedResult:
    """The batches' vectors in order, and the sum of what each batch was billed."""
    if len(parts) == 1:
        return parts[0]
    vectors = tuple(v for part in parts for v in part.vectors)
    prompt = sum(part.usage.prompt_tokens for part in parts)
    total = sum(part.usage.total_tokens for part in parts)
    return EmbedResult(vectors=vectors, usage=Usage(prompt_tokens=prompt, total_tokens=total))


def _sum(values: Sequence[int | None]) -> int | None:
    """The total when every batch reported its count; None (unknown) otherwise."""
    known = [v for v in values if v is not None]
    return sum(known) if len(known) == len(values) else None


def merged_rerank(parts: Sequence[tuple[int, RerankResult]], top_n: int | None) -> RerankResult:
    """Hits of every batch (`(first document index, result)`), re-indexed into the whole
    document list and ranked best first over all of them, then cut at `top_n`."""
    hits = [
        RerankHit(index=offset + hit.index, score=hit.score)
        for offset, part in parts
        for hit in part.hits
    ]
    hits.sort(key=lambda h: (-h.score, h.index))
    if top_n is not None:
        hits = hits[:top_n]
    return RerankResult(
        hits=tuple(hits),
        total_tokens=_sum([part.total_tokens for _, part in parts]),
        search_units=_sum([part.search_units for _, part in parts]),
    )
