"""Keys, credits and generations in OpenRouter's shapes (`/v1/key`, `/v1/credits`, ...)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchyard.v1 import admin_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.fields import JSON, array, integer, string

# HTTP field -> KeyPolicy field
POLICY_NAMES = {
    "limit": "credit_limit",
    "rpm": "rpm",
    "tpm": "tpm",
    "max_concurrent": "max_concurrent",
    "allowed_models": "allowed_models",
    "expires_at": "expires_at",
    "disabled": "disabled",
    "is_admin": "is_admin",
    "limit_reset": "limit_reset",
}


def _number(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"'{param}' must be a number.", param)
    return float(value)


def policy(body: JSON, out: admin_pb2.KeyPolicy) -> list[str]:
    """Fill `out` from the body's policy fields; the KeyPolicy names present in the body."""
    present = []
    for name, field in POLICY_NAMES.items():
        if name not in body:
            continue
        present.append(field)
        value = body[name]
        if value is None:
            continue
        if field == "limit_reset":
            out.limit_reset = string(value, name)
        elif field in ("credit_limit", "expires_at"):
            setattr(out, field, _number(value, name))
        elif field in ("rpm", "tpm", "max_concurrent"):
            setattr(out, field, integer(value, name))
        elif field == "allowed_models":
            out.allowed_models.extend(
                string(v, f"{name}[{i}]") for i, v in enumerate(array(value, name))
            )
        elif not isinstance(value, bool):
            raise bad_request(f"'{name}' must be a boolean.", name)
        else:
            setattr(out, field, value)
    return present


def create_request(body: JSON) -> admin_pb2.CreateKeyRequest:
    unknown = sorted(set(body) - set(POLICY_NAMES) - {"name"})
    if unknown:
        raise bad_request(f"'{unknown[0]}' is not a key field.", unknown[0])
    out = admin_pb2.CreateKeyRequest(name=string(body.get("name"), "name"))
    policy(body, out.policy)
    return out


def update_request(key_id: str, body: JSON) -> admin_pb2.UpdateKeyRequest:
    unknown = sorted(set(body) - set(POLICY_NAMES) - {"name"})
    if unknown:
        raise bad_request(f"'{unknown[0]}' is not a key field.", unknown[0])
    out = admin_pb2.UpdateKeyRequest(id=key_id)
    if body.get("name") is not None:
        out.name = string(body["name"], "name")
    out.update_fields.extend(policy(body, out.policy))
    return out


def credits_request(key_id: str, body: JSON) -> admin_pb2.AddCreditsRequest:
    return admin_pb2.AddCreditsRequest(id=key_id, amount=_number(body.get("amount"), "amount"))


def key_json(key: admin_pb2.ApiKey) -> JSON:
    p = key.policy
    limit = p.credit_limit if p.HasField("credit_limit") else None
    reset = p.limit_reset if p.HasField("limit_reset") else None
    # With a limit_reset, the limit is a budget for the current period.
    spent = {
        "daily": key.usage_daily,
        "weekly": key.usage_weekly,
        "monthly": key.usage_monthly,
    }.get(reset or "", key.usage)
    return {
        "id": key.id,
        "name": key.name,
        "label": key.display,
        "created_at": key.created_at,
        "limit": limit,
        "limit_reset": reset,
        "usage": key.usage,
        "usage_daily": key.usage_daily,
        "usage_weekly": key.usage_weekly,
        "usage_monthly": key.usage_monthly,
        "limit_remaining": max(0.0, limit - spent) if limit is not None else None,
        "is_free_tier": False,
        "rate_limit": {
            "requests": p.rpm if p.HasField("rpm") else None,
            "tokens": p.tpm if p.HasField("tpm") else None,
            "concurrent": p.max_concurrent if p.HasField("max_concurrent") else None,
            "interval": "1m",
        },
        "allowed_models": list(p.allowed_models) or None,
        "expires_at": p.expires_at if p.HasField("expires_at") else None,
        "disabled": p.disabled,
        "is_admin": p.is_admin,
        "revoked": key.revoked,
    }


def credits_json(key: admin_pb2.ApiKey) -> JSON:
    limit = key.policy.credit_limit if key.policy.HasField("credit_limit") else None
    return {"data": {"total_credits": limit, "total_usage": key.usage}}


def generation_json(g: admin_pb2.Generation) -> JSON:
    return {"data": generation_fields(g)}


def generation_fields(g: admin_pb2.Generation) -> JSON:
    return {
        "id": g.id,
        "key_id": g.key_id,
        "model": g.model,
        "provider_name": g.provider,
        "upstream_model": g.upstream_model,
        "kind": g.kind,
        # ISO 8601, as OpenRouter answers and its typed SDKs declare.
        "created_at": datetime.fromtimestamp(g.created_at, UTC).isoformat(),
        "tokens_prompt": g.prompt_tokens,
        "tokens_completion": g.completion_tokens,
        "native_tokens_cached": g.cached_tokens,
        "native_tokens_cache_write": g.cache_write_tokens,
        "total_cost": g.cost,
        "latency": g.latency_ms,
        "generation_time": g.generation_time_ms,
        "finish_reason": g.finish_reason,
        "streamed": g.streamed,
        "cancelled": g.cancelled,
        "status": g.status,
        "attempts": g.attempts,
        "cache": g.cache or "miss",  # hit | semantic-hit: answered by the response cache
    }
