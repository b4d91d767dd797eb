"""Requests in and responses out on the raw ASGI interface.

The routes speak ASGI directly (no Request/Response objects on the hot path): bodies
are read with a size cap, JSON is parsed and rendered with orjson, and every response
carries `x-request-id`.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from types import TracebackType
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from gateway_http.errors import HttpError, bad_request

MAX_BODY_BYTES = 32 * 1024 * 1024
# Request ids must be unique, not secret: a PRNG seeded once from the OS is far cheaper
# than uuid4's getrandom() call per request.
_ids = random.Random(os.urandom(32))
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
JSON_HEADERS = [(b"content-type", b"application/json")]


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def cache_mode(scope: Scope) -> str | None:
    """The response-cache mode in `x-switchyard-cache`, if the caller set one (trimmed,
    lower case; the service checks it)."""
    raw = header(scope, b"x-switchyard-cache")
    return None if raw is None else raw.decode("latin-1").strip().lower()


def request_id(scope: Scope) -> str:
    """The caller's `x-request-id` when it is sane, else a fresh one."""
    given = header(scope, b"x-request-id")
    if given is not None and _REQUEST_ID.match(given):
        return given.decode("ascii")
    return f"{_ids.getrandbits(128):032x}"


def header_timeout(scope: Scope) -> float | None:
    """The request deadline in `x-switchyard-timeout` (seconds), if the caller set one."""
    raw = header(scope, b"x-switchyard-timeout")
    if raw is None:
        return None
    try:
        seconds = float(raw.decode("latin-1"))
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86_400:
        raise bad_request(
            "'x-switchyard-timeout' must be a number of seconds above 0.", "x-switchyard-timeout"
        )
    return seconds


def call_metadata(scope: Scope, rid: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata for the service call: the caller's credentials, our request id, and
    the caller's W3C trace context (`traceparent`, `tracestate`) when it sent one."""
    metadata: tuple[tuple[str, str], ...] = (("x-request-id", rid),)
    authorized = False
    for key, value in scope["headers"]:
        if key == b"authorization":
            if not authorized:  # the first one counts, as everywhere else
                authorized = True
                metadata = (("authorization", value.decode("latin-1")), *metadata)
        elif key == b"traceparent" or key == b"tracestate":
            metadata += ((key.decode(), value.decode("latin-1")),)
    return metadata


async def read_json(receive: Receive) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HttpError(
                413, "invalid_request_error", f"The body exceeds {MAX_BODY_BYTES} bytes."
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The body is not valid JSON: {exc.msg} (at {exc.pos}).") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return body


def rate_limit_headers(limits: Any) -> list[tuple[bytes, bytes]]:
    """OpenAI's x-ratelimit-* headers from a RateLimits message (only the limits set)."""
    out = []
    if limits.HasField("limit_requests"):
        out += [
            (b"x-ratelimit-limit-requests", str(limits.limit_requests).encode()),
            (b"x-ratelimit-remaining-requests", str(limits.remaining_requests).encode()),
            (b"x-ratelimit-reset-requests", f"{limits.reset_requests_s:.3f}s".encode()),
        ]
    if limits.HasField("limit_tokens"):
        out += [
            (b"x-ratelimit-limit-tokens", str(limits.limit_tokens).encode()),
            (b"x-ratelimit-remaining-tokens", str(limits.remaining_tokens).encode()),
            (b"x-ratelimit-reset-tokens", f"{limits.reset_tokens_s:.3f}s".encode()),
        ]
    return out


def served_headers(response: Any, started: float) -> list[tuple[bytes, bytes]]:
    """Who served, the generation to look up, the key's rate limits, and the time spent in
    the gateway itself (not upstream). `response` is a response (or first chunk) message."""
    overhead = max(0.0, (time.perf_counter() - started) * 1000 - response.upstream_ms)
    return [
        (b"x-switchyard-provider", response.provider.encode()),
        (b"x-generation-id", response.id.encode()),
        (b"x-switchyard-overhead-ms", f"{overhead:.3f}".encode()),
        *rate_limit_headers(response.rate_limits),
    ]


def chat_headers(response: Any, started: float) -> list[tuple[bytes, bytes]]:
    """`served_headers`, and the parameters the serving endpoint did not take."""
    headers = served_headers(response, started)
    # Answers of the chat servicer (chat completions, /v1/messages) say whether the
    # response cache gave them; other doors' messages (/v1/responses) have no such field.
    cache = getattr(response, "cache", None)
    if cache is not None:
        headers.append((b"x-switchyard-cache", (cache or "miss").encode()))
    if response.dropped_parameters:
        dropped = ",".join(response.dropped_parameters).encode()
        headers.append((b"x-switchyard-dropped-params", dropped))
    return headers


# What a stream's initial metadata may carry for the HTTP head (servicers/chat.py).
_EARLY_HEADERS = frozenset(
    {
        "x-generation-id",
        "x-switchyard-provider",
        "x-switchyard-dropped-params",
        "x-switchyard-cache",
    }
)


def early_headers(metadata: Any, call_started: float, started: float) -> list[tuple[bytes, bytes]]:
    """The served headers of a stream whose 200 leaves before its first chunk, from the
    call's initial metadata: sent by the service before its first upstream attempt, so
    they name the provider tried first (the chunks' `provider` names the one that
    served), and the overhead is the gateway's time before that attempt."""
    headers = []
    for key, value in metadata:
        if not isinstance(value, str):
            continue
        if key in _EARLY_HEADERS or key.startswith("x-ratelimit-"):
            headers.append((key.encode(), value.encode()))
        elif key == "x-switchyard-overhead-ms":
            try:
                overhead = float(value) + (call_started - started) * 1000
            except ValueError:
                continue
            headers.append((b"x-switchyard-overhead-ms", f"{overhead:.3f}".encode()))
    return headers


async def send_json(
    send: Send,
    status: int,
    payload: bytes,
    rid: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", rid.encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Send, err: HttpError, rid: str) -> None:
    await send_json(send, err.status, err.render(), rid, err.headers())


class ClientWatch:
    """Cancels the current task when the client disconnects, so that the gRPC call it
    is awaiting (and with it the upstream request) is cancelled too.

    At most one watcher task per request, never per chunk. It is never cancelled: once
    the block is left it is disarmed, and it ends by itself when the server completes the
    response (uvicorn then answers `receive()` with `http.disconnect`). A cancelled
    watcher would leave a reference cycle per request (its CancelledError's traceback
    holds its frames), which only a garbage collection pause can free.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[Any] | None = None  # armed while not None
        self._watcher: asyncio.Task[None] | None = None
        self.disconnected = False

    async def __aenter__(self) -> ClientWatch:
        self._task = asyncio.current_task()
        # The watcher is made on the loop's next turn, which comes when this task first
        # waits (for the upstream): off the request's path, measured at ~10 us on a core
        # fresh from idle. A client gone by then is seen at its first `receive()`.
        asyncio.get_running_loop().call_soon(self._start)
        return self

    def _start(self) -> None:
        if self._task is not None:  # still serving: a request answered at once needs none
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message: Message = await self._receive()
            if message["type"] == "http.disconnect":
                task, self._task = self._task, None
                if task is not None:  # still serving: the client has gone
                    self.disconnected = True
                    task.cancel()
                return

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._task = None  # disarmed
        if exc_type is asyncio.CancelledError and self.disconnected:
            # Swallow only our own cancellation, never an outer one (server shutdown).
            current = asyncio.current_task()
            return current is not None and current.uncancel() == 0
        return False
