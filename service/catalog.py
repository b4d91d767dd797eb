"""The model catalog: public model ids, their endpoints, and what each endpoint offers.

Model-level keys are defaults for every endpoint of the model; an endpoint overrides
them. A capability an endpoint does not declare (`input_modalities`,
`supported_parameters`) is not known, so routing does not filter on it: declaring one
is how an operator tells the router what an endpoint cannot do.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from service import config_keys

CAPABILITIES = frozenset({"chat", "embeddings", "rerank"})
# The request parameters an endpoint's `reasoning` flag speaks for (OpenRouter's names).
REASONING_PARAMETERS = frozenset({"reasoning", "include_reasoning"})
MODALITIES = frozenset({"text", "image", "audio", "file", "embeddings"})


class CatalogError(ValueError):
    """A catalog entry is invalid; the message names its path."""


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per token (prompt, completion), per request and per image.

    Prompt tokens read from or written to the upstream's prompt cache have their own
    prices (OpenRouter's `input_cache_read` / `input_cache_write`); unset, they cost
    what any prompt token costs.
    """

    prompt: float = 0.0
    completion: float = 0.0
    request: float = 0.0
    image: float = 0.0
    input_cache_read: float | None = None
    input_cache_write: float | None = None


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    provider: str
    model: str  # the upstream's model name
    pricing: Pricing = Pricing()
    context_length: int | None = None
    max_output_tokens: int | None = None
    input_modalities: frozenset[str] | None = None  # None: not declared
    output_modalities: frozenset[str] = frozenset({"text"})
    supported_parameters: frozenset[str] | None = None  # None: not declared
    quantization: str | None = None
    may_store: bool = False  # whether the provider may keep prompts (data policy)
    # Whether the model reasons on request (`reasoning`, `include_reasoning`); None: not
    # declared. false drops a request's reasoning parameters (or, with
    # require_parameters, passes the endpoint over), as for any unsupported parameter.
    reasoning: bool | None = None

    def supported(self) -> frozenset[str] | None:
        """The parameters it declares, with those its `reasoning` flag adds or removes
        (None: not declared, so every parameter may be sent)."""
        params = self.supported_parameters
        if params is None:
            return None
        if self.reasoning is True:
            return params | REASONING_PARAMETERS
        if self.reasoning is False:
            return params - REASONING_PARAMETERS
        return params

    @property
    def key(self) -> str:
        """Identifies the endpoint for health and statistics."""
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    id: str
    name: str
    capabilities: frozenset[str]
    endpoints: tuple[EndpointConfig, ...]
    owned_by: str
    context_length: int | None = None
    created: int = 0
    timeout: float | None = None  # default request timeout, seconds
    moderated: bool = False  # inputs are moderated before routing


Getter = Callable[..., Any]


def _strings(value: Any, path: str, allowed: Collection[str] | None = None) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{path}: expected a list of strings")
    if allowed is not None and set(value) - set(allowed):
        raise CatalogError(f"{path}: expected some of {sorted(allowed)}")
    return frozenset(value)


def _price(value: Any, path: str) -> float:
    try:
        price = float(value)
    except (TypeError, ValueError):
        raise CatalogError(f"{path}: expected a price (USD per token)") from None
    if not price >= 0:
        raise CatalogError(f"{path}: a price cannot be negative")
    return price


def _known(node: Mapping[Any, Any], known: frozenset[str], path: str) -> None:
    error = config_keys.unknown_keys(node, known, path)
    if error is not None:
        raise CatalogError(error)


def _pricing(value: Any, path: str) -> Pricing:
    if not isinstance(value, dict):
        raise CatalogError(f"{path}: expected a mapping")
    _known(value, config_keys.PRICING, path)
    return Pricing(**{k: _price(v, f"{path}.{k}") for k, v in value.items()})


def _endpoint(
    raw: Mapping[str, Any],
    defaults: Mapping[str, Any],
    path: str,
    get: Getter,
    providers: Collection[str],
) -> EndpointConfig:
    _known(raw, config_keys.ENDPOINT, path)
    merged = {**defaults, **raw}
    provider = get(merged, "provider", str, path)
    if provider not in providers:
        raise CatalogError(f"{path}.provider: unknown provider {provider!r}")
    inputs = merged.get("input_modalities")
    params = merged.get("supported_parameters")
    return EndpointConfig(
        provider=provider,
        model=get(merged, "model", str, path),
        pricing=_pricing(merged["pricing"], f"{path}.pricing")
        if "pricing" in merged
        else Pricing(),
        context_length=get(merged, "context_length", int, path, None),
        max_output_tokens=get(merged, "max_output_tokens", int, path, None),
        input_modalities=_strings(inputs, f"{path}.input_modalities", MODALITIES)
        if inputs is not None
        else None,
        output_modalities=_strings(
            merged.get("output_modalities", ["text"]), f"{path}.output_modalities", MODALITIES
        ),
        supported_parameters=_strings(params, f"{path}.supported_parameters")
        if params is not None
        else None,
        quantization=get(merged, "quantization", str, path, None),
        may_store=get(merged, "may_store", bool, path, False),
        reasoning=get(merged, "reasoning", bool, path, None),
    )


def parse_model(node: Any, path: str, get: Getter, providers: Collection[str]) -> ModelConfig:
    if not isinstance(node, dict):
        raise CatalogError(f"{path}: expected a mapping")
    _known(node, config_keys.MODEL, path)
    model_id = get(node, "id", str, path)
    caps = get(node, "capabilities", list, path, ["chat"])
    if not caps or not all(isinstance(c, str) for c in caps) or set(caps) - CAPABILITIES:
        raise CatalogError(f"{path}.capabilities: expected some of {sorted(CAPABILITIES)}")
    raw_endpoints = get(node, "endpoints", list, path)
    if not raw_endpoints:
        raise CatalogError(f"{path}.endpoints: at least one endpoint is required")
    context_length = get(node, "context_length", int, path, None)  # checked at its own path
    defaults = {k: node[k] for k in config_keys.ENDPOINT_DEFAULTS if k in node}
    endpoints = []
    for i, raw in enumerate(raw_endpoints):
        if not isinstance(raw, dict):
            raise CatalogError(f"{path}.endpoints[{i}]: expected a mapping")
        endpoints.append(_endpoint(raw, defaults, f"{path}.endpoints[{i}]", get, providers))
    timeout = get(node, "timeout", float, path, None)
    if timeout is not None and not timeout > 0:
        raise CatalogError(f"{path}.timeout: must be positive")
    return ModelConfig(
        id=model_id,
        name=get(node, "name", str, path, model_id),
        capabilities=frozenset(caps),
        endpoints=tuple(endpoints),
        owned_by=get(node, "owned_by", str, path, model_id.split("/", 1)[0]),
        context_length=context_length,
        created=get(node, "created", int, path, 0),
        timeout=timeout,
        moderated=get(node, "moderated", bool, path, False),
    )
