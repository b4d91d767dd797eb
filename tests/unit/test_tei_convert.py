"""Golden tests for service/providers/tei/convert.py and errors.py.

Examples follow text-embeddings-inference's OpenAPI document: `/rerank` takes
`{query, texts, raw_scores, return_text, truncate}` and answers a bare array of
`{index, score}`; `/embed` takes `{inputs, normalize, truncate}` (strings or token ids)
and answers a bare array of vectors; errors are `{"error", "error_type"}`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.domain.chat import Usage
from service.domain.embeddings import EmbedRequest, RerankHit, RerankRequest
from service.providers.openai_compat.convert import BadUpstreamError
from service.providers.tei import convert
from service.providers.tei.errors import error_message

TEXTS = ("Deep Learning is not...", "Deep Learning is...")
QUERY = "What is Deep Learning?"


# --- rerank -----------------------------------------------------------------------------


def test_rerank_request_is_the_documented_shape() -> None:
    request = RerankRequest(model="x", query=QUERY, documents=TEXTS, top_n=1)
    assert convert.rerank_body(request, {}) == {
        "query": QUERY,
        "texts": list(TEXTS),
        "raw_scores": False,
        "return_text": False,
        "truncate": True,
    }


def test_rerank_request_options_and_extras_but_never_texts_back() -> None:
    request = RerankRequest(
        model="x",
        query="q",
        documents=("a",),
        return_documents=True,
        extra_json=json.dumps({"raw_scores": True, "return_text": True}),
    )
    body = convert.rerank_body(request, {"truncation_direction": "Left", "truncate": False})
    assert body == {
        "query": "q",
        "texts": ["a"],
        "raw_scores": True,  # the client asked for logits
        "return_text": False,  # typed: the gateway echoes documents itself
        "truncate": False,
        "truncation_direction": "Left",
    }
    assert "model" not in body  # TEI serves one model


def test_bare_array_maps_best_first_with_top_n_and_tokens() -> None:
    answer = [{"index": 0, "score": 0.0007}, {"index": 1, "score": 0.9983, "text": "x"}]
    result = convert.parse_rerank(answer, 2, None, {"x-compute-tokens": "14"})
    assert result.hits == (RerankHit(1, 0.9983), RerankHit(0, 0.0007))
    assert result.total_tokens == 14
    assert result.search_units is None
    top = convert.parse_rerank(answer, 2, 1, {})
    assert top.hits == (RerankHit(1, 0.9983),)
    assert top.total_tokens is None


@pytest.mark.parametrize(
    "answer",
    [
        {"results": [{"index": 0, "score": 1.0}]},  # not a bare array
        [{"index": 2, "score": 1.0}],  # no such text
        [{"index": 0}],
        ["0.5"],
    ],
)
def test_unreadable_rerank_answers(answer: Any) -> None:
    with pytest.raises(BadUpstreamError):
        convert.parse_rerank(answer, 2, None, {})


# --- embed ------------------------------------------------------------------------------


def test_embed_request_texts() -> None:
    request = EmbedRequest(model="x", texts=("What is Deep Learning?",), user="u")
    assert convert.embed_body(request, {}) == {
        "inputs": ["What is Deep Learning?"],
        "normalize": True,
        "truncate": True,
    }


def test_embed_request_token_ids_dimensions_options_and_extras() -> None:
    request = EmbedRequest(
        model="x",
        token_inputs=((101, 2054, 102), (101, 102)),
        dimensions=64,
        extra_json=json.dumps({"prompt_name": "query", "inputs": ["sneaky"]}),
    )
    body = convert.embed_body(request, {"normalize": False, "prompt_name": "passage"})
    assert body == {
        "inputs": [[101, 2054, 102], [101, 102]],  # TEI accepts token ids as they are
        "normalize": False,
        "truncate": True,
        "prompt_name": "query",
        "dimensions": 64,
    }


def test_bare_array_of_vectors_maps_in_order_with_computed_tokens() -> None:
    answer = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    result = convert.parse_embeddings(answer, 2, {"x-compute-tokens": "9"})
    assert [list(v) for v in result.vectors] == answer
    assert result.usage == Usage(prompt_tokens=9, total_tokens=9)


@pytest.mark.parametrize("header", [None, "many", "-3"])
def test_missing_or_odd_token_header_counts_zero(header: str | None) -> None:
    headers = {} if header is None else {"x-compute-tokens": header}
    assert convert.parse_embeddings([[1.0]], 1, headers).usage == Usage()


@pytest.mark.parametrize(
    "answer",
    [{"embeddings": [[1.0]]}, [[1.0]], [["a"], ["b"]], [[1.0], "x"]],
)
def test_unreadable_embed_answers(answer: Any) -> None:
    with pytest.raises(BadUpstreamError):
        convert.parse_embeddings(answer, 2, {})


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"error": "Inference failed", "error_type": "backend"}', "Inference failed (backend)"),
        (
            b'{"error": "Model is overloaded", "error_type": "overloaded"}',
            "Model is overloaded (overloaded)",
        ),
        (b'{"error": "Batch size error"}', "Batch size error"),
        (b"Bad Gateway", "Bad Gateway"),
    ],
)
def test_error_bodies(payload: bytes, message: str) -> None:
    assert error_message(424, payload) == (message, None)
