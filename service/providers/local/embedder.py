"""Local embeddings and rerank on all-MiniLM-L6-v2, batched across requests.

Rerank here is cosine similarity between the query's and each document's embedding
(a bi-encoder), not a cross-encoder: no cross-encoder ships on PyPI. It orders
documents well on topical relevance and costs one batched ONNX pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.domain.chat import Usage
from service.domain.embeddings import (
    EmbedRequest,
    EmbedResult,
    RerankHit,
    RerankRequest,
    RerankResult,
)
from service.providers.errors import FailureKind, ProviderError
from service.providers.local.assets import MINILM_ONNX, MINILM_TOKENIZER
from service.providers.local.batcher import Batcher, QueueFull
from service.providers.local.minilm import MiniLM

MAX_DOCUMENTS = 512
MAX_DOCUMENT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class Embedded:
    vector: np.ndarray
    tokens: int


class LocalEmbedder:
    def __init__(
        self,
        provider: str,
        *,
        threads: int = 1,
        max_batch: int = 64,
        batch_wait: float = 0.001,
        max_queue: int = 4096,
    ) -> None:
        self._provider = provider
        self._threads = threads
        self._model: MiniLM | None = None
        self._loading = asyncio.Lock()
        self.batcher: Batcher[str | tuple[int, ...], Embedded] = Batcher(
            self._run, max_batch=max_batch, wait=batch_wait, max_queue=max_queue, name="minilm"
        )

    @property
    def model(self) -> MiniLM | None:
        return self._model

    async def load(self) -> MiniLM:
        """Load (and checksum) the model once, off the event loop."""
        async with self._loading:
            if self._model is None:
                self._model = await asyncio.to_thread(
                    MiniLM,
                    MINILM_ONNX.verified_path(),
                    MINILM_TOKENIZER.verified_path(),
                    threads=self._threads,
                )
        return self._model

    def _run(self, inputs: Sequence[str | tuple[int, ...]]) -> list[Embedded]:
        """One ONNX run for a batch (called on the batcher's thread)."""
        model = self._model
        assert model is not None
        texts = [x for x in inputs if isinstance(x, str)]
        tokenized = iter(model.tokenize(texts)) if texts else iter(())
        encoded = [next(tokenized) if isinstance(x, str) else model.from_ids(x) for x in inputs]
        vectors = model.embed(encoded)
        return [Embedded(v, len(e.ids)) for v, e in zip(vectors, encoded, strict=True)]

    async def _embed(self, inputs: Sequence[str | tuple[int, ...]]) -> list[Embedded]:
        await self.load()
        try:
            return await self.batcher.submit(inputs)
        except QueueFull:
            raise ProviderError(
                FailureKind.OVERLOADED,
                self._provider,
                "The local embedding queue is full; try again shortly.",
                retry_after=1.0,
            ) from None

    async def vector(self, text: str) -> np.ndarray:
        """One text's unit vector, batched with the other requests (the semantic cache's
        way in: no list conversion, no usage)."""
        return (await self._embed([text]))[0].vector

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        if request.dimensions is not None:
            raise ProviderError(
                FailureKind.STATUS,
                self._provider,
                "This model does not support 'dimensions': it always returns 384.",
                status=400,
                param="dimensions",
            )
        inputs: list[str | tuple[int, ...]] = (
            list(request.token_inputs) if request.token_inputs else list(request.texts)
        )
        embedded = await self._embed(inputs)
        tokens = sum(e.tokens for e in embedded)
        return EmbedResult(
            vectors=tuple(e.vector.tolist() for e in embedded),
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    async def rerank(self, request: RerankRequest) -> RerankResult:
        if len(request.documents) > MAX_DOCUMENTS:
            raise ProviderError(
                FailureKind.STATUS,
                self._provider,
                f"Local rerank takes at most {MAX_DOCUMENTS} documents.",
                status=400,
                param="documents",
            )
        for i, document in enumerate(request.documents):
            if len(document) > MAX_DOCUMENT_CHARS:
                raise ProviderError(
                    FailureKind.STATUS,
                    self._provider,
                    f"Document {i} is longer than {MAX_DOCUMENT_CHARS} characters.",
                    status=400,
                    param=f"documents[{i}]",
                )
        embedded = await self._embed([request.query, *request.documents])
        query, documents = embedded[0], embedded[1:]
        scores = np.stack([d.vector for d in documents]) @ query.vector
        order = sorted(range(len(documents)), key=lambda i: (-float(scores[i]), i))
        if request.top_n is not None:
            order = order[: request.top_n]
        return RerankResult(
            hits=tuple(RerankHit(index=i, score=float(scores[i])) for i in order),
            total_tokens=sum(e.tokens for e in embedded),
        )

    async def aclose(self) -> None:
        await self.batcher.aclose()
