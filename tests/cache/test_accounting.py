"""A hit is billed at the model's cache_hit_price, counts against requests per minute but
not tokens per minute, and says so in usage, the ledger and /v1/generation."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.cache.conftest import HIT_PRICE, client, http, new_key, nonce
from tests.fixtures.gateway import Gateway


def ask(gateway: Gateway, key: str, text: str, **kwargs: Any) -> Any:
    return client(gateway, key).chat.completions.with_raw_response.create(
        model="cached/echo",
        messages=[{"role": "user", "content": text}],
        temperature=0,
        max_tokens=20,
        **kwargs,
    )


def generation(gateway: Gateway, key: str, gen_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status, body, _ = http(gateway, "GET", f"/generation?id={gen_id}", key)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return dict(body["data"])
        time.sleep(0.05)


def test_a_hit_is_billed_at_the_hit_price_and_recorded(gw1: Gateway) -> None:
    key = new_key(gw1)
    word = nonce()
    miss = ask(gw1, key, f"bill me {word}")
    hit = ask(gw1, key, f"bill me {word}", stream=True, stream_options={"include_usage": True})
    assert hit.headers["x-switchyard-cache"] == "hit"
    chunks = list(hit.parse())
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra["cache"] == "hit"
    assert usage.model_extra["cost"] == pytest.approx(HIT_PRICE)
    miss_row = generation(gw1, key, miss.headers["x-generation-id"])
    hit_row = generation(gw1, key, hit.headers["x-generation-id"])
    assert miss_row["cache"] == "miss" and hit_row["cache"] == "hit"
    assert hit_row["total_cost"] == pytest.approx(HIT_PRICE)
    assert hit_row["tokens_prompt"] == miss_row["tokens_prompt"]
    assert hit_row["attempts"] == 0 and miss_row["attempts"] == 1
    assert miss_row["total_cost"] > 0 and miss_row["total_cost"] != pytest.approx(HIT_PRICE)
    # The key's spending is the miss's cost and the hit price.
    deadline = time.monotonic() + 30
    expected = miss_row["total_cost"] + HIT_PRICE
    while True:
        _, body, _ = http(gw1, "GET", "/credits", key)
        if body["data"]["total_usage"] == pytest.approx(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert body["data"]["total_usage"] == pytest.approx(expected)


def test_hits_count_against_rpm(gw1: Gateway) -> None:
    key = new_key(gw1, rpm=3)
    word = nonce()
    kinds = [ask(gw1, key, word).headers["x-switchyard-cache"] for _ in range(3)]
    assert kinds == ["miss", "hit", "hit"]
    with pytest.raises(openai.RateLimitError):
        ask(gw1, key, word)


def test_hits_do_not_count_against_tpm(gw1: Gateway) -> None:
    key = new_key(gw1, tpm=200)
    word = nonce()
    first = ask(gw1, key, word)
    assert first.headers["x-switchyard-cache"] == "miss"
    time.sleep(0.2)  # the miss's tokens are reconciled when it is booked
    before = int(ask(gw1, key, word).headers["x-ratelimit-remaining-tokens"])
    remaining = []
    for _ in range(10):  # far more tokens than 200 per minute, were they counted
        raw = ask(gw1, key, word)
        assert raw.headers["x-switchyard-cache"] == "hit"
        remaining.append(int(raw.headers["x-ratelimit-remaining-tokens"]))
    assert remaining == [before] * 10
    # A miss still counts.
    other = ask(gw1, key, nonce())
    assert other.headers["x-switchyard-cache"] == "miss"
    assert int(other.headers["x-ratelimit-remaining-tokens"]) < before


def test_a_hit_is_refused_for_a_model_the_key_may_not_use(gw1: Gateway) -> None:
    word = nonce()
    ask(gw1, gw1.key, word)  # fills the shared entry below
    client(gw1).chat.completions.create(
        model="cached/shared", messages=[{"role": "user", "content": word}], temperature=0
    )
    limited = new_key(gw1, allowed_models=["plain/*"])
    with pytest.raises(openai.PermissionDeniedError):
        client(gw1, limited).chat.completions.create(
            model="cached/shared", messages=[{"role": "user", "content": word}], temperature=0
        )
