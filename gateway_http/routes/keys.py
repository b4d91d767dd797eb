"""Key administration (/v1/keys, admin keys only), and a key's own view of itself
(/v1/key, /v1/credits, /v1/generation)."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import admin_pb2, admin_pb2_grpc

from gateway_http.errors import bad_request
from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.transcode import keys as transcode
from gateway_http.wire import call_metadata, read_json, send_json


class Keys(Endpoint):
    """GET /v1/keys (list), POST /v1/keys (create)."""

    admin_only = True

    def __init__(self, probe: AuthProbe, stub: admin_pb2_grpc.AdminServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        metadata = call_metadata(scope, rid)
        if scope["method"] == "GET":
            listed = await self._stub.ListKeys(admin_pb2.ListKeysRequest(), metadata=metadata)
            listing = {"data": [transcode.key_json(k) for k in listed.keys]}
            await send_json(send, 200, orjson.dumps(listing), rid)
            return
        request = transcode.create_request(await read_json(receive))
        created = await self._stub.CreateKey(request, metadata=metadata)
        body = {"data": transcode.key_json(created.key), "key": created.secret}
        await send_json(send, 201, orjson.dumps(body), rid)


class Key(Endpoint):
    """GET, PATCH, DELETE /v1/keys/{id}; POST /v1/keys/{id}/credits."""

    admin_only = True

    def __init__(self, probe: AuthProbe, stub: admin_pb2_grpc.AdminServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        metadata = call_metadata(scope, rid)
        key_id: str = scope["path_params"]["key_id"]
        method = scope["method"]
        if scope["path"].endswith("/credits"):
            request = transcode.credits_request(key_id, await read_json(receive))
            key = await self._stub.AddCredits(request, metadata=metadata)
        elif method == "GET":
            key = await self._stub.GetKey(admin_pb2.GetKeyRequest(id=key_id), metadata=metadata)
        elif method == "PATCH":
            update = transcode.update_request(key_id, await read_json(receive))
            key = await self._stub.UpdateKey(update, metadata=metadata)
        else:
            deleted = await self._stub.DeleteKey(
                admin_pb2.DeleteKeyRequest(id=key_id), metadata=metadata
            )
            await send_json(send, 200, orjson.dumps({"deleted": deleted.deleted}), rid)
            return
        await send_json(send, 200, orjson.dumps({"data": transcode.key_json(key)}), rid)


class Account(Endpoint):
    """GET /v1/key, /v1/credits and /v1/generation?id=, for the calling key."""

    def __init__(self, probe: AuthProbe, stub: admin_pb2_grpc.AccountServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        metadata = call_metadata(scope, rid)
        path = scope["path"]
        if path.endswith("/generation"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            ids = query.get("id")
            if not ids:
                raise bad_request("'id' is required.", "id")
            generation = await self._stub.GetGeneration(
                admin_pb2.GetGenerationRequest(id=ids[0]), metadata=metadata
            )
            await send_json(send, 200, orjson.dumps(transcode.generation_json(generation)), rid)
            return
        key = await self._stub.GetOwnKey(admin_pb2.GetOwnKeyRequest(), metadata=metadata)
        body = (
            transcode.credits_json(key)
            if path.endswith("/credits")
            else {"data": transcode.key_json(key)}
        )
        await send_json(send, 200, orjson.dumps(body), rid)
