"""DELETE /v1/cache (admin keys only): purge the response cache, or part of it
(`?model=` and/or `?key_id=`)."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import admin_pb2, admin_pb2_grpc

from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.wire import call_metadata, send_json


class PurgeCache(Endpoint):
    admin_only = True

    def __init__(self, probe: AuthProbe, stub: admin_pb2_grpc.AdminServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        request = admin_pb2.PurgeCacheRequest(
            model=(query.get("model") or [""])[0], key_id=(query.get("key_id") or [""])[0]
        )
        purged = await self._stub.PurgeCache(request, metadata=call_metadata(scope, rid))
        await send_json(send, 200, orjson.dumps({"purged": purged.purged}), rid)
