"""TEI's error answers: `{"error": ..., "error_type": ...}` and what its statuses mean."""

from __future__ import annotations

import orjson

from service.providers.openai_compat.convert import error_message as openai_error_message

# TEI answers 424 when inference fails or the served model cannot do what was asked
# (e.g. /rerank on an embedding model): neither is the client's fault, so the core must
# not pass it on as a 400: it is an upstream error (a 502) with upstream_status 424.
UPSTREAM_FAULTS = frozenset({424})


def error_message(status: int, payload: bytes) -> tuple[str, str | None]:
    """The message, with TEI's error type (validation, tokenizer, backend, overloaded...)."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        kind = body.get("error_type")
        message: str = body["error"]
        return (f"{message} ({kind})" if isinstance(kind, str) and kind else message), None
    return openai_error_message(status, payload)
