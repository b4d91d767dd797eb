"""Router v0: a public model id maps to its first configured endpoint.

The catalog already allows several endpoints per model; choosing among them (price,
health, preferences, fallbacks) is the routing issue's work and plugs in here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service import errors
from service.config import Config, EndpointConfig, ModelConfig
from service.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Route:
    model: ModelConfig
    endpoint: EndpointConfig
    provider: Provider


class Router:
    def __init__(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self._models = {m.id: m for m in config.models}
        self._providers = providers

    def resolve(self, model_id: str, capability: str) -> Route:
        model = self._models.get(model_id)
        if model is None:
            raise errors.model_not_found(model_id)
        if capability not in model.capabilities:
            raise errors.invalid_request(
                f"The model '{model_id}' does not support {capability} "
                f"(it supports: {', '.join(sorted(model.capabilities))}).",
                param="model",
            )
        endpoint = model.endpoints[0]
        return Route(model=model, endpoint=endpoint, provider=self._providers[endpoint.provider])
