"""The response cache the chat servicer consults: plan, find, fill, purge.

`plan` decides whether a request takes part (the model's settings, the request's
`use | skip | refresh`, and the safety rule: a request with `temperature > 0` or tools is
cached only when it asks with `use` or `refresh`); `find` answers from an entry (exact,
then a coalesced leader's, then semantic) or makes the request the leader for its key;
`fill` stores a clean answer and lands the leader; `release` lands it empty otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from service import errors
from service.cache.backends import CacheBackend, CacheBackendError
from service.cache.entry import Entry, cacheable
from service.cache.flights import Flights
from service.cache.guard import same_question
from service.cache.keys import exact_key, last_user_text, semantic_bucket
from service.cache.semantic import SemanticIndex
from service.cache.settings import CacheConfig, ModelCache
from service.domain.chat import ChatRequest, ChatResult, Usage
from service.providers.errors import ProviderError
from service.telemetry import metrics as metrics_module

log = logging.getLogger("switchyard.cache")
# At most one warning this often while the backend is unreachable.
WARN_EVERY = 30.0

MODES = frozenset({"", "use", "skip", "refresh"})
HIT = "hit"
SEMANTIC_HIT = "semantic-hit"
MISS = "miss"
# Outcomes of a lookup in the metrics only (no answer says them): a `refresh` went to the
# upstream to store anew; a `bypass` stayed out (`skip`, or sampled and not asked).
REFRESH = "refresh"
BYPASS = "bypass"

# Embeds one text with the built-in embeddings model: a unit vector of 384 floats.
Embed = Callable[[str], Awaitable[np.ndarray]]


@dataclass(slots=True)
class Plan:
    """One request's part in the cache."""

    request: ChatRequest
    model: str  # the requested model without its variant: whose settings apply
    settings: ModelCache
    partition: str
    key: str
    lookup: bool  # False for `refresh`: go to the upstream, then store
    leader: bool = False  # this request leads its key's flight and must land it
    bucket: str | None = None  # the semantic bucket, once computed
    vector: np.ndarray | None = None  # the last user message's embedding, once computed


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    kind: str  # HIT | SEMANTIC_HIT
    price: float  # what the hit is billed (the model's cache_hit_price)


def counted(model: str, outcome: str) -> None:
    """A lookup of a cached model (an id from the config: a bounded label) in the metrics."""
    metrics = metrics_module.ACTIVE
    if metrics is not None:
        metrics.cache_lookup(model, outcome)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise errors.invalid_request(
            "The cache mode must be 'use', 'skip' or 'refresh' "
            f"(the x-switchyard-cache header or the 'cache' field); got '{mode[:40]}'.",
            "cache",
        )
    return mode


class ResponseCache:
    def __init__(
        self, config: CacheConfig, backend: CacheBackend, embed: Embed | None = None
    ) -> None:
        self._config = config
        self._backend = backend
        self._embed = embed
        self._flights = Flights()
        self._index = SemanticIndex(config.max_entries)
        self._clock = time.time
        self._warned = 0.0

    def reconfigure(self, config: CacheConfig, embed: Embed | None) -> None:
        """A reload's per-model settings (on, ttl, scope, default, semantic, price), for
        requests from now on; entries already stored keep the expiry they were given.
        The backend stays: changing it takes a restart."""
        self._config = config
        if self._embed is None:
            self._embed = embed

    def _unavailable(self, exc: CacheBackendError) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("the response cache is unavailable, serving without it: %s", exc)

    async def _get(self, key: str) -> Entry | None:
        try:
            return await self._backend.get(key)
        except CacheBackendError as exc:
            self._unavailable(exc)
            return None

    @property
    def index(self) -> SemanticIndex:
        return self._index

    @property
    def flights(self) -> Flights:
        return self._flights

    def plan(self, request: ChatRequest, key_id: str, mode: str) -> Plan | None:
        """This request's plan, or None when the cache stays out of it."""
        model = request.model.split(":", 1)[0]
        settings = self._config.for_model(model)
        asked = check_mode(mode) in ("use", "refresh")  # the request itself asks
        if settings is None:
            return None
        mode = mode or settings.default
        if mode == "skip":
            counted(model, BYPASS)
            return None
        sampled = (request.temperature or 0.0) > 0 or bool(request.tools)
        if sampled and not asked:
            counted(model, BYPASS)
            return None
        partition = "shared" if settings.scope == "shared" else key_id
        key = f"{partition}|{model}|{exact_key(request, partition)}"
        return Plan(request, model, settings, partition, key, mode != "refresh")

    async def find(self, plan: Plan, deadline: float | None) -> Hit | None:
        """An answer from the cache, or None: then this request may lead its key."""
        price = plan.settings.hit_price
        if plan.lookup:
            entry = await self._get(plan.key)
            if entry is None:
                entry = await self._flights.wait(plan.key, deadline)
            if entry is not None:
                counted(plan.model, HIT)
                return Hit(entry, HIT, price)
            try:
                found = await self._semantic(plan)
            except ProviderError as exc:  # the embeddings model is busy: an exact-only miss
                log.info("semantic lookup skipped: %s", exc.message)
                found = None
            if found is not None:
                counted(plan.model, SEMANTIC_HIT)
                return Hit(found, SEMANTIC_HIT, price)
        counted(plan.model, MISS if plan.lookup else REFRESH)
        plan.leader = self._flights.lead(plan.key)
        return None

    async def _semantic(self, plan: Plan) -> Entry | None:
        if not plan.settings.semantic or self._embed is None:
            return None
        text = last_user_text(plan.request)
        if text is None:
            return None
        plan.bucket = semantic_bucket(plan.request, plan.partition)
        plan.vector = await self._embed(text)
        matches = await self._index.search(plan.bucket, plan.vector, plan.settings.threshold)
        for match in matches:
            if not same_question(match.text, text):
                continue
            entry = await self._get(match.key)
            if entry is not None:
                return entry
            self._index.remove(plan.bucket, match.key)  # expired or evicted: its vector too
        return None

    async def fill(
        self, plan: Plan, result: ChatResult, served: tuple[str, str, str], usage: Usage
    ) -> None:
        """Store a clean answer (model, provider, upstream model in `served`), then land."""
        entry = None
        try:
            if cacheable(result):
                now = self._clock()
                entry = Entry(
                    result=ChatResult(result.choices, usage, result.system_fingerprint),
                    model=served[0],
                    provider=served[1],
                    upstream_model=served[2],
                    partition=plan.partition,
                    requested_model=plan.model,
                    created=now,
                    expires=now + plan.settings.ttl,
                )
                await self._backend.put(plan.key, entry)
                try:
                    await self._remember(plan)
                except ProviderError as exc:  # stored, not indexed: exact hits still work
                    log.info("semantic indexing skipped: %s", exc.message)
        except CacheBackendError as exc:
            self._unavailable(exc)
            entry = None
        finally:
            self.release(plan, entry)

    async def _remember(self, plan: Plan) -> None:
        """Index a stored entry for the semantic cache (embedding it if `find` did not)."""
        if not plan.settings.semantic or self._embed is None:
            return
        text = last_user_text(plan.request)
        if text is None:
            return
        if plan.vector is None:
            plan.vector = await self._embed(text)
        bucket = plan.bucket or semantic_bucket(plan.request, plan.partition)
        self._index.add(bucket, plan.key, plan.vector, plan.model, plan.partition, text)

    def release(self, plan: Plan, entry: Entry | None = None) -> None:
        """Land this request's flight (if it leads one): waiters get `entry` or go on."""
        if plan.leader:
            plan.leader = False
            self._flights.land(plan.key, entry)

    async def purge(self, model: str | None, key_id: str | None) -> int:
        """Drop entries of `model` and/or of `key_id`'s partition (None: every one)."""
        self._index.purge(model, key_id)
        try:
            return await self._backend.purge(model, key_id)
        except CacheBackendError as exc:
            raise errors.GatewayError(
                "NO_PROVIDER_AVAILABLE",
                "The response cache's backend is unreachable; nothing was purged.",
                metadata={"backend": "cache"},
                retry_after=5.0,
            ) from exc

    async def aclose(self) -> None:
        await self._backend.aclose()
