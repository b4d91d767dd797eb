"""Prompt-cache prices: reads and writes at the endpoint's cache prices, else as prompt."""

from __future__ import annotations

import pytest

from service.accounting.pricing import chat_worst_case, cost
from service.catalog import EndpointConfig, ModelConfig, Pricing
from service.domain.chat import ChatRequest, Message

CACHED = Pricing(prompt=1.0, completion=2.0, input_cache_read=0.1, input_cache_write=1.25)


def test_reads_and_writes_at_their_prices() -> None:
    # 100 prompt tokens: 60 read, 30 written, 10 fresh; 5 completion tokens.
    assert cost(CACHED, 100, 5, cached=60, written=30) == pytest.approx(
        10 * 1.0 + 60 * 0.1 + 30 * 1.25 + 5 * 2.0
    )


def test_without_cache_prices_cached_tokens_cost_as_prompt() -> None:
    plain = Pricing(prompt=1.0, completion=2.0)
    assert cost(plain, 100, 5, cached=60, written=30) == pytest.approx(100 + 10)


def test_worst_case_reserves_for_a_dearer_cache_write() -> None:
    request = ChatRequest(model="m", messages=(Message("user", "x" * 300),), max_tokens=10)
    model = ModelConfig(
        id="m",
        name="m",
        capabilities=frozenset({"chat"}),
        endpoints=(EndpointConfig(provider="p", model="u", pricing=CACHED),),
        owned_by="o",
    )
    estimate = chat_worst_case(request, [model])
    assert estimate.worst_cost == pytest.approx(estimate.prompt_tokens * 1.25 + 10 * 2.0)
