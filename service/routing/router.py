"""Choosing where a request goes: models, then endpoints, in the order to try them.

OpenRouter/Infron semantics (DESIGN §6): the request's model, then its fallback models;
for each, the endpoints that can serve the request, filtered by the caller's provider
preferences and by what the request needs, then ordered by `order`, by `sort` (also
implied by the `:nitro` and `:floor` variants) or, by default, at random weighted by
the inverse square of price. `allow_fallbacks: false` keeps the providers of `order`
(tried one after another, as OpenRouter does), or the first endpoint when there is no
`order`. An endpoint that lacks a parameter the request sets is still a candidate,
with that parameter to drop, unless the request asks for `require_parameters`. Open
circuits are skipped (and logged) at attempt time.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass

from service import errors
from service.catalog import EndpointConfig, ModelConfig
from service.config import Config
from service.domain.routing import Preferences, Routing
from service.providers.base import Provider
from service.routing.health import HealthBoard
from service.routing.requirements import Requirements

log = logging.getLogger("switchyard.routing")

VARIANT_SORTS = {"nitro": "throughput", "floor": "price"}
SORTS = frozenset({"price", "throughput", "latency"})


@dataclass(frozen=True, slots=True)
class Candidate:
    model: ModelConfig
    endpoint: EndpointConfig
    provider: Provider
    dropped: frozenset[str] = frozenset()  # parameters of the request it does not take


def split_variant(model_id: str) -> tuple[str, str | None]:
    """`vendor/name:nitro` -> (`vendor/name`, "throughput")."""
    base, _, variant = model_id.rpartition(":")
    if base and variant in VARIANT_SORTS:
        return base, VARIANT_SORTS[variant]
    return model_id, None


def _price(endpoint: EndpointConfig) -> float:
    return endpoint.pricing.prompt + endpoint.pricing.completion


def _within(endpoint: EndpointConfig, prefs: Preferences) -> str | None:
    """Why the caller's preferences exclude `endpoint`, or None."""
    if prefs.only and endpoint.provider not in prefs.only:
        return "not in provider.only"
    if endpoint.provider in prefs.ignore:
        return "in provider.ignore"
    if prefs.quantizations and endpoint.quantization not in prefs.quantizations:
        return "quantization not allowed"
    if prefs.data_collection == "deny" and endpoint.may_store:
        return "may store data (data_collection: deny)"
    cap = prefs.max_price
    if cap is not None:
        pricing = endpoint.pricing
        if cap.prompt is not None and pricing.prompt * 1e6 > cap.prompt:
            return "prompt price above max_price"
        if cap.completion is not None and pricing.completion * 1e6 > cap.completion:
            return "completion price above max_price"
        if cap.request is not None and pricing.request > cap.request:
            return "request price above max_price"
    return None


class Router:
    def __init__(
        self,
        config: Config,
        providers: Mapping[str, Provider],
        health: HealthBoard,
        rng: random.Random | None = None,
    ) -> None:
        self._models = {m.id: m for m in config.models}
        self._providers = providers
        self._health = health
        self._rng = rng or random.Random()

    def _order(
        self, endpoints: list[EndpointConfig], prefs: Preferences, sort: str | None
    ) -> list[EndpointConfig]:
        if prefs.order:
            rank = {name: i for i, name in enumerate(prefs.order)}
            first = sorted(
                (e for e in endpoints if e.provider in rank), key=lambda e: rank[e.provider]
            )
            rest = [e for e in endpoints if e.provider not in rank]
            return first + self._order(rest, Preferences(), sort) if rest else first
        if sort == "price":
            return sorted(endpoints, key=_price)
        if sort == "throughput":
            return sorted(endpoints, key=lambda e: -(self._health.get(e.key).throughput or 0.0))
        if sort == "latency":
            inf = float("inf")
            return sorted(endpoints, key=lambda e: self._health.get(e.key).latency_ms or inf)
        return self._weighted(endpoints)

    def _weighted(self, endpoints: list[EndpointConfig]) -> list[EndpointConfig]:
        """Random order, each pick weighted by 1/price² (OpenRouter's default balancing)."""
        if len(endpoints) < 2:
            return list(endpoints)
        priced = [p for p in map(_price, endpoints) if p > 0]
        floor = min(priced) / 10 if priced else 1.0  # a free endpoint counts as very cheap
        pool = list(endpoints)
        weights = [1.0 / max(_price(e), floor) ** 2 for e in pool]
        ordered = []
        while pool:
            i = self._rng.choices(range(len(pool)), weights=weights)[0]
            ordered.append(pool.pop(i))
            weights.pop(i)
        return ordered

    def plan(
        self,
        model_id: str,
        capability: str,
        routing: Routing,
        needs: Requirements,
    ) -> list[Candidate]:
        """Every (model, endpoint) to try, in order. Raises 404/400/503 per the contract."""
        prefs = routing.preferences
        if prefs.sort is not None and prefs.sort not in SORTS:
            raise errors.invalid_request(
                "'provider.sort' must be 'price', 'throughput' or 'latency'.", "provider.sort"
            )
        candidates: list[Candidate] = []
        reasons: list[str] = []
        for i, requested in enumerate((model_id, *routing.fallback_models)):
            base, variant_sort = split_variant(requested)
            model = self._models.get(base)
            if model is None:
                if i == 0:
                    raise errors.model_not_found(requested)
                raise errors.invalid_request(
                    f"The fallback model '{requested}' does not exist.", "models"
                )
            if capability not in model.capabilities:
                if i == 0:
                    raise errors.invalid_request(
                        f"The model '{base}' does not support {capability} "
                        f"(it supports: {', '.join(sorted(model.capabilities))}).",
                        param="model",
                    )
                continue
            usable = self._usable(model, prefs, needs, reasons)
            ordered = self._order(usable, prefs, variant_sort or prefs.sort)
            if not prefs.allow_fallbacks:
                ordered = (
                    [e for e in ordered if e.provider in prefs.order]
                    if prefs.order
                    else ordered[:1]
                )
            candidates.extend(
                Candidate(
                    model,
                    e,
                    self._providers[e.provider],
                    frozenset() if prefs.require_parameters else needs.dropped(e),
                )
                for e in ordered
            )
        if not candidates:
            why = "; ".join(dict.fromkeys(reasons)) or "no endpoint is configured"
            raise errors.GatewayError(
                "NO_PROVIDER_AVAILABLE",
                f"No provider can serve this request: {why}.",
                metadata={"requested_model": model_id},
            )
        return candidates

    def _usable(
        self,
        model: ModelConfig,
        prefs: Preferences,
        needs: Requirements,
        reasons: list[str],
    ) -> list[EndpointConfig]:
        usable = []
        for endpoint in model.endpoints:
            excluded = _within(endpoint, prefs)
            if excluded is not None:
                reasons.append(f"{endpoint.provider} for {model.id}: {excluded}")
                log.debug("skipping %s for %s: %s", endpoint.key, model.id, excluded)
                continue
            lacking = needs.unmet(endpoint, prefs.require_parameters)
            if lacking is not None:
                reasons.append(f"{endpoint.provider} for {model.id} does not support {lacking}")
                log.debug("skipping %s for %s: lacks %s", endpoint.key, model.id, lacking)
                continue
            usable.append(endpoint)
        return usable
