"""`create_app`: the ASGI application, composed explicitly from its routes.

The app is handed a channel, either a grpc.aio channel to a remote service or the
service's in-process channel; it builds the generated stubs on it and knows nothing
else about the service.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from switchyard.v1 import (
    admin_pb2_grpc,
    chat_pb2_grpc,
    embeddings_pb2_grpc,
    messages_pb2_grpc,
    models_pb2_grpc,
    rerank_pb2_grpc,
    responses_pb2_grpc,
    usage_pb2_grpc,
)

from gateway_http.console import Console
from gateway_http.errors import HttpError
from gateway_http.routes.base import AuthProbe, EdgeLog
from gateway_http.routes.cache import PurgeCache
from gateway_http.routes.chat import ChatCompletions
from gateway_http.routes.embeddings import Embeddings
from gateway_http.routes.keys import Account, Key, Keys
from gateway_http.routes.messages import CountTokens, Messages
from gateway_http.routes.models import GetModel, ListModels
from gateway_http.routes.ops import MetricsRoute, MetricsText, Readiness, ReadyRoute, Reload
from gateway_http.routes.rerank import Rerank
from gateway_http.routes.responses import Responses
from gateway_http.routes.usage import Usage
from gateway_http.wire import request_id


async def healthz(request: Request) -> Response:
    """Liveness. It carries `x-request-id` like every other answer, so that a probe's
    request can be found in the logs as any other can."""
    return Response(
        b'{"status":"ok"}',
        media_type="application/json",
        headers={"x-request-id": request_id(request.scope)},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 and other routing errors, in the contract's error shape (and, when the app
    has an edge log, counted and logged as requests answered by the HTTP layer alone)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        err = HttpError(404, "not_found_error", f"No route for {request.url.path}.")
    elif status == 405:
        err = HttpError(405, "invalid_request_error", f"{request.method} is not allowed here.")
    else:
        err = HttpError(status, "invalid_request_error", str(getattr(exc, "detail", "")))
    rid = request_id(request.scope)
    edge: EdgeLog | None = request.app.state.edge
    if edge is not None:
        edge(rid, request.method, request.url.path, err.status, 0.0)
    return Response(
        orjson.dumps(err.body()),
        status_code=err.status,
        media_type="application/json",
        headers={"x-request-id": rid},
    )


class HotRoutes:
    """Exact-path dispatch of the API's POST-only routes, in front of Starlette.

    These endpoints (chat, embeddings, rerank) are raw ASGI apps that render their own
    errors (routes/base.py), so they need neither Starlette's route matching nor its two
    error middlewares, which also wrap `send` for every SSE chunk. They are taken from
    the app's own route table: every fixed path whose only method is POST and whose
    endpoint is an ASGI app. Every other request goes through Starlette.
    """

    def __init__(self, app: Starlette) -> None:
        self._routes: dict[str, ASGIApp] = {
            route.path: route.app
            for route in app.routes
            if isinstance(route, Route)
            and route.app is route.endpoint  # a raw ASGI app, not a Request function
            and route.methods == {"POST"}
            and "{" not in route.path
        }
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    channel: Any,
    *,
    stream_hold: float = 10.0,
    keepalive: float = 10.0,
    metrics: MetricsText | None = None,
    ready: Readiness | None = None,
    edge: EdgeLog | None = None,
) -> HotRoutes:
    """The app over `channel`. The launcher hands in what it observes the process with:
    `metrics` renders `/metrics`, `ready` answers `/readyz`, `edge` counts and logs the
    requests this layer answers by itself (every other request is observed by the
    service)."""
    chat = chat_pb2_grpc.ChatServiceStub(channel)
    models = models_pb2_grpc.ModelServiceStub(channel)
    account_stub = admin_pb2_grpc.AccountServiceStub(channel)
    probe = AuthProbe(models, account_stub, edge)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    key = Key(probe, admin)
    account = Account(probe, account_stub)
    rerank = Rerank(probe, rerank_pb2_grpc.RerankServiceStub(channel))
    usage = Usage(probe, usage_pb2_grpc.UsageServiceStub(channel))
    console = Console()
    messages = messages_pb2_grpc.MessagesServiceStub(channel)
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/ui", console, methods=["GET"]),
        Route("/ui/{file:path}", console, methods=["GET"]),
        Route("/readyz", ReadyRoute(ready), methods=["GET"]),
        Route("/metrics", MetricsRoute(probe, metrics), methods=["GET"]),
        Route("/v1/models", ListModels(probe, models), methods=["GET"]),
        Route("/v1/models/{model_id:path}", GetModel(probe, models), methods=["GET"]),
        Route(
            "/v1/chat/completions",
            ChatCompletions(probe, chat, hold=stream_hold, keepalive=keepalive),
            methods=["POST"],
        ),
        Route(
            "/v1/messages",
            Messages(probe, messages, hold=stream_hold, keepalive=keepalive),
            methods=["POST"],
        ),
        Route("/v1/messages/count_tokens", CountTokens(probe, messages), methods=["POST"]),
        Route(
            "/v1/responses",
            Responses(
                probe,
                responses_pb2_grpc.ResponsesServiceStub(channel),
                hold=stream_hold,
                keepalive=keepalive,
            ),
            methods=["POST"],
        ),
        Route(
            "/v1/embeddings",
            Embeddings(probe, embeddings_pb2_grpc.EmbeddingServiceStub(channel)),
            methods=["POST"],
        ),
        Route("/v1/rerank", rerank, methods=["POST"]),
        Route("/rerank", rerank, methods=["POST"]),
        Route("/v1/keys", Keys(probe, admin), methods=["GET", "POST"]),
        Route("/v1/keys/{key_id}", key, methods=["GET", "PATCH", "DELETE"]),
        Route("/v1/keys/{key_id}/credits", key, methods=["POST"]),
        Route("/v1/admin/reload", Reload(probe, admin), methods=["POST"]),
        Route("/v1/key", account, methods=["GET"]),
        Route("/v1/credits", account, methods=["GET"]),
        Route("/v1/generation", account, methods=["GET"]),
        Route("/v1/usage", usage, methods=["GET"]),
        Route("/v1/generations", usage, methods=["GET"]),
        Route("/v1/endpoints", usage, methods=["GET"]),
        Route("/v1/cache", PurgeCache(probe, admin), methods=["DELETE"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    app.state.edge = edge
    return HotRoutes(app)
