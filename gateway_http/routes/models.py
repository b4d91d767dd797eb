"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import models_pb2, models_pb2_grpc

from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.transcode.models import model_json, models_json
from gateway_http.wire import call_metadata, send_json


class ListModels(Endpoint):
    def __init__(self, probe: AuthProbe, stub: models_pb2_grpc.ModelServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        wanted = [
            name
            for value in parse_qs(scope.get("query_string", b"").decode("latin-1")).get(
                "supported_parameters", []
            )
            for name in value.split(",")
            if name
        ]
        response = await self._stub.List(
            models_pb2.ListModelsRequest(supported_parameters=wanted),
            metadata=call_metadata(scope, rid),
        )
        await send_json(send, 200, orjson.dumps(models_json(response)), rid)


class GetModel(Endpoint):
    def __init__(self, probe: AuthProbe, stub: models_pb2_grpc.ModelServiceAsyncStub) -> None:
        super().__init__(probe)
        self._stub = stub

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        model_id: str = scope["path_params"]["model_id"]
        response = await self._stub.Get(
            models_pb2.GetModelRequest(id=model_id), metadata=call_metadata(scope, rid)
        )
        await send_json(send, 200, orjson.dumps(model_json(response)), rid)
