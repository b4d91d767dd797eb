"""The keys each part of the config may have, and the check that names a typo.

A key the gateway does not read used to be ignored: `model:` at the top level started a
gateway with no models, a provider's `api_kye:` ran without a key, `routing.retires` kept
the default. Every mapping of the file is now checked against its known keys; an
unknown one fails start-up with its path and the nearest known key. A provider's keys
are the common ones plus those of its kind, so that `batch_size` is accepted where a
kind batches (cohere, tei) and refused, with the reason, where it does not.

A part added to the config (a new section, a new provider option) adds its keys here.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any

TOP_LEVEL = frozenset(
    {
        "providers",
        "models",
        "routing",
        "moderation",
        "storage",
        "metrics",
        "access_log",
        "tracing",
        "cache",
    }
)
# service/store/settings.py; SWITCHYARD_REDIS_URL and SWITCHYARD_DATABASE_URL override.
STORAGE = frozenset(
    {
        "database_url",
        "redis_url",
        "on_backend_error",
        "lease_ttl",
        "key_cache_seconds",
        "pool_size",
    }
)
# Operations (service/telemetry/settings.py).
METRICS = frozenset({"enabled"})
ACCESS_LOG = frozenset({"enabled", "format", "log_bodies", "path"})
TRACING = frozenset({"enabled", "endpoint", "sample_ratio", "service_name"})
ROUTING = frozenset({"retries", "backoff_base", "backoff_max", "retry_after_cap", "breaker"})
BREAKER = frozenset({"failures", "error_rate", "window", "min_calls", "cooldown"})
MODERATION = {
    "rules": frozenset({"kind", "categories"}),
    "openai": frozenset({"kind", "base_url", "api_key", "model"}),
}

PROVIDER_COMMON = frozenset(
    {
        "kind",
        "base_url",
        "api_key",
        "timeout",
        "connect_timeout",
        "first_byte_timeout",
        "idle_timeout",
        "answer_poll",
        "headers",
    }
)
# The options each provider kind reads (service/providers/<kind>/), beyond the common keys.
PROVIDER_OPTIONS: Mapping[str, frozenset[str]] = {
    "openai": frozenset(),
    "local": frozenset(
        {"threads", "max_batch", "batch_wait_ms", "queue", "context_length", "gguf"}
    ),
    "anthropic": frozenset({"default_max_tokens", "anthropic_version"}),
    "gemini": frozenset({"fetch"}),
    "cohere": frozenset(
        {"input_type", "truncate", "max_tokens", "max_tokens_per_doc", "batch_size"}
    ),
    "tei": frozenset(
        {
            "dimensions_supported",
            "normalize",
            "truncate",
            "truncation_direction",
            "prompt_name",
            "batch_size",
        }
    ),
    "jina": frozenset({"task", "late_chunking", "truncate", "normalized"}),
}
PROVIDER_KINDS = frozenset(PROVIDER_OPTIONS)

# What a model and each of its endpoints may say (service/catalog.py).
ENDPOINT_DEFAULTS = frozenset(
    {
        "pricing",
        "context_length",
        "max_output_tokens",
        "input_modalities",
        "output_modalities",
        "supported_parameters",
        "quantization",
        "may_store",
        "reasoning",
    }
)
MODEL = ENDPOINT_DEFAULTS | {
    "id",
    "name",
    "capabilities",
    "endpoints",
    "owned_by",
    "created",
    "timeout",
    "moderated",
    "cache",
    "cache_hit_price",
}
ENDPOINT = ENDPOINT_DEFAULTS | {"provider", "model"}
PRICING = frozenset(
    {"prompt", "completion", "request", "image", "input_cache_read", "input_cache_write"}
)
# The response cache (service/cache/settings.py): the top-level section, and a model's.
CACHE = frozenset({"backend", "max_entries", "redis_url"})
MODEL_CACHE = frozenset({"ttl", "semantic", "threshold", "scope", "default"})


def suggestion(word: str, known: Collection[str]) -> str:
    """' (did you mean 'x'?)' for the nearest of `known`, or '' when none is near."""
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_keys(node: Mapping[Any, Any], known: Collection[str], path: str) -> str | None:
    """The error for the first key of `node` not in `known` (None if all are known):
    `config.routing.retires: unknown key (did you mean 'retries'?)`."""
    for key in node:
        if key not in known:
            name = str(key)
            return f"{path}.{name}: unknown key{suggestion(name, known)}"
    return None


def provider_key_error(key: str, kind: str, path: str) -> str:
    """Why a provider of `kind` cannot have `key`: a typo, or an option of other kinds."""
    known = PROVIDER_COMMON | PROVIDER_OPTIONS[kind]
    near = suggestion(key, known)
    if near:
        return f"{path}.{key}: unknown key{near}"
    others = sorted(k for k, options in PROVIDER_OPTIONS.items() if key in options)
    if others:
        return (
            f"{path}.{key}: not an option of kind {kind!r} "
            f"(only of {', '.join(repr(k) for k in others)})"
        )
    options = ", ".join(sorted(PROVIDER_OPTIONS[kind])) or "none"
    return f"{path}.{key}: unknown key (kind {kind!r} takes the common keys and: {options})"
