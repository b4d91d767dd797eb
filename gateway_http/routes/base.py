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

import grpc
from starlette.types import Receive, Scope, Send
from switchyard.v1 import admin_pb2, admin_pb2_grpc, models_pb2, models_pb2_grpc

from gateway_http.errors import HttpError, from_rpc_error
from gateway_http.wire import call_metadata, header, request_id, send_error

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
