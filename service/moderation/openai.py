"""A moderator backed by an OpenAI-compatible `/v1/moderations` endpoint.

When it cannot be used the client learns that, in words; what went wrong underneath
(the exception, the moderation service's address) goes to the log, with the request id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from service import errors
from service.moderation.base import CLEAN, Verdict
from service.providers.errors import in_words

log = logging.getLogger("switchyard.moderation")


class OpenAIModerator:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str = "omni-moderation-latest",
        timeout: float = 10.0,
    ) -> None:
        self._url = base_url.rstrip("/") + "/moderations"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def check(self, texts: Sequence[str]) -> Verdict:
        if not texts:
            return CLEAN
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        body = orjson.dumps({"model": self._model, "input": list(texts)})
        try:
            async with self._session.post(self._url, data=body) as response:
                payload = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("the moderation service cannot be used", exc_info=exc)
            raise errors.upstream_error(
                "moderation", f"moderation is unavailable: {in_words(exc)}"
            ) from exc
        if status >= 400:
            log.warning("the moderation service answered HTTP %d: %.500r", status, payload)
            raise errors.upstream_error("moderation", "moderation failed", status)
        try:
            results: list[dict[str, Any]] = orjson.loads(payload)["results"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("the moderation service answered garbage: %.500r", payload)
            raise errors.upstream_error("moderation", "moderation answered garbage") from exc
        reasons: list[str] = []
        flagged = ""
        for text, result in zip(texts, results, strict=False):
            if result.get("flagged"):
                flagged = flagged or text
                for name, hit in (result.get("categories") or {}).items():
                    if hit and name not in reasons:
                        reasons.append(name)
        if not flagged:
            return CLEAN
        return Verdict(True, tuple(reasons) or ("flagged",), flagged)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
