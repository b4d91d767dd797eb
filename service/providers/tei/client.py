"""I/O for a text-embeddings-inference server: `POST /embed` and `POST /rerank`.

TEI needs no key unless started with `--api-key`; then `api_key` is sent as a Bearer
token like everywhere else. Option `dimensions_supported: true` declares a TEI version
and model that honour `dimensions` (Matryoshka truncation); otherwise a request with
`dimensions` is refused here, since an older server would silently ignore it.
"""

from __future__ import annotations

from service.config import ConfigError, ProviderConfig
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.base import Attempt
from service.providers.http_json import EmbeddingService, JsonClient, reading, rejected
from service.providers.tei import convert
from service.providers.tei.errors import STATUSES, error_message


class TEIProvider(EmbeddingService):
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._options = config.options
        supported = config.options.get("dimensions_supported", False)
        if not isinstance(supported, bool):
            raise ConfigError(f"config.providers.{config.name}.dimensions_supported: expected bool")
        self._dimensions_supported = supported
        self._http = JsonClient(config, error_message, STATUSES)

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        if request.dimensions is not None and not self._dimensions_supported:
            raise rejected(
                self.name,
                "This TEI server is not configured for 'dimensions' "
                "(set dimensions_supported for a version and model that honour it).",
                "dimensions",
            )
        body = convert.embed_body(request, self._options)
        reply = await self._http.post("/embed", body, attempt)
        expected = len(request.token_inputs) or len(request.texts)
        with reading(self.name):
            return convert.parse_embeddings(reply.body, expected, reply.headers)

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        body = convert.rerank_body(request, self._options)
        reply = await self._http.post("/rerank", body, attempt)
        with reading(self.name):
            return convert.parse_rerank(
                reply.body, len(request.documents), request.top_n, reply.headers
            )

    async def aclose(self) -> None:
        await self._http.aclose()
