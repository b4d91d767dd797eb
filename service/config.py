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

from service import config_keys
from service.cache.settings import (
    CacheConfig,
    CacheConfigError,
    ModelCache,
    parse_cache,
    parse_model_cache,
)
from service.catalog import CatalogError, EndpointConfig, ModelConfig, parse_model
from service.config_keys import PROVIDER_COMMON, PROVIDER_KINDS
from service.config_lines import line_of
from service.routing.health import BreakerSettings
from service.routing.policy import RetryPolicy, RoutingSettings
from service.store.resp import parse_url
from service.store.settings import ON_BACKEND_ERROR, StorageSettings
from service.telemetry.settings import (
    ACCESS_LOG_FORMATS,
    AccessLogSettings,
    MetricsSettings,
    TelemetrySettings,
    TracingSettings,
)

__all__ = [
    "PROVIDER_KINDS",
    "Config",
    "ConfigError",
    "EndpointConfig",
    "ModelConfig",
    "ProviderConfig",
]

# Where a provider kind lives when the config names no base_url.
_DEFAULT_URLS = {
    "local": "",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "cohere": "https://api.cohere.com",
    "jina": "https://api.jina.ai",
}
# Seconds: the default and the most an upstream call may poll for its answer's headers.
ANSWER_POLL = 0.0005
MAX_ANSWER_POLL = 0.005
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
    first_byte_timeout: float | None = None  # until the response headers arrive
    idle_timeout: float | None = None  # between two reads of the body (stream chunks)
    # The longest the event loop polls, rather than sleeps, for a fast answer's headers
    # (service/spin.py); 0 turns polling off.
    answer_poll: float = ANSWER_POLL
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific settings


@dataclass(frozen=True, slots=True)
class Config:
    providers: Mapping[str, ProviderConfig]
    models: tuple[ModelConfig, ...]
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    moderation: Mapping[str, Any] | None = None  # {kind: rules|openai, ...}
    storage: StorageSettings = field(default_factory=StorageSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    cache: CacheConfig = field(default_factory=CacheConfig)

    def model(self, model_id: str) -> ModelConfig | None:
        for model in self.models:
            if model.id == model_id:
                return model
        return None


def interpolate(
    value: str, env: Mapping[str, str], path: str, missing: list[str] | None = None
) -> str:
    """`value` with its `${VAR}` / `${VAR:-default}` references replaced. An unset
    variable without a default is added to `missing` ("path: VAR") when given, and
    raised at once otherwise."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        if missing is None:
            raise ConfigError(f"{path}: environment variable {name} is not set")
        missing.append(f"{path}: {name}")
        return ""

    return _ENV_REF.sub(substitute, value)


def _interpolate_tree(node: Any, env: Mapping[str, str], path: str, missing: list[str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, path, missing)
    if isinstance(node, list):
        return [_interpolate_tree(v, env, f"{path}[{i}]", missing) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, f"{path}.{k}", missing) for k, v in node.items()}
    return node


def _interpolated(data: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """The document with every variable replaced; all the unset ones reported at once."""
    missing: list[str] = []
    data = _interpolate_tree(data, env, "config", missing)
    if len(missing) == 1:
        where, name = missing[0].rsplit(": ", 1)
        raise ConfigError(f"{where}: environment variable {name} is not set")
    if missing:
        names = sorted({m.rsplit(": ", 1)[1] for m in missing})
        raise ConfigError(
            f"{len(names)} environment variables are not set: {', '.join(names)} "
            f"(used at {'; '.join(missing)})"
        )
    return data


def _known(node: Mapping[Any, Any], known: frozenset[str], path: str) -> None:
    error = config_keys.unknown_keys(node, known, path)
    if error is not None:
        raise ConfigError(error)


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
        near = config_keys.suggestion(kind, PROVIDER_KINDS)
        raise ConfigError(
            f"{path}.kind: unknown provider kind {kind!r}{near}; "
            f"the kinds are {', '.join(sorted(PROVIDER_KINDS))}"
        )
    allowed = PROVIDER_COMMON | config_keys.PROVIDER_OPTIONS[kind]
    for key in node:
        if key not in allowed:
            raise ConfigError(config_keys.provider_key_error(str(key), kind, path))
    timeout = _get(node, "timeout", float, path, 300.0)
    connect_timeout = _get(node, "connect_timeout", float, path, 10.0)
    if not (timeout > 0 and connect_timeout > 0):  # also refuses NaN
        raise ConfigError(f"{path}: timeouts must be positive")
    first_byte = _get(node, "first_byte_timeout", float, path, None)
    idle = _get(node, "idle_timeout", float, path, None)
    if any(t is not None and not t > 0 for t in (first_byte, idle)):
        raise ConfigError(f"{path}: timeouts must be positive")
    answer_poll = _get(node, "answer_poll", float, path, ANSWER_POLL)
    if not 0 <= answer_poll <= MAX_ANSWER_POLL:
        raise ConfigError(f"{path}.answer_poll: expected 0 to {MAX_ANSWER_POLL} seconds")
    headers = _get(node, "headers", dict, path, {})
    base_url = _get(node, "base_url", str, path, _DEFAULT_URLS.get(kind, ...))
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/"),
        api_key=_get(node, "api_key", str, path, ""),
        timeout=timeout,
        connect_timeout=connect_timeout,
        first_byte_timeout=first_byte,
        idle_timeout=idle,
        answer_poll=answer_poll,
        headers={str(k): str(v) for k, v in headers.items()},
        options={k: v for k, v in node.items() if k not in PROVIDER_COMMON},
    )


def parse_config(data: Any, env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-parsed YAML document into a `Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping at the top level")
    _known(data, config_keys.TOP_LEVEL, "config")
    env = os.environ if env is None else env
    data = _interpolated(data, env)
    raw_providers = _get(data, "providers", dict, "config", {})
    providers = {
        name: _provider(name, node, f"config.providers.{name}")
        for name, node in raw_providers.items()
    }
    raw_models = _get(data, "models", list, "config", [])
    try:
        models = tuple(
            parse_model(node, f"config.models[{i}]", _get, providers)
            for i, node in enumerate(raw_models)
        )
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None
    seen: set[str] = set()
    for model in models:
        if model.id in seen:
            raise ConfigError(f"config.models: duplicate model id {model.id!r}")
        seen.add(model.id)
    moderation = _get(data, "moderation", dict, "config", None)
    if moderation is not None:
        kind = moderation.get("kind")
        if kind not in config_keys.MODERATION:
            raise ConfigError("config.moderation.kind: expected 'rules' or 'openai'")
        _known(moderation, config_keys.MODERATION[kind], "config.moderation")
    try:
        storage = _storage(data.get("storage"), env, "config.storage")
        cache = parse_cache(data.get("cache"), _model_caches(models, raw_models), storage.redis_url)
    except CacheConfigError as exc:
        raise ConfigError(str(exc)) from None
    return Config(
        providers=providers,
        models=models,
        routing=_routing(data.get("routing"), "config.routing"),
        moderation=moderation,
        storage=storage,
        telemetry=_telemetry(data),
        cache=cache,
    )


def _storage(node: Any, env: Mapping[str, str], path: str) -> StorageSettings:
    """`storage: {database_url, redis_url, on_backend_error, lease_ttl, ...}`."""
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: expected a mapping")
    _known(node, config_keys.STORAGE, path)
    redis_url = env.get("SWITCHYARD_REDIS_URL") or _get(node, "redis_url", str, path, None)
    if redis_url is not None:
        try:
            parse_url(redis_url)
        except ValueError as exc:
            raise ConfigError(f"{path}.redis_url: {exc}") from None
    database_url = env.get("SWITCHYARD_DATABASE_URL") or _get(node, "database_url", str, path, None)
    if database_url is not None and not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{path}.database_url: expected a postgresql:// URL")
    if database_url and not redis_url:
        raise ConfigError(
            f"{path}.database_url: replicas sharing PostgreSQL need storage.redis_url (or "
            "SWITCHYARD_REDIS_URL) too, for their rate limits and credit holds; without it "
            "each replica would count a key's limits on its own"
        )
    on_error = _get(node, "on_backend_error", str, path, "closed")
    if on_error not in ON_BACKEND_ERROR:
        raise ConfigError(f"{path}.on_backend_error: expected 'closed' or 'open'")
    return StorageSettings(
        database_url=database_url or None,
        redis_url=redis_url or None,
        on_backend_error=on_error,
        lease_ttl=_number(node, "lease_ttl", path, 30.0, 1),
        key_cache_seconds=_number(node, "key_cache_seconds", path, 2.0, 0),
        pool_size=int(_number(node, "pool_size", path, 16, 1)),
    )


def _section(data: Mapping[str, Any], name: str, known: frozenset[str]) -> Mapping[str, Any]:
    node = _get(data, name, dict, "config", {})
    _known(node, known, f"config.{name}")
    return node  # type: ignore[no-any-return]


def _telemetry(data: Mapping[str, Any]) -> TelemetrySettings:
    """`metrics: {enabled}`, `access_log: {enabled, format, log_bodies, path}` and
    `tracing: {enabled, endpoint, sample_ratio, service_name}`."""
    metrics = _section(data, "metrics", config_keys.METRICS)
    access = _section(data, "access_log", config_keys.ACCESS_LOG)
    tracing = _section(data, "tracing", config_keys.TRACING)
    fmt = _get(access, "format", str, "config.access_log", "text")
    if fmt not in ACCESS_LOG_FORMATS:
        raise ConfigError(f"config.access_log.format: expected 'text' or 'json', got {fmt!r}")
    ratio = _get(tracing, "sample_ratio", float, "config.tracing", None)
    if ratio is not None and not 0 <= ratio <= 1:
        raise ConfigError("config.tracing.sample_ratio: expected a number from 0 to 1")
    return TelemetrySettings(
        metrics=MetricsSettings(enabled=_get(metrics, "enabled", bool, "config.metrics", True)),
        access_log=AccessLogSettings(
            enabled=_get(access, "enabled", bool, "config.access_log", True),
            format=fmt,
            log_bodies=_get(access, "log_bodies", bool, "config.access_log", False),
            path=_get(access, "path", str, "config.access_log", "-"),
        ),
        tracing=TracingSettings(
            enabled=_get(tracing, "enabled", bool, "config.tracing", None),
            endpoint=_get(tracing, "endpoint", str, "config.tracing", ""),
            sample_ratio=ratio,
            service_name=_get(tracing, "service_name", str, "config.tracing", ""),
        ),
    )


def _model_caches(models: tuple[ModelConfig, ...], raw: list[Any]) -> dict[str, ModelCache]:
    """Each model's `cache:` settings (a model without the key is never cached)."""
    out = {}
    for i, (model, node) in enumerate(zip(models, raw, strict=True)):
        if node.get("cache") not in (None, False):
            price = node.get("cache_hit_price")
            out[model.id] = parse_model_cache(node["cache"], price, f"config.models[{i}]")
    return out


def _number(node: Mapping[str, Any], key: str, path: str, default: float, low: float) -> float:
    value = _get(node, key, float, path, default)
    if not value >= low:
        raise ConfigError(f"{path}.{key}: must be at least {low:g}")
    return float(value)


def _routing(node: Any, path: str) -> RoutingSettings:
    """`routing: {retries, backoff_base, backoff_max, retry_after_cap, breaker: {...}}`."""
    if node is None:
        return RoutingSettings()
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: expected a mapping")
    _known(node, config_keys.ROUTING, path)
    retry = RetryPolicy(
        retries=int(_number(node, "retries", path, 2, 0)),
        backoff_base=_number(node, "backoff_base", path, 0.1, 0),
        backoff_max=_number(node, "backoff_max", path, 2.0, 0),
        retry_after_cap=_number(node, "retry_after_cap", path, 10.0, 0),
    )
    raw = _get(node, "breaker", dict, path, {})
    bpath = f"{path}.breaker"
    _known(raw, config_keys.BREAKER, bpath)
    breaker = BreakerSettings(
        failures=int(_number(raw, "failures", bpath, 3, 1)),
        error_rate=_number(raw, "error_rate", bpath, 0.5, 0),
        window=_number(raw, "window", bpath, 60.0, 0),
        min_calls=int(_number(raw, "min_calls", bpath, 10, 1)),
        cooldown=_number(raw, "cooldown", bpath, 30.0, 0),
    )
    return RoutingSettings(retry=retry, breaker=breaker)


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
            "max_output_tokens": 2048,
            "input_modalities": ["text"],
            "supported_parameters": [
                "max_tokens",
                "max_completion_tokens",
                "temperature",
                "top_p",
                "stop",
                "seed",
                "presence_penalty",
                "frequency_penalty",
                "logit_bias",
                "tools",
                "tool_choice",
                "response_format",
                "structured_outputs",
                "n",
            ],
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
    except yaml.YAMLError as exc:  # its message names the line and column
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    try:
        return parse_config(data, env)
    except ConfigError as exc:
        line = line_of(text, str(exc))
        if line is None:
            raise
        raise ConfigError(f"{path}, line {line}: {exc}") from None
