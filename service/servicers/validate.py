"""Request checks shared by the servicers; each failure names the offending param."""

from __future__ import annotations

import math

import orjson

from service import errors


def json_text(value: str, param: str, *, object_only: bool = True) -> str:
    """`value` if it is JSON text (an object, by default); a 400 naming `param` if not."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise errors.invalid_request(f"'{param}' is not valid JSON.", param) from None
    if object_only and not isinstance(parsed, dict):
        raise errors.invalid_request(f"'{param}' must be a JSON object.", param)
    return value


def number_in(value: float, low: float, high: float, param: str) -> float:
    if math.isnan(value) or not low <= value <= high:
        raise errors.invalid_request(
            f"'{param}' must be between {low:g} and {high:g}, got {value:g}.", param
        )
    return value


def at_least(value: int, low: int, param: str) -> int:
    if value < low:
        raise errors.invalid_request(f"'{param}' must be at least {low}, got {value}.", param)
    return value


def required(value: str, param: str) -> str:
    if not value:
        raise errors.invalid_request(f"'{param}' is required.", param)
    return value
