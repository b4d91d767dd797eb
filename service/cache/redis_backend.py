"""The Redis cache backend: entries shared by every process and replica.

Each entry is one string key with Redis's own expiry (PX), named
`<prefix>:<partition>|<model>|<hash>` so that a purge by key and/or model is one SCAN
with a pattern (then DEL in batches), with no index to keep in step. The size bound is
Redis's: give the instance a `maxmemory` and an eviction policy (allkeys-lru). What
stays per process: coalescing of identical requests in flight, and the semantic index
(a process finds semantic matches among the entries it filled or hit; every match is
read back from Redis, so an entry purged or expired anywhere is never served).
"""

from __future__ import annotations

import re

from service.cache.backends import CacheBackendError
from service.cache.codec import decode, encode
from service.cache.entry import Entry
from service.store.resp import RedisError, RespClient

PREFIX = "switchyard:cache"
_GLOB = re.compile(r"([*?\[\]\\])")


def _literal(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return _GLOB.sub(r"\\\1", text)


class RedisBackend:
    def __init__(self, url: str, *, prefix: str = PREFIX) -> None:
        self._redis = RespClient(url, connect_timeout=5, timeout=5)
        self._prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def get(self, key: str) -> Entry | None:
        try:
            data = await self._redis.execute("GET", self._name(key))
        except RedisError as exc:
            raise CacheBackendError(f"redis: {exc}") from exc
        if data is None:
            return None
        return decode(data)

    async def put(self, key: str, entry: Entry) -> None:
        ttl_ms = max(1, int((entry.expires - entry.created) * 1000))
        try:
            await self._redis.execute("SET", self._name(key), encode(entry), "PX", ttl_ms)
        except RedisError as exc:
            raise CacheBackendError(f"redis: {exc}") from exc

    async def purge(self, model: str | None, partition: str | None) -> int:
        try:
            return await self._purge(model, partition)
        except RedisError as exc:
            raise CacheBackendError(f"redis: {exc}") from exc

    async def _purge(self, model: str | None, partition: str | None) -> int:
        where = _literal(partition) if partition is not None else "*"
        which = _literal(model) if model is not None else "*"
        pattern = f"{_literal(self._prefix)}:{where}|{which}|*"
        purged = 0
        cursor: bytes = b"0"
        while True:
            cursor, names = await self._redis.execute(
                "SCAN", cursor, "MATCH", pattern, "COUNT", 1000
            )
            if names:
                purged += int(await self._redis.execute("DEL", *names))
            if cursor == b"0":
                return purged

    async def aclose(self) -> None:
        await self._redis.aclose()
