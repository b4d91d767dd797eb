"""The console's reads: GET /v1/usage, /v1/generations and /v1/endpoints.

Any key may call them; the service narrows a key that is not an admin's to its own
usage (service/servicers/usage.py), so there is nothing to authorise here.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import usage_pb2, usage_pb2_grpc

from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.transcode import usage as transcode
from gateway_http.wire import call_metadata, send_json


class Usage(Endpoint):
    def __init__(self, probe: AuthProbe, stub: usage_pb2_grpc.UsageServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        metadata = call_metadata(scope, rid)
        params = transcode.query(scope)
        path = scope["path"]
        if path.endswith("/generations"):
            listed = await self._stub.ListGenerations(
                transcode.generations_request(params), metadata=metadata
            )
            body = transcode.generations_json(listed)
        elif path.endswith("/endpoints"):
            endpoints = await self._stub.ListEndpoints(
                usage_pb2.ListEndpointsRequest(), metadata=metadata
            )
            body = transcode.endpoints_json(endpoints)
        else:
            report = await self._stub.GetUsage(transcode.usage_request(params), metadata=metadata)
            body = transcode.usage_json(report)
        await send_json(send, 200, orjson.dumps(body), rid)
