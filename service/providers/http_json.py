"""JSON-over-HTTP plumbing shared by the embedding/rerank adapters (Cohere, TEI, Jina).

These upstreams differ in paths, bodies and error shapes, not in transport: each POSTs
one JSON object and reads one JSON answer. `JsonClient` owns that part once: a pooled
keep-alive connection pool (DESIGN §9), a per-attempt timeout bounded by the provider's
`timeout`, its `connect_timeout` and the request deadline, and every failure raised as a
`ProviderError`. What stays per provider is the error-body parser handed in.

`EmbeddingService` is the base for adapters that serve no chat: the core only routes
chat to them when a model's configuration says so, and then must get a clean refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import orjson

from service.config import ProviderConfig
from service.domain.chat import ChatDelta, ChatRequest, ChatResult
from service.providers.base import Attempt
from service.providers.errors import FailureKind, ProviderError
from service.providers.openai_compat.convert import BadUpstreamError
from service.providers.openai_compat.errors import answered_error, bad_response, transport_error
from service.providers.session import TRANSPORT_ERRORS, UpstreamSession

JSON = dict[str, Any]
# (status, body) -> (message, param): reads one provider's error envelope.
ErrorParser = Callable[[int, bytes], tuple[str, str | None]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer: the parsed JSON body and the headers (TEI counts tokens there)."""

    body: Any
    headers: Mapping[str, str]


def rejected(provider: str, message: str, param: str) -> ProviderError:
    """A request the adapter refuses before sending: the client's fault, a 400 naming `param`."""
    return ProviderError(FailureKind.STATUS, provider, message, status=400, param=param)


@contextmanager
def reading(provider: str) -> Iterator[None]:
    """Turns an answer that convert.py cannot read into a BAD_RESPONSE (a 502, retryable)."""
    try:
        yield
    except BadUpstreamError as exc:
        raise bad_response(provider, str(exc)) from exc


def merged_params(extra_json: str | None, *defaults: Mapping[str, Any]) -> JSON:
    """Upstream body params by precedence: later defaults over earlier, request extras last.

    Typed fields are set by the caller afterwards, so they win over everything.
    """
    body: JSON = {}
    for layer in defaults:
        body.update(layer)
    if extra_json:
        body.update(orjson.loads(extra_json))
    return body


class JsonClient:
    """POSTs JSON to one upstream over a pooled session; raises `ProviderError` for all failures.

    `upstream_faults` are a provider's own status codes that blame the gateway's side,
    not the request, although they are 4xx (see ProviderError.upstream_fault).
    """

    def __init__(
        self,
        config: ProviderConfig,
        parse_error: ErrorParser,
        upstream_faults: Collection[int] = (),
    ) -> None:
        self._config = config
        self._parse_error = parse_error
        self._upstream_faults = frozenset(upstream_faults)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(config.headers)
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._http = UpstreamSession(config, headers)

    async def post(self, path: str, body: JSON, attempt: Attempt) -> Reply:
        name = self._config.name
        url = self._config.base_url + path
        try:
            async with await self._http.post(url, orjson.dumps(body), attempt) as response:
                payload = await response.read()
                headers = response.headers  # names already in lower case
                if response.status >= 400:
                    status = response.status
                    message, param = self._parse_error(status, payload)
                    fault = status in self._upstream_faults
                    raise answered_error(
                        name, status, message, param, headers, upstream_fault=fault
                    )
        except TRANSPORT_ERRORS as exc:
            raise transport_error(name, exc) from exc
        try:
            return Reply(body=orjson.loads(payload), headers=headers)
        except orjson.JSONDecodeError as exc:
            raise bad_response(name, "not JSON") from exc

    def pinned(self, attempt: Attempt) -> Attempt:
        """`attempt` with its end fixed now, so that the provider's `timeout` bounds all the
        batches of one request together rather than each batch anew."""
        return replace(attempt, deadline=self._http.deadline(attempt))

    @property
    def in_use(self) -> int:
        """Connections checked out right now (a probe for tests)."""
        return self._http.in_use

    async def aclose(self) -> None:
        await self._http.aclose()


class EmbeddingService:
    """Base of the embedding/rerank-only adapters: chat is refused as UNSUPPORTED."""

    name: str

    def _no_chat(self) -> ProviderError:
        return ProviderError(
            FailureKind.UNSUPPORTED,
            self.name,
            f"{self.name} serves embeddings and rerank only, not chat completions.",
        )

    async def complete(self, request: ChatRequest, attempt: Attempt) -> ChatResult:
        raise self._no_chat()

    async def stream(self, request: ChatRequest, attempt: Attempt) -> AsyncIterator[ChatDelta]:
        raise self._no_chat()
        yield  # an async generator, as the Provider protocol's `stream` must be
