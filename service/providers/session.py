"""The HTTP transport every remote adapter shares: one pooled session, bounded attempts.

One keep-alive aiohttp session per provider (created on first use, since a session
belongs to the running event loop), and for each attempt the limits of DESIGN §6: the
provider's `timeout` cut to the request deadline, `connect_timeout`, `idle_timeout`
between two reads of the body (stream chunks included) and `first_byte_timeout` until
the response headers arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from service.config import ProviderConfig
from service.providers.base import Attempt


class UpstreamSession:
    def __init__(self, config: ProviderConfig, headers: Mapping[str, str]) -> None:
        self._config = config
        self._headers = headers
        self.session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=300)
            self.session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, trust_env=False
            )
        return self.session

    def timeout(self, attempt: Attempt) -> aiohttp.ClientTimeout:
        total = self._config.timeout
        if attempt.deadline is not None:
            remaining = attempt.deadline - asyncio.get_running_loop().time()
            total = max(0.001, min(total, remaining))
        return aiohttp.ClientTimeout(
            total=total,
            connect=self._config.connect_timeout,
            sock_read=self._config.idle_timeout,
        )

    async def post(self, url: str, body: bytes, attempt: Attempt) -> aiohttp.ClientResponse:
        """POST and wait for the response headers, within the first-byte limit.

        The caller owns the response (`async with`), so a stream can be read and closed.
        """
        request = self.client().post(url, data=body, timeout=self.timeout(attempt))
        async with asyncio.timeout(self._config.first_byte_timeout):
            return await request

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
