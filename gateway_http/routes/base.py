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

import grpc
from starlette.types import Receive, Scope, Send
from switchyard.v1 import models_pb2, models_pb2_grpc

from gateway_http.errors import HttpError, from_rpc_error
from gateway_http.wire import call_metadata, header, request_id, send_error

log = logging.getLogger("switchyard.http")


MISSING_KEY = HttpError(
    401, "authentication_error", "Missing API key: send 'Authorization: Bearer <key>'."
)


class AuthProbe:
    def __init__(self, stub: models_pb2_grpc.ModelServiceAsyncStub) -> None:
        self._stub = stub

    async def check(self, scope: Scope, rid: str) -> HttpError | None:
        """The 401 for this request's credentials, or None if they are good."""
        if header(scope, b"authorization") is None:
            return MISSING_KEY
        try:
            await self._stub.List(
                models_pb2.ListModelsRequest(), metadata=call_metadata(scope, rid)
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                return from_rpc_error(err)
        return None


class Endpoint:
    """An ASGI app for one route. Subclasses implement `handle`."""

    def __init__(self, probe: AuthProbe) -> None:
        self._probe = probe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        try:
            await self.handle(scope, receive, send, rid)
        except HttpError as err:
            await send_error(send, await self._probe.check(scope, rid) or err, rid)
        except grpc.aio.AioRpcError as err:
            await send_error(send, from_rpc_error(err), rid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error serving %s (request %s)", scope.get("path"), rid)
            await send_error(
                send, HttpError(500, "server_error", "The gateway failed unexpectedly."), rid
            )

    async def handle(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        raise NotImplementedError
