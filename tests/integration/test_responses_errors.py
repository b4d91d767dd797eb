"""The error contract through POST /v1/responses, on both channels: the same statuses
and bodies as chat completions, and a failure after the 200 as an `error` event."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.gateway import Gateway
from tests.fixtures.http import open_stream
from tests.integration.test_http_errors import assert_error, post


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["mock/fail500", "dead/chat", "mock/garbage", "mock/empty"])
def test_upstream_failure_before_output_is_502(gateway: Gateway, model: str, stream: bool) -> None:
    raw = post(gateway, "/responses", {"model": model, "input": "hello", "stream": stream})
    error = assert_error(raw, 502, "upstream_error")
    assert error["metadata"]["provider_name"] == model.split("/")[0]


def test_upstream_400_is_the_callers_fault(gateway: Gateway) -> None:
    raw = post(gateway, "/responses", {"model": "mock/fail400", "input": "hello"})
    assert_error(raw, 400, "invalid_request_error", "temperature")


def test_unknown_model_and_bad_json(gateway: Gateway) -> None:
    assert_error(
        post(gateway, "/responses", {"model": "acme/nope", "input": "x"}),
        404,
        "not_found_error",
        "model",
    )
    assert_error(post(gateway, "/responses", b"{nope"), 400, "invalid_request_error")
    assert_error(
        post(gateway, "/responses", {"model": "mock/echo", "input": "x"}, key="sk-bad"),
        401,
        "authentication_error",
    )


@pytest.mark.parametrize("model", ["mock/cut", "mock/drop"])
def test_failure_after_output_is_an_error_event(gateway: Gateway, model: str) -> None:
    conn, response = open_stream(
        gateway.base_url + "/responses",
        {"model": model, "input": "hello", "stream": True},
        {"Authorization": f"Bearer {gateway.key}"},
    )
    try:
        assert response.status == 200
        raw = response.read().decode()
    finally:
        conn.close()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    events = [json.loads(f.split("\n", 1)[1].removeprefix("data: ")) for f in frames]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created"
    assert "response.output_text.delta" in kinds
    last = events[-1]
    assert last["type"] == "error" and last["code"] == "upstream_error"
    assert last["sequence_number"] == events[-2]["sequence_number"] + 1
    assert "response.completed" not in kinds
