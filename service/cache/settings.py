"""What the config says about the response cache: where entries live, and per model,
whether and how its answers are cached (DESIGN §11).

The top-level `cache:` section picks the backend and bounds it; a model opts in with its
own `cache:` mapping (and may price a hit with `cache_hit_price`). A model without one
is never cached, whatever a request asks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service import config_keys
from service.store.resp import parse_url

BACKENDS = frozenset({"memory", "redis"})
SCOPES = frozenset({"key", "shared"})
DEFAULTS = frozenset({"use", "skip"})
# Cosine similarity of two last user messages above which the semantic cache answers.
# Chosen on the labelled pairs in tests/cache/paraphrases.py (precision >= 0.95 there).
DEFAULT_THRESHOLD = 0.9
DEFAULT_TTL = 3600.0
DEFAULT_MAX_ENTRIES = 10_000


class CacheConfigError(ValueError):
    """A cache setting is invalid; the message names its path."""


@dataclass(frozen=True, slots=True)
class ModelCache:
    """One model's caching, from its `cache:` mapping."""

    ttl: float = DEFAULT_TTL  # seconds an entry answers
    semantic: bool = False  # also answer near-identical questions (embeddings)
    threshold: float = DEFAULT_THRESHOLD  # cosine similarity for a semantic hit
    scope: str = "key"  # key: each key sees its own entries; shared: every key's
    default: str = "use"  # what a request that says nothing gets: use | skip
    hit_price: float = 0.0  # USD billed for an answer from the cache


@dataclass(frozen=True, slots=True)
class CacheConfig:
    backend: str = "memory"
    max_entries: int = DEFAULT_MAX_ENTRIES
    redis_url: str = ""
    models: Mapping[str, ModelCache] = field(default_factory=dict)

    def for_model(self, model_id: str) -> ModelCache | None:
        return self.models.get(model_id)


def _number(node: Mapping[str, Any], key: str, path: str, default: float) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CacheConfigError(f"{path}.{key}: expected a number")
    if not math.isfinite(value):
        raise CacheConfigError(f"{path}.{key}: expected a finite number")
    return float(value)


def _choice(
    node: Mapping[str, Any], key: str, path: str, default: str, allowed: frozenset[str]
) -> str:
    value = node.get(key, default)
    if value not in allowed:
        raise CacheConfigError(f"{path}.{key}: expected one of {', '.join(sorted(allowed))}")
    return str(value)


def parse_model_cache(node: Any, hit_price: Any, path: str) -> ModelCache:
    """A model's `cache:` mapping (and its `cache_hit_price`)."""
    if node is True or node == {}:
        node = {}
    if not isinstance(node, dict):
        raise CacheConfigError(f"{path}.cache: expected a mapping (or true)")
    cpath = f"{path}.cache"
    error = config_keys.unknown_keys(node, config_keys.MODEL_CACHE, cpath)
    if error is not None:
        raise CacheConfigError(error)
    ttl = _number(node, "ttl", cpath, DEFAULT_TTL)
    if not ttl > 0:
        raise CacheConfigError(f"{cpath}.ttl: must be positive")
    threshold = _number(node, "threshold", cpath, DEFAULT_THRESHOLD)
    if not 0 < threshold <= 1:
        raise CacheConfigError(f"{cpath}.threshold: expected a cosine similarity in (0, 1]")
    semantic = node.get("semantic", False)
    if not isinstance(semantic, bool):
        raise CacheConfigError(f"{cpath}.semantic: expected true or false")
    price = 0.0
    if hit_price is not None:
        price = _number({"cache_hit_price": hit_price}, "cache_hit_price", path, 0.0)
    if price < 0:
        raise CacheConfigError(f"{path}.cache_hit_price: a price cannot be negative")
    return ModelCache(
        ttl=ttl,
        semantic=semantic,
        threshold=threshold,
        scope=_choice(node, "scope", cpath, "key", SCOPES),
        default=_choice(node, "default", cpath, "use", DEFAULTS),
        hit_price=price,
    )


def parse_cache(
    node: Any, models: Mapping[str, ModelCache], shared_redis_url: str | None = None
) -> CacheConfig:
    """The top-level `cache:` section, with the models' own settings. With backend
    `redis` and no `redis_url` of its own, the cache uses the shared stores' Redis
    (`storage.redis_url`)."""
    if node is None:
        node = {}
    path = "config.cache"
    if not isinstance(node, dict):
        raise CacheConfigError(f"{path}: expected a mapping")
    error = config_keys.unknown_keys(node, config_keys.CACHE, path)
    if error is not None:
        raise CacheConfigError(error)
    backend = _choice(node, "backend", path, "memory", BACKENDS)
    max_entries = node.get("max_entries", DEFAULT_MAX_ENTRIES)
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
        raise CacheConfigError(f"{path}.max_entries: expected a whole number of at least 1")
    redis_url = node.get("redis_url") or shared_redis_url or ""
    if not isinstance(redis_url, str):
        raise CacheConfigError(f"{path}.redis_url: expected a string")
    if backend == "redis" and not redis_url:
        raise CacheConfigError(
            f"{path}.redis_url: required with backend 'redis' (or set storage.redis_url)"
        )
    if redis_url:
        try:
            parse_url(redis_url)
        except ValueError as exc:
            raise CacheConfigError(f"{path}.redis_url: {exc}") from None
    return CacheConfig(backend, max_entries, redis_url, dict(models))
