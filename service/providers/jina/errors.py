"""Jina's error answers: FastAPI-style `{"detail": ...}`, a string or validation items."""

from __future__ import annotations

from typing import Any

import orjson

from service.providers.openai_compat.convert import error_message as openai_error_message


def _validation(items: list[Any]) -> tuple[str, str | None] | None:
    """`[{"loc": ["body", "top_n"], "msg": ...}, ...]` -> the first message and its field."""
    first = items[0] if items else None
    if not isinstance(first, dict) or not isinstance(first.get("msg"), str):
        return None
    loc = first.get("loc")
    fields = [str(p) for p in loc if p != "body"] if isinstance(loc, list) else []
    param = fields[0] if fields else None
    where = ".".join(fields)
    return (f"{where}: {first['msg']}" if where else first["msg"]), param


def error_message(status: int, payload: bytes) -> tuple[str, str | None]:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail, None
    if isinstance(detail, list):
        found = _validation(detail)
        if found is not None:
            return found
    return openai_error_message(status, payload)
