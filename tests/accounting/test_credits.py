"""Credits: reserve, settle, release; 402; never negative; the ledger adds up."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from service.store.keys import KeyStore
from tests.accounting.conftest import new_key
from tests.fixtures.http import RawResponse, open_stream, request
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI

HI = [{"role": "user", "content": "hi"}]


def post(gateway: LocalGateway, key: str, body: dict[str, Any]) -> RawResponse:
    return request(
        "POST", gateway.base_url + "/chat/completions", body, {"Authorization": f"Bearer {key}"}
    )


def get(gateway: LocalGateway, key: str, path: str) -> RawResponse:
    return request("GET", gateway.base_url + path, headers={"Authorization": f"Bearer {key}"})


def ledger(gateway: LocalGateway, key_id: str, status: str = "ok") -> list[tuple[Any, ...]]:
    """The key's generations with this status (by default, those that served)."""
    assert gateway.service is not None
    assert gateway.flush_ledger(), "the ledger did not catch up"
    assert isinstance(gateway.service.keys, KeyStore)  # the embedded default: SQLite
    db = sqlite3.connect(gateway.service.keys.path)
    try:
        return db.execute(
            "SELECT id, model, provider, cost, prompt_tokens, completion_tokens, streamed, "
            "cancelled, finish_reason FROM generations WHERE key_id = ? AND status = ?",
            (key_id, status),
        ).fetchall()
    finally:
        db.close()


def key_id(gateway: LocalGateway, key: str) -> str:
    return str(get(gateway, key, "/key").json()["data"]["id"])


def test_exactly_the_affordable_requests_pass(accounted: LocalGateway) -> None:
    """200 at once on credits for exactly 50: 50 pass, 150 get 402, nothing overdrawn."""
    key = new_key(accounted, credit_limit=0.5)

    async def burst() -> list[tuple[int, Any]]:
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "paid/request", "messages": HI}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> tuple[int, Any]:
                async with session.post(
                    accounted.base_url + "/chat/completions", json=body, headers=headers
                ) as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(one() for _ in range(200)))

    results = asyncio.run(burst())
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 50, sorted(set(statuses))
    assert statuses.count(402) == 150
    refusal = next(body for status, body in results if status == 402)["error"]
    assert refusal["type"] == "insufficient_quota"
    assert float(refusal["metadata"]["needed"]) == pytest.approx(0.01)
    assert float(refusal["metadata"]["available"]) < 0.01
    credits = get(accounted, key, "/credits").json()["data"]
    assert credits["total_credits"] == pytest.approx(0.5)
    assert credits["total_usage"] == pytest.approx(0.5)
    assert credits["total_usage"] <= credits["total_credits"] + 1e-9  # never negative
    rows = ledger(accounted, key_id(accounted, key))
    assert len(rows) == 50
    assert sum(r[3] for r in rows) == pytest.approx(credits["total_usage"])


def test_usage_cost_headers_and_generation_lookup(accounted: LocalGateway) -> None:
    key = new_key(accounted)
    raw = post(
        accounted, key, {"model": "paid/echo-tokens", "messages": HI, "usage": {"include": True}}
    )
    assert raw.status == 200
    body = raw.json()
    usage = body["usage"]
    expected = usage["prompt_tokens"] * 0.000001 + usage["completion_tokens"] * 0.00001
    assert usage["cost"] == pytest.approx(expected)
    assert body["cost"] == pytest.approx(expected)  # Infron's usage.include
    assert body["cost_details"]["upstream_inference_cost"] == pytest.approx(expected)
    generation_id = raw.headers["x-generation-id"]
    assert generation_id == body["id"] and generation_id.startswith("gen-")
    found = get(accounted, key, f"/generation?id={generation_id}")
    assert found.status == 200
    row = found.json()["data"]
    assert (row["model"], row["provider_name"]) == ("paid/echo-tokens", "a")
    assert row["total_cost"] == pytest.approx(expected)
    assert (row["tokens_prompt"], row["tokens_completion"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row["streamed"] is False and row["cancelled"] is False
    assert row["finish_reason"] == "stop"
    # ISO 8601 with its offset, as OpenRouter answers (and its SDKs declare a string).
    created = datetime.fromisoformat(row["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(created.timestamp() - time.time()) < 600
    # Another key cannot see it.
    assert get(accounted, new_key(accounted), f"/generation?id={generation_id}").status == 404
    # Without usage.include, only usage.cost.
    plain = post(accounted, key, {"model": "paid/echo-tokens", "messages": HI}).json()
    assert "cost" not in plain and plain["usage"]["cost"] > 0


def test_stream_reports_cost_in_its_last_chunk(accounted: LocalGateway) -> None:
    key = new_key(accounted)
    conn, response = open_stream(
        accounted.base_url + "/chat/completions",
        {"model": "paid/echo-tokens", "messages": HI, "stream": True, "usage": {"include": True}},
        {"Authorization": f"Bearer {key}"},
    )
    try:
        assert response.status == 200
        generation_id = response.getheader("x-generation-id")
        events = [line.decode()[6:].strip() for line in response if line.startswith(b"data: ")]
    finally:
        conn.close()
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["cost"] > 0
    assert last["cost"] == pytest.approx(last["usage"]["cost"])
    row = get(accounted, key, f"/generation?id={generation_id}").json()["data"]
    assert row["streamed"] is True and row["total_cost"] == pytest.approx(last["cost"])


def test_a_failed_call_costs_nothing_and_a_fallback_bills_what_served(
    accounted: LocalGateway,
) -> None:
    key = new_key(accounted, credit_limit=5.0)
    kid = key_id(accounted, key)
    assert post(accounted, key, {"model": "paid/broken", "messages": HI}).status == 502
    assert get(accounted, key, "/credits").json()["data"]["total_usage"] == 0
    assert ledger(accounted, kid) == []
    # The failure is recorded (for error rates), at no cost, under the model asked for.
    failed = ledger(accounted, kid, "UPSTREAM_ERROR")
    assert [(row[1], row[3], row[8]) for row in failed] == [("paid/broken", 0.0, "error")]
    served = post(accounted, key, {"model": "paid/fallback", "messages": HI})
    assert served.status == 200 and served.json()["provider"] == "b"
    assert served.json()["usage"]["cost"] == pytest.approx(0.002)  # b's price, not a's
    rows = ledger(accounted, kid)
    assert len(rows) == 1 and rows[0][2] == "b" and rows[0][3] == pytest.approx(0.002)


def test_worst_case_is_reserved_then_released(accounted: LocalGateway) -> None:
    """A key that can afford the real cost but not the worst case is refused up front."""
    key = new_key(accounted, credit_limit=0.0005)  # worst case: 100 output tokens = 0.001
    raw = post(accounted, key, {"model": "paid/echo-tokens", "messages": HI})
    assert raw.status == 402
    assert (
        post(accounted, key, {"model": "paid/echo-tokens", "messages": HI, "max_tokens": 10}).status
        == 200
    )


def test_cancelled_stream_is_billed_once_for_what_it_produced(
    accounted: LocalGateway, mocks: tuple[MockOpenAI, MockOpenAI]
) -> None:
    a, _ = mocks
    a.clear()
    key = new_key(accounted, credit_limit=1.0)
    conn, response = open_stream(
        accounted.base_url + "/chat/completions",
        {"model": "paid/tokens", "messages": HI, "stream": True},
        {"Authorization": f"Bearer {key}"},
    )
    assert response.status == 200
    generation_id = response.getheader("x-generation-id")
    ticks = 0
    for line in response:
        if b'"tick ' in line:
            ticks += 1
        if ticks == 6:
            break
    conn.sock.close()
    conn.close()
    assert a.wait_for_disconnect(5)
    deadline = time.monotonic() + 5
    while not (rows := ledger(accounted, key_id(accounted, key))):
        assert time.monotonic() < deadline, "the cancelled stream was never billed"
        time.sleep(0.05)
    time.sleep(0.3)
    rows = ledger(accounted, key_id(accounted, key))
    assert len(rows) == 1, "billed once"
    gid, _, _, cost, _, completion, streamed, cancelled, finish = rows[0]
    assert (gid, streamed, cancelled, finish) == (generation_id, 1, 1, "cancelled")
    assert completion >= 2  # at least what reached the client ("tick " x 6)
    assert cost > 0
    assert get(accounted, key, "/credits").json()["data"]["total_usage"] == pytest.approx(cost)


@pytest.mark.parametrize("stream", [False, True])
def test_images_are_billed_streamed_or_not(accounted: LocalGateway, stream: bool) -> None:
    key = new_key(accounted)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body: dict[str, Any] = {
        "model": "paid/image",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, image, image]}],
        "stream": stream,
        "usage": {"include": True},
    }
    if stream:
        conn, response = open_stream(
            accounted.base_url + "/chat/completions", body, {"Authorization": f"Bearer {key}"}
        )
        try:
            events = [line.decode()[6:].strip() for line in response if line.startswith(b"data: ")]
        finally:
            conn.close()
        cost = json.loads(events[-2])["cost"]
    else:
        cost = post(accounted, key, body).json()["cost"]
    assert cost == pytest.approx(0.10)  # two images at 0.05, tokens free
    assert get(accounted, key, "/credits").json()["data"]["total_usage"] == pytest.approx(0.10)
