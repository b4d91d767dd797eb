"""The core: route a validated domain request to a provider and map its failures.

Transport-free (no protobuf here): the servicers translate proto <-> domain around it,
and this is the one place where a `ProviderError` becomes a contract error.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from service import errors
from service.config import Config, ModelConfig
from service.domain.chat import ChatDelta, ChatRequest, ChatResult
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.pipeline import CallContext
from service.providers.base import Attempt, Provider
from service.providers.errors import FailureKind, ProviderError
from service.routing.router import Route, Router


@dataclass(frozen=True, slots=True)
class Served:
    """What actually served a request: reported to the client, billed later."""

    model: str
    provider: str
    upstream_ms: float = 0.0  # waiting on the upstream (to first chunk, for streams)


class StreamTiming:
    """Filled in as a stream runs: the upstream's time to its first delta."""

    __slots__ = ("first_delta_ms",)

    def __init__(self) -> None:
        self.first_delta_ms = 0.0


# An attempt bounded by the request deadline times out at (about) the deadline; timer
# callbacks may fire up to a clock tick early, so "about" needs a little slack.
DEADLINE_SLACK = 0.05


def provider_failure(err: ProviderError, call: CallContext) -> errors.GatewayError:
    """The contract error for an upstream failure (DESIGN §4)."""
    remaining = call.remaining()
    if (
        remaining is not None
        and remaining < DEADLINE_SLACK
        and err.kind in (FailureKind.TIMEOUT, FailureKind.CONNECT)
    ):
        return errors.request_timeout(None)
    if err.kind in (FailureKind.UNSUPPORTED, FailureKind.OVERLOADED):
        return errors.GatewayError(
            "NO_PROVIDER_AVAILABLE",
            err.message,
            metadata={"provider_name": err.provider},
            retry_after=err.retry_after,
        )
    if err.client_fault:
        return errors.GatewayError(
            "INVALID_REQUEST",
            f"The provider rejected the request: {err.message}",
            param=err.param,
            metadata={"provider_name": err.provider},
        )
    return errors.upstream_error(err.provider, err.message, err.status)


class Engine:
    def __init__(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self._config = config
        self._providers = providers
        self._router = Router(config, providers)

    @property
    def models(self) -> tuple[ModelConfig, ...]:
        return self._config.models

    def _attempt(self, route: Route, call: CallContext) -> Attempt:
        if call.expired():
            raise errors.request_timeout(None)
        return Attempt(upstream_model=route.endpoint.model, deadline=call.deadline)

    @staticmethod
    def _served(route: Route, started: float | None = None) -> Served:
        upstream_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        return Served(model=route.model.id, provider=route.provider.name, upstream_ms=upstream_ms)

    async def chat(self, request: ChatRequest, call: CallContext) -> tuple[ChatResult, Served]:
        route = self._router.resolve(request.model, "chat")
        started = time.perf_counter()
        try:
            result = await route.provider.complete(request, self._attempt(route, call))
        except ProviderError as err:
            raise provider_failure(err, call) from err
        return result, self._served(route, started)

    def chat_stream(
        self, request: ChatRequest, call: CallContext, timing: StreamTiming
    ) -> tuple[AsyncIterator[ChatDelta], Served]:
        """Resolve now (so routing errors surface before any chunk), stream lazily."""
        route = self._router.resolve(request.model, "chat")
        attempt = self._attempt(route, call)
        deltas = self._guarded(route.provider.stream(request, attempt), call, timing)
        return deltas, self._served(route)

    @staticmethod
    async def _guarded(
        deltas: AsyncIterator[ChatDelta], call: CallContext, timing: StreamTiming
    ) -> AsyncIterator[ChatDelta]:
        started = time.perf_counter()
        try:
            async for delta in deltas:
                if not timing.first_delta_ms:
                    timing.first_delta_ms = (time.perf_counter() - started) * 1000
                yield delta
        except ProviderError as err:
            raise provider_failure(err, call) from err
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]

    async def embed(self, request: EmbedRequest, call: CallContext) -> tuple[EmbedResult, Served]:
        route = self._router.resolve(request.model, "embeddings")
        started = time.perf_counter()
        try:
            result = await route.provider.embed(request, self._attempt(route, call))
        except ProviderError as err:
            raise provider_failure(err, call) from err
        return result, self._served(route, started)

    async def rerank(
        self, request: RerankRequest, call: CallContext
    ) -> tuple[RerankResult, Served]:
        route = self._router.resolve(request.model, "rerank")
        started = time.perf_counter()
        try:
            result = await route.provider.rerank(request, self._attempt(route, call))
        except ProviderError as err:
            raise provider_failure(err, call) from err
        return result, self._served(route, started)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
