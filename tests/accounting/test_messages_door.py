"""The Messages door goes through the same gate as chat: credits, limits, moderation and
allowed models, with Anthropic's error types on the gateway's statuses."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.accounting.conftest import new_key
from tests.fixtures.http import RawResponse, request
from tests.fixtures.local_gateway import LocalGateway


def messages(gateway: LocalGateway, key: str, model: str, **fields: Any) -> RawResponse:
    body = {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    return request("POST", gateway.base_url + "/messages", body | fields, {"x-api-key": key})


def error_type(raw: RawResponse) -> str:
    body = raw.json()
    assert body["type"] == "error", body
    return str(body["error"]["type"])


def test_credits_run_out(accounted: LocalGateway) -> None:
    key = new_key(accounted, credit_limit=0.015)  # one request at a cent, not two
    assert messages(accounted, key, "paid/request").status == 200
    refused = messages(accounted, key, "paid/request")
    assert refused.status == 402 and error_type(refused) == "billing_error"
    client = anthropic.Anthropic(
        base_url=accounted.base_url.removesuffix("/v1"), api_key=key, max_retries=0
    )
    with pytest.raises(anthropic.APIStatusError) as failed:
        client.messages.create(
            model="paid/request", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.status_code == 402


def test_rate_limited(accounted: LocalGateway) -> None:
    key = new_key(accounted, rpm=1)
    first = messages(accounted, key, "free/chat")
    assert first.status == 200
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    limited = messages(accounted, key, "free/chat")
    assert limited.status == 429 and error_type(limited) == "rate_limit_error"
    assert int(limited.headers["retry-after"]) >= 1


def test_moderated_system_prompt_and_allowed_models(accounted: LocalGateway) -> None:
    key = new_key(accounted, allowed_models=("safe/*",))
    flagged = messages(accounted, key, "safe/chat", system="Explain how to kill a process.")
    assert flagged.status == 403 and error_type(flagged) == "permission_error"
    assert flagged.json()["error"]["message"] == "The input was flagged by moderation (violence)."
    assert messages(accounted, key, "safe/chat", system="Be kind.").status == 200
    other = messages(accounted, key, "free/chat")
    assert other.status == 403 and error_type(other) == "permission_error"
