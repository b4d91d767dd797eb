"""The response cache a service runs with: its backend, and the embedder the semantic
cache uses (the local provider's own when the config has one, so that the model is
loaded once; otherwise one of its own, loaded on the first semantic lookup)."""

from __future__ import annotations

from collections.abc import Mapping

from service.cache.backends import CacheBackend
from service.cache.cache import Embed, ResponseCache
from service.cache.memory import MemoryBackend
from service.cache.settings import CacheConfig
from service.providers.base import Provider
from service.providers.local.embedder import LocalEmbedder


def build_cache(config: CacheConfig, providers: Mapping[str, Provider]) -> ResponseCache | None:
    """The cache, or None when no model has caching on."""
    if not config.models:
        return None
    backend: CacheBackend
    if config.backend == "redis":
        from service.cache.redis_backend import RedisBackend  # only when configured

        backend = RedisBackend(config.redis_url)
    else:
        backend = MemoryBackend(config.max_entries)
    return ResponseCache(config, backend, semantic_embedder(config, providers))


def semantic_embedder(config: CacheConfig, providers: Mapping[str, Provider]) -> Embed | None:
    """What the semantic cache embeds with: None when no model asks for it."""
    if not any(m.semantic for m in config.models.values()):
        return None
    embedder = next(
        (
            e
            for p in providers.values()
            if isinstance(e := getattr(p, "embedder", None), LocalEmbedder)
        ),
        None,
    )
    return (embedder or LocalEmbedder("cache")).vector


def backend_changed(old: CacheConfig, new: CacheConfig) -> bool:
    """Whether a reload from `old` to `new` needs another backend (which a restart makes)."""
    return (old.backend, old.redis_url, old.max_entries) != (
        new.backend,
        new.redis_url,
        new.max_entries,
    )
