"""The exact cache through the official `openai` SDK: what is a hit, what splits an entry,
what the request and the model can say, and purging (HTTP and gRPC)."""

from __future__ import annotations

import time
from typing import Any

import grpc
import openai
import pytest
from switchyard.v1 import admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc

from tests.cache.conftest import (
    HIT_PRICE,
    admin_key,
    client,
    http,
    new_key,
    nonce,
    upstream_calls,
)
from tests.fixtures.gateway import Gateway
from tests.fixtures.mock_openai import MockOpenAI


def ask(gateway: Gateway, model: str, text: str, key: str | None = None, **kwargs: Any) -> Any:
    """One chat completion; returns the raw response (headers) and its parsed body."""
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kwargs
    )
    return raw, raw.parse()


def test_a_repeat_is_a_hit_with_the_same_answer(gw: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    first_raw, first = ask(gw, "cached/echo", f"hello {word}", temperature=0)
    second_raw, second = ask(gw, "cached/echo", f"hello {word}", temperature=0)
    assert first_raw.headers["x-switchyard-cache"] == "miss"
    assert second_raw.headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 1
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.choices[0].finish_reason == first.choices[0].finish_reason
    # A hit is a generation of its own, with its own id, billed at the hit price.
    assert second.id != first.id
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    assert second.usage.model_extra["cache"] == "hit"
    assert second.usage.model_extra["cost"] == pytest.approx(HIT_PRICE)
    assert "cache" not in (first.usage.model_extra or {})


def test_unset_temperature_is_cached(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    ask(gw1, "cached/echo", word)
    raw, _ = ask(gw1, "cached/echo", word)
    assert raw.headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 1


def test_what_changes_the_answer_splits_the_entry(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    ask(gw1, "cached/echo", word, temperature=0, max_tokens=50)
    for kwargs in (
        {"max_tokens": 51},
        {"max_tokens": 50, "stop": ["x"]},
        {"max_tokens": 50, "seed": 7},
        {"max_tokens": 50, "response_format": {"type": "json_object"}},
        {"max_tokens": 50, "extra_body": {"top_k": 3}},
    ):
        raw, _ = ask(gw1, "cached/echo", word, temperature=0, **kwargs)
        assert raw.headers["x-switchyard-cache"] == "miss", kwargs
    # `user` and the order of JSON keys do not change the answer.
    raw, _ = ask(gw1, "cached/echo", word, temperature=0, max_tokens=50, user="someone")
    assert raw.headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 6


def test_a_model_without_cache_always_misses(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    for _ in range(2):
        raw, _ = ask(
            gw1, "plain/echo", word, temperature=0, extra_headers={"x-switchyard-cache": "use"}
        )
        assert raw.headers["x-switchyard-cache"] == "miss"
    assert upstream_calls(cache_upstream, word) == 2


def test_skip_and_refresh(gw: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    ask(gw, "cached/echo", word, temperature=0)
    raw, _ = ask(
        gw, "cached/echo", word, temperature=0, extra_headers={"x-switchyard-cache": "skip"}
    )
    assert raw.headers["x-switchyard-cache"] == "miss"
    raw, _ = ask(gw, "cached/echo", word, temperature=0, extra_body={"cache": "skip"})
    assert raw.headers["x-switchyard-cache"] == "miss"
    raw, _ = ask(gw, "cached/echo", word, temperature=0, extra_body={"cache": "refresh"})
    assert raw.headers["x-switchyard-cache"] == "miss"
    assert upstream_calls(cache_upstream, word) == 4
    raw, _ = ask(gw, "cached/echo", word, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 4
    # The header wins over the body field.
    raw, _ = ask(
        gw,
        "cached/echo",
        word,
        temperature=0,
        extra_body={"cache": "use"},
        extra_headers={"x-switchyard-cache": "skip"},
    )
    assert raw.headers["x-switchyard-cache"] == "miss"


def test_sampled_requests_are_cached_only_when_asked(
    gw1: Gateway, cache_upstream: MockOpenAI
) -> None:
    word = nonce()
    for _ in range(2):
        raw, _ = ask(gw1, "cached/echo", word, temperature=0.7)
        assert raw.headers["x-switchyard-cache"] == "miss"
    assert upstream_calls(cache_upstream, word) == 2
    for expected in ("miss", "hit"):
        raw, _ = ask(gw1, "cached/echo", word, temperature=0.7, extra_body={"cache": "use"})
        assert raw.headers["x-switchyard-cache"] == expected
    assert upstream_calls(cache_upstream, word) == 3


def test_requests_with_tools_are_cached_only_when_asked(
    gw1: Gateway, cache_upstream: MockOpenAI
) -> None:
    word = nonce()
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    for _ in range(2):
        raw, _ = ask(gw1, "cached/tools", f"weather {word}", temperature=0, tools=tools)
        assert raw.headers["x-switchyard-cache"] == "miss"
    kinds = []
    calls = []
    for _ in range(2):
        raw, body = ask(
            gw1,
            "cached/tools",
            f"weather {word}",
            temperature=0,
            tools=tools,
            extra_headers={"x-switchyard-cache": "use"},
        )
        kinds.append(raw.headers["x-switchyard-cache"])
        calls.append(
            [
                (c.id, c.function.name, c.function.arguments)
                for c in body.choices[0].message.tool_calls
            ]
        )
    assert kinds == ["miss", "hit"]
    assert calls[0] == calls[1] and calls[0]
    assert upstream_calls(cache_upstream, word) == 3


def test_a_model_that_defaults_to_skip_caches_on_request(
    gw1: Gateway, cache_upstream: MockOpenAI
) -> None:
    word = nonce()
    for _ in range(2):
        raw, _ = ask(gw1, "cached/optin", word, temperature=0)
        assert raw.headers["x-switchyard-cache"] == "miss"
    for expected in ("miss", "hit"):
        raw, _ = ask(gw1, "cached/optin", word, temperature=0, extra_body={"cache": "use"})
        assert raw.headers["x-switchyard-cache"] == expected
    assert upstream_calls(cache_upstream, word) == 3


def test_entries_expire(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    ask(gw1, "cached/short", word, temperature=0)
    raw, _ = ask(gw1, "cached/short", word, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "hit"
    time.sleep(1.3)  # the model's ttl is 1 s
    raw, _ = ask(gw1, "cached/short", word, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "miss"
    assert upstream_calls(cache_upstream, word) == 2


def test_entries_are_per_key_unless_shared(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    other = new_key(gw1)
    word = nonce()
    ask(gw1, "cached/echo", word, temperature=0)
    raw, _ = ask(gw1, "cached/echo", word, key=other, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "miss"
    ask(gw1, "cached/shared", word, temperature=0)
    raw, _ = ask(gw1, "cached/shared", word, key=other, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 3


def test_a_bad_cache_mode_is_a_400(gw: Gateway) -> None:
    bad: list[dict[str, Any]] = [
        {"extra_headers": {"x-switchyard-cache": "always"}},
        {"extra_body": {"cache": "x"}},
    ]
    for kwargs in bad:
        with pytest.raises(openai.BadRequestError) as caught:
            ask(gw, "cached/echo", "hi", **kwargs)
        assert caught.value.body["param"] == "cache"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        ask(gw, "cached/echo", "hi", extra_body={"cache": 3})
    # Even for a model that caches nothing: a typo is never silently ignored.
    with pytest.raises(openai.BadRequestError):
        ask(gw, "plain/echo", "hi", extra_headers={"x-switchyard-cache": "sometimes"})


def test_purge_over_http(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    ask(gw1, "cached/echo", word, temperature=0)
    ask(gw1, "cached/shared", word, temperature=0)
    status, body, _ = http(gw1, "DELETE", "/cache", gw1.key)
    assert status == 403, body
    status, body, _ = http(gw1, "DELETE", "/cache?model=cached/echo", admin_key(gw1))
    assert status == 200 and body["purged"] >= 1
    raw, _ = ask(gw1, "cached/echo", word, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "miss"
    raw, _ = ask(gw1, "cached/shared", word, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "hit"  # another model's entries stay
    status, body, _ = http(gw1, "DELETE", "/cache", admin_key(gw1))
    assert status == 200 and body["purged"] >= 2
    raw, _ = ask(gw1, "cached/shared", word, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "miss"
    status, body, _ = http(gw1, "DELETE", "/cache?key_id=nope", admin_key(gw1))
    assert status == 404


def test_purge_over_grpc(gw1: Gateway) -> None:
    word = nonce()
    ask(gw1, "cached/echo", word, temperature=0)
    status, own, _ = http(gw1, "GET", "/key", gw1.key)
    assert status == 200
    with grpc.insecure_channel(gw1.grpc_target) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.PurgeCache(
                admin_pb2.PurgeCacheRequest(), metadata=(("authorization", f"Bearer {gw1.key}"),)
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        admin = (("authorization", f"Bearer {admin_key(gw1)}"),)
        request = admin_pb2.PurgeCacheRequest(model="cached/echo", key_id=own["data"]["id"])
        assert stub.PurgeCache(request, metadata=admin).purged >= 1
    raw, _ = ask(gw1, "cached/echo", word, temperature=0)
    assert raw.headers["x-switchyard-cache"] == "miss"


def test_grpc_clients_use_the_cache_field(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    request = chat_pb2.ChatRequest(
        model="cached/echo",
        messages=[chat_pb2.Message(role="user", text=word)],
        temperature=0.5,  # sampled: cached only because the request asks
        cache=chat_pb2.ResponseCacheControl(mode="use"),
    )
    metadata = (("authorization", f"Bearer {gw1.key}"),)
    with grpc.insecure_channel(gw1.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        first = stub.Complete(request, metadata=metadata)
        second = stub.Complete(request, metadata=metadata)
        chunks = list(stub.Stream(request, metadata=metadata))
        with pytest.raises(grpc.RpcError) as caught:
            request.cache.mode = "maybe"
            stub.Complete(request, metadata=metadata)
    assert (first.cache, second.cache) == ("miss", "hit")
    assert second.usage.cache == "hit" and not first.usage.cache
    assert second.choices[0].message.text == first.choices[0].message.text
    assert chunks[0].cache == "hit"
    assert "".join(c.choices[0].delta.content for c in chunks if c.choices) == (
        first.choices[0].message.text
    )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert upstream_calls(cache_upstream, word) == 1
