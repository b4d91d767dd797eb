"""What operators and orchestrators ask the gateway: `/metrics` (admin key), `/readyz` and
`POST /v1/admin/reload` (admin key).

`/healthz` (app.py) says the process is alive; `/readyz` says whether it should be sent
traffic: 503 while it starts, loads its local models or drains for a shutdown, with the
reason in the body. Both are cheap and never touch a key. `/metrics` is the Prometheus
exposition, behind an admin key (`Authorization: Bearer <admin key>`): it names the
models, providers and endpoints the gateway serves.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.types import Receive, Scope, Send
from switchyard.v1 import admin_pb2, admin_pb2_grpc

from gateway_http.errors import HttpError
from gateway_http.routes.base import AuthProbe, Endpoint
from gateway_http.wire import call_metadata, request_id, send_error, send_json

# The exposition and its content type.
MetricsText = Callable[[], tuple[bytes, str]]
# None when ready, else why not ("starting", "loading models", "draining").
Readiness = Callable[[], str | None]

NO_METRICS = HttpError(404, "not_found_error", "Metrics are off (config: metrics.enabled).")


class MetricsRoute:
    def __init__(self, probe: AuthProbe, render: MetricsText | None) -> None:
        self._probe = probe
        self._render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        refused = await self._probe.check(scope, rid, admin=True)
        if refused is not None:
            await send_error(send, refused, rid)
            return
        if self._render is None:
            await send_error(send, NO_METRICS, rid)
            return
        body, content_type = self._render()
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class ReadyRoute:
    def __init__(self, ready: Readiness | None) -> None:
        self._ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        why = self._ready() if self._ready is not None else None
        status, state = (200, "ready") if why is None else (503, why)
        await send_json(send, status, orjson.dumps({"status": state}), request_id(scope))


class Reload(Endpoint):
    """`POST /v1/admin/reload`: AdminService.ReloadConfig (what SIGHUP does). A file that
    does not load is a 400 naming the line; the running config stays."""

    admin_only = True

    def __init__(self, probe: AuthProbe, admin: admin_pb2_grpc.AdminServiceAsyncStub) -> None:
        super().__init__(probe)
        self._admin = admin

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        answer = await self._admin.ReloadConfig(
            admin_pb2.ReloadConfigRequest(), metadata=call_metadata(scope, rid)
        )
        body = {
            "status": "reloaded",
            "providers": answer.providers,
            "models": answer.models,
            "rebuilt_providers": list(answer.rebuilt_providers),
        }
        await send_json(send, 200, orjson.dumps(body), rid)
