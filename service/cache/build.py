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
    embed: Embed | None = None
    if any(m.semantic for m in config.models.values()):
        embedder = next(
            (
                e
                for p in providers.values()
                if isinstance(e := getattr(p, "embedder", None), LocalEmbedder)
            ),
            None,
        )
        embed = (embedder or LocalEmbedder("cache")).vector
    return ResponseCache(config, backend, embed)
