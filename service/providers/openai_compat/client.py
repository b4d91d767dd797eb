"""I/O for OpenAI-compatible upstreams over the shared pooled keep-alive transport.

Every call is bounded by the provider's timeout and the request deadline
(service/providers/session.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from service.config import ProviderConfig
from service.domain.chat import ChatDelta, ChatRequest, ChatResult
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.base import Attempt
from service.providers.openai_compat import convert
from service.providers.openai_compat.errors import bad_response, status_error, transport_error
from service.providers.openai_compat.stream import BrokenStreamError, EventParser
from service.providers.session import TRANSPORT_ERRORS, UpstreamSession


class OpenAICompatProvider:
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._config = config
        headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._http = UpstreamSession(config, headers)

    async def _post(self, path: str, body: dict[str, Any], attempt: Attempt) -> Any:
        try:
            async with await self._http.post(
                self._config.base_url + path, orjson.dumps(body), attempt
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise status_error(self.name, response.status, payload, response.headers)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise bad_response(self.name, "not JSON") from exc

    async def complete(self, request: ChatRequest, attempt: Attempt) -> ChatResult:
        body = convert.chat_body(request, attempt.upstream_model, stream=False)
        answer = await self._post("/chat/completions", body, attempt)
        try:
            return convert.parse_chat_response(answer)
        except convert.BadUpstreamError as exc:
            raise bad_response(self.name, str(exc)) from exc

    async def stream(self, request: ChatRequest, attempt: Attempt) -> AsyncIterator[ChatDelta]:
        body = convert.chat_body(request, attempt.upstream_model, stream=True)
        finished = False
        try:
            async with await self._http.post(
                self._config.base_url + "/chat/completions",
                orjson.dumps(body),
                attempt,
                stream=True,
            ) as response:
                if response.status >= 400:
                    payload = await response.read()
                    raise status_error(self.name, response.status, payload, response.headers)
                events = EventParser()
                pieces = response.chunks()
                ended = False
                try:
                    while not ended:
                        try:
                            batch = events.feed(await anext(pieces))
                        except StopAsyncIteration:  # a last event may lack its blank line
                            batch, ended = events.end(), True
                        for data in batch:
                            if data == b"[DONE]":
                                return
                            delta = convert.parse_chunk(orjson.loads(data))
                            finished = finished or any(c.finish_reason for c in delta.choices)
                            yield delta
                finally:
                    # An unfinished body must not go back to the pool: closing it is
                    # also what tells the upstream that we stopped listening.
                    response.close()
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        except (orjson.JSONDecodeError, BrokenStreamError) as exc:
            raise bad_response(self.name, "broken event stream") from exc
        except convert.BadUpstreamError as exc:
            raise bad_response(self.name, str(exc)) from exc
        if not finished:
            raise bad_response(self.name, "the stream ended before it finished")

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        body = convert.embed_body(request, attempt.upstream_model)
        answer = await self._post("/embeddings", body, attempt)
        expected = len(request.token_inputs) or len(request.texts)
        try:
            return convert.parse_embeddings(answer, expected)
        except convert.BadUpstreamError as exc:
            raise bad_response(self.name, str(exc)) from exc

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        body = convert.rerank_body(request, attempt.upstream_model)
        answer = await self._post("/rerank", body, attempt)
        try:
            return convert.parse_rerank(answer, len(request.documents), request.top_n)
        except convert.BadUpstreamError as exc:
            raise bad_response(self.name, str(exc)) from exc

    async def aclose(self) -> None:
        await self._http.aclose()
