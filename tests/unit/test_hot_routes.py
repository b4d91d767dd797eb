"""gateway_http/app.py: the exact-path front for POST routes serves what Starlette would."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from starlette.routing import Match, Route

from gateway_http.app import HotRoutes, create_app


def _app() -> HotRoutes:
    async def build() -> HotRoutes:
        # A channel to nowhere: building stubs does not connect.
        channel = grpc.aio.insecure_channel("unix-abstract:switchyard-test-nowhere")
        try:
            return create_app(channel)
        finally:
            await channel.close(None)

    return asyncio.run(build())


def test_every_hot_path_is_the_same_endpoint_starlette_routes_post_to() -> None:
    app = _app()
    assert set(app._routes) == {
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/rerank",
        "/rerank",
        "/v1/admin/reload",
    }
    for path, endpoint in app._routes.items():
        scope: dict[str, Any] = {"type": "http", "method": "POST", "path": path, "root_path": ""}
        matches = [
            r for r in app.app.routes if isinstance(r, Route) and r.matches(scope)[0] == Match.FULL
        ]
        assert [r.endpoint for r in matches] == [endpoint], path


def test_other_methods_and_paths_fall_through_to_starlette() -> None:
    app = _app()
    seen: list[str] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        seen.append(f"{scope['method']} {scope['path']}")

    app.app = fallback  # type: ignore[assignment]

    async def call(method: str, path: str) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        await app({"type": "http", "method": method, "path": path}, receive, send)

    for method, path in [("GET", "/v1/chat/completions"), ("POST", "/v1/chat/completions/")]:
        asyncio.run(call(method, path))
    assert seen == ["GET /v1/chat/completions", "POST /v1/chat/completions/"]
