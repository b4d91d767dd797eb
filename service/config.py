"""The YAML configuration: providers and the model catalog.

Secrets stay out of the file through `${ENV}` interpolation (`${VAR}` or
`${VAR:-default}`), applied to string values after parsing so that a value can never
change the YAML structure around it. Everything is validated at load time into
frozen dataclasses; a bad file fails start-up with the path of the bad value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROVIDER_KINDS = frozenset({"openai", "local", "anthropic", "gemini", "cohere", "tei", "jina"})
CAPABILITIES = frozenset({"chat", "embeddings", "rerank"})
# Where a provider kind lives when the config names no base_url.
_DEFAULT_URLS = {
    "local": "",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "cohere": "https://api.cohere.com",
    "jina": "https://api.jina.ai",
}
_PROVIDER_FIELDS = frozenset(
    {"kind", "base_url", "api_key", "timeout", "connect_timeout", "headers"}
)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the offending path."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str
    api_key: str = ""
    timeout: float = 300.0  # one attempt, start to end
    connect_timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific settings


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    provider: str
    model: str  # the upstream's model name


@dataclass(frozen=True, slots=True)
class ModelConfig:
    id: str
    name: str
    capabilities: frozenset[str]
    endpoints: tuple[EndpointConfig, ...]
    owned_by: str
    context_length: int | None = None
    created: int = 0


@dataclass(frozen=True, slots=True)
class Config:
    providers: Mapping[str, ProviderConfig]
    models: tuple[ModelConfig, ...]

    def model(self, model_id: str) -> ModelConfig | None:
        for model in self.models:
            if model.id == model_id:
                return model
        return None


def interpolate(value: str, env: Mapping[str, str], path: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set")

    return _ENV_REF.sub(substitute, value)


def _interpolate_tree(node: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, path)
    if isinstance(node, list):
        return [_interpolate_tree(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, f"{path}.{k}") for k, v in node.items()}
    return node


def _get(node: Mapping[str, Any], key: str, kind: type, path: str, default: Any = ...) -> Any:
    if key not in node or node[key] is None:
        if default is ...:
            raise ConfigError(f"{path}.{key}: required")
        return default
    value = node[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{path}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _provider(name: str, node: Any, path: str) -> ProviderConfig:
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: expected a mapping")
    kind = _get(node, "kind", str, path)
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"{path}.kind: unknown provider kind {kind!r}")
    timeout = _get(node, "timeout", float, path, 300.0)
    connect_timeout = _get(node, "connect_timeout", float, path, 10.0)
    if not (timeout > 0 and connect_timeout > 0):  # also refuses NaN
        raise ConfigError(f"{path}: timeouts must be positive")
    headers = _get(node, "headers", dict, path, {})
    base_url = _get(node, "base_url", str, path, _DEFAULT_URLS.get(kind, ...))
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/"),
        api_key=_get(node, "api_key", str, path, ""),
        timeout=timeout,
        connect_timeout=connect_timeout,
        headers={str(k): str(v) for k, v in headers.items()},
        options={k: v for k, v in node.items() if k not in _PROVIDER_FIELDS},
    )


def _model(node: Any, path: str, providers: Mapping[str, ProviderConfig]) -> ModelConfig:
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: expected a mapping")
    model_id = _get(node, "id", str, path)
    caps = _get(node, "capabilities", list, path, ["chat"])
    if not caps or not all(isinstance(c, str) for c in caps) or set(caps) - CAPABILITIES:
        raise ConfigError(f"{path}.capabilities: expected some of {sorted(CAPABILITIES)}")
    raw_endpoints = _get(node, "endpoints", list, path)
    if not raw_endpoints:
        raise ConfigError(f"{path}.endpoints: at least one endpoint is required")
    endpoints = []
    for i, raw in enumerate(raw_endpoints):
        epath = f"{path}.endpoints[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{epath}: expected a mapping")
        provider = _get(raw, "provider", str, epath)
        if provider not in providers:
            raise ConfigError(f"{epath}.provider: unknown provider {provider!r}")
        endpoints.append(EndpointConfig(provider=provider, model=_get(raw, "model", str, epath)))
    return ModelConfig(
        id=model_id,
        name=_get(node, "name", str, path, model_id),
        capabilities=frozenset(caps),
        endpoints=tuple(endpoints),
        owned_by=_get(node, "owned_by", str, path, model_id.split("/", 1)[0]),
        context_length=_get(node, "context_length", int, path, None),
        created=_get(node, "created", int, path, 0),
    )


def parse_config(data: Any, env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-parsed YAML document into a `Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping at the top level")
    data = _interpolate_tree(data, os.environ if env is None else env, "config")
    raw_providers = _get(data, "providers", dict, "config", {})
    providers = {
        name: _provider(name, node, f"config.providers.{name}")
        for name, node in raw_providers.items()
    }
    raw_models = _get(data, "models", list, "config", [])
    models = tuple(
        _model(node, f"config.models[{i}]", providers) for i, node in enumerate(raw_models)
    )
    seen: set[str] = set()
    for model in models:
        if model.id in seen:
            raise ConfigError(f"config.models: duplicate model id {model.id!r}")
        seen.add(model.id)
    return Config(providers=providers, models=models)


# The embedded default: the built-in local models, no cloud provider, no key needed.
EMBEDDED_DEFAULT: dict[str, Any] = {
    "providers": {"local": {"kind": "local"}},
    "models": [
        {
            "id": "local/all-minilm-l6-v2",
            "name": "all-MiniLM-L6-v2 (int8 ONNX, built in)",
            "owned_by": "local",
            "capabilities": ["embeddings", "rerank"],
            "context_length": 256,
            "endpoints": [{"provider": "local", "model": "all-minilm-l6-v2"}],
        },
        {
            "id": "local/smollm2-135m-instruct",
            "name": "SmolLM2 135M Instruct (Q4_1 GGUF, built in)",
            "owned_by": "local",
            "capabilities": ["chat"],
            "context_length": 2048,
            "endpoints": [{"provider": "local", "model": "smollm2-135m-instruct"}],
        },
    ],
}


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Load `path`, or the embedded default (built-in local models) when `path` is None."""
    if path is None:
        return parse_config(EMBEDDED_DEFAULT, env)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    return parse_config(data, env)
