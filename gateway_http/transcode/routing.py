"""Routing fields of a request: `provider` preferences, `models` and `fallback_models`."""

from __future__ import annotations

from typing import Any

from switchyard.v1 import common_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.fields import JSON, array, obj, opt_bool, opt_str, string

ROUTING_FIELDS = frozenset({"provider", "models", "fallback_models"})
_PROVIDER_FIELDS = frozenset(
    {
        "order", "allow_fallbacks", "require_parameters", "data_collection", "only",
        "ignore", "sort", "max_price", "quantizations",
    }
)  # fmt: skip


def _names(value: Any, param: str) -> list[str]:
    return [string(v, f"{param}[{i}]") for i, v in enumerate(array(value, param))]


def _preferences(raw: Any, out: common_pb2.ProviderPreferences) -> None:
    prefs = obj(raw, "provider")
    unknown = sorted(set(prefs) - _PROVIDER_FIELDS)
    if unknown:
        raise bad_request(f"'provider.{unknown[0]}' is not a known preference.", "provider")
    for name in ("order", "only", "ignore", "quantizations"):
        if prefs.get(name) is not None:
            getattr(out, name).extend(_names(prefs[name], f"provider.{name}"))
    for flag in ("allow_fallbacks", "require_parameters"):
        value = opt_bool(prefs, flag, f"provider.{flag}")
        if value is not None:
            setattr(out, flag, value)
    collection = opt_str(prefs, "data_collection", "provider.data_collection")
    if collection not in (None, "allow", "deny"):
        raise bad_request(
            "'provider.data_collection' must be 'allow' or 'deny'.", "provider.data_collection"
        )
    out.data_collection = collection or ""
    sort = opt_str(prefs, "sort", "provider.sort")
    if sort not in (None, "price", "throughput", "latency"):
        raise bad_request(
            "'provider.sort' must be 'price', 'throughput' or 'latency'.", "provider.sort"
        )
    out.sort = sort or ""
    if prefs.get("max_price") is not None:
        caps = obj(prefs["max_price"], "provider.max_price")
        out.max_price.SetInParent()
        for key in ("prompt", "completion", "request"):
            price = caps.get(key)
            if price is None:
                continue
            if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                raise bad_request(
                    f"'provider.max_price.{key}' must be a non-negative number.",
                    f"provider.max_price.{key}",
                )
            setattr(out.max_price, key, float(price))


def parse_routing(body: JSON, out: Any) -> None:
    """Fill `out.provider` and `out.models`; `model` may come from `models[0]`."""
    if body.get("provider") is not None:
        _preferences(body["provider"], out.provider)
    fallbacks: list[str] = []
    for field in ("models", "fallback_models"):
        if body.get(field) is not None:
            fallbacks.extend(_names(body[field], field))
    if not out.model and fallbacks:
        out.model = fallbacks.pop(0)
    out.models.extend(m for m in fallbacks if m != out.model)
