"""Cohere, TEI and Jina through a real gateway, against the mock in mock_rerankers.py.

What the contract suite (tests/contract/test_adapters.py) does not show: chat refused
twice over (by the catalog, then by the adapter), upstream failures mapped to the error
contract, Cohere's `input_type` on the wire, TEI's bare arrays and `dimensions` switch,
and token-id inputs where a provider takes text only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from service.config import ConfigError, ProviderConfig
from service.domain.embeddings import EmbedRequest, RerankRequest
from service.providers.base import Attempt, Provider
from service.providers.batches import MAX_IN_FLIGHT
from service.providers.cohere import CohereProvider
from service.providers.errors import FailureKind, ProviderError
from service.providers.jina import JinaProvider
from service.providers.tei import TEIProvider
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import RawResponse, request
from tests.fixtures.mock_openai import _embed as unit_vector
from tests.fixtures.mock_rerankers import DEFAULT_DIMS, MockRerankers

PROVIDERS = ("cohere", "tei", "jina")
DOCUMENTS = ["Berlin is in Germany", "Paris is the capital of France", "Madrid is in Spain"]


def _config(url: str) -> str:
    key = "api_key: upstream-secret"
    providers = {
        "cohere": f"{{kind: cohere, base_url: '{url}', {key}}}",
        "cohere_query": f"{{kind: cohere, base_url: '{url}', {key}, input_type: search_query}}",
        "cohere_small": f"{{kind: cohere, base_url: '{url}', {key}, batch_size: 10}}",
        "tei": f"{{kind: tei, base_url: '{url}', timeout: 20}}",
        "tei_dims": f"{{kind: tei, base_url: '{url}', dimensions_supported: true}}",
        "tei_fail500": f"{{kind: tei, base_url: '{url}/fail500'}}",
        "tei_fail429": f"{{kind: tei, base_url: '{url}/fail429'}}",
        "tei_fail424": f"{{kind: tei, base_url: '{url}/fail424'}}",
        "jina": f"{{kind: jina, base_url: '{url}', {key}}}",
        "cohere_badkey": f"{{kind: cohere, base_url: '{url}', api_key: wrong}}",
        "jina_badkey": f"{{kind: jina, base_url: '{url}', api_key: wrong}}",
    }
    models = {
        # Embedding and rerank models: no chat capability.
        "cohere/embed": ("cohere", "embed-v4.0"),
        "cohere/rerank": ("cohere", "rerank-v3.5"),
        "cohere/query-embed": ("cohere_query", "embed-v4.0"),
        "cohere/small-batches": ("cohere_small", "embed-v4.0"),
        "cohere/together": ("cohere_small", "together"),
        "tei/embed": ("tei", "BAAI/bge-small-en-v1.5"),
        "tei/rerank": ("tei", "BAAI/bge-reranker-base"),
        "tei/dims-embed": ("tei_dims", "nomic-ai/nomic-embed-text-v1.5"),
        "jina/embed": ("jina", "jina-embeddings-v3"),
        "jina/rerank": ("jina", "jina-reranker-v2-base-multilingual"),
        "cohere/fail500": ("cohere", "fail500"),
        "cohere/fail429": ("cohere", "fail429"),
        "tei/fail500": ("tei_fail500", "any"),
        "tei/fail429": ("tei_fail429", "any"),
        "tei/fail424": ("tei_fail424", "any"),
        "cohere/fail498": ("cohere", "fail498"),
        "jina/fail500": ("jina", "fail500"),
        "jina/fail429": ("jina", "fail429"),
        "cohere/badkey-embed": ("cohere_badkey", "embed-v4.0"),
        "jina/badkey-embed": ("jina_badkey", "jina-embeddings-v3"),
    }
    # One attempt per call and no breaker in the way: these tests are about how each
    # adapter maps its upstream's answers, not about retries (tests/resilience has those).
    lines = ["routing: {retries: 0, breaker: {failures: 1000, min_calls: 1000}}", "providers:"]
    lines += [f"  {name}: {body}" for name, body in providers.items()]
    lines.append("models:")
    for model_id, (provider, upstream) in models.items():
        lines.append(
            f"  - {{id: {model_id}, capabilities: [embeddings, rerank], "
            f"endpoints: [{{provider: {provider}, model: '{upstream}'}}]}}"
        )
    for provider in PROVIDERS:  # misconfigured on purpose: chat routed to a rerank service
        lines.append(
            f"  - {{id: {provider}/forced-chat, capabilities: [chat], "
            f"endpoints: [{{provider: {provider}, model: anything}}]}}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockRerankers]:
    mock = MockRerankers().start()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def gateway(upstream: MockRerankers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = tmp_path_factory.mktemp("rerankers") / "switchyard.yaml"
    config.write_text(_config(upstream.base_url), encoding="utf-8")
    running = start_gateway(config, tmp_path_factory.mktemp("data-rerankers"))
    yield running
    running.stop()


@pytest.fixture
def mock(upstream: MockRerankers) -> MockRerankers:
    upstream.clear()
    return upstream


def post(gateway: Gateway, path: str, body: dict[str, Any]) -> RawResponse:
    headers = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}
    return request("POST", gateway.base_url + path, body, headers)


def error_of(raw: RawResponse, status: int, kind: str) -> dict[str, Any]:
    assert raw.status == status, raw.body
    error: dict[str, Any] = raw.json()["error"]
    assert error["code"] == status
    assert error["type"] == kind
    return error


def embed(gateway: Gateway, model: str, **fields: Any) -> RawResponse:
    return post(gateway, "/embeddings", {"model": model, "input": ["a", "b"], **fields})


def rerank(gateway: Gateway, model: str, **fields: Any) -> RawResponse:
    body = {"model": model, "query": "capital of France", "documents": DOCUMENTS, **fields}
    return post(gateway, "/rerank", body)


# --- chat is not served -----------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_chat_on_an_embedding_model_is_refused_by_the_catalog(
    gateway: Gateway, provider: str
) -> None:
    raw = post(
        gateway,
        "/chat/completions",
        {"model": f"{provider}/embed", "messages": [{"role": "user", "content": "hi"}]},
    )
    error = error_of(raw, 400, "invalid_request_error")
    assert error["param"] == "model"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_chat_forced_through_is_refused_by_the_adapter(
    gateway: Gateway, mock: MockRerankers, provider: str, stream: bool
) -> None:
    raw = post(
        gateway,
        "/chat/completions",
        {
            "model": f"{provider}/forced-chat",
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    error = error_of(raw, 503, "service_unavailable")
    assert error["metadata"]["provider_name"] == provider
    assert "not chat" in error["message"]
    assert mock.requests == []  # refused before anything was sent


# --- upstream failures ------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("call", [embed, rerank])
@pytest.mark.parametrize(
    ("status", "answered", "kind"),
    [("500", 502, "upstream_error"), ("429", 429, "rate_limit_error")],
)
def test_upstream_failures_map_to_the_contract(
    gateway: Gateway, provider: str, call: Any, status: str, answered: int, kind: str
) -> None:
    """With retries off, an upstream 500 ends as a 502 naming the provider, and an
    upstream 429 stays a 429 with the upstream's Retry-After (as OpenRouter answers)."""
    raw = call(gateway, f"{provider}/fail{status}")
    error = error_of(raw, answered, kind)
    expected = "tei_fail" + status if provider == "tei" else provider
    assert error["metadata"]["provider_name"] == expected
    assert error["metadata"]["upstream_status"] == status
    assert f"HTTP {status}" in error["message"]
    if status == "429":
        assert raw.headers.get("retry-after") == "7"


@pytest.mark.parametrize(("model", "status"), [("cohere/fail498", "498"), ("tei/fail424", "424")])
def test_a_4xx_that_is_not_the_clients_fault_is_a_502_with_its_own_status(
    gateway: Gateway, model: str, status: str
) -> None:
    """Cohere's 498 (its invalid token) and TEI's 424 (inference failed) blame the
    gateway's side: a 502 for the client, with what the upstream actually answered."""
    error = error_of(embed(gateway, model), 502, "upstream_error")
    assert error["metadata"]["upstream_status"] == status
    assert f"HTTP {status}" in error["message"]


@pytest.mark.parametrize("provider", ["cohere", "jina"])
def test_a_refused_upstream_key_is_not_the_clients_fault(gateway: Gateway, provider: str) -> None:
    error = error_of(embed(gateway, f"{provider}/badkey-embed"), 502, "upstream_error")
    assert error["metadata"]["provider_name"] == f"{provider}_badkey"
    assert error["metadata"]["upstream_status"] == "401"


# --- Cohere -----------------------------------------------------------------------------


def test_cohere_input_type_defaults_to_search_document(
    gateway: Gateway, mock: MockRerankers
) -> None:
    raw = embed(gateway, "cohere/embed")
    assert raw.status == 200, raw.body
    (body,) = mock.bodies("/v2/embed")
    assert body["input_type"] == "search_document"
    assert body["model"] == "embed-v4.0"
    assert body["texts"] == ["a", "b"]
    assert body["embedding_types"] == ["float"]
    (sent,) = [r for r in mock.requests if r.path == "/v2/embed"]
    assert sent.headers["authorization"] == "Bearer upstream-secret"
    usage = raw.json()["usage"]
    assert usage == {"prompt_tokens": 2, "total_tokens": 2}  # meta.billed_units.input_tokens


def test_cohere_input_type_from_extra_params_and_from_the_provider(
    gateway: Gateway, mock: MockRerankers
) -> None:
    assert embed(gateway, "cohere/embed", input_type="search_query").status == 200
    assert embed(gateway, "cohere/query-embed").status == 200
    assert embed(gateway, "cohere/query-embed", input_type="clustering").status == 200
    types = [b["input_type"] for b in mock.bodies("/v2/embed")]
    assert types == ["search_query", "search_query", "clustering"]


def test_cohere_dimensions_become_output_dimension(gateway: Gateway, mock: MockRerankers) -> None:
    raw = embed(gateway, "cohere/embed", dimensions=256)
    assert raw.status == 200, raw.body
    assert {len(d["embedding"]) for d in raw.json()["data"]} == {256}
    assert mock.bodies("/v2/embed")[0]["output_dimension"] == 256


@pytest.mark.parametrize("provider", ["cohere", "jina"])
def test_token_ids_are_refused_where_only_text_is_taken(
    gateway: Gateway, mock: MockRerankers, provider: str
) -> None:
    raw = post(gateway, "/embeddings", {"model": f"{provider}/embed", "input": [[101, 102]]})
    error = error_of(raw, 400, "invalid_request_error")
    assert error["param"] == "input"
    assert error["metadata"]["provider_name"] == provider
    assert mock.requests == []


def test_cohere_rerank_search_units(gateway: Gateway, mock: MockRerankers) -> None:
    raw = rerank(gateway, "cohere/rerank", top_n=2, max_tokens_per_doc=256)
    assert raw.status == 200, raw.body
    answer = raw.json()
    assert [r["index"] for r in answer["results"]] == [1, 0]
    assert answer["usage"] == {"search_units": 1}
    (body,) = mock.bodies("/v2/rerank")
    assert body == {
        "model": "rerank-v3.5",
        "query": "capital of France",
        "documents": DOCUMENTS,
        "top_n": 2,
        "max_tokens_per_doc": 256,
    }


# --- batches: more inputs than one upstream call takes -----------------------------------


def _texts(count: int) -> list[str]:
    return [f"text{i}" for i in range(count)]


def assert_vectors(raw: RawResponse, inputs: list[Any]) -> None:
    """One vector per input, in input order: the mock's vector of that very input."""
    data = raw.json()["data"]
    assert [d["index"] for d in data] == list(range(len(inputs)))
    for item, got in zip(inputs, data, strict=True):
        assert got["embedding"] == pytest.approx(unit_vector(item, DEFAULT_DIMS), rel=1e-5)


def test_cohere_embeds_more_than_96_texts_in_batches(gateway: Gateway, mock: MockRerankers) -> None:
    texts = _texts(100)
    raw = post(gateway, "/embeddings", {"model": "cohere/embed", "input": texts})
    assert raw.status == 200, raw.body
    assert_vectors(raw, texts)
    sent = mock.bodies("/v2/embed")
    assert sorted(len(b["texts"]) for b in sent) == [4, 96]
    assert sorted(t for b in sent for t in b["texts"]) == sorted(texts)
    assert {b["input_type"] for b in sent} == {"search_document"}  # every batch, same params
    # One word per text, billed per batch by Cohere: the batches' units add up.
    assert raw.json()["usage"] == {"prompt_tokens": 100, "total_tokens": 100}


def test_batches_are_concurrent_bounded_and_sized_by_the_option(
    gateway: Gateway, mock: MockRerankers
) -> None:
    """Model `together` answers only once two calls overlapped: sequential batches fail."""
    texts = _texts(95)
    raw = post(gateway, "/embeddings", {"model": "cohere/together", "input": texts})
    assert raw.status == 200, raw.body
    assert_vectors(raw, texts)
    assert sorted(len(b["texts"]) for b in mock.bodies("/v2/embed")) == [5] + [10] * 9
    assert 2 <= mock.max_in_flight <= MAX_IN_FLIGHT


def test_a_failing_batch_fails_the_request_and_cancels_the_others(
    gateway: Gateway, mock: MockRerankers
) -> None:
    texts = _texts(30)
    texts[3], texts[25] = "[hang]", "[fail500]"  # the first batch hangs, the third fails
    raw = post(gateway, "/embeddings", {"model": "cohere/small-batches", "input": texts})
    error = error_of(raw, 502, "upstream_error")
    assert error["metadata"]["upstream_status"] == "500"
    assert "internal server error" in error["message"]
    # The hanging batch was not left running: its connection was closed.
    assert mock.wait_for_disconnect(10), "the hanging batch was not cancelled"


def test_tei_embeds_in_batches_of_its_max_client_batch_size(
    gateway: Gateway, mock: MockRerankers
) -> None:
    texts = _texts(70)
    raw = post(gateway, "/embeddings", {"model": "tei/embed", "input": texts})
    assert raw.status == 200, raw.body
    assert_vectors(raw, texts)
    assert raw.json()["usage"] == {"prompt_tokens": 70, "total_tokens": 70}  # x-compute-tokens
    ids = [[101, i, 102] for i in range(40)]
    tokens = post(gateway, "/embeddings", {"model": "tei/embed", "input": ids})
    assert tokens.status == 200, tokens.body
    assert_vectors(tokens, ids)
    assert tokens.json()["usage"]["prompt_tokens"] == 120
    sizes = sorted(len(b["inputs"]) for b in mock.bodies("/embed"))
    assert sizes == [6, 8, 32, 32, 32]


def test_tei_reranks_in_batches_with_top_n_over_all_documents(
    gateway: Gateway, mock: MockRerankers
) -> None:
    documents = [f"filler number {i}" for i in range(70)]
    documents[5] = "the capital of it"  # two of three query words
    documents[40] = "Paris is the capital of France"  # all of them, in the second batch
    documents[66] = "France"  # one, in the third
    body = {"model": "tei/rerank", "query": "capital of France", "documents": documents}
    raw = post(gateway, "/rerank", {**body, "top_n": 3, "return_documents": True})
    assert raw.status == 200, raw.body
    results = raw.json()["results"]
    assert [r["index"] for r in results] == [40, 5, 66]  # indexes into the whole list
    assert results[0]["document"] == {"text": documents[40]}
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    # What TEI computed for the three batches together: the query once per document.
    assert raw.json()["usage"]["total_tokens"] == 3 * 70 + sum(len(d.split()) for d in documents)
    sent = mock.bodies("/rerank")
    assert sorted(len(b["texts"]) for b in sent) == [6, 32, 32]
    assert sorted(t for b in sent for t in b["texts"]) == sorted(documents)
    everything = post(gateway, "/rerank", body)
    assert everything.status == 200, everything.body
    assert len(everything.json()["results"]) == 70  # no top_n: every document, ranked


@pytest.mark.parametrize("kind", ["cohere", "tei"])
@pytest.mark.parametrize("value", [0, -3, "32", True, 1.5])
def test_a_bad_batch_size_fails_start_up(kind: str, value: Any) -> None:
    classes: dict[str, Callable[[ProviderConfig], Provider]] = {
        "cohere": CohereProvider,
        "tei": TEIProvider,
    }
    config = ProviderConfig(
        name="up", kind=kind, base_url="http://127.0.0.1:1", options={"batch_size": value}
    )
    with pytest.raises(ConfigError, match=r"config\.providers\.up\.batch_size"):
        classes[kind](config)


# --- TEI --------------------------------------------------------------------------------


def test_tei_bare_rerank_array_is_mapped(gateway: Gateway, mock: MockRerankers) -> None:
    raw = rerank(gateway, "tei/rerank", top_n=2, return_documents=True)
    assert raw.status == 200, raw.body
    answer = raw.json()
    results = answer["results"]
    assert [r["index"] for r in results] == [1, 0]  # cut to top_n by the adapter
    assert results[0]["document"] == {"text": "Paris is the capital of France"}
    assert results[0]["relevance_score"] > results[1]["relevance_score"]
    assert answer["usage"]["total_tokens"] > 0  # from x-compute-tokens
    (body,) = mock.bodies("/rerank")
    assert body == {
        "query": "capital of France",
        "texts": DOCUMENTS,
        "raw_scores": False,
        "return_text": False,
        "truncate": True,
    }
    assert "authorization" not in mock.requests[0].headers  # no key configured


def test_tei_bare_embed_array_and_token_ids(gateway: Gateway, mock: MockRerankers) -> None:
    texts = embed(gateway, "tei/embed")
    ids = post(gateway, "/embeddings", {"model": "tei/embed", "input": [[101, 7592, 102]]})
    assert texts.status == ids.status == 200, (texts.body, ids.body)
    assert texts.json()["model"] == "tei/embed"  # TEI's one model is named by our catalog
    data = texts.json()["data"]
    assert [d["index"] for d in data] == [0, 1] and data[0]["embedding"] != data[1]["embedding"]
    assert texts.json()["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert ids.json()["usage"]["prompt_tokens"] == 3
    first, second = mock.bodies("/embed")
    assert first == {"inputs": ["a", "b"], "normalize": True, "truncate": True}
    assert second["inputs"] == [[101, 7592, 102]]


def test_tei_dimensions_need_the_option(gateway: Gateway, mock: MockRerankers) -> None:
    refused = embed(gateway, "tei/embed", dimensions=8)
    error = error_of(refused, 400, "invalid_request_error")
    assert error["param"] == "dimensions"
    assert mock.requests == []
    sized = embed(gateway, "tei/dims-embed", dimensions=8)
    assert sized.status == 200, sized.body
    assert {len(d["embedding"]) for d in sized.json()["data"]} == {8}
    assert mock.bodies("/embed")[0]["dimensions"] == 8


# --- Jina -------------------------------------------------------------------------------


def test_jina_task_dimensions_and_rerank(gateway: Gateway, mock: MockRerankers) -> None:
    raw = embed(gateway, "jina/embed", task="retrieval.query", dimensions=32)
    assert raw.status == 200, raw.body
    assert {len(d["embedding"]) for d in raw.json()["data"]} == {32}
    (body,) = mock.bodies("/v1/embeddings")
    assert body == {
        "task": "retrieval.query",
        "model": "jina-embeddings-v3",
        "input": ["a", "b"],
        "dimensions": 32,
    }
    ranked = rerank(gateway, "jina/rerank", top_n=1)
    assert ranked.status == 200, ranked.body
    assert [r["index"] for r in ranked.json()["results"]] == [1]
    assert mock.bodies("/v1/rerank")[0]["return_documents"] is False


def test_jina_validation_error_names_the_param(gateway: Gateway) -> None:
    raw = embed(gateway, "jina/embed", task="summarize")
    error = error_of(raw, 400, "invalid_request_error")
    assert error["param"] == "task"
    assert error["metadata"]["provider_name"] == "jina"


# --- the adapters on their own: what the gateway's answer does not show -----------------


def _adapter(kind: str, url: str, timeout: float = 30.0) -> Provider:
    classes: dict[str, Callable[[ProviderConfig], Provider]] = {
        "cohere": CohereProvider,
        "tei": TEIProvider,
        "jina": JinaProvider,
    }
    config = ProviderConfig(
        name=kind, kind=kind, base_url=url, api_key="upstream-secret", timeout=timeout
    )
    return classes[kind](config)


def _failure(adapter: Provider, call: Callable[[], Awaitable[Any]]) -> ProviderError:
    async def scenario() -> ProviderError:
        try:
            await call()
        except ProviderError as err:
            return err
        finally:
            await adapter.aclose()
        raise AssertionError("the call succeeded")

    return asyncio.run(scenario())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_carries_retry_after(upstream: MockRerankers, provider: str) -> None:
    url = upstream.base_url + ("/fail429" if provider == "tei" else "")
    adapter = _adapter(provider, url)
    err = _failure(
        adapter, lambda: adapter.embed(EmbedRequest(model="m", texts=("a",)), Attempt("fail429"))
    )
    assert (err.kind, err.status, err.retry_after) == (FailureKind.STATUS, 429, 7.0)
    assert err.retryable and not err.client_fault


@pytest.mark.parametrize("provider", ["cohere", "jina"])
def test_a_hanging_upstream_is_cut_at_the_deadline(upstream: MockRerankers, provider: str) -> None:
    adapter = _adapter(provider, upstream.base_url)
    rerank_request = RerankRequest(model="m", query="q", documents=("a",))

    async def call() -> Any:
        deadline = asyncio.get_running_loop().time() + 0.3
        return await adapter.rerank(rerank_request, Attempt("hang", deadline))

    started = time.monotonic()
    err = _failure(adapter, call)
    assert err.kind is FailureKind.TIMEOUT
    assert time.monotonic() - started < 5


def test_a_hanging_upstream_is_cut_at_the_provider_timeout(upstream: MockRerankers) -> None:
    adapter = _adapter("cohere", upstream.base_url, timeout=0.3)
    embed_request = EmbedRequest(model="m", texts=("a",))
    err = _failure(adapter, lambda: adapter.embed(embed_request, Attempt("hang")))
    assert err.kind is FailureKind.TIMEOUT


@pytest.mark.parametrize("bound", ["deadline", "timeout"])
def test_every_batch_ends_by_the_one_deadline_of_the_attempt(
    mock: MockRerankers, bound: str
) -> None:
    """A batch that hangs (the third of three) is cut where the whole call would be."""
    adapter = _adapter("cohere", mock.base_url, timeout=0.3 if bound == "timeout" else 30)
    texts = (*(f"t{i}" for i in range(199)), "[hang]")

    async def call() -> Any:
        deadline = asyncio.get_running_loop().time() + 0.3 if bound == "deadline" else None
        return await adapter.embed(EmbedRequest(model="m", texts=texts), Attempt("m", deadline))

    err = _failure(adapter, call)
    assert err.kind is FailureKind.TIMEOUT
    assert mock.wait_for_disconnect(10), "the hanging batch was left open"
