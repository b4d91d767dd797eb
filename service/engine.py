"""The core: route a validated domain request, retry and fall back, map failures.

Transport-free (no protobuf here): the servicers translate proto <-> domain around it,
and this is the one place where a `ProviderError` becomes a contract error. Retries and
fallbacks happen only before anything reached the client: for a stream, until its
first delta with content (DESIGN §5-6).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from service import errors
from service.catalog import Pricing
from service.config import Config, ModelConfig
from service.domain.chat import ChatDelta, ChatRequest, ChatResult
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.domain.routing import Routing
from service.pipeline import CallContext
from service.providers.base import Attempt, Provider
from service.providers.errors import FailureKind, ProviderError
from service.routing import requirements
from service.routing.health import EndpointHealth, HealthBoard
from service.routing.router import Candidate, Router

log = logging.getLogger("switchyard.engine")
T = TypeVar("T")

# An attempt bounded by the request deadline times out at (about) the deadline; timer
# callbacks may fire up to a clock tick early, so "about" needs a little slack.
DEADLINE_SLACK = 0.05
# Failures that say "not this endpoint, not now" rather than "this endpoint is broken".
_NOT_HEALTH = (FailureKind.UNSUPPORTED, FailureKind.OVERLOADED)


@dataclass(frozen=True, slots=True)
class Served:
    """What actually served a request: reported to the client, billed later."""

    model: str
    provider: str
    upstream_ms: float = 0.0  # waiting on the upstream (to first chunk, for streams)
    upstream_model: str = ""
    pricing: Pricing = field(default_factory=Pricing)


class StreamTiming:
    """Filled in as a stream runs: the upstream's time to its first delta."""

    __slots__ = ("first_delta_ms",)

    def __init__(self) -> None:
        self.first_delta_ms = 0.0


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - asyncio.get_running_loop().time()


def _expired(deadline: float | None) -> bool:
    remaining = _remaining(deadline)
    return remaining is not None and remaining < DEADLINE_SLACK


def provider_failure(err: ProviderError, deadline: float | None) -> errors.GatewayError:
    """The contract error for one upstream failure (DESIGN §4)."""
    if _expired(deadline) and err.kind in (FailureKind.TIMEOUT, FailureKind.CONNECT):
        return errors.request_timeout()
    if err.kind in _NOT_HEALTH:
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


def _substantive(delta: ChatDelta) -> bool:
    """A delta worth committing the response for (not just a role or empty text)."""
    return any(c.content or c.tool_calls or c.refusal or c.finish_reason for c in delta.choices)


class Engine:
    def __init__(
        self, config: Config, providers: Mapping[str, Provider], rng: random.Random | None = None
    ) -> None:
        self._config = config
        self._providers = providers
        self._health = HealthBoard(config.routing.breaker)
        self._policy = config.routing.retry
        self._rng = rng or random.Random()
        self._router = Router(config, providers, self._health, self._rng)

    @property
    def models(self) -> tuple[ModelConfig, ...]:
        return self._config.models

    def health(self, key: str) -> EndpointHealth:
        return self._health.get(key)

    def reset_health(self) -> None:
        self._health.reset()

    def _deadline(self, call: CallContext, candidates: list[Candidate]) -> float | None:
        """The caller's deadline, else the primary model's default timeout."""
        if call.deadline is not None:
            return call.deadline
        timeout = candidates[0].model.timeout
        return None if timeout is None else asyncio.get_running_loop().time() + timeout

    async def _attempts(
        self,
        candidates: list[Candidate],
        deadline: float | None,
        run: Callable[[Candidate, Attempt], Awaitable[T]],
    ) -> tuple[T, Candidate, EndpointHealth]:
        """Try each candidate, retrying retryable failures, until one answers."""
        failures: list[ProviderError] = []
        blocked: list[float] = []
        for candidate in candidates:
            health = self._health.get(candidate.endpoint.key)
            for attempt in range(self._policy.retries + 1):
                if not health.available(self._health.now()):
                    log.info(
                        "skipping %s for %s: circuit open",
                        candidate.endpoint.key,
                        candidate.model.id,
                    )
                    blocked.append(health.retry_after(self._health.now()))
                    break
                if _expired(deadline):
                    raise errors.request_timeout()
                try:
                    result = await run(candidate, Attempt(candidate.endpoint.model, deadline))
                except ProviderError as err:
                    if err.client_fault:
                        health.success(self._health.now(), None, None)  # it answered
                        raise provider_failure(err, deadline) from err
                    if _expired(deadline):
                        raise errors.request_timeout() from err
                    # Kept without its traceback, which holds this frame: a reference
                    # cycle per failed attempt otherwise (tests/resilience/test_no_cycles).
                    failures.append(err.with_traceback(None))
                    if err.kind in _NOT_HEALTH:
                        health.probing = False
                        break
                    if health.failure(self._health.now()):
                        log.warning("circuit opened for %s: %s", candidate.endpoint.key, err)
                    delay = (
                        self._policy.delay(attempt, err.retry_after, self._rng)
                        if err.retryable
                        else None
                    )
                    remaining = _remaining(deadline)
                    if delay is None or (remaining is not None and delay >= remaining):
                        log.info("giving up on %s: %s", candidate.endpoint.key, err.message)
                        break
                    log.info("retrying %s in %.2f s: %s", candidate.endpoint.key, delay, err)
                    await asyncio.sleep(delay)
                else:
                    return result, candidate, health
        raise self._exhausted(candidates, failures, blocked, deadline)

    @staticmethod
    def _exhausted(
        candidates: list[Candidate],
        failures: list[ProviderError],
        blocked: list[float],
        deadline: float | None,
    ) -> errors.GatewayError:
        model = candidates[0].model.id
        real = [f for f in failures if f.kind not in _NOT_HEALTH]
        if real:
            last = real[-1]
            err = provider_failure(last, deadline)
            tried = sorted({f.provider for f in failures})
            return errors.GatewayError(
                err.reason,
                f"Every provider for '{model}' failed; the last said: {last.message}",
                param=err.param,
                metadata={
                    **err.metadata,
                    "providers_tried": ",".join(tried),
                    "attempts": str(len(failures)),
                },
            )
        if failures:
            return provider_failure(failures[-1], deadline)
        return errors.GatewayError(
            "NO_PROVIDER_AVAILABLE",
            f"Every provider for '{model}' is temporarily unavailable (circuit open).",
            metadata={"requested_model": model},
            retry_after=min(blocked) if blocked else None,
        )

    @staticmethod
    def _served(candidate: Candidate, upstream_ms: float) -> Served:
        return Served(
            model=candidate.model.id,
            provider=candidate.endpoint.provider,
            upstream_ms=upstream_ms,
            upstream_model=candidate.endpoint.model,
            pricing=candidate.endpoint.pricing,
        )

    async def _unary(
        self,
        capability: str,
        model: str,
        needs: requirements.Requirements,
        routing: Routing,
        call: CallContext,
        run: Callable[[Candidate, Attempt], Awaitable[T]],
        tokens: Callable[[T], int],
    ) -> tuple[T, Served]:
        candidates = self._router.plan(model, capability, routing, needs)
        deadline = self._deadline(call, candidates)
        started = time.perf_counter()
        result, candidate, health = await self._attempts(candidates, deadline, run)
        elapsed = time.perf_counter() - started
        produced = tokens(result)
        health.success(
            self._health.now(), elapsed * 1000, produced / elapsed if produced and elapsed else None
        )
        return result, self._served(candidate, elapsed * 1000)

    async def chat(self, request: ChatRequest, call: CallContext) -> tuple[ChatResult, Served]:
        return await self._unary(
            "chat",
            request.model,
            requirements.for_chat(request),
            request.routing,
            call,
            lambda c, a: c.provider.complete(request, a),
            lambda r: r.usage.completion_tokens if r.usage else 0,
        )

    async def embed(self, request: EmbedRequest, call: CallContext) -> tuple[EmbedResult, Served]:
        return await self._unary(
            "embeddings",
            request.model,
            requirements.for_embeddings(request),
            request.routing,
            call,
            lambda c, a: c.provider.embed(request, a),
            lambda r: 0,
        )

    async def rerank(
        self, request: RerankRequest, call: CallContext
    ) -> tuple[RerankResult, Served]:
        return await self._unary(
            "rerank",
            request.model,
            requirements.NONE,
            request.routing,
            call,
            lambda c, a: c.provider.rerank(request, a),
            lambda r: 0,
        )

    async def chat_stream(
        self, request: ChatRequest, call: CallContext, timing: StreamTiming
    ) -> tuple[AsyncIterator[ChatDelta], Served]:
        """Open the stream, falling back until a delta with content arrives; then commit."""
        candidates = self._router.plan(
            request.model, "chat", request.routing, requirements.for_chat(request)
        )
        deadline = self._deadline(call, candidates)

        async def open_stream(
            candidate: Candidate, attempt: Attempt
        ) -> tuple[list[ChatDelta], AsyncIterator[ChatDelta], float]:
            started = time.perf_counter()
            deltas = candidate.provider.stream(request, attempt)
            held: list[ChatDelta] = []
            try:
                while not held or not _substantive(held[-1]):
                    held.append(await anext(deltas))
            except StopAsyncIteration:
                await deltas.aclose()  # type: ignore[attr-defined]
                raise ProviderError(  # even an empty answer has a finish reason
                    FailureKind.BAD_RESPONSE,
                    candidate.endpoint.provider,
                    f"{candidate.endpoint.provider} ended the stream without an answer",
                ) from None
            except BaseException:
                await deltas.aclose()  # type: ignore[attr-defined]
                raise
            return held, deltas, started

        (held, deltas, started), candidate, health = await self._attempts(
            candidates, deadline, open_stream
        )
        timing.first_delta_ms = (time.perf_counter() - started) * 1000
        served = self._served(candidate, timing.first_delta_ms)
        return self._committed(held, deltas, health, deadline, timing, started), served

    async def _committed(
        self,
        held: list[ChatDelta],
        deltas: AsyncIterator[ChatDelta],
        health: EndpointHealth,
        deadline: float | None,
        timing: StreamTiming,
        started: float,
    ) -> AsyncIterator[ChatDelta]:
        """The rest of a committed stream: failures now end it (in-stream error)."""
        produced = 0
        try:
            for delta in held:
                yield delta
            async for delta in deltas:
                if delta.usage is not None:
                    produced = delta.usage.completion_tokens
                yield delta
        except ProviderError as err:
            if err.kind not in _NOT_HEALTH:
                health.failure(self._health.now())
            raise provider_failure(err, deadline) from err
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]
        duration = time.perf_counter() - started - timing.first_delta_ms / 1000
        health.success(
            self._health.now(),
            timing.first_delta_ms,
            produced / duration if produced and duration > 0 else None,
        )

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
