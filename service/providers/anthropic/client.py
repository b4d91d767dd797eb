"""I/O for Anthropic's Messages API over the shared pooled keep-alive transport.

Every call is bounded by the provider's `timeout` (the whole attempt, stream included),
its `connect_timeout` and the request's deadline, whichever ends first, and by the
optional `first_byte_timeout` (until the headers) and `idle_timeout` (between reads).

Options read from the provider's config entry: `anthropic_version` (the
`anthropic-version` header, default 2023-06-01) and `default_max_tokens` (Anthropic
requires `max_tokens`; this fills it when the client sent none, default 4096).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import orjson
from multidict import CIMultiDict

from service.config import ConfigError, ProviderConfig
from service.domain.chat import ChatDelta, ChatRequest, ChatResult
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.anthropic import answer, convert, errors
from service.providers.anthropic.stream import StreamTranslator, UpstreamStreamError
from service.providers.base import Attempt
from service.providers.openai_compat.stream import BrokenStreamError, sse_data
from service.providers.session import TRANSPORT_ERRORS, UpstreamSession

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


def _option(config: ProviderConfig, key: str, kind: type, default: Any) -> Any:
    """A kind-specific setting from the provider's config entry, checked at start-up."""
    value = config.options.get(key)
    if value is None:
        return default
    wrong = not isinstance(value, kind) or isinstance(value, bool)
    if wrong or (isinstance(value, int) and value < 1):
        expected = "a positive integer" if kind is int else f"a {kind.__name__}"
        raise ConfigError(f"config.providers.{config.name}.{key}: expected {expected}")
    return value


class AnthropicProvider:
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._config = config
        self._url = config.base_url + "/v1/messages"
        self._count_url = self._url + "/count_tokens"
        self._default_max_tokens: int = _option(
            config, "default_max_tokens", int, DEFAULT_MAX_TOKENS
        )
        # Case-insensitive, so that a configured header replaces ours instead of doubling it.
        headers: CIMultiDict[str] = CIMultiDict()
        headers["content-type"] = "application/json"
        headers["anthropic-version"] = _option(config, "anthropic_version", str, DEFAULT_VERSION)
        for key, value in config.headers.items():
            headers[key] = value
        if config.api_key:
            headers["x-api-key"] = config.api_key
        self._http = UpstreamSession(config, headers)

    def _prepare(
        self, request: ChatRequest, attempt: Attempt, *, stream: bool
    ) -> convert.MessagesCall:
        try:
            return convert.build_request(
                request,
                attempt.upstream_model,
                stream=stream,
                default_max_tokens=self._default_max_tokens,
            )
        except convert.RejectedError as exc:
            raise errors.rejected(self.name, str(exc), exc.param) from None
        except convert.UnsupportedError as exc:
            raise errors.unsupported(self.name, str(exc)) from None

    async def _post(self, url: str, body: Any, attempt: Attempt) -> bytes:
        """A unary call's answer body; an upstream error status or a transport failure
        as the provider error it is."""
        try:
            async with await self._http.post(url, orjson.dumps(body), attempt) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise errors.status_error(self.name, response.status, payload, response.headers)
        except TRANSPORT_ERRORS as exc:
            raise errors.transport_error(self.name, exc) from exc
        return payload

    async def complete(self, request: ChatRequest, attempt: Attempt) -> ChatResult:
        call = self._prepare(request, attempt, stream=False)
        payload = await self._post(self._url, call.body, attempt)
        try:
            return answer.parse_message(orjson.loads(payload), call.format_tool)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_response(self.name, "not JSON") from exc
        except answer.BadUpstreamError as exc:
            raise errors.bad_response(self.name, str(exc)) from exc

    async def stream(self, request: ChatRequest, attempt: Attempt) -> AsyncIterator[ChatDelta]:
        call = self._prepare(request, attempt, stream=True)
        translator = StreamTranslator(call.format_tool)
        try:
            async with await self._http.post(
                self._url, orjson.dumps(call.body), attempt, stream=True
            ) as response:
                if response.status >= 400:
                    payload = await response.read()
                    raise errors.status_error(self.name, response.status, payload, response.headers)
                try:
                    async for data in sse_data(response.chunks()):
                        delta = translator.feed(orjson.loads(data))
                        if delta is not None:
                            yield delta
                        if translator.done:
                            break
                finally:
                    # An unfinished body must not go back to the pool: closing it is
                    # also what tells the upstream that we stopped listening.
                    response.close()
        except TRANSPORT_ERRORS as exc:
            raise errors.transport_error(self.name, exc) from exc
        except UpstreamStreamError as exc:
            raise errors.stream_error(self.name, exc.error_type, exc.message) from exc
        except (orjson.JSONDecodeError, BrokenStreamError) as exc:
            raise errors.bad_response(self.name, "broken event stream") from exc
        except answer.BadUpstreamError as exc:
            raise errors.bad_response(self.name, str(exc)) from exc
        if not translator.finished:
            raise errors.bad_response(self.name, "the stream ended before it finished")

    async def count_tokens(self, request: ChatRequest, attempt: Attempt) -> int:
        """The prompt's input tokens as Anthropic counts them (`/v1/messages/count_tokens`):
        the request converted as for a message call, without `max_tokens` and the
        sampling fields that endpoint does not take. Bounded as every call is."""
        body = convert.count_body(self._prepare(request, attempt, stream=False))
        payload = await self._post(self._count_url, body, attempt)
        try:
            counted = orjson.loads(payload).get("input_tokens")
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise errors.bad_response(self.name, "not a token count") from exc
        if type(counted) is not int or counted < 0:
            raise errors.bad_response(self.name, "no input_tokens in the token count")
        return counted

    def _no(self, what: str) -> NoReturn:
        raise errors.unsupported(self.name, f"Anthropic serves no {what}.")

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        self._no("embeddings")

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        self._no("rerank")

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = ["AnthropicProvider"]
