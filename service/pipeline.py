"""The request pipeline every servicer runs first: request id, auth and deadline.

It lives here, called by the servicers, rather than in grpc.aio interceptors, so that
the in-process channel (which bypasses the gRPC transport) runs exactly the same steps
(DESIGN §1).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service import errors
from service.auth.keys import bearer_token
from service.ids import random_hex
from service.logs import REQUEST_ID
from service.store.keys import KeyRecord
from service.telemetry.record import CallRecord

if TYPE_CHECKING:
    from service.accounting.backends import KeyBackend

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class CallContext:
    request_id: str
    key: KeyRecord
    deadline: float | None  # event-loop time; None = no deadline
    record: CallRecord | None = None  # what the call did, for metrics and the access log


class Pipeline:
    def __init__(self, keys: KeyBackend) -> None:
        self._keys = keys

    def begin(
        self,
        metadata: Iterable[tuple[str, str | bytes]],
        time_remaining: float | None,
        record: CallRecord | None = None,
    ) -> CallContext:
        """Authenticate the call; raises `GatewayError` (401) for a missing or bad key.

        The request id is settled first, so that a refused call's log lines and access-log
        line carry it too."""
        authorization = request_id = None
        probe = False
        for name, value in metadata:
            if name == "authorization" and isinstance(value, str):
                authorization = value
            elif name == "x-request-id" and isinstance(value, str) and _REQUEST_ID.match(value):
                request_id = value
            elif name == "x-switchyard-probe":
                probe = True
        request_id = request_id or random_hex()
        REQUEST_ID.set(request_id)
        if record is not None:
            record.request_id = request_id
            record.probe = probe
        if authorization is None:
            raise errors.unauthenticated(
                "Missing API key: send 'Authorization: Bearer <key>' (gRPC: 'authorization' "
                "metadata)."
            )
        token = bearer_token(authorization)
        key = self._keys.verify(token) if token else None
        if key is None:
            raise errors.unauthenticated("Invalid API key.")
        deadline = None
        if time_remaining is not None:
            deadline = asyncio.get_running_loop().time() + time_remaining
        if record is not None:
            record.key_id = key.id
            record.key_name = key.name
        return CallContext(request_id=request_id, key=key, deadline=deadline, record=record)
