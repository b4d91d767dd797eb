"""What a request asks of routing: provider preferences and fallback models (DESIGN §6)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MaxPrice:
    """USD per million tokens (per request for `request`), as OpenRouter takes it."""

    prompt: float | None = None
    completion: float | None = None
    request: float | None = None


@dataclass(frozen=True, slots=True)
class Preferences:
    order: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    require_parameters: bool = False  # OpenRouter's default: unsupported ones are dropped
    data_collection: str = "allow"  # "deny" excludes endpoints that may store prompts
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    sort: str | None = None  # price | throughput | latency
    max_price: MaxPrice | None = None
    quantizations: tuple[str, ...] = ()


DEFAULT_PREFERENCES = Preferences()


@dataclass(frozen=True, slots=True)
class Routing:
    preferences: Preferences = DEFAULT_PREFERENCES
    fallback_models: tuple[str, ...] = ()  # tried in order after the request's model


DEFAULT_ROUTING = Routing()
