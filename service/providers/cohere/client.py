"""I/O for Cohere's v2 API: `POST /v2/embed` and `POST /v2/rerank`, Bearer-authenticated.

Cohere's embed takes at most 96 texts per call: more go in batches of option
`batch_size` (service/providers/batches.py). Rerank is not split: Cohere ranks long
document lists in one call (and bills them in search units), so one call ranks best.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from service.config import ConfigError, ProviderConfig
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.base import Attempt
from service.providers.batches import batch_size, merged_embeddings, run_batches, spans
from service.providers.cohere import convert
from service.providers.cohere.errors import UPSTREAM_FAULTS, error_message
from service.providers.http_json import EmbeddingService, JsonClient, reading, rejected

INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering"})
TRUNCATE = frozenset({"NONE", "START", "END"})
MAX_EMBED_TEXTS = 96  # Cohere's limit on `texts` in one embed call


def _checked_options(config: ProviderConfig) -> Mapping[str, Any]:
    """Fail start-up on an option Cohere would refuse on every call."""
    path = f"config.providers.{config.name}"
    options = config.options
    if "input_type" in options and options["input_type"] not in INPUT_TYPES:
        raise ConfigError(f"{path}.input_type: expected one of {sorted(INPUT_TYPES)}")
    if "truncate" in options and options["truncate"] not in TRUNCATE:
        raise ConfigError(f"{path}.truncate: expected one of {sorted(TRUNCATE)}")
    for name in ("max_tokens", "max_tokens_per_doc"):
        value = options.get(name)
        if name in options and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{path}.{name}: expected a positive integer")
    return options


class CohereProvider(EmbeddingService):
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._options = _checked_options(config)
        self._batch_size = batch_size(config, MAX_EMBED_TEXTS)
        self._http = JsonClient(config, error_message, UPSTREAM_FAULTS)

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        if request.token_inputs:
            raise rejected(
                self.name, "Cohere embeds text: send 'input' as strings, not token ids.", "input"
            )
        attempt = self._http.pinned(attempt)

        async def batch(start: int, end: int) -> EmbedResult:
            part = replace(request, texts=request.texts[start:end])
            body = convert.embed_body(part, attempt.upstream_model, self._options)
            reply = await self._http.post("/v2/embed", body, attempt)
            with reading(self.name):
                return convert.parse_embeddings(reply.body, end - start)

        batches = spans(len(request.texts), self._batch_size)
        return merged_embeddings(await run_batches(batches, batch))

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        body = convert.rerank_body(request, attempt.upstream_model, self._options)
        reply = await self._http.post("/v2/rerank", body, attempt)
        with reading(self.name):
            return convert.parse_rerank(reply.body, len(request.documents), request.top_n)

    async def aclose(self) -> None:
        await self._http.aclose()
