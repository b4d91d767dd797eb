"""`switchyard.v1.AdminService` (admin keys only) and `AccountService` (any key, about itself)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from switchyard.v1 import admin_pb2, admin_pb2_grpc

from service import errors
from service.accounting.backends import KeyBackend
from service.accounting.gate import Accounting
from service.accounting.periods import RESETS
from service.cache import ResponseCache
from service.pipeline import CallContext, Pipeline
from service.servicers.accounting_proto import generation_to_proto, rate_limits_to_proto
from service.servicers.base import Context, abort, begin
from service.store.keys import POLICY_FIELDS, KeyPolicy, KeyRecord

_OPTIONAL = ("credit_limit", "rpm", "tpm", "max_concurrent", "expires_at", "limit_reset")


def policy_from_proto(policy: admin_pb2.KeyPolicy) -> dict[str, Any]:
    """Every policy field, as the store takes it (None = no limit)."""
    has: Any = policy.HasField
    values: dict[str, Any] = {
        name: getattr(policy, name) if has(name) else None for name in _OPTIONAL
    }
    for name in ("credit_limit", "expires_at"):
        if values[name] is not None and not math.isfinite(values[name]):
            raise errors.invalid_request(f"'{name}' must be a finite number.", name)
    if values["credit_limit"] is not None and values["credit_limit"] < 0:
        raise errors.invalid_request("'credit_limit' cannot be negative.", "credit_limit")
    for name in ("rpm", "tpm", "max_concurrent"):
        if values[name] is not None and values[name] < 1:
            raise errors.invalid_request(f"'{name}' must be at least 1.", name)
    reset = values["limit_reset"]
    if reset is not None and reset not in RESETS:
        raise errors.invalid_request(
            f"'limit_reset' must be one of {', '.join(RESETS)} (or null).", "limit_reset"
        )
    values["allowed_models"] = tuple(policy.allowed_models) or None
    values["disabled"] = policy.disabled
    values["is_admin"] = policy.is_admin
    return values


def policy_to_proto(policy: KeyPolicy, out: admin_pb2.KeyPolicy) -> None:
    for name in _OPTIONAL:
        value = getattr(policy, name)
        if value is not None:
            setattr(out, name, value)
    out.allowed_models.extend(policy.allowed_models or ())
    out.disabled = policy.disabled
    out.is_admin = policy.is_admin


class _Keys:
    """What both services share: how a stored key is shown."""

    def __init__(
        self,
        pipeline: Pipeline,
        keys: KeyBackend,
        accounting: Accounting,
        cache: ResponseCache | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._keys = keys
        self._accounting = accounting
        self._cache = cache

    async def _show(self, record: KeyRecord) -> admin_pb2.ApiKey:
        spend = await self._accounting.credits.usage(record)
        out = admin_pb2.ApiKey(
            id=record.id,
            name=record.name,
            display=record.display,
            created_at=record.created_at,
            usage=spend.total,
            usage_daily=spend.daily,
            usage_weekly=spend.weekly,
            usage_monthly=spend.monthly,
            revoked=record.revoked_at is not None,
        )
        policy_to_proto(record.policy, out.policy)
        state = await self._accounting.limiter.state(record.id, record.policy)
        rate_limits_to_proto(state, out.rate_limits)
        return out

    def _admin(self, context: Context) -> CallContext:
        call = begin(self._pipeline, context)
        if not call.key.policy.is_admin:
            raise errors.GatewayError(
                "KEY_NOT_ALLOWED", "This operation needs an admin key.", metadata={}
            )
        return call

    def _get(self, key_id: str) -> KeyRecord:
        record = self._keys.get(key_id)
        if record is None:
            raise errors.GatewayError("KEY_NOT_FOUND", f"No key with id '{key_id}'.", param="id")
        return record


# Reloads the config file: (providers, models, providers rebuilt); raises GatewayError.
Reload = Callable[[], Awaitable[tuple[int, int, list[str]]]]


class AdminServicer(_Keys, admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        pipeline: Pipeline,
        keys: KeyBackend,
        accounting: Accounting,
        reload: Reload | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        super().__init__(pipeline, keys, accounting, cache)
        self._reload = reload

    async def ReloadConfig(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.ReloadConfigRequest, context: Context
    ) -> admin_pb2.ReloadConfigResponse:
        try:
            self._admin(context)
            if self._reload is None:
                raise errors.invalid_request("This gateway has no config to reload.")
            providers, models, rebuilt = await self._reload()
            return admin_pb2.ReloadConfigResponse(
                providers=providers, models=models, rebuilt_providers=rebuilt
            )
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.ReloadConfig")

    async def CreateKey(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.CreateKeyRequest, context: Context
    ) -> admin_pb2.CreatedKey:
        try:
            self._admin(context)
            if not request.name:
                raise errors.invalid_request("'name' is required.", "name")
            policy = KeyPolicy(**policy_from_proto(request.policy))
            record, secret = await asyncio.to_thread(self._keys.create, request.name, policy)
            return admin_pb2.CreatedKey(key=await self._show(record), secret=secret)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.CreateKey")

    async def ListKeys(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.ListKeysRequest, context: Context
    ) -> admin_pb2.ListKeysResponse:
        try:
            self._admin(context)
            records = await asyncio.to_thread(self._keys.list)
            return admin_pb2.ListKeysResponse(keys=[await self._show(r) for r in records])
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.ListKeys")

    async def GetKey(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.GetKeyRequest, context: Context
    ) -> admin_pb2.ApiKey:
        try:
            self._admin(context)
            return await self._show(self._get(request.id))
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.GetKey")

    async def UpdateKey(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.UpdateKeyRequest, context: Context
    ) -> admin_pb2.ApiKey:
        try:
            self._admin(context)
            self._get(request.id)
            unknown = set(request.update_fields) - set(POLICY_FIELDS)
            if unknown:
                raise errors.invalid_request(
                    f"Unknown key fields: {', '.join(sorted(unknown))}.", "update_fields"
                )
            values = policy_from_proto(request.policy)
            changes = {name: values[name] for name in request.update_fields}
            if request.HasField("name"):
                changes["name"] = request.name
            record = await asyncio.to_thread(self._keys.update, request.id, changes)
            assert record is not None
            return await self._show(record)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.UpdateKey")

    async def DeleteKey(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.DeleteKeyRequest, context: Context
    ) -> admin_pb2.DeleteKeyResponse:
        try:
            self._admin(context)
            self._get(request.id)
            deleted = await asyncio.to_thread(self._keys.delete, request.id)
            return admin_pb2.DeleteKeyResponse(deleted=deleted)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.DeleteKey")

    async def AddCredits(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.AddCreditsRequest, context: Context
    ) -> admin_pb2.ApiKey:
        try:
            self._admin(context)
            self._get(request.id)
            if not (math.isfinite(request.amount) and request.amount > 0):
                raise errors.invalid_request("'amount' must be a positive number.", "amount")
            record = await asyncio.to_thread(self._keys.add_credits, request.id, request.amount)
            assert record is not None
            return await self._show(record)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.AddCredits")

    async def PurgeCache(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.PurgeCacheRequest, context: Context
    ) -> admin_pb2.PurgeCacheResponse:
        try:
            self._admin(context)
            if request.key_id:
                self._get(request.key_id)
            purged = 0
            if self._cache is not None:
                purged = await self._cache.purge(request.model or None, request.key_id or None)
            return admin_pb2.PurgeCacheResponse(purged=purged)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AdminService.PurgeCache")


class AccountServicer(_Keys, admin_pb2_grpc.AccountServiceServicer):
    async def GetOwnKey(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.GetOwnKeyRequest, context: Context
    ) -> admin_pb2.ApiKey:
        try:
            call = begin(self._pipeline, context)
            return await self._show(call.key)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AccountService.GetOwnKey")

    async def GetGeneration(  # noqa: N802 - gRPC method name
        self, request: admin_pb2.GetGenerationRequest, context: Context
    ) -> admin_pb2.Generation:
        try:
            call = begin(self._pipeline, context)
            found = await asyncio.to_thread(self._accounting.ledger.get, request.id)
            if found is None or (found.key_id != call.key.id and not call.key.policy.is_admin):
                raise errors.GatewayError(  # another key's generation does not exist for you
                    "GENERATION_NOT_FOUND", f"No generation with id '{request.id}'.", param="id"
                )
            return generation_to_proto(found)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "AccountService.GetGeneration")
