"""Moderation of models marked `moderated: true`: rules and an OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from service.moderation.base import excerpt
from service.moderation.openai import OpenAIModerator
from service.store.keys import KeyStore
from tests.accounting.conftest import new_key
from tests.fixtures.http import request
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI


def chat(gateway: LocalGateway, key: str, model: str, text: str) -> tuple[int, dict[str, object]]:
    raw = request(
        "POST",
        gateway.base_url + "/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": text}]},
        {"Authorization": f"Bearer {key}"},
    )
    return raw.status, raw.json()


def test_flagged_input_is_refused_and_not_billed(accounted: LocalGateway) -> None:
    key = new_key(accounted, credit_limit=1.0)
    long_text = "Please tell me how to kill the process " + "and more words " * 20
    status, body = chat(accounted, key, "safe/chat", long_text)
    assert status == 403
    error: dict[str, object] = body["error"]  # type: ignore[assignment]
    assert error["type"] == "permission_error"
    metadata: dict[str, object] = error["metadata"]  # type: ignore[assignment]
    assert metadata["reasons"] == ["violence"]
    flagged = str(metadata["flagged_input"])
    assert len(flagged) <= 100 and "..." in flagged
    assert flagged.startswith("Please tell me") and flagged.endswith(long_text[-10:])
    status, body = chat(accounted, key, "safe/chat", "steal the card and explode")
    assert status == 403
    assert body["error"]["metadata"]["reasons"] == ["violence", "fraud"]  # type: ignore[index]
    assert accounted.service is not None
    assert accounted.flush_ledger()
    assert isinstance(accounted.service.keys, KeyStore)  # the embedded default: SQLite
    db = sqlite3.connect(accounted.service.keys.path)
    billed = db.execute(
        "SELECT COUNT(*) FROM generations g JOIN api_keys k ON g.key_id = k.id "
        "WHERE k.key_hash = (SELECT key_hash FROM api_keys WHERE display = ?)",
        (key[:12] + "...",),
    ).fetchone()[0]
    db.close()
    assert billed == 0


def test_clean_input_and_unmoderated_models_pass(accounted: LocalGateway) -> None:
    key = new_key(accounted)
    assert chat(accounted, key, "safe/chat", "how do I bake bread")[0] == 200
    assert chat(accounted, key, "free/chat", "how to kill a process")[0] == 200  # not moderated


def test_excerpt_keeps_both_ends() -> None:
    assert excerpt("short") == "short"
    cut = excerpt("a" * 60 + "b" * 60)
    assert cut == "a" * 49 + "..." + "b" * 48


def test_openai_moderator_against_a_mock(mocks: tuple[MockOpenAI, MockOpenAI]) -> None:
    a, _ = mocks

    async def run() -> list[tuple[bool, tuple[str, ...], str]]:
        moderator = OpenAIModerator(a.base_url, "upstream-secret")
        try:
            verdicts = [
                await moderator.check(["a friendly question"]),
                await moderator.check(["hello", "this is FORBIDDEN talk"]),
                await moderator.check(["plan an attack that is forbidden"]),
            ]
        finally:
            await moderator.aclose()
        return [(v.flagged, v.reasons, v.flagged_input) for v in verdicts]

    clean, one, both = asyncio.run(run())
    assert clean == (False, (), "")
    assert one == (True, ("harassment",), "this is FORBIDDEN talk")
    assert both[0] and set(both[1]) == {"harassment", "violence"}
    assert [r.path for r in a.requests[-3:]] == ["/v1/moderations"] * 3


def test_model_not_allowed(accounted: LocalGateway) -> None:
    key = new_key(accounted, allowed_models=("free/*",))
    assert chat(accounted, key, "free/chat", "hi")[0] == 200
    status, body = chat(accounted, key, "paid/request", "hi")
    assert status == 403
    assert body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert body["error"]["param"] == "model"  # type: ignore[index]
    # A fallback model counts too.
    raw = request(
        "POST",
        accounted.base_url + "/chat/completions",
        {
            "model": "free/chat",
            "models": ["paid/request"],
            "messages": [{"role": "user", "content": "hi"}],
        },
        {"Authorization": f"Bearer {key}"},
    )
    assert raw.status == 403


@pytest.mark.parametrize("kind", ["expired", "disabled"])
def test_expired_and_disabled_keys(accounted: LocalGateway, kind: str) -> None:
    policy = {"expires_at": 1.0} if kind == "expired" else {"disabled": True}
    key = new_key(accounted, **policy)
    assert chat(accounted, key, "free/chat", "hi")[0] == 401
