"""The console's reads over HTTP: usage, generations and endpoints, each key its own.

An admin key sees every key and may narrow to one; any other key sees its own usage
only, whatever key it names. Failures after admission are in the ledger at no cost.
Every check runs on both stores: SQLite (one process) and PostgreSQL (a fleet's).
"""

from __future__ import annotations

from typing import Any

import pytest

from service.store.keys import KeyPolicy
from tests.fixtures.http import RawResponse, request
from tests.fixtures.local_gateway import LocalGateway


def _key(gateway: LocalGateway, **policy: Any) -> tuple[str, str]:
    assert gateway.service is not None
    record, plain = gateway.service.keys.create("usage-test", KeyPolicy(**policy))
    return record.id, plain


def get(gateway: LocalGateway, path: str, key: str | None) -> RawResponse:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return request("GET", gateway.base_url + path, None, headers)


def chat(gateway: LocalGateway, key: str, model: str, **extra: Any) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    url = gateway.base_url + "/chat/completions"
    return request("POST", url, body, {"Authorization": f"Bearer {key}"}).status


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest) -> LocalGateway:
    """The accounting suite's gateway, on each store in turn."""
    name = "accounted" if request.param == "sqlite" else "accounted_postgres"
    gateway: LocalGateway = request.getfixturevalue(name)
    return gateway


@pytest.fixture(scope="module")
def traffic(served: LocalGateway) -> dict[str, str]:
    """Two keys with known traffic (3 paid calls and a failure; 1 call), and an admin."""
    k1, s1 = _key(served)
    k2, s2 = _key(served)
    _, admin = _key(served, is_admin=True)
    assert [chat(served, s1, "paid/request") for _ in range(3)] == [200] * 3
    assert chat(served, s1, "paid/broken") == 502
    assert chat(served, s2, "free/chat") == 200
    assert served.flush_ledger()
    return {"k1": k1, "s1": s1, "k2": k2, "s2": s2, "admin": admin}


def test_a_key_sees_its_own_usage_by_model(served: LocalGateway, traffic: dict[str, str]) -> None:
    usage = get(served, "/usage?range=24h&group_by=model", traffic["s1"])
    assert usage.status == 200, usage.body
    body = usage.json()
    assert body["bucket_seconds"] == 3600 and len(body["series"][0]["points"]) == 24
    total = body["total"]
    assert (total["requests"], total["errors"]) == (4, 1)
    assert total["cost"] == pytest.approx(0.03)
    assert total["p50_ms"] is not None and total["p95_ms"] >= total["p50_ms"]
    by_model = {s["group"]: s["total"] for s in body["series"]}
    assert set(by_model) == {"paid/request", "paid/broken"}
    assert (by_model["paid/request"]["requests"], by_model["paid/broken"]["errors"]) == (3, 1)
    assert by_model["paid/broken"]["cost"] == 0
    # The calls fall in the last bucket, and the buckets add up to the total.
    points = body["series"][0]["points"]
    assert sum(p["requests"] for p in points) == by_model[body["series"][0]["group"]]["requests"]
    assert points[-1]["requests"] > 0


def test_a_key_cannot_read_another_keys_usage(
    served: LocalGateway, traffic: dict[str, str]
) -> None:
    for path in (
        f"/usage?range=7d&key_id={traffic['k1']}",
        f"/usage?range=30d&group_by=key&key_id={traffic['k1']}",
    ):
        body = get(served, path, traffic["s2"]).json()
        assert body["total"]["requests"] == 1, path  # its own single call, not k1's four
        assert {s["group"] for s in body["series"]} <= {"", traffic["k2"]}
    listed = get(served, f"/generations?key_id={traffic['k1']}", traffic["s2"]).json()
    assert {g["key_id"] for g in listed["data"]} == {traffic["k2"]}


def test_an_admin_sees_every_key_and_may_narrow_to_one(
    served: LocalGateway, traffic: dict[str, str]
) -> None:
    everyone = get(served, "/usage?range=30d&group_by=key", traffic["admin"]).json()
    by_key = {s["group"]: s["total"]["requests"] for s in everyone["series"]}
    assert (by_key[traffic["k1"]], by_key[traffic["k2"]]) == (4, 1)
    one = get(served, f"/usage?key_id={traffic['k1']}", traffic["admin"]).json()
    assert one["total"]["requests"] == 4
    listed = get(served, f"/generations?key_id={traffic['k2']}", traffic["admin"]).json()
    assert [g["model"] for g in listed["data"]] == ["free/chat"]


def test_generations_filter_and_page(served: LocalGateway, traffic: dict[str, str]) -> None:
    mine = get(served, "/generations", traffic["s1"]).json()["data"]
    assert len(mine) == 4
    assert [g["created_at"] for g in mine] == sorted((g["created_at"] for g in mine), reverse=True)
    failed = get(served, "/generations?status=error", traffic["s1"]).json()["data"]
    assert [(g["model"], g["status"], g["total_cost"]) for g in failed] == [
        ("paid/broken", "UPSTREAM_ERROR", 0.0)
    ]
    ok = get(served, "/generations?status=ok&model=paid/request", traffic["s1"]).json()
    assert len(ok["data"]) == 3 and {g["provider_name"] for g in ok["data"]} == {"a"}
    first = get(served, "/generations?limit=2", traffic["s1"]).json()
    assert len(first["data"]) == 2 and first["next_until"] is not None
    rest = get(served, f"/generations?limit=2&until={first['next_until']}", traffic["s1"])
    ids = [g["id"] for g in first["data"] + rest.json()["data"]]
    assert sorted(ids) == sorted(g["id"] for g in mine)
    # One generation's details, through the existing account API.
    detail = get(served, f"/generation?id={failed[0]['id']}", traffic["s1"]).json()["data"]
    assert detail["status"] == "UPSTREAM_ERROR"
    assert get(served, f"/generation?id={failed[0]['id']}", traffic["s2"]).status == 404


def test_endpoints_show_prices_breaker_and_recent_use(
    served: LocalGateway, traffic: dict[str, str]
) -> None:
    listed = get(served, "/endpoints", traffic["s1"])
    assert listed.status == 200, listed.body
    endpoints = {(e["model"], e["provider"]): e for e in listed.json()["data"]}
    paid = endpoints[("paid/request", "a")]
    assert paid["pricing"]["request"] == pytest.approx(0.01)
    assert paid["breaker"] in ("closed", "open", "half_open")
    assert paid["requests"] == 3 and paid["p50_ms"] is not None
    assert paid["latency_ms"] is not None  # the router's moving average
    # Another key's view counts only its own calls.
    other = {
        (e["model"], e["provider"]): e
        for e in get(served, "/endpoints", traffic["s2"]).json()["data"]
    }
    assert other[("paid/request", "a")]["requests"] == 0


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/usage?range=1y", "range"),
        ("/usage?group_by=colour", "group_by"),
        ("/generations?limit=0", "limit"),
        ("/generations?limit=1000", "limit"),
        ("/generations?since=yesterday", "since"),
        ("/generations?until=nan", "until"),
    ],
)
def test_bad_queries_are_400s(
    served: LocalGateway, traffic: dict[str, str], path: str, param: str
) -> None:
    answer = get(served, path, traffic["s1"])
    assert answer.status == 400, answer.body
    assert answer.json()["error"]["param"] == param


@pytest.mark.parametrize("path", ["/usage", "/generations", "/endpoints"])
def test_no_key_no_data(served: LocalGateway, path: str) -> None:
    assert get(served, path, None).status == 401
    assert get(served, path, "sk-sy-not-a-key").status == 401


def test_generations_count_their_attempts(served: LocalGateway) -> None:
    """A fallback is two upstream calls; a failure says how many it made."""
    _, secret = _key(served)
    # a first (it answers 500), then b serves
    assert chat(served, secret, "paid/fallback", provider={"order": ["a", "b"]}) == 200
    assert chat(served, secret, "paid/broken") == 502
    assert served.flush_ledger()
    listed = get(served, "/generations", secret).json()["data"]
    assert sorted((g["model"], g["status"], g["attempts"]) for g in listed) == [
        ("paid/broken", "UPSTREAM_ERROR", 1),
        ("paid/fallback", "ok", 2),
    ]
