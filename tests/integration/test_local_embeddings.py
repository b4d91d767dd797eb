"""The built-in embedding model: fidelity to the original, batching, limits, rerank."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from service.domain.embeddings import EmbedRequest, RerankRequest
from service.providers.local.embedder import LocalEmbedder
from service.providers.local.minilm import MAX_TOKENS
from tests.fixtures.gateway import Gateway
from tests.fixtures.http import request

REFERENCE = Path(__file__).parents[1] / "fixtures" / "minilm_reference.json"
MODEL = "local/all-minilm-l6-v2"
# Measured: the int8 export's weight quantisation keeps every reference sentence at a
# cosine of at least 0.99894 to the original fp32 model (mean 0.9994); see the note in
# tests/fixtures/minilm_reference.py. The bound sits just under the worst case.
MIN_COSINE = 0.9985
MIN_MEAN_COSINE = 0.9993


def _reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text())
    return data


def _client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)


def test_golden_vectors_match_the_original_model(local_gateway: Gateway) -> None:
    items = _reference()["items"]
    result = _client(local_gateway).embeddings.create(
        model=MODEL, input=[item["text"] for item in items]
    )
    got = np.array([d.embedding for d in result.data], dtype=np.float64)
    want = np.array([item["embedding"] for item in items], dtype=np.float64)
    assert got.shape == want.shape == (len(items), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (got * want).sum(axis=1) / np.linalg.norm(want, axis=1)
    labels = [item["text"][:30] for item in items]
    assert cosines.min() >= MIN_COSINE, dict(zip(labels, cosines, strict=True))
    assert cosines.mean() >= MIN_MEAN_COSINE
    # Token usage is the model's own count, after truncation at 256.
    assert result.usage.prompt_tokens == sum(item["token_count"] for item in items)
    assert max(item["token_count"] for item in items) == MAX_TOKENS


def test_truncation_token_ids_and_encodings(local_gateway: Gateway) -> None:
    sdk = _client(local_gateway)
    long_text = "word " * 600
    long = sdk.embeddings.create(model=MODEL, input=long_text, encoding_format="float")
    assert long.usage.prompt_tokens == MAX_TOKENS
    # The model's own token ids embed exactly as the text that produced them.
    ids = [101, 7592, 2088, 102]  # [CLS] hello world [SEP]
    by_ids = sdk.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    by_text = sdk.embeddings.create(model=MODEL, input="hello world", encoding_format="float")
    assert by_ids.usage.prompt_tokens == 4
    assert np.allclose(by_ids.data[0].embedding, by_text.data[0].embedding, atol=1e-6)
    as_base64 = sdk.embeddings.create(model=MODEL, input="hello world")  # SDK default: base64
    assert np.allclose(as_base64.data[0].embedding, by_text.data[0].embedding, atol=1e-7)


def test_dimensions_is_refused_naming_the_param(local_gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        _client(local_gateway).embeddings.create(model=MODEL, input="x", dimensions=64)
    body: Any = raised.value.body
    assert raised.value.status_code == 400
    assert body["param"] == "dimensions"


def test_rerank_puts_the_relevant_document_first(local_gateway: Gateway) -> None:
    documents = [
        "The Eiffel Tower is a wrought-iron tower in Paris, completed in 1889.",
        "Photosynthesis converts light energy into chemical energy in plants.",
        "The stock market closed higher on Friday after strong earnings reports.",
        "Bananas are rich in potassium and are a popular fruit.",
    ]
    queries = {
        "When was the Eiffel Tower built?": 0,
        "How do plants turn sunlight into energy?": 1,
        "What happened to stocks at the end of the week?": 2,
        "Which fruit has a lot of potassium?": 3,
    }
    headers = {"Authorization": f"Bearer {local_gateway.key}"}
    for query, best in queries.items():
        raw = request(
            "POST",
            local_gateway.base_url + "/rerank",
            {
                "model": MODEL,
                "query": query,
                "documents": documents,
                "top_n": 2,
                "return_documents": True,
            },
            headers,
        )
        assert raw.status == 200, raw.body
        body = raw.json()
        assert body["results"][0]["index"] == best, (query, body["results"])
        assert body["results"][0]["document"]["text"] == documents[best]
        assert len(body["results"]) == 2
        assert body["results"][0]["relevance_score"] > body["results"][1]["relevance_score"]
        assert body["usage"]["total_tokens"] > 0


def test_rerank_limits(local_gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {local_gateway.key}"}
    too_many = request(
        "POST",
        local_gateway.base_url + "/rerank",
        {"model": MODEL, "query": "q", "documents": ["d"] * 513},
        headers,
    )
    assert too_many.status == 400 and too_many.json()["error"]["param"] == "documents"
    too_long = request(
        "POST",
        local_gateway.base_url + "/rerank",
        {"model": MODEL, "query": "q", "documents": ["ok", "x" * 20_001]},
        headers,
    )
    assert too_long.status == 400 and too_long.json()["error"]["param"] == "documents[1]"


def test_concurrent_requests_are_batched() -> None:
    """32 concurrent requests take fewer ONNX runs than requests, and batching changes
    no result: each equals the vector computed alone."""
    sentences = [f"sentence number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(32)]

    async def scenario() -> tuple[list[Any], list[Any], int, int]:
        embedder = LocalEmbedder("local", max_batch=64, batch_wait=0.002)
        try:
            alone = []
            for text in sentences:
                result = await embedder.embed(EmbedRequest(model=MODEL, texts=(text,)))
                alone.append(result.vectors[0])
            runs_before = embedder.batcher.batches
            together = await asyncio.gather(
                *(embedder.embed(EmbedRequest(model=MODEL, texts=(t,))) for t in sentences)
            )
            runs = embedder.batcher.batches - runs_before
            model = embedder.model
            assert model is not None
            return alone, [r.vectors[0] for r in together], runs, model.runs
        finally:
            await embedder.aclose()

    alone, together, runs, onnx_runs = asyncio.run(scenario())
    assert runs < len(sentences), f"{runs} ONNX runs for {len(sentences)} requests"
    assert onnx_runs == len(sentences) + runs  # 32 single runs, then the batched ones
    assert np.allclose(np.array(alone), np.array(together), atol=1e-6)


def test_rerank_in_process_orders_and_cuts() -> None:
    async def scenario() -> list[int]:
        embedder = LocalEmbedder("local")
        try:
            result = await embedder.rerank(
                RerankRequest(
                    model=MODEL,
                    query="capital city of Japan",
                    documents=("Tokyo is the capital of Japan.", "I like tea.", "Kyoto temples"),
                    top_n=2,
                )
            )
            return [hit.index for hit in result.hits]
        finally:
            await embedder.aclose()

    order = asyncio.run(scenario())
    assert order[0] == 0 and len(order) == 2
