"""The Gemini adapter through a real gateway, against the mock Gemini API.

Attachment fetching is tested end to end here: refusals of loopback, private and
link-local URLs come back as a 400 naming the image_url; fetching is allowed only where
the operator's config allows it, and then only from the loopback image server below.
No test sends traffic to a non-loopback address: those URLs are IP literals, refused
before any connection.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientConnectionResetError, web

from service.config import ProviderConfig
from service.domain.chat import ChatRequest, Message
from service.providers.base import Attempt
from service.providers.errors import FailureKind, ProviderError
from service.providers.gemini import GeminiProvider
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import RawResponse, request
from tests.fixtures.mock_gemini import MockGemini

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
IMAGE_PARAM = "messages[0].content[1].image_url.url"
BIG = 64 * 1024 * 1024  # far beyond what socket buffers can absorb
LIMIT = 65536


class ImageServer:
    """A loopback server of attachments (and traps), in a thread of its own."""

    def __init__(self) -> None:
        self.written: dict[str, int] = {}
        self.done: dict[str, threading.Event] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> ImageServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/cat.png", self._png)
        app.router.add_get("/page.html", self._html)
        app.router.add_get("/big.png", self._big)
        app.router.add_get("/big-chunked.png", self._big)
        app.router.add_get("/to-private", self._redirect("http://10.0.0.1/cat.png"))
        app.router.add_get("/to-metadata", self._redirect("http://169.254.169.254/latest/"))
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    @staticmethod
    async def _png(_: web.Request) -> web.StreamResponse:
        return web.Response(body=PNG, content_type="image/png")

    @staticmethod
    async def _html(_: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>not an image</html>", content_type="text/html")

    @staticmethod
    def _redirect(location: str) -> Any:
        async def handler(_: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(location)

        return handler

    async def _big(self, request: web.Request) -> web.StreamResponse:
        done = self.done[request.path] = threading.Event()
        self.written[request.path] = 0
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        if request.path == "/big.png":
            resp.content_length = BIG
        try:
            await resp.prepare(request)
            while self.written[request.path] < BIG:
                await resp.write(b"\0" * 65536)
                self.written[request.path] += 65536
        except (ConnectionError, ClientConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            done.set()
        return resp


@pytest.fixture(scope="module")
def mock() -> Iterator[MockGemini]:
    server = MockGemini().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    server = ImageServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    mock: MockGemini, images: ImageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    up = f"kind: gemini, base_url: '{mock.base_url}', api_key: upstream-secret"
    models = ["echo", "blocked", "fail400", "fail500", "tools"]
    lines = [
        "providers:",
        f"  gem: {{{up}, timeout: 20}}",
        f"  gem2: {{{up}}}",
        f"  open: {{{up}, fetch: {{allow_private_networks: true, max_bytes: {LIMIT}}}}}",
        f"  narrow: {{{up}, fetch: {{allow_networks: ['127.0.0.1/32']}}}}",
        f"  badkey: {{kind: gemini, base_url: '{mock.base_url}', api_key: wrong-key}}",
        "models:",
        *(f"  - {{id: gem/{m}, endpoints: [{{provider: gem, model: {m}}}]}}" for m in models),
        "  - {id: open/echo, endpoints: [{provider: open, model: echo}]}",
        "  - {id: narrow/echo, endpoints: [{provider: narrow, model: echo}]}",
        "  - {id: badkey/echo, endpoints: [{provider: badkey, model: echo}]}",
        # Another endpoint for streams: the router's circuit breaker opens after failures.
        "  - {id: gem/fail500-stream, endpoints: [{provider: gem2, model: fail500}]}",
        "  - {id: gem/embed, capabilities: [embeddings],"
        " endpoints: [{provider: gem, model: embed}]}",
    ]
    config: Path = tmp_path_factory.mktemp("gemini") / "switchyard.yaml"
    config.write_text("\n".join(lines) + "\n")
    gw = start_gateway(config, tmp_path_factory.mktemp("gemini-data"))
    yield gw
    gw.stop()


def post(gateway: Gateway, path: str, body: dict[str, Any]) -> RawResponse:
    headers = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}
    return request("POST", gateway.base_url + path, body, headers)


def with_image(model: str, url: str, stream: bool = False) -> dict[str, Any]:
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}


def error_of(raw: RawResponse, status: int) -> dict[str, Any]:
    assert raw.status == status, raw.body
    error: dict[str, Any] = raw.json()["error"]
    return error


def generate_calls(mock: MockGemini) -> list[Any]:
    return [r for r in mock.requests if "GenerateContent" in r.path or "generateContent" in r.path]


# --- attachment URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/cat.png",
        "http://localhost:{port}/cat.png",
        "http://10.0.0.1/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/cat.png",
        "http://192.168.1.1/cat.png",
        "file:///etc/passwd",
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_non_public_image_urls_are_refused(
    gateway: Gateway, mock: MockGemini, images: ImageServer, url: str, stream: bool
) -> None:
    mock.clear()
    raw = post(
        gateway, "/chat/completions", with_image("gem/echo", url.format(port=images.port), stream)
    )
    error = error_of(raw, 400)
    assert error["type"] == "invalid_request_error" and error["param"] == IMAGE_PARAM
    assert IMAGE_PARAM in error["message"]
    assert generate_calls(mock) == []  # refused before the upstream was called


def test_allowed_when_the_operator_allows_private_networks(
    gateway: Gateway, mock: MockGemini, images: ImageServer
) -> None:
    mock.clear()
    raw = post(gateway, "/chat/completions", with_image("open/echo", images.url("/cat.png")))
    assert raw.status == 200, raw.body
    assert raw.json()["choices"][0]["message"]["content"] == "echo: describe [images: 1]"
    (sent,) = generate_calls(mock)
    assert sent.body["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}
    }


@pytest.mark.parametrize("path", ["/big.png", "/big-chunked.png"])
def test_oversized_image_is_refused_without_being_read_whole(
    gateway: Gateway, images: ImageServer, path: str
) -> None:
    raw = post(gateway, "/chat/completions", with_image("open/echo", images.url(path)))
    error = error_of(raw, 400)
    assert error["param"] == IMAGE_PARAM and str(LIMIT) in error["message"]
    # The server saw the connection dropped long before the end of the body.
    assert images.done[path].wait(10)
    assert images.written[path] < BIG // 4


def test_wrong_content_type_is_refused(gateway: Gateway, images: ImageServer) -> None:
    raw = post(gateway, "/chat/completions", with_image("open/echo", images.url("/page.html")))
    error = error_of(raw, 400)
    assert error["param"] == IMAGE_PARAM and "text/html" in error["message"]


@pytest.mark.parametrize(
    ("path", "address"), [("/to-private", "10.0.0.1"), ("/to-metadata", "169.254.169.254")]
)
def test_redirect_to_a_private_address_is_refused(
    gateway: Gateway, images: ImageServer, path: str, address: str
) -> None:
    # `narrow` allows 127.0.0.1 only: the first hop is fetched, the redirect is refused.
    assert (
        post(gateway, "/chat/completions", with_image("narrow/echo", images.url("/cat.png"))).status
        == 200
    )
    raw = post(gateway, "/chat/completions", with_image("narrow/echo", images.url(path)))
    error = error_of(raw, 400)
    assert error["param"] == IMAGE_PARAM and address in error["message"]


# --- upstream behaviour and errors ----------------------------------------------------


def test_wire_format(gateway: Gateway, mock: MockGemini) -> None:
    mock.clear()
    hello = [{"role": "user", "content": "hello"}]
    assert (
        post(gateway, "/chat/completions", {"model": "gem/echo", "messages": hello}).status == 200
    )
    raw = post(
        gateway, "/chat/completions", {"model": "gem/echo", "messages": hello, "stream": True}
    )
    assert raw.status == 200
    plain, streamed = generate_calls(mock)
    assert plain.path == "/v1beta/models/echo:generateContent" and plain.query == {}
    assert streamed.path == "/v1beta/models/echo:streamGenerateContent"
    assert streamed.query == {"alt": "sse"}
    assert plain.headers["x-goog-api-key"] == "upstream-secret"
    assert "authorization" not in plain.headers


def test_tool_results_round_trip(gateway: Gateway, mock: MockGemini) -> None:
    mock.clear()
    call = {
        "id": "call_x1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_x1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    raw = post(gateway, "/chat/completions", {"model": "gem/echo", "messages": messages})
    assert raw.status == 200, raw.body
    assert raw.json()["choices"][0]["message"]["content"] == "echo: thanks"
    (sent,) = generate_calls(mock)
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["contents"][1:3] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {
                        "name": "get_weather",
                        "args": {"city": "Paris"},
                        "id": "call_x1",
                    }
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"content": "sunny"},
                        "id": "call_x1",
                    }
                }
            ],
        },
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_safety_block_is_a_clear_error(gateway: Gateway, stream: bool) -> None:
    body = {
        "model": "gem/blocked",
        "stream": stream,
        "messages": [{"role": "user", "content": "x"}],
    }
    error = error_of(post(gateway, "/chat/completions", body), 400)
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert "blocked the prompt" in error["message"] and "SAFETY" in error["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_a_502(gateway: Gateway, stream: bool) -> None:
    body = {
        "model": "gem/fail500-stream" if stream else "gem/fail500",
        "stream": stream,
        "messages": [{"role": "user", "content": "x"}],
    }
    error = error_of(post(gateway, "/chat/completions", body), 502)
    assert error["type"] == "upstream_error" and "INTERNAL" in error["message"]


def test_upstream_400_is_the_clients_400(gateway: Gateway) -> None:
    body = {"model": "gem/fail400", "messages": [{"role": "user", "content": "x"}]}
    assert (
        error_of(post(gateway, "/chat/completions", body), 400)["type"] == "invalid_request_error"
    )


def test_invalid_upstream_key_is_not_blamed_on_the_client(gateway: Gateway) -> None:
    """Gemini answers a bad key with HTTP 400 (ErrorInfo API_KEY_INVALID): the gateway's
    key, so a 502, and the status reported is the one Gemini answered, as the message says."""
    body = {"model": "badkey/echo", "messages": [{"role": "user", "content": "x"}]}
    error = error_of(post(gateway, "/chat/completions", body), 502)
    assert error["type"] == "upstream_error"
    assert "API key not valid" in error["message"] and "HTTP 400" in error["message"]
    assert error["metadata"]["upstream_status"] == "400"
    assert error["metadata"]["provider_name"] == "badkey"


def test_embeddings(gateway: Gateway, mock: MockGemini) -> None:
    mock.clear()
    raw = post(gateway, "/embeddings", {"model": "gem/embed", "input": ["a", "b"], "dimensions": 4})
    assert raw.status == 200, raw.body
    assert [len(d["embedding"]) for d in raw.json()["data"]] == [4, 4]
    (sent,) = mock.requests
    assert sent.path == "/v1beta/models/embed:batchEmbedContents" and sent.body is not None
    assert [r["outputDimensionality"] for r in sent.body["requests"]] == [4, 4]
    error = error_of(
        post(gateway, "/embeddings", {"model": "gem/embed", "input": [[1, 2, 3]]}), 400
    )
    assert error["param"] == "input"


# --- the adapter in process: stream closing and deadlines -----------------------------


def provider(mock: MockGemini) -> GeminiProvider:
    config = ProviderConfig(
        name="gem", kind="gemini", base_url=mock.base_url, api_key="upstream-secret"
    )
    return GeminiProvider(config)


HELLO = ChatRequest(model="gem/slow", messages=(Message(role="user", content="hi"),))


def test_closing_the_stream_closes_the_upstream_response(mock: MockGemini) -> None:
    mock.clear()

    async def scenario() -> None:
        adapter = provider(mock)
        deltas = adapter.stream(HELLO, Attempt("slow"))
        assert (await anext(deltas)).choices[0].content == "tick "
        await deltas.aclose()  # type: ignore[attr-defined]
        await adapter.aclose()

    asyncio.run(scenario())
    assert mock.wait_for_disconnect(5)


def test_the_deadline_bounds_the_upstream_call(mock: MockGemini) -> None:
    async def scenario() -> float:
        adapter = provider(mock)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(ProviderError) as caught:
                async for _ in adapter.stream(HELLO, Attempt("slow", deadline=started + 0.3)):
                    pass
            assert caught.value.kind is FailureKind.TIMEOUT
            return loop.time() - started
        finally:
            await adapter.aclose()

    assert asyncio.run(scenario()) < 2.0


def test_rerank_is_unsupported(mock: MockGemini) -> None:
    from service.domain.embeddings import RerankRequest

    async def scenario() -> None:
        adapter = provider(mock)
        with pytest.raises(ProviderError) as caught:
            await adapter.rerank(
                RerankRequest(model="m", query="q", documents=("d",)), Attempt("m")
            )
        assert caught.value.kind is FailureKind.UNSUPPORTED
        await adapter.aclose()

    asyncio.run(scenario())
