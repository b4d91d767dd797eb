"""Served requests leave no reference cycles behind.

The launcher collects young objects rarely (service/launcher.py, GC_YOUNG_THRESHOLD):
that is only safe while answered requests are freed by reference counting alone. A
cycle per request (as a cancelled watcher task once made: its CancelledError's
traceback held its frames) piles up until a collection pause of tens of milliseconds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http import open_stream, request, sse_events
from tests.fixtures.local_gateway import LocalGateway
from tests.fixtures.mock_openai import MockOpenAI

ROOT = Path(__file__).resolve().parents[2]
OURS = (str(ROOT / "service"), str(ROOT / "gateway_http"), "uvicorn")


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """Unreachable objects found by a collection, kept for inspection instead of freed."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.garbage.clear()
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()


def _our_frames(garbage: list[object]) -> list[str]:
    frames = []
    for obj in garbage:
        code = getattr(obj, "f_code", None)
        if code is not None and any(part in code.co_filename for part in OURS):
            frames.append(f"{code.co_filename}:{code.co_name}")
    return frames


def test_answered_requests_leave_no_cycles(
    local: LocalGateway,
    fresh: tuple[MockOpenAI, MockOpenAI],
    saved_garbage: list[object],
) -> None:
    url = local.base_url + "/chat/completions"
    auth = {"Authorization": f"Bearer {local.key}", "Content-Type": "application/json"}
    body = {"model": "fb/fail500", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(10):
        assert request("POST", url, body, auth).status == 200  # a failure, then a fallback
        conn, response = open_stream(url, {**body, "stream": True}, auth)
        try:
            assert response.status == 200
            assert sse_events(response)[-1] == "[DONE]"
        finally:
            conn.close()
    assert request("POST", url, {**body, "model": "nope"}, auth).status == 404
    assert request("POST", url, {**body, "temperature": "hot"}, auth).status == 400
    assert request("POST", url, body, {**auth, "Authorization": "Bearer sk-wrong"}).status == 401
    gc.collect()
    frames = _our_frames(saved_garbage)
    assert not frames, f"{len(frames)} frames in reference cycles, e.g. {frames[:5]}"
