"""Golden tests for service/providers/cohere/convert.py and errors.py (Cohere API v2).

Requests and answers follow the examples of Cohere's v2 reference (`POST /v2/rerank`
with the "capital of the United States" documents, `POST /v2/embed` with
`["hello", "goodbye"]`), in both directions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.domain.chat import Usage
from service.domain.embeddings import EmbedRequest, RerankHit, RerankRequest
from service.providers.cohere import convert
from service.providers.cohere.errors import error_message
from service.providers.openai_compat.convert import BadUpstreamError

DOCUMENTS = (
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific "
    "Ocean. Its capital is Saipan.",
    "Capitalization or capitalisation in English grammar is the use of a capital letter at the "
    "start of a word. English usage varies from capitalization in other languages.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District "
    "of Columbia) is the capital of the United States. It is a federal district.",
    "Capital punishment has existed in the United States since beforethe United States was a "
    "country. As of 2017, capital punishment is legal in 30 of the 50 states.",
)
QUERY = "What is the capital of the United States?"
RERANK_ANSWER: dict[str, Any] = {
    "id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf",
    "results": [
        {"index": 3, "relevance_score": 0.999071},
        {"index": 4, "relevance_score": 0.7867867},
        {"index": 0, "relevance_score": 0.32713068},
    ],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
}
EMBED_ANSWER: dict[str, Any] = {
    "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
    "embeddings": {"float": [[0.016296387, -0.008354187, -0.04699707], [0.1, 0.2, 0.3]]},
    "texts": ["hello", "goodbye"],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
    "response_type": "embeddings_by_type",
}


# --- rerank -----------------------------------------------------------------------------


def test_rerank_request_is_the_documented_example() -> None:
    request = RerankRequest(model="x", query=QUERY, documents=DOCUMENTS, top_n=3)
    assert convert.rerank_body(request, "rerank-v3.5", {}) == {
        "model": "rerank-v3.5",
        "query": QUERY,
        "documents": list(DOCUMENTS),
        "top_n": 3,
    }


def test_rerank_request_never_asks_for_documents_and_takes_options_and_extras() -> None:
    request = RerankRequest(
        model="x",
        query="q",
        documents=("a", "b"),
        return_documents=True,
        extra_json=json.dumps({"max_tokens_per_doc": 512, "model": "sneaky"}),
    )
    body = convert.rerank_body(request, "rerank-v3.5", {"max_tokens_per_doc": 1024})
    assert body == {
        "model": "rerank-v3.5",  # typed fields win over extras
        "query": "q",
        "documents": ["a", "b"],
        "max_tokens_per_doc": 512,  # the request's extra wins over the provider option
    }
    assert "top_n" not in body and "return_documents" not in body


def test_rerank_answer_maps_hits_best_first_and_search_units() -> None:
    result = convert.parse_rerank(RERANK_ANSWER, len(DOCUMENTS), 3)
    assert result.hits == (
        RerankHit(3, 0.999071),
        RerankHit(4, 0.7867867),
        RerankHit(0, 0.32713068),
    )
    assert result.search_units == 1
    assert result.total_tokens is None


def test_rerank_answer_is_reordered_and_cut_to_top_n() -> None:
    shuffled = dict(RERANK_ANSWER, results=list(reversed(RERANK_ANSWER["results"])))
    result = convert.parse_rerank(shuffled, len(DOCUMENTS), 2)
    assert [h.index for h in result.hits] == [3, 4]


@pytest.mark.parametrize(
    "answer",
    [
        {"results": [{"index": 9, "relevance_score": 0.5}]},  # no such document
        {"results": [{"index": 0, "relevance_score": "high"}]},
        {"results": "none"},
        [],
    ],
)
def test_unreadable_rerank_answers(answer: Any) -> None:
    with pytest.raises(BadUpstreamError):
        convert.parse_rerank(answer, 2, None)


# --- embed ------------------------------------------------------------------------------


def test_embed_request_is_the_documented_example() -> None:
    request = EmbedRequest(
        model="x",
        texts=("hello", "goodbye"),
        extra_json=json.dumps({"input_type": "classification"}),
    )
    assert convert.embed_body(request, "embed-v4.0", {}) == {
        "texts": ["hello", "goodbye"],
        "model": "embed-v4.0",
        "input_type": "classification",
        "embedding_types": ["float"],
    }


def test_input_type_defaults_to_search_document() -> None:
    body = convert.embed_body(EmbedRequest(model="x", texts=("doc",)), "embed-v4.0", {})
    assert body["input_type"] == "search_document" == convert.DEFAULT_INPUT_TYPE


def test_input_type_option_then_request_extra_override_the_default() -> None:
    plain = EmbedRequest(model="x", texts=("q",))
    assert convert.embed_body(plain, "m", {"input_type": "clustering"})["input_type"] == (
        "clustering"
    )
    query = EmbedRequest(model="x", texts=("q",), extra_json='{"input_type": "search_query"}')
    body = convert.embed_body(query, "m", {"input_type": "clustering", "truncate": "START"})
    assert body["input_type"] == "search_query"
    assert body["truncate"] == "START"


def test_dimensions_become_output_dimension_and_float_is_forced() -> None:
    request = EmbedRequest(
        model="x",
        texts=("a",),
        dimensions=256,
        user="someone",
        extra_json='{"embedding_types": ["int8"]}',
    )
    body = convert.embed_body(request, "embed-v4.0", {})
    assert body["output_dimension"] == 256
    assert body["embedding_types"] == ["float"]
    assert "user" not in body and "dimensions" not in body


def test_embed_answer_maps_vectors_in_order_and_billed_tokens() -> None:
    result = convert.parse_embeddings(EMBED_ANSWER, 2)
    assert [list(v) for v in result.vectors] == EMBED_ANSWER["embeddings"]["float"]
    assert result.usage == Usage(prompt_tokens=2, total_tokens=2)


def test_embed_answer_without_billing_counts_zero() -> None:
    result = convert.parse_embeddings({"embeddings": {"float": [[1.0]]}}, 1)
    assert result.usage == Usage()


@pytest.mark.parametrize(
    "answer",
    [
        {"embeddings": {"int8": [[1, 2]]}},  # not the type we asked for
        {"embeddings": {"float": [[0.1]]}},  # one vector for two texts
        {"embeddings": {"float": [["a"], ["b"]]}},
        {"embeddings": [[0.1], [0.2]]},  # the v1 "embeddings_floats" shape
        "nope",
    ],
)
def test_unreadable_embed_answers(answer: Any) -> None:
    with pytest.raises(BadUpstreamError):
        convert.parse_embeddings(answer, 2)


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            b'{"id": "5f6c", "message": "invalid request: valid input_type must be provided'
            b' with the provided model"}',
            "invalid request: valid input_type must be provided with the provided model",
        ),
        (b'{"data": "too many requests"}', "too many requests"),
        (b"upstream connect error", "upstream connect error"),
        (b"{}", "HTTP 400"),
    ],
)
def test_error_bodies(payload: bytes, message: str) -> None:
    assert error_message(400, payload) == (message, None)
