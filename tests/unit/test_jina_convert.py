"""Golden tests for service/providers/jina/convert.py and errors.py.

Examples follow Jina's API: `POST /v1/rerank` (`jina-reranker-v2-base-multilingual`,
the skincare documents) answering `results[{index, relevance_score, document}]` with
`usage`, and `POST /v1/embeddings` (OpenAI-like, with `task` and `dimensions`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.domain.chat import Usage
from service.domain.embeddings import EmbedRequest, RerankHit, RerankRequest
from service.providers.jina import convert
from service.providers.jina.errors import error_message
from service.providers.openai_compat.convert import BadUpstreamError

QUERY = "Organic skincare products for sensitive skin"
DOCUMENTS = (
    "Organic skincare for sensitive skin with aloe vera and chamomile...",
    "New makeup trends focus on bold colors and innovative techniques...",
    "Bio-Hautpflege für empfindliche Haut mit Aloe Vera und Kamille...",
)
RERANK_ANSWER: dict[str, Any] = {
    "model": "jina-reranker-v2-base-multilingual",
    "usage": {"total_tokens": 815},
    "results": [
        {"index": 0, "document": {"text": DOCUMENTS[0]}, "relevance_score": 0.8783142566680908},
        {"index": 2, "document": {"text": DOCUMENTS[2]}, "relevance_score": 0.7624675869941711},
        {"index": 1, "document": {"text": DOCUMENTS[1]}, "relevance_score": 0.06556855142116547},
    ],
}


def test_rerank_request() -> None:
    request = RerankRequest(model="x", query=QUERY, documents=DOCUMENTS, top_n=3)
    assert convert.rerank_body(request, "jina-reranker-v2-base-multilingual", {}) == {
        "model": "jina-reranker-v2-base-multilingual",
        "query": QUERY,
        "documents": list(DOCUMENTS),
        "top_n": 3,
        "return_documents": False,  # Jina's default is true; the gateway echoes them
    }


def test_rerank_answer_best_first_top_n_and_tokens() -> None:
    result = convert.parse_rerank(RERANK_ANSWER, 3, 2)
    assert result.hits == (RerankHit(0, 0.8783142566680908), RerankHit(2, 0.7624675869941711))
    assert result.total_tokens == 815
    assert result.search_units is None
    unordered = dict(RERANK_ANSWER, results=RERANK_ANSWER["results"][::-1])
    assert [h.index for h in convert.parse_rerank(unordered, 3, None).hits] == [0, 2, 1]


def test_embed_request_with_task_and_dimensions() -> None:
    request = EmbedRequest(
        model="x",
        texts=("Organic skincare for sensitive skin",),
        dimensions=256,
        extra_json=json.dumps({"task": "retrieval.query", "late_chunking": False}),
    )
    body = convert.embed_body(request, "jina-embeddings-v3", {"task": "retrieval.passage"})
    assert body == {
        "task": "retrieval.query",  # the request's extra wins over the provider option
        "late_chunking": False,
        "model": "jina-embeddings-v3",
        "input": ["Organic skincare for sensitive skin"],
        "dimensions": 256,
    }


def test_embed_request_without_task_sends_none() -> None:
    body = convert.embed_body(EmbedRequest(model="x", texts=("a",)), "jina-embeddings-v2", {})
    assert body == {"model": "jina-embeddings-v2", "input": ["a"]}


def test_embed_answer() -> None:
    answer = {
        "model": "jina-embeddings-v3",
        "object": "list",
        "usage": {"total_tokens": 14, "prompt_tokens": 14},
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
        ],
    }
    result = convert.parse_embeddings(answer, 2)
    assert [list(v) for v in result.vectors] == [[0.1, 0.2], [0.3, 0.4]]
    assert result.usage == Usage(prompt_tokens=14, total_tokens=14)


def test_embed_answer_with_total_tokens_only() -> None:
    answer = {"usage": {"total_tokens": 5}, "data": [{"index": 0, "embedding": [1.0]}]}
    assert convert.parse_embeddings(answer, 1).usage == Usage(prompt_tokens=5, total_tokens=5)


@pytest.mark.parametrize(
    "answer",
    [{"data": [{"index": 0, "embedding": [1.0]}]}, {"data": "x"}, [[1.0], [2.0]]],
)
def test_unreadable_embed_answers(answer: Any) -> None:
    with pytest.raises(BadUpstreamError):
        convert.parse_embeddings(answer, 2)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            b'{"detail": "Invalid API key, please get a new one"}',
            ("Invalid API key, please get a new one", None),
        ),
        (
            b'{"detail": [{"loc": ["body", "top_n"], "msg": "ensure this value is greater'
            b' than 0", "type": "value_error"}]}',
            ("top_n: ensure this value is greater than 0", "top_n"),
        ),
        (b'{"detail": [{"msg": "bad input"}]}', ("bad input", None)),
        (b'{"detail": []}', ("HTTP 422", None)),
        (b'{"error": {"message": "quota", "param": "input"}}', ("quota", "input")),
    ],
)
def test_error_bodies(payload: bytes, expected: tuple[str, str | None]) -> None:
    assert error_message(422, payload) == expected
