"""Where cache entries live: the interface every backend implements.

The in-process backend (memory.py) is the embedded default. A shared one (Redis, for
several processes or replicas) implements the same four calls; the semantic index is
per process either way (semantic.py), and a semantic match is always confirmed by a
`get` here, so an entry dropped or expired anywhere is never served. Entry keys are
`<partition>|<model>|<hash>`, so that a shared backend can purge by key or model.
"""

from __future__ import annotations

from typing import Protocol

from service.cache.entry import Entry


class CacheBackendError(Exception):
    """The backend cannot be reached: the cache then stays out of the request (a miss,
    nothing stored), which costs an upstream call, never the request."""


class CacheBackend(Protocol):
    async def get(self, key: str) -> Entry | None:
        """The live entry under `key`, or None (missing or expired)."""
        ...

    async def put(self, key: str, entry: Entry) -> None:
        """Store `entry` until `entry.expires` (or until the size bound evicts it)."""
        ...

    async def purge(self, model: str | None, partition: str | None) -> int:
        """Drop the entries of `model` and/or `partition` (every entry for None, None);
        returns how many were dropped."""
        ...

    async def aclose(self) -> None: ...
