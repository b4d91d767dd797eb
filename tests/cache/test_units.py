"""The cache's parts on their own: keys, the in-process backend, flights, config."""

from __future__ import annotations

import asyncio

import pytest

from service.cache.entry import MAX_ENTRY_CHARS, Entry, cacheable
from service.cache.flights import Flights
from service.cache.keys import exact_key, last_user_text, semantic_bucket
from service.cache.memory import MemoryBackend
from service.config import ConfigError, parse_config
from service.domain.chat import (
    ChatRequest,
    ChatResult,
    Choice,
    Message,
    Reasoning,
    ResponseFormat,
    TextPart,
    Tool,
)
from service.errors import GatewayError


def req(text: str = "hi", **kwargs: object) -> ChatRequest:
    return ChatRequest("m/x", (Message("system", "be brief"), Message("user", text)), **kwargs)  # type: ignore[arg-type]


def test_the_key_ignores_what_does_not_change_the_answer() -> None:
    base = exact_key(req(), "k1")
    assert exact_key(req(user="alice", include_usage=True), "k1") == base
    assert exact_key(req(extra_json='{"a": 1, "b": 2}'), "k1") == exact_key(
        req(extra_json='{"b": 2, "a": 1}'), "k1"
    )
    parts = ChatRequest("m/x", (Message("system", "be brief"), Message("user", (TextPart("hi"),))))
    assert exact_key(parts, "k1") == base


def test_the_key_follows_what_changes_the_answer() -> None:
    base = exact_key(req(), "k1")
    variants = [
        exact_key(req(), "k2"),
        exact_key(req("hi!"), "k1"),
        exact_key(req(temperature=0.0), "k1"),
        exact_key(req(max_tokens=5), "k1"),
        exact_key(req(stop=("x",)), "k1"),
        exact_key(req(logit_bias={"1": 2.0}), "k1"),
        exact_key(req(tools=(Tool("f"),)), "k1"),
        exact_key(req(response_format=ResponseFormat("json_object")), "k1"),
        exact_key(req(native_extra={"anthropic": '{"thinking": {"type": "enabled"}}'}), "k1"),
        exact_key(req(reasoning=Reasoning(effort="high")), "k1"),
        exact_key(ChatRequest("m/y", req().messages), "k1"),
        exact_key(ChatRequest("m/x", (Message("system", "be long"), Message("user", "hi"))), "k1"),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_the_semantic_bucket_is_the_request_but_its_last_message() -> None:
    assert semantic_bucket(req("a"), "k") == semantic_bucket(req("b"), "k")
    assert semantic_bucket(req("a"), "k") != semantic_bucket(req("a", max_tokens=3), "k")
    assert semantic_bucket(req("a"), "k") != semantic_bucket(req("a"), "other")
    assert last_user_text(req("  ")) is None
    assert last_user_text(req("what?")) == "what?"
    assert last_user_text(ChatRequest("m", (Message("assistant", "x"),))) is None


def entry(expires: float, model: str = "m/x", partition: str = "k") -> Entry:
    return Entry(ChatResult(()), model, "p", "u", partition, model, 0.0, expires)


def test_the_memory_backend_bounds_expires_and_purges() -> None:
    now = [100.0]
    backend = MemoryBackend(3, clock=lambda: now[0])

    async def run() -> None:
        for i in range(4):
            await backend.put(f"k{i}", entry(200.0))
        assert len(backend) == 3
        assert await backend.get("k0") is None  # the least recently used went
        assert await backend.get("k1") is not None
        await backend.put("k4", entry(200.0))  # k2 is now the least recently used
        assert await backend.get("k2") is None and await backend.get("k1") is not None
        now[0] = 250.0
        assert await backend.get("k1") is None  # expired
        await backend.put("a", entry(300.0, model="m/a", partition="x"))
        await backend.put("b", entry(300.0, model="m/b", partition="x"))
        await backend.put("c", entry(300.0, model="m/a", partition="y"))
        assert await backend.purge("m/a", "x") == 1
        assert await backend.purge(None, "y") == 1
        assert await backend.get("b") is not None

    asyncio.run(run())


def test_flights_coalesce_and_time_out() -> None:
    async def run() -> None:
        flights = Flights()
        assert flights.lead("k") and not flights.lead("k")
        waiter = asyncio.ensure_future(flights.wait("k", None))
        await asyncio.sleep(0)
        landed = entry(1.0)
        flights.land("k", landed)
        assert await waiter is landed
        assert len(flights) == 0
        assert flights.lead("k")
        deadline = asyncio.get_running_loop().time() + 0.05
        with pytest.raises(GatewayError) as caught:
            await flights.wait("k", deadline)
        assert caught.value.reason == "REQUEST_TIMEOUT"
        flights.land("k", None)  # the timed-out waiter did not break the shared future

    asyncio.run(run())


def model(**extra: object) -> dict[str, object]:
    return {"id": "m/x", "endpoints": [{"provider": "p", "model": "x"}], **extra}


def config(*models: dict[str, object], **top: object) -> object:
    return parse_config(
        {
            "providers": {"p": {"kind": "openai", "base_url": "http://h"}},
            "models": list(models),
            **top,
        }
    )


def test_cache_config_is_read_and_checked() -> None:
    parsed = config(
        model(cache={"ttl": 5, "semantic": True, "scope": "shared"}, cache_hit_price=0.5),
        cache={"max_entries": 7},
    )
    settings = parsed.cache.for_model("m/x")  # type: ignore[attr-defined]
    assert (
        settings is not None
        and settings.ttl == 5
        and settings.semantic
        and settings.hit_price == 0.5
    )
    assert parsed.cache.max_entries == 7  # type: ignore[attr-defined]
    assert config(model()).cache.for_model("m/x") is None  # type: ignore[attr-defined]
    shared = config(
        model(cache=True),
        cache={"backend": "redis"},
        storage={"redis_url": "redis://127.0.0.1:1/0"},
    )
    assert shared.cache.redis_url == "redis://127.0.0.1:1/0"  # type: ignore[attr-defined]
    for bad, message in (
        (
            config_args(model(cache={"tll": 5})),
            "config.models[0].cache.tll: unknown key (did you mean 'ttl'?)",
        ),
        (
            config_args(model(cache={"scope": "global"})),
            "config.models[0].cache.scope: expected one of key, shared",
        ),
        (config_args(model(cache={"threshold": 1.5})), "config.models[0].cache.threshold"),
        (config_args(model(cache=True, cache_hit_price=-1)), "config.models[0].cache_hit_price"),
        (config_args(model(), cache={"backend": "redis"}), "config.cache.redis_url: required"),
        (config_args(model(), cache={"max_entrys": 3}), "did you mean 'max_entries'"),
    ):
        with pytest.raises(ConfigError) as caught:
            config(*bad[0], **bad[1])
        assert message in str(caught.value)


def config_args(
    *models: dict[str, object], **top: object
) -> tuple[tuple[dict[str, object], ...], dict[str, object]]:
    return models, top


def test_only_clean_answers_of_bounded_size_are_cacheable() -> None:
    def result(text: str, finish: str = "stop") -> ChatResult:
        return ChatResult((Choice(0, Message("assistant", text), finish),))

    assert cacheable(result("fine"))
    assert cacheable(result("", "length"))
    assert not cacheable(result("cut", "error"))
    assert not cacheable(result("filtered", "content_filter"))
    assert not cacheable(ChatResult(()))
    assert not cacheable(result("x" * (MAX_ENTRY_CHARS + 1)))
    thought = Message("assistant", "42", reasoning="let me think")
    assert not cacheable(ChatResult((Choice(0, thought, "stop"),)))
