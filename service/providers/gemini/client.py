"""I/O for the Google Gemini API (v1beta REST) over the shared pooled transport.

`generateContent`, `streamGenerateContent?alt=sse` and `batchEmbedContents`, with the key
in the `x-goog-api-key` header (never in the URL, where it would end up in logs). Every
upstream call is bounded by the provider's timeout and the request's deadline; attachment
URLs are fetched first, through the shared `AttachmentFetcher`, because Gemini cannot
read an arbitrary URL itself.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from service.config import ProviderConfig
from service.domain.chat import ChatDelta, ChatRequest, ChatResult, Usage
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.base import Attempt
from service.providers.errors import FailureKind, ProviderError
from service.providers.fetch import AttachmentFetcher, FetchLimits
from service.providers.gemini import convert
from service.providers.gemini import response as answers
from service.providers.gemini.errors import (
    bad_response,
    blocked_error,
    event_error,
    request_error,
    status_error,
    transport_error,
    unsupported,
)
from service.providers.gemini.stream import StreamTranslator
from service.providers.openai_compat.stream import BrokenStreamError, sse_data
from service.providers.session import TRANSPORT_ERRORS, UpstreamSession

_VERSIONS = ("/v1beta", "/v1", "/v1alpha")
EMBED_BATCH = 100  # the most requests one batchEmbedContents call accepts


class GeminiProvider:
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._config = config
        base = config.base_url.rstrip("/")
        self._root = base if base.endswith(_VERSIONS) else base + "/v1beta"
        headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        self._http = UpstreamSession(config, headers)
        limits = FetchLimits.from_options(
            config.options.get("fetch"), f"config.providers.{config.name}.fetch"
        )
        self._fetcher = AttachmentFetcher(config.name, limits)

    def _url(self, model: str, method: str) -> str:
        return f"{self._root}/{quote(convert.model_path(model), safe='/-_.~')}:{method}"

    async def _post(self, url: str, body: dict[str, Any], attempt: Attempt) -> Any:
        try:
            async with await self._http.post(url, orjson.dumps(body), attempt) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise status_error(self.name, response.status, payload, response.headers)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise bad_response(self.name, "not JSON") from exc

    async def _chat_body(self, request: ChatRequest, attempt: Attempt) -> dict[str, Any]:
        """The request body, with remote attachments fetched (in order) and inlined."""
        fetched: dict[str, convert.Blob] = {}
        budget = self._fetcher.limits.max_total_bytes
        for remote in convert.remote_attachments(request):
            if budget <= 0:
                raise ProviderError(
                    FailureKind.STATUS,
                    self.name,
                    f"The attachments of this request exceed {self._fetcher.limits.max_total_bytes}"
                    f" bytes in total; '{remote.param}' is one too many.",
                    status=400,
                    param=remote.param,
                )
            got = await self._fetcher.fetch(
                remote.url,
                param=remote.param,
                allowed_types=remote.allowed_types,
                max_bytes=budget,
                deadline=attempt.deadline,
            )
            budget -= len(got.data)
            data = base64.b64encode(got.data).decode()
            fetched[remote.param] = convert.Blob(mime_type=got.media_type, data=data)
        try:
            return convert.chat_body(request, fetched, attempt.upstream_model)
        except convert.RequestError as exc:
            raise request_error(self.name, exc) from exc

    async def complete(self, request: ChatRequest, attempt: Attempt) -> ChatResult:
        body = await self._chat_body(request, attempt)
        answer = await self._post(
            self._url(attempt.upstream_model, "generateContent"), body, attempt
        )
        try:
            return answers.parse_response(answer)
        except answers.PromptBlockedError as exc:
            raise blocked_error(self.name, exc) from exc
        except answers.BadUpstreamError as exc:
            raise bad_response(self.name, str(exc)) from exc

    async def stream(self, request: ChatRequest, attempt: Attempt) -> AsyncIterator[ChatDelta]:
        body = await self._chat_body(request, attempt)
        url = self._url(attempt.upstream_model, "streamGenerateContent") + "?alt=sse"
        translator = StreamTranslator()
        try:
            async with await self._http.post(
                url, orjson.dumps(body), attempt, stream=True
            ) as response:
                if response.status >= 400:
                    payload = await response.read()
                    raise status_error(self.name, response.status, payload, response.headers)
                try:
                    async for data in sse_data(response.chunks()):
                        for delta in translator.feed(orjson.loads(data)):
                            yield delta
                    for delta in translator.finish():
                        yield delta
                finally:
                    # An unfinished body must not go back to the pool: closing it is
                    # also what tells the upstream that we stopped listening.
                    response.close()
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.name, exc) from exc
        except (orjson.JSONDecodeError, BrokenStreamError) as exc:
            raise bad_response(self.name, "broken event stream") from exc
        except answers.UpstreamErrorEvent as exc:
            raise event_error(self.name, exc.payload) from exc
        except answers.PromptBlockedError as exc:
            raise blocked_error(self.name, exc) from exc
        except answers.BadUpstreamError as exc:
            raise bad_response(self.name, str(exc)) from exc

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        if request.token_inputs:
            raise ProviderError(
                FailureKind.STATUS,
                self.name,
                "Gemini embeds text only: token-id input cannot be used with this model.",
                status=400,
                param="input",
            )
        url = self._url(attempt.upstream_model, "batchEmbedContents")
        vectors: list[list[float]] = []
        tokens = 0
        texts = request.texts
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            body = convert.embed_body(batch, request, attempt.upstream_model)
            answer = await self._post(url, body, attempt)
            try:
                got, counted = answers.parse_embeddings(answer, len(batch))
            except answers.BadUpstreamError as exc:
                raise bad_response(self.name, str(exc)) from exc
            vectors.extend(got)
            tokens += counted
        return EmbedResult(
            vectors=tuple(vectors), usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
        )

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        raise unsupported(self.name, "has no rerank API")

    async def aclose(self) -> None:
        await self._http.aclose()
