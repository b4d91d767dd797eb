"""Streams and the cache: a hit replays as a stream of the same frames, a miss fills only
when it ends cleanly, and identical requests in flight reach the upstream once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.cache.conftest import client, nonce, upstream_calls
from tests.fixtures.gateway import Gateway
from tests.fixtures.http import open_stream, sse_events
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.openai_schema import validate


def raw_stream(gateway: Gateway, body: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    headers = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}
    conn, response = open_stream(
        gateway.base_url + "/chat/completions", body | {"stream": True}, headers
    )
    try:
        assert response.status == 200
        return dict(response.getheaders()), sse_events(response)
    finally:
        conn.close()


def shape(events: list[str]) -> list[Any]:
    """What a stream's frames look like, without ids, times and text."""
    out: list[Any] = []
    for event in events:
        if event == "[DONE]":
            out.append("[DONE]")
            continue
        chunk = json.loads(event)
        validate("CreateChatCompletionStreamResponse", chunk)
        out.append(
            (
                sorted(chunk),
                [(sorted(c["delta"]), c["finish_reason"]) for c in chunk["choices"]],
                # A hit's usage says so (usage.cache): the one field a miss's has not.
                sorted(set(chunk["usage"]) - {"cache"}) if chunk.get("usage") else None,
            )
        )
    return out


def text(events: list[str]) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for e in events
        if e != "[DONE]"
        for c in json.loads(e)["choices"]
    )


def test_a_streamed_hit_replays_the_same_frames(gw: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    body = {
        "model": "cached/echo",
        "messages": [{"role": "user", "content": f"one two three four five {word}"}],
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    miss_headers, miss = raw_stream(gw, body)
    hit_headers, hit = raw_stream(gw, body)
    assert miss_headers["x-switchyard-cache"] == "miss"
    assert hit_headers["x-switchyard-cache"] == "hit"
    assert upstream_calls(cache_upstream, word) == 1
    assert text(hit) == text(miss) and word in text(hit)
    assert hit[-1] == "[DONE]"
    # The same kinds of frames: a first with the role, content, a finish, the usage.
    assert shape(hit)[0] == shape(miss)[0]
    assert shape(hit)[-3:] == shape(miss)[-3:]
    assert set(map(str, shape(hit))) <= set(map(str, shape(miss)))
    usage = json.loads(hit[-2])["usage"]
    assert usage["cache"] == "hit"
    ids = {json.loads(e)["id"] for e in hit[:-1]}
    assert len(ids) == 1 and ids != {json.loads(miss[0])["id"]}


def test_stream_and_unary_share_entries(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    sdk = client(gw1)
    word = nonce()
    messages: Any = [{"role": "user", "content": f"alpha beta {word}"}]
    unary = sdk.chat.completions.create(model="cached/echo", messages=messages, temperature=0)
    raw = sdk.chat.completions.with_raw_response.create(
        model="cached/echo", messages=messages, temperature=0, stream=True
    )
    assert raw.headers["x-switchyard-cache"] == "hit"
    streamed = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert streamed == unary.choices[0].message.content
    assert upstream_calls(cache_upstream, word) == 1

    word = nonce()
    messages = [{"role": "user", "content": f"gamma delta {word}"}]
    stream = sdk.chat.completions.create(
        model="cached/echo", messages=messages, temperature=0, stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    raw_unary = sdk.chat.completions.with_raw_response.create(
        model="cached/echo", messages=messages, temperature=0
    )
    assert raw_unary.headers["x-switchyard-cache"] == "hit"
    assert raw_unary.parse().choices[0].message.content == streamed
    assert raw_unary.parse().choices[0].finish_reason == "stop"
    assert upstream_calls(cache_upstream, word) == 1


def test_a_streamed_tool_call_replays(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    body = {
        "model": "cached/tools",
        "messages": [{"role": "user", "content": f"weather {word}"}],
        "temperature": 0,
        "cache": "use",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    }
    _, miss = raw_stream(gw1, body)
    headers, hit = raw_stream(gw1, body)
    assert headers["x-switchyard-cache"] == "hit"

    def calls(events: list[str]) -> list[tuple[str, str, str]]:
        found: dict[int, list[str]] = {}
        for event in events[:-1]:
            for choice in json.loads(event)["choices"]:
                for call in choice["delta"].get("tool_calls") or []:
                    item = found.setdefault(call["index"], ["", "", ""])
                    item[0] = call.get("id") or item[0]
                    item[1] = call["function"].get("name") or item[1]
                    item[2] += call["function"].get("arguments") or ""
        return [tuple(v) for _, v in sorted(found.items())]  # type: ignore[misc]

    assert calls(hit) == calls(miss) and calls(hit)
    finishes = [c["finish_reason"] for e in hit[:-1] for c in json.loads(e)["choices"]]
    assert finishes[-1] == "tool_calls"
    assert upstream_calls(cache_upstream, word) == 1


def test_a_cut_stream_never_fills(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    body = {
        "model": "cached/cut",
        "messages": [{"role": "user", "content": word}],
        "temperature": 0,
    }
    for _ in range(2):
        headers, events = raw_stream(gw1, body)
        assert headers["x-switchyard-cache"] == "miss"
        assert "error" in json.loads(events[-1])  # the in-stream error frame
    assert upstream_calls(cache_upstream, word) == 2


def test_identical_requests_in_flight_are_coalesced(
    gw: Gateway, cache_upstream: MockOpenAI
) -> None:
    word = nonce()
    messages: Any = [{"role": "user", "content": f"together {word}"}]
    sdk = client(gw)

    def unary(_: int) -> tuple[str, str]:
        raw = sdk.chat.completions.with_raw_response.create(
            model="cached/slow", messages=messages, temperature=0
        )
        return raw.headers["x-switchyard-cache"], raw.parse().choices[0].message.content or ""

    def streamed(_: int) -> tuple[str, str]:
        raw = sdk.chat.completions.with_raw_response.create(
            model="cached/slow", messages=messages, temperature=0, stream=True
        )
        content = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        return raw.headers["x-switchyard-cache"], content

    # The upstream takes a second to answer: all four are in flight together.
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: (unary if i % 2 else streamed)(i), range(4)))
    assert upstream_calls(cache_upstream, word) == 1
    assert sorted(kind for kind, _ in results) == ["hit", "hit", "hit", "miss"]
    assert len({content for _, content in results}) == 1
