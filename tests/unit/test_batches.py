"""Splitting a request into upstream-sized batches and putting the answers back together."""

from __future__ import annotations

import asyncio

import pytest

from service.domain.chat import Usage
from service.domain.embeddings import EmbedResult, RerankHit, RerankResult
from service.providers.batches import (
    merged_embeddings,
    merged_rerank,
    run_batches,
    spans,
)
from service.providers.errors import FailureKind, ProviderError


def test_spans() -> None:
    assert spans(100, 96) == [(0, 96), (96, 100)]
    assert spans(64, 32) == [(0, 32), (32, 64)]
    assert spans(3, 32) == [(0, 3)]


def test_results_keep_batch_order_whatever_order_they_finish_in() -> None:
    async def scenario() -> tuple[list[tuple[int, int]], int]:
        running = peak = 0

        async def call(start: int, end: int) -> tuple[int, int]:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            for _ in range(10 - start):  # earlier batches finish later
                await asyncio.sleep(0)
            running -= 1
            return start, end

        return await run_batches(spans(10, 1), call, in_flight=3), peak

    results, peak = asyncio.run(scenario())
    assert results == spans(10, 1)
    assert peak == 3  # concurrent, and never more than allowed at once


def test_the_first_failure_is_the_error_and_the_rest_are_cancelled() -> None:
    cancelled: list[int] = []

    async def scenario() -> None:
        async def call(start: int, end: int) -> int:
            if start == 1:
                raise ProviderError(FailureKind.STATUS, "up", "batch 1 failed", status=500)
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(start)
                raise
            return start

        await run_batches(spans(3, 1), call)

    with pytest.raises(ProviderError, match="batch 1 failed") as failed:
        asyncio.run(scenario())
    assert failed.value.status == 500  # the batch's own error, not an exception group
    assert sorted(cancelled) == [0, 2]


def test_merged_embeddings_add_up_usage() -> None:
    parts = [
        EmbedResult(vectors=([1.0], [2.0]), usage=Usage(prompt_tokens=5, total_tokens=5)),
        EmbedResult(vectors=([3.0],), usage=Usage(prompt_tokens=2, total_tokens=2)),
    ]
    merged = merged_embeddings(parts)
    assert merged.vectors == ([1.0], [2.0], [3.0])
    assert merged.usage == Usage(prompt_tokens=7, total_tokens=7)


def test_merged_rerank_ranks_over_all_documents() -> None:
    first = RerankResult(
        hits=(RerankHit(1, 0.5), RerankHit(0, 0.1)), total_tokens=10, search_units=1
    )
    second = RerankResult(
        hits=(RerankHit(0, 0.9), RerankHit(1, 0.5)), total_tokens=7, search_units=1
    )
    merged = merged_rerank([(0, first), (2, second)], top_n=3)
    assert merged.hits == (RerankHit(2, 0.9), RerankHit(1, 0.5), RerankHit(3, 0.5))
    assert (merged.total_tokens, merged.search_units) == (17, 2)
    unknown = merged_rerank([(0, first), (2, RerankResult(hits=()))], top_n=None)
    assert unknown.total_tokens is None  # a partial count would under-bill: unknown instead
    assert len(unknown.hits) == 2
