"""Cohere's error answers: the `{"message": ...}` envelope and its own status codes."""

from __future__ import annotations

import orjson

from service.providers.openai_compat.convert import error_message as openai_error_message

# 498 is Cohere's "invalid token": the gateway's credentials are at fault, not the
# client's request, so it must never be passed on as the client's 4xx.
UPSTREAM_FAULTS = frozenset({498})


def error_message(status: int, payload: bytes) -> tuple[str, str | None]:
    """Cohere answers `{"id": ..., "message": ...}`; its SDK's error types also name `data`."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "data"):
            text = body.get(key)
            if isinstance(text, str) and text:
                return text, None
    return openai_error_message(status, payload)
