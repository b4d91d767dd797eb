"""Each upstream fault, streamed and not: the client's answer, fallback, attempts, leaks."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.fixtures.http import RawResponse, open_stream, request, sse_events
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI

# fault -> (attempts at `a`, whether `b` serves the request afterwards)
RETRIED_THEN_FALLBACK = ("fail500", "fail502", "fail503", "fail429", "hang", "slowfirst",
                         "garbage", "empty")  # fmt: skip
PREFER_A = {"order": ["a", "b"]}


def ask(local: LocalGateway, fault: str, stream: bool) -> tuple[int, dict[str, str], Any]:
    body = {
        "model": f"fb/{fault}",
        "messages": [{"role": "user", "content": "are you there"}],
        "provider": PREFER_A,
        "stream": stream,
    }
    headers = {"Authorization": f"Bearer {local.key}"}
    if not stream:
        raw: RawResponse = request("POST", local.base_url + "/chat/completions", body, headers)
        return raw.status, raw.headers, raw.json()
    conn, response = open_stream(local.base_url + "/chat/completions", body, headers)
    try:
        status = response.status
        head = {k.lower(): v for k, v in response.getheaders()}
        if status != 200:
            return status, head, json.loads(response.read())
        return status, head, sse_events(response)
    finally:
        conn.close()


def streamed_text(events: list[str]) -> str:
    chunks = [json.loads(e) for e in events if e != "[DONE]" and not e.startswith(":")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def assert_nothing_left(local: LocalGateway) -> None:
    assert local.busy_tasks() == [], "asyncio tasks outlived their request"
    assert local.upstream_connections_in_use() == 0, "an upstream connection is still held"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("fault", RETRIED_THEN_FALLBACK)
def test_retry_then_fallback(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI], fault: str, stream: bool
) -> None:
    a, b = fresh
    status, headers, body = ask(local, fault, stream)
    assert status == 200, body
    assert headers["x-switchyard-provider"] == "b"  # what served is what we report
    if stream:
        assert body[-1] == "[DONE]"
        assert streamed_text(body) == "echo: are you there"
        assert json.loads(body[0])["provider"] == "b"
    else:
        assert body["choices"][0]["message"]["content"] == "echo: are you there"
        assert (body["provider"], body["model"]) == ("b", f"fb/{fault}")
    assert a.count(fault) == 2, "one retry on the failing endpoint, then fallback"
    assert b.count("echo") == 1
    assert_nothing_left(local)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_client_fault_is_neither_retried_nor_sent_elsewhere(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI], stream: bool
) -> None:
    a, b = fresh
    status, _, body = ask(local, "fail400", stream)
    assert status == 400
    assert body["error"]["param"] == "temperature"
    assert (a.count("fail400"), b.count("echo")) == (1, 0)
    assert_nothing_left(local)


@pytest.mark.parametrize("fault", ["cut", "drop"])
def test_failure_mid_stream_is_an_error_chunk_not_a_fallback(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI], fault: str
) -> None:
    a, b = fresh
    status, _, events = ask(local, fault, stream=True)
    assert status == 200
    assert streamed_text(events[:-1]) == "partial "
    last = json.loads(events[-1])
    assert last["choices"][0]["finish_reason"] == "error"
    assert last["error"]["code"] == 502 and last["error"]["metadata"]["provider_name"] == "a"
    assert (a.count(fault), b.count("echo")) == (1, 0), "no fallback after the first byte"
    assert_nothing_left(local)


@pytest.mark.parametrize("fault", ["cut", "drop"])
def test_broken_body_without_stream_falls_back(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI], fault: str
) -> None:
    a, b = fresh
    status, _, body = ask(local, fault, stream=False)
    assert status == 200 and body["provider"] == "b"
    assert (a.count(fault), b.count("echo")) == (2, 1)
    assert_nothing_left(local)


def _chat_fail500(local: LocalGateway, provider: dict[str, Any]) -> RawResponse:
    return request(
        "POST",
        local.base_url + "/chat/completions",
        {
            "model": "fb/fail500",
            "messages": [{"role": "user", "content": "x"}],
            "provider": provider,
        },
        {"Authorization": f"Bearer {local.key}"},
    )


def test_no_fallback_allowed_gives_502(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI]
) -> None:
    """`allow_fallbacks: false` refuses the providers outside `order`."""
    a, b = fresh
    raw = _chat_fail500(local, {"order": ["a"], "allow_fallbacks": False})
    assert raw.status == 502
    error = raw.json()["error"]
    assert error["type"] == "upstream_error" and error["metadata"]["provider_name"] == "a"
    assert error["metadata"]["attempts"] == "2"
    assert (a.count("fail500"), b.count("echo")) == (2, 0)


def test_no_fallback_still_tries_every_provider_of_order(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI]
) -> None:
    """As on OpenRouter: the providers of `order` one after another, and only those."""
    a, b = fresh
    raw = _chat_fail500(local, {"order": ["a", "b"], "allow_fallbacks": False})
    assert raw.status == 200, raw.body
    assert raw.json()["provider"] == "b"
    assert (a.count("fail500"), b.count("echo")) == (2, 1)


def test_retry_after_is_honoured(local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI]) -> None:
    a, _ = fresh
    started = time.monotonic()
    status, _, _ = ask(local, "fail429", stream=False)
    elapsed = time.monotonic() - started
    assert status == 200
    assert a.count("fail429") == 2
    assert elapsed >= 1.0, "the retry came before the upstream's Retry-After"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_model_default_timeout_is_408(
    local: LocalGateway, fresh: tuple[MockOpenAI, MockOpenAI], stream: bool
) -> None:
    """A model's own `timeout` bounds a request that names none: 408, not a hang."""
    started = time.monotonic()
    raw = request(
        "POST",
        local.base_url + "/chat/completions",
        {"model": "slow/model", "messages": [{"role": "user", "content": "x"}], "stream": stream},
        {"Authorization": f"Bearer {local.key}"},
    )
    assert raw.status == 408, raw.body
    assert raw.json()["error"]["type"] == "timeout_error"
    assert time.monotonic() - started < 3
    assert_nothing_left(local)
