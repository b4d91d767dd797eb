"""Typed reads of a JSON request, each failure a 400 naming the offending param.

`null` counts as absent everywhere, as OpenAI's API treats it.
"""

from __future__ import annotations

from typing import Any

from gateway_http.errors import HttpError, bad_request

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

JSON = dict[str, Any]


def _type_error(param: str, expected: str, value: Any) -> HttpError:
    got = "null" if value is None else type(value).__name__
    got = {"str": "string", "dict": "object", "list": "array", "bool": "boolean"}.get(got, got)
    return bad_request(f"'{param}' must be {expected}, got {got}.", param)


def obj(value: Any, param: str) -> JSON:
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)
    return value


def string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)
    return value


def opt_str(body: JSON, key: str, param: str | None = None) -> str | None:
    value = body.get(key)
    return None if value is None else string(value, param or key)


def req_str(body: JSON, key: str, param: str | None = None) -> str:
    value = body.get(key)
    if value is None:
        raise bad_request(f"'{param or key}' is required.", param or key)
    return string(value, param or key)


def number(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(param, "a number", value)
    return float(value)


def opt_number(body: JSON, key: str) -> float | None:
    value = body.get(key)
    return None if value is None else number(value, key)


def integer(value: Any, param: str, bounds: tuple[int, int] = INT32) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(param, "an integer", value)
    if not bounds[0] <= value <= bounds[1]:
        raise bad_request(f"'{param}' is out of range.", param)
    return value


def opt_int(body: JSON, key: str, bounds: tuple[int, int] = INT32) -> int | None:
    value = body.get(key)
    return None if value is None else integer(value, key, bounds)


def boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean", value)
    return value


def opt_bool(body: JSON, key: str, param: str | None = None) -> bool | None:
    value = body.get(key)
    return None if value is None else boolean(value, param or key)


def array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _type_error(param, "an array", value)
    return value
