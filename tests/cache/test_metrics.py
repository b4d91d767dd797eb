"""Hit ratios in `/metrics` (issue 20, item 5): every lookup of a cached model counted by
its outcome, through a real gateway and the official SDK."""

from __future__ import annotations

from typing import Any

from tests.cache.conftest import client, new_key
from tests.fixtures.gateway import Gateway
from tests.fixtures.scrape import Samples, scrape

LOOKUPS = "switchyard_cache_lookups_total"


def ask(gateway: Gateway, key: str, text: str, **kwargs: Any) -> str:
    """One completion of the semantic model; returns its x-switchyard-cache header."""
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="cached/semantic",
        messages=[
            {"role": "system", "content": "You answer support questions."},
            {"role": "user", "content": text},
        ],
        **kwargs,
    )
    return str(raw.headers["x-switchyard-cache"])


def test_lookups_are_counted_by_model_and_outcome(gw1: Gateway) -> None:
    key = new_key(gw1)  # a partition of its own: no other test's entries
    before = scrape(gw1)
    assert ask(gw1, key, "How do I reset my password?", temperature=0) == "miss"
    assert ask(gw1, key, "How do I reset my password?", temperature=0) == "hit"
    assert ask(gw1, key, "How do I reset my password?", temperature=0) == "hit"
    paraphrase = "What are the steps to reset my password?"
    assert ask(gw1, key, paraphrase, temperature=0) == "semantic-hit"
    # Sampled and not asked for, or skipped: the cache stays out (and says miss).
    assert ask(gw1, key, "How do I reset my password?", temperature=0.7) == "miss"
    skipped = ask(gw1, key, paraphrase, extra_headers={"x-switchyard-cache": "skip"})
    assert skipped == "miss"
    refreshed = ask(gw1, key, paraphrase, extra_headers={"x-switchyard-cache": "refresh"})
    assert refreshed == "miss"
    # The scrape of the process that served them flushes its counts first: exact.
    after = scrape(gw1)

    def delta(outcome: str, model: str = "cached/semantic") -> float:
        labels = {"model": model, "outcome": outcome}
        return after.value(LOOKUPS, **labels) - before.value(LOOKUPS, **labels)

    assert delta("miss") == 1
    assert delta("hit") == 2
    assert delta("semantic-hit") == 1
    assert delta("bypass") == 2
    assert delta("refresh") == 1


def test_models_without_a_cache_are_not_labels(gw1: Gateway) -> None:
    client(gw1).chat.completions.create(
        model="plain/echo", messages=[{"role": "user", "content": "not cached"}]
    )
    client(gw1).chat.completions.create(
        model="cached/echo:nitro", messages=[{"role": "user", "content": "a variant"}]
    )
    samples: Samples = scrape(gw1)
    models = {labels["model"] for name, labels, _ in samples.samples if name == LOOKUPS}
    assert "plain/echo" not in models
    assert "cached/echo" in models and "cached/echo:nitro" not in models
    assert {labels["outcome"] for name, labels, _ in samples.samples if name == LOOKUPS} <= {
        "hit", "semantic-hit", "miss", "refresh", "bypass",
    }  # fmt: skip
