"""The frame every endpoint shares: request id, and errors rendered per the contract.

Authentication belongs to the service, yet a request can fail transcoding here before
the service ever sees it. So that a bad key always gets 401 (never a 400 that tells an
unauthenticated caller about its body), a request rejected here first has its key
checked: a missing header at once, a present one through the cheap `ModelService.List`
call. This costs a call on the error path only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc
from starlette.types import Receive, Scope, Send
from switchyard.v1 import admin_pb2, admin_pb2_grpc, models_pb2, models_pb2_grpc

from gateway_http.errors import HttpError, from_rpc_error
from gateway_http.sse import relay
from gateway_http.transcode.fields import JSON
from gateway_http.wire import (
    ClientWatch,
    call_metadata,
    chat_headers,
    header,
    header_timeout,
    read_json,
    request_id,
    send_error,
)

log = logging.getLogger("switchyard.http")


MISSING_KEY = HttpError(
    401, "authentication_error", "Missing API key: send 'Authorization: Bearer <key>'."
)


NOT_ADMIN = HttpError(403, "permission_error", "This operation needs an admin key.")
# Marks the probe's calls, so that the service neither counts nor logs them as requests.
PROBE = ("x-switchyard-probe", "1")

# (request id, method, path, status, seconds): a request the HTTP layer answered alone.
EdgeLog = Callable[[str, str, str, int, float], None]


class AuthProbe:
    def __init__(
        self,
        stub: models_pb2_grpc.ModelServiceAsyncStub,
        account: admin_pb2_grpc.AccountServiceAsyncStub,
        edge: EdgeLog | None = None,
    ) -> None:
        self._stub = stub
        self._account = account
        self.edge = edge  # what the routes report their own refusals to (metrics, access log)

    async def check(self, scope: Scope, rid: str, admin: bool = False) -> HttpError | None:
        """The 401 for this request's credentials (or, for an admin route, the 403 for a
        key that is not an admin's), or None if they are good."""
        if header(scope, b"authorization") is None:
            return MISSING_KEY
        metadata = (*call_metadata(scope, rid), PROBE)
        try:
            if not admin:
                await self._stub.List(models_pb2.ListModelsRequest(), metadata=metadata)
                return None
            key = await self._account.GetOwnKey(admin_pb2.GetOwnKeyRequest(), metadata=metadata)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                return from_rpc_error(err)
            return None
        return None if key.policy.is_admin else NOT_ADMIN


class Endpoint:
    """An ASGI app for one route. Subclasses implement `handle`.

    An admin route (`admin_only`) authorises before it validates: a request it cannot
    parse is answered 403 for a key that is not an admin's, so that the admin API's
    field names are never told to a key that may not use it.
    """

    admin_only = False

    def __init__(self, probe: AuthProbe) -> None:
        self._probe = probe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        started = time.perf_counter()
        try:
            await self.handle(scope, receive, send, rid)
        except HttpError as err:
            refused = await self._probe.check(scope, rid, self.admin_only)
            await self.send_error(send, refused or err, rid)
            # The probe's own call is not logged by the service: its refusal is ours. (No
            # local may hold `err`: its traceback holds this frame, a reference cycle.)
            if self._probe.edge is not None and (refused is not None or not err.from_service):
                self._edge(scope, rid, (refused or err).status, started)
        except grpc.aio.AioRpcError as err:
            await self.send_error(send, from_rpc_error(err), rid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error serving %s (request %s)", scope.get("path"), rid)
            await self.send_error(
                send, HttpError(500, "server_error", "The gateway failed unexpectedly."), rid
            )

    async def send_error(self, send: Send, err: HttpError, rid: str) -> None:
        """The error answer, in the contract's shape; a front door may have its own."""
        await send_error(send, err, rid)

    def _edge(self, scope: Scope, rid: str, status: int, started: float) -> None:
        edge = self._probe.edge
        if edge is not None:
            edge(rid, scope["method"], scope["path"], status, time.perf_counter() - started)

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        raise NotImplementedError


class Parsed(Protocol):
    """What a generation door's transcoding gives back, beside its own request."""

    @property
    def stream(self) -> bool: ...

    @property
    def timeout(self) -> float | None: ...


ParsedT = TypeVar("ParsedT", bound=Parsed)


@dataclass(frozen=True, slots=True)
class Call:
    """One request's service call: its metadata and deadline, its id, when it began."""

    metadata: tuple[tuple[str, str], ...]
    timeout: float | None
    rid: str
    started: float  # perf_counter at the request's start: the latency headers count from it


@dataclass(frozen=True, slots=True)
class Framing:
    """How a door writes its stream as server-sent events (gateway_http.sse.relay)."""

    render: Callable[[Any], bytes]  # one message of the stream
    fail: Callable[[HttpError, Any], bytes]  # an error after the 200 (and the first message)
    ping: bytes  # sent while the first message is held past `hold`
    done: bytes = b""  # after the last message
    head: Callable[[Any, float], list[tuple[bytes, bytes]]] = chat_headers  # served headers


class GenerationEndpoint(Endpoint, Generic[ParsedT]):
    """A generation door (chat completions, messages, responses): one service stub,
    answered as JSON or as server-sent events.

    What every such door does is here: read and transcode the body (`parse`), take the
    deadline (the body's `timeout`, else `x-switchyard-timeout`) and the call's
    metadata, watch for the client leaving while the call runs (a disconnect cancels
    it), and relay a stream with the endpoint's hold and keep-alive. A door says how to
    `parse`, which call and `Framing` its `stream` is, how to `complete`, and declares
    its `_stub`'s type (the async stubs exist in the type stubs only, so they cannot
    parametrise a base class at run time).
    """

    _stub: Any

    def __init__(self, probe: AuthProbe, stub: Any, *, hold: float, keepalive: float) -> None:
        super().__init__(probe)
        self._stub = stub
        self._hold = hold  # how long a stream's first message may be held for its headers
        self._keepalive = keepalive

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.perf_counter()
        parsed = self.parse(await read_json(receive), scope)
        timeout = parsed.timeout or header_timeout(scope)
        call = Call(call_metadata(scope, rid), timeout, rid, started)
        async with ClientWatch(receive):
            if not parsed.stream:
                await self.complete(send, parsed, call)
                return
            stream, framing = self.stream(parsed, call)
            await relay(
                send,
                stream,
                rid=rid,
                hold=self._hold,
                keepalive=self._keepalive,
                started=started,
                render=framing.render,
                fail=framing.fail,
                done=framing.done,
                ping=framing.ping,
                head=framing.head,
            )

    def parse(self, body: JSON, scope: Scope) -> ParsedT:
        """The body transcoded for the service; raises HttpError (400) if it cannot be."""
        raise NotImplementedError

    def stream(self, parsed: ParsedT, call: Call) -> tuple[Any, Framing]:
        """The service's streaming call (started, not awaited) and how to frame it."""
        raise NotImplementedError

    async def complete(self, send: Send, parsed: ParsedT, call: Call) -> None:
        """Call the service and send its answer as JSON."""
        raise NotImplementedError
