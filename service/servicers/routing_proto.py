"""Routing fields, proto -> domain, shared by the chat, embeddings and rerank servicers."""

from __future__ import annotations

from collections.abc import Sequence

from switchyard.v1 import common_pb2

from service import errors
from service.domain.routing import DEFAULT_ROUTING, MaxPrice, Preferences, Routing

SORTS = frozenset({"price", "throughput", "latency"})


def routing_from_proto(
    prefs: common_pb2.ProviderPreferences, has_prefs: bool, models: Sequence[str]
) -> Routing:
    if not has_prefs and not models:
        return DEFAULT_ROUTING
    if any(not m for m in models):
        raise errors.invalid_request("'models' must not contain empty names.", "models")
    if prefs.sort and prefs.sort not in SORTS:
        raise errors.invalid_request(
            "'provider.sort' must be 'price', 'throughput' or 'latency'.", "provider.sort"
        )
    if prefs.data_collection not in ("", "allow", "deny"):
        raise errors.invalid_request(
            "'provider.data_collection' must be 'allow' or 'deny'.", "provider.data_collection"
        )
    cap = prefs.max_price if prefs.HasField("max_price") else None
    return Routing(
        preferences=Preferences(
            order=tuple(prefs.order),
            allow_fallbacks=prefs.allow_fallbacks if prefs.HasField("allow_fallbacks") else True,
            require_parameters=prefs.require_parameters,  # unset: false, as OpenRouter
            data_collection=prefs.data_collection or "allow",
            only=tuple(prefs.only),
            ignore=tuple(prefs.ignore),
            sort=prefs.sort or None,
            max_price=MaxPrice(
                prompt=cap.prompt if cap.HasField("prompt") else None,
                completion=cap.completion if cap.HasField("completion") else None,
                request=cap.request if cap.HasField("request") else None,
            )
            if cap is not None
            else None,
            quantizations=tuple(prefs.quantizations),
        ),
        fallback_models=tuple(models),
    )
