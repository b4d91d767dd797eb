"""I/O for Jina AI: `POST /v1/embeddings` and `POST /v1/rerank`, Bearer-authenticated."""

from __future__ import annotations

from service.config import ProviderConfig
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.base import Attempt
from service.providers.http_json import EmbeddingService, JsonClient, reading, rejected
from service.providers.jina import convert
from service.providers.jina.errors import error_message


class JinaProvider(EmbeddingService):
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._options = config.options
        self._http = JsonClient(config, error_message)

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        if request.token_inputs:
            raise rejected(
                self.name, "Jina embeds text: send 'input' as strings, not token ids.", "input"
            )
        body = convert.embed_body(request, attempt.upstream_model, self._options)
        reply = await self._http.post("/v1/embeddings", body, attempt)
        with reading(self.name):
            return convert.parse_embeddings(reply.body, len(request.texts))

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        body = convert.rerank_body(request, attempt.upstream_model, self._options)
        reply = await self._http.post("/v1/rerank", body, attempt)
        with reading(self.name):
            return convert.parse_rerank(reply.body, len(request.documents), request.top_n)

    async def aclose(self) -> None:
        await self._http.aclose()
