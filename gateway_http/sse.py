"""Server-sent events for streams (DESIGN §5): chat chunks, and any front door's events.

The 200 is held back until the first chunk arrives, so a failure before any output
still gets its true status. If the first chunk takes longer than `hold` seconds, the
200 goes out and `: PROCESSING` comments keep the connection alive until it comes.
After the 200, a failure is sent as one chunk with a top-level `error` and
`finish_reason: "error"`, and the stream ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import orjson
from starlette.types import Send

from gateway_http.errors import HttpError, from_rpc_error
from gateway_http.wire import chat_headers, early_headers

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": PROCESSING\n\n"
# At the end of the hold, how long to wait for the call's initial metadata: the service
# sends it before its first upstream attempt, so it is there unless admission itself
# (moderation, say) has taken the whole hold.
EARLY_METADATA_WAIT = 0.5


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_frame(err: HttpError, first: Any | None) -> bytes:
    return frame(
        {
            "id": first.id if first is not None else "",
            "object": "chat.completion.chunk",
            "created": first.created if first is not None else int(time.time()),
            "model": first.model if first is not None else "",
            "provider": first.provider if first is not None else "",
            "error": err.body()["error"],
            "choices": [
                {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "error"}
            ],
        }
    )


async def _first_chunk(chunks: AsyncIterator[Any]) -> Any:
    return await anext(chunks)


async def relay(
    send: Send,
    call: Any,
    *,
    rid: str,
    hold: float,
    keepalive: float,
    started: float,
    render: Callable[[Any], bytes],
    fail: Callable[[HttpError, Any], bytes],
    done: bytes,
    ping: bytes,
    head: Callable[[Any, float], list[tuple[bytes, bytes]]] = chat_headers,
) -> None:
    """Relay a server-streaming call as SSE, whatever its messages: `render` frames one,
    `fail(error, first message)` frames an error after the 200, `done` ends the stream
    and `ping` keeps it alive while the first message is held. `head(first message,
    started)` gives the served headers (by default `chat_headers`: the first message
    carries them). Raises HttpError if it fails before the 200."""
    call_started = time.perf_counter()
    chunks: AsyncIterator[Any] = aiter(call)
    first_task = asyncio.ensure_future(_first_chunk(chunks))
    try:
        await asyncio.wait((first_task,), timeout=hold)
        first = None
        if first_task.done():
            first = _result(first_task)  # raises HttpError before anything was sent
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-request-id", rid.encode()),
        ]
        if first is not None:
            headers.extend(head(first, started))
        else:
            headers.extend(await _early_headers(call, call_started, started))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            while first is None:
                await send({"type": "http.response.body", "body": ping, "more_body": True})
                await asyncio.wait((first_task,), timeout=keepalive)
                if first_task.done():
                    first = _result(first_task)
            body = render(first)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": render(chunk), "more_body": True})
            tail = done
        except HttpError as err:
            tail = fail(err, first)
        except grpc.aio.AioRpcError as err:
            tail = fail(from_rpc_error(err), first)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        if not first_task.done():
            first_task.cancel()
        call.cancel()


async def _early_headers(
    call: Any, call_started: float, started: float
) -> list[tuple[bytes, bytes]]:
    try:
        metadata = await asyncio.wait_for(call.initial_metadata(), EARLY_METADATA_WAIT)
    except (TimeoutError, grpc.aio.AioRpcError):
        return []
    return early_headers(metadata, call_started, started)


def _result(task: asyncio.Future[Any]) -> Any:
    try:
        return task.result()
    except grpc.aio.AioRpcError as err:
        raise from_rpc_error(err) from None
    except StopAsyncIteration:
        raise HttpError(502, "upstream_error", "The stream ended before any output.") from None
