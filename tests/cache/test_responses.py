"""/v1/responses through the official `openai` SDK: a stateless Responses request is
answered from the response cache like the chat completion it becomes (the same key, the
same `x-switchyard-cache` header both ways, a hit billed at the hit price)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.cache.conftest import HIT_PRICE, client, new_key, nonce, upstream_calls
from tests.cache.test_accounting import generation
from tests.fixtures.gateway import Gateway
from tests.fixtures.mock_openai import MockOpenAI


def ask(gateway: Gateway, text: str, model: str = "cached/echo", **kwargs: Any) -> Any:
    """One response; returns its raw form (headers) and the parsed Response."""
    raw = client(gateway).responses.with_raw_response.create(model=model, input=text, **kwargs)
    return raw, raw.parse()


def ask_streamed(gateway: Gateway, text: str, **kwargs: Any) -> tuple[str, str, Any]:
    """A streamed response: its x-switchyard-cache header, its text, the final usage."""
    raw = client(gateway).responses.with_raw_response.create(
        model="cached/echo", input=text, stream=True, **kwargs
    )
    said, usage = [], None
    for event in raw.parse():
        if event.type == "response.output_text.delta":
            said.append(event.delta)
        elif event.type == "response.completed":
            usage = event.response.usage
    return raw.headers["x-switchyard-cache"], "".join(said), usage


def test_a_repeated_response_is_a_hit(gw: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    first_raw, first = ask(gw, f"hello {word}")
    second_raw, second = ask(gw, f"hello {word}")
    assert first_raw.headers["x-switchyard-cache"] == "miss"
    assert second_raw.headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 1
    assert second.output_text == first.output_text and first.output_text
    # A hit is a response of its own, billed at the model's hit price.
    assert second.id != first.id
    assert second.usage.input_tokens == first.usage.input_tokens
    assert second.usage.model_extra["cost"] == pytest.approx(HIT_PRICE)
    assert second.usage.model_extra["cache"] == "hit"
    assert "cache" not in (first.usage.model_extra or {})


def test_responses_and_chat_share_entries(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    """The key is the chat request's: a chat completion of the same conversation is a
    hit on the entry a response filled, and the other way round."""
    word = nonce()
    ask(gw1, f"shared {word}")
    raw = client(gw1).chat.completions.with_raw_response.create(
        model="cached/echo", messages=[{"role": "user", "content": f"shared {word}"}]
    )
    assert raw.headers["x-switchyard-cache"] == "hit"
    client(gw1).chat.completions.create(
        model="cached/echo", messages=[{"role": "user", "content": f"chat first {word}"}]
    )
    assert ask(gw1, f"chat first {word}")[0].headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 2


def test_a_repeated_streamed_response_is_a_hit(gw: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    first_cache, first_text, _ = ask_streamed(gw, f"stream {word}")
    second_cache, second_text, usage = ask_streamed(gw, f"stream {word}")
    assert (first_cache, second_cache) == ("miss", "hit")
    assert second_text == first_text and first_text
    assert usage is not None and usage.model_extra["cost"] == pytest.approx(HIT_PRICE)
    assert usage.model_extra["cache"] == "hit"
    # A unary response and a stream share the entry, as chat completions do.
    raw, parsed = ask(gw, f"stream {word}")
    assert raw.headers["x-switchyard-cache"] == "hit" and parsed.output_text == first_text
    assert upstream_calls(cache_upstream, word) == 1


def test_the_cache_header_chooses_the_mode(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    ask(gw1, f"modes {word}")
    for mode in ("skip", "refresh"):
        raw, _ = ask(gw1, f"modes {word}", extra_headers={"x-switchyard-cache": mode})
        assert raw.headers["x-switchyard-cache"] == "miss"
    assert upstream_calls(cache_upstream, word) == 3
    assert ask(gw1, f"modes {word}")[0].headers["x-switchyard-cache"] == "hit"
    # A model that caches only when asked: `use` asks.
    for expected in ("miss", "hit"):
        raw, _ = ask(
            gw1, f"optin {word}", "cached/optin", extra_headers={"x-switchyard-cache": "use"}
        )
        assert raw.headers["x-switchyard-cache"] == expected
    assert upstream_calls(cache_upstream, f"optin {word}") == 1


def test_a_model_without_cache_always_misses(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    for _ in range(2):
        raw, _ = ask(gw1, f"plain {word}", "plain/echo")
        assert raw.headers["x-switchyard-cache"] == "miss"
    assert upstream_calls(cache_upstream, word) == 2


def test_an_unknown_mode_is_a_400(gw1: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(gw1, f"bad {nonce()}", extra_headers={"x-switchyard-cache": "no-store"})
    assert "cache mode" in str(caught.value)


def test_a_hit_is_recorded_as_one(gw1: Gateway) -> None:
    """In the ledger (/v1/generation) as a chat hit is: no upstream attempt, the hit price."""
    key = new_key(gw1)
    word = nonce()
    sdk = client(gw1, key)
    miss = sdk.responses.with_raw_response.create(model="cached/echo", input=f"ledger {word}")
    hit = sdk.responses.with_raw_response.create(model="cached/echo", input=f"ledger {word}")
    assert hit.headers["x-switchyard-cache"] == "hit"
    miss_row = generation(gw1, key, miss.headers["x-generation-id"])
    hit_row = generation(gw1, key, hit.headers["x-generation-id"])
    assert (miss_row["cache"], hit_row["cache"]) == ("miss", "hit")
    assert hit_row["attempts"] == 0 and miss_row["attempts"] == 1
    assert hit_row["total_cost"] == pytest.approx(HIT_PRICE)
