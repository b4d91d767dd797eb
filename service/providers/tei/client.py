"""I/O for a text-embeddings-inference server: `POST /embed` and `POST /rerank`.

TEI needs no key unless started with `--api-key`; then `api_key` is sent as a Bearer
token like everywhere else. Option `dimensions_supported: true` declares a TEI version
and model that honour `dimensions` (Matryoshka truncation); otherwise a request with
`dimensions` is refused here, since an older server would silently ignore it.

TEI refuses a call with more inputs than its `--max-client-batch-size` (32 unless the
server was started with another): larger requests go in batches of option `batch_size`
(service/providers/batches.py), which must not exceed the server's setting.
"""

from __future__ import annotations

from dataclasses import replace

from service.config import ConfigError, ProviderConfig
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.base import Attempt
from service.providers.batches import (
    batch_size,
    merged_embeddings,
    merged_rerank,
    run_batches,
    spans,
)
from service.providers.http_json import EmbeddingService, JsonClient, reading, rejected
from service.providers.tei import convert
from service.providers.tei.errors import UPSTREAM_FAULTS, error_message

# TEI's default `--max-client-batch-size`.
DEFAULT_BATCH_SIZE = 32


class TEIProvider(EmbeddingService):
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._options = config.options
        supported = config.options.get("dimensions_supported", False)
        if not isinstance(supported, bool):
            raise ConfigError(f"config.providers.{config.name}.dimensions_supported: expected bool")
        self._dimensions_supported = supported
        self._batch_size = batch_size(config, DEFAULT_BATCH_SIZE)
        self._http = JsonClient(config, error_message, UPSTREAM_FAULTS)

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        if request.dimensions is not None and not self._dimensions_supported:
            raise rejected(
                self.name,
                "This TEI server is not configured for 'dimensions' "
                "(set dimensions_supported for a version and model that honour it).",
                "dimensions",
            )
        attempt = self._http.pinned(attempt)
        count = len(request.token_inputs) or len(request.texts)

        async def batch(start: int, end: int) -> EmbedResult:
            if request.token_inputs:
                part = replace(request, token_inputs=request.token_inputs[start:end])
            else:
                part = replace(request, texts=request.texts[start:end])
            reply = await self._http.post(
                "/embed", convert.embed_body(part, self._options), attempt
            )
            with reading(self.name):
                return convert.parse_embeddings(reply.body, end - start, reply.headers)

        return merged_embeddings(await run_batches(spans(count, self._batch_size), batch))

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        attempt = self._http.pinned(attempt)

        async def batch(start: int, end: int) -> tuple[int, RerankResult]:
            part = replace(request, documents=request.documents[start:end])
            reply = await self._http.post(
                "/rerank", convert.rerank_body(part, self._options), attempt
            )
            with reading(self.name):
                # No cut per batch: top_n is over all documents, applied when merging.
                return start, convert.parse_rerank(reply.body, end - start, None, reply.headers)

        batches = await run_batches(spans(len(request.documents), self._batch_size), batch)
        return merged_rerank(batches, request.top_n)

    async def aclose(self) -> None:
        await self._http.aclose()
