"""The HTTP transport every remote adapter shares: one pooled session, bounded attempts.

One keep-alive connection pool per provider (service/providers/http1), and for each
attempt the limits of DESIGN §6: the provider's `timeout` cut to the request deadline,
`connect_timeout`, `idle_timeout` between two reads of the body (stream chunks included)
and `first_byte_timeout` until the response headers arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from service.config import ProviderConfig
from service.providers.base import Attempt
from service.providers.http1 import Limits, Pool, Response, TransportError

# What an adapter catches around a call: every transport failure and every timeout.
TRANSPORT_ERRORS = (TransportError, TimeoutError)


class UpstreamSession:
    def __init__(self, config: ProviderConfig, headers: Mapping[str, str]) -> None:
        self._config = config
        self._pool = Pool(
            headers,
            Limits(
                connect=config.connect_timeout,
                # Unset stage limits fall back to the whole call's, which bounds them anyway.
                first_byte=config.first_byte_timeout or config.timeout,
                idle=config.idle_timeout or config.timeout,
                spin=config.answer_poll,
            ),
        )

    @property
    def in_use(self) -> int:
        """Connections checked out right now (a probe for tests: failures leave none)."""
        return self._pool.in_use

    def deadline(self, attempt: Attempt) -> float:
        now = asyncio.get_running_loop().time()
        total = now + self._config.timeout
        if attempt.deadline is not None:
            total = min(total, max(now + 0.001, attempt.deadline))
        return total

    async def post(
        self, url: str, body: bytes, attempt: Attempt, *, stream: bool = False
    ) -> Response:
        """POST and wait for the response headers, within the first-byte limit.

        The caller owns the response (`async with`), so a stream can be read and closed;
        `stream=True` for an answer read with `chunks()`.
        """
        return await self._pool.post(url, body, self.deadline(attempt), stream=stream)

    async def aclose(self) -> None:
        self._pool.close()
