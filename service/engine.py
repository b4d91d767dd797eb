"""The core: route a validated domain request, retry and fall back, map failures.

Transport-free (no protobuf here): the servicers translate proto <-> domain around it,
and this is where a `ProviderError` becomes a contract error (service/failures.py says
which). Retries and
fallbacks happen only before anything reached the client: for a stream, until its
first delta with content (DESIGN §5-6).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from service import errors
from service.catalog import Pricing
from service.config import Config, ModelConfig
from service.domain.chat import ChatDelta, ChatRequest, ChatResult
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.domain.routing import Routing
from service.failures import (
    NOT_HEALTH,
    counts_against,
    described,
    expired,
    provider_failure,
    remaining,
)
from service.pipeline import CallContext
from service.providers.base import Attempt, Provider, TokenCounter
from service.providers.errors import FailureKind, ProviderError
from service.routing import requirements
from service.routing.health import EndpointHealth, HealthBoard, Pass
from service.routing.router import Candidate, Router
from service.telemetry.attempts import Tally, breaker_changed, error_kind, succeeded
from service.telemetry.record import CallRecord

log = logging.getLogger("switchyard.engine")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Served:
    """What actually served a request: reported to the client, billed later."""

    model: str
    provider: str
    upstream_ms: float = 0.0  # waiting on the upstream (to first chunk, for streams)
    upstream_model: str = ""
    pricing: Pricing = field(default_factory=Pricing)
    dropped: tuple[str, ...] = ()  # request parameters the endpoint does not take
    attempts: int = 1  # upstream calls made for the request, retries and fallbacks included


class StreamTiming:
    """Filled in as a stream runs: the upstream's time to its first delta."""

    __slots__ = ("first_delta_ms",)

    def __init__(self) -> None:
        self.first_delta_ms = 0.0


def _fitted(request: ChatRequest, candidate: Candidate) -> ChatRequest:
    """The request as `candidate` gets it: without the parameters it does not take."""
    return requirements.without(request, candidate.dropped) if candidate.dropped else request


def _substantive(delta: ChatDelta) -> bool:
    """A delta worth committing the response for (not just a role or empty text)."""
    return any(
        c.content or c.tool_calls or c.refusal or c.finish_reason or c.reasoning
        for c in delta.choices
    )


class Engine:
    """Routing over the providers of the current config, swapped whole by a reload.

    Each config is an epoch. A call counts itself in the epoch it started in, and runs
    on the candidates that epoch's router planned, to its end; a provider that a reload
    dropped or rebuilt is closed only once no call of that epoch or an older one is
    left (a stream counts until its last delta).
    """

    def __init__(
        self, config: Config, providers: Mapping[str, Provider], rng: random.Random | None = None
    ) -> None:
        self._config = config
        self._providers = providers
        self._health = HealthBoard(config.routing.breaker)
        self._policy = config.routing.retry
        self._rng = rng or random.Random()
        self._router = Router(config, providers, self._health, self._rng)
        self._epoch = 0
        self._calls: dict[int, int] = {}  # epoch -> calls in flight (only those with some)
        self._retired: list[tuple[int, list[Provider]]] = []  # closable after that epoch

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self._providers

    def swap(self, config: Config, providers: Mapping[str, Provider]) -> None:
        """Route new calls by `config` over `providers` (those unchanged are the same
        objects); the ones left out are closed when the calls using them are done."""
        kept = set(map(id, providers.values()))
        retired = [p for p in self._providers.values() if id(p) not in kept]
        if config.routing.breaker != self._config.routing.breaker:
            self._health = HealthBoard(config.routing.breaker)
        self._config = config
        self._providers = providers
        self._policy = config.routing.retry
        self._router = Router(config, providers, self._health, self._rng)
        if retired:
            self._retired.append((self._epoch, retired))
        self._epoch += 1
        self._close_retired()

    def _enter(self) -> int:
        epoch = self._epoch
        calls = self._calls
        calls[epoch] = calls.get(epoch, 0) + 1
        return epoch

    def _leave(self, epoch: int) -> None:
        calls = self._calls
        left = calls[epoch] - 1
        if left:
            calls[epoch] = left
            return
        del calls[epoch]
        if self._retired:
            self._close_retired()

    def _close_retired(self) -> None:
        oldest = min(self._calls, default=self._epoch)
        closable = [providers for epoch, providers in self._retired if epoch < oldest]
        if not closable:
            return
        self._retired = [(e, p) for e, p in self._retired if e >= oldest]
        task = asyncio.ensure_future(self._close_all([p for ps in closable for p in ps]))
        task.add_done_callback(_log_failure)

    @staticmethod
    async def _close_all(providers: list[Provider]) -> None:
        for provider in providers:
            await provider.aclose()

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
        announce: Callable[[Served], Awaitable[None]] | None = None,
        record: CallRecord | None = None,
    ) -> tuple[T, Candidate, EndpointHealth, int]:
        """Try each candidate, retrying retryable failures, until one answers; that
        answer, what gave it, its health, and how many attempts it took.

        The breaker gets one verdict per endpoint tried, not one per attempt, and a
        half-open probe that ends without one (a deadline, a cancelled call) is given
        back. Open endpoints are skipped only while another candidate is not open: when
        every one is, they are all tried (Envoy's panic routing), so that a model's last
        endpoints are never taken away by the breaker. An upstream refusing the request
        (a 4xx, such as a context-length 400) ends the tries of that model, not of the
        request: the next fallback model may take it.
        """
        tally = Tally(record)
        try:
            return await self._attempt_each(candidates, deadline, run, announce, tally)
        finally:
            tally.close()

    async def _attempt_each(
        self,
        candidates: list[Candidate],
        deadline: float | None,
        run: Callable[[Candidate, Attempt], Awaitable[T]],
        announce: Callable[[Served], Awaitable[None]] | None,
        tally: Tally,
    ) -> tuple[T, Candidate, EndpointHealth, int]:
        failures: list[ProviderError] = []
        blocked: list[float] = []
        now = self._health.now()
        panic = all(self._health.get(c.endpoint.key).is_open(now) for c in candidates)
        refused_model: str | None = None
        for candidate in candidates:
            if candidate.model.id == refused_model:
                continue
            health = self._health.get(candidate.endpoint.key)
            passed = Pass.CLOSED if panic else health.admit(self._health.now())
            if passed is Pass.REFUSED:
                log.info(
                    "skipping %s for %s: circuit open", candidate.endpoint.key, candidate.model.id
                )
                blocked.append(health.retry_after(self._health.now()))
                continue
            if announce is not None:
                await announce(self._served(candidate, 0.0))
                announce = None
            verdict = False
            # A probe is one attempt: it tests the endpoint, it does not lean on it.
            tries = 1 if passed is Pass.PROBE else self._policy.retries + 1
            try:
                for attempt in range(tries):
                    if expired(deadline):
                        raise errors.request_timeout()
                    tally.begin(candidate)
                    try:
                        result = await run(candidate, Attempt(candidate.endpoint.model, deadline))
                    except ProviderError as err:
                        tally.failed(error_kind(err))
                        if expired(deadline):
                            raise errors.request_timeout() from err
                        # Kept without its traceback, which holds this frame: a reference
                        # cycle per failed attempt otherwise (tests/resilience/test_no_cycles).
                        failures.append(err.with_traceback(None))
                        more = attempt + 1 < tries
                        if not await self._again(candidate, err, attempt, more, deadline):
                            break
                        tally.retried()
                    else:
                        verdict = True  # the caller records the success
                        tally.succeeded()
                        return result, candidate, health, len(failures) + 1
                last = failures[-1]
                if last.client_fault:
                    health.success(self._health.now())  # it answered
                    verdict = True
                    refused_model = candidate.model.id
                elif counts_against(last):
                    verdict = True
                    if health.failure(self._health.now()):
                        breaker_changed(candidate.endpoint.key, True)
                        log.warning(
                            "circuit opened for %s: %s", candidate.endpoint.key, described(last)
                        )
            finally:
                if passed is Pass.PROBE and not verdict:
                    health.release()
        raise self._exhausted(candidates, failures, blocked, deadline)

    async def _again(
        self,
        candidate: Candidate,
        err: ProviderError,
        attempt: int,
        more: bool,
        deadline: float | None,
    ) -> bool:
        """After a failed attempt: wait and return True to retry the same endpoint."""
        key = candidate.endpoint.key
        delay = (
            self._policy.delay(attempt, err.retry_after, self._rng)
            if more and err.retryable and not err.client_fault
            else None
        )
        left = remaining(deadline)
        if delay is None or (left is not None and delay >= left):
            log.info("giving up on %s: %s", key, described(err))
            return False
        log.info("retrying %s in %.2f s: %s", key, delay, described(err))
        await asyncio.sleep(delay)
        return True

    def _exhausted(
        self,
        candidates: list[Candidate],
        failures: list[ProviderError],
        blocked: list[float],
        deadline: float | None,
    ) -> errors.GatewayError:
        model = candidates[0].model.id
        real = [f for f in failures if f.kind not in NOT_HEALTH]
        if real:
            last = real[-1]
            err = provider_failure(last, deadline, self._policy.backoff_max)
            tried = sorted({f.provider for f in failures})
            if len(failures) == 1 or last.client_fault:
                message = err.message  # the one answer, or the upstream's own refusal
            else:
                message = f"Every provider for '{model}' failed; the last said: {last.message}"
            return errors.GatewayError(
                err.reason,
                message,
                param=err.param,
                metadata={
                    **err.metadata,
                    "providers_tried": ",".join(tried),
                    "attempts": str(len(failures)),
                },
                retry_after=err.retry_after,
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
    def _served(candidate: Candidate, upstream_ms: float, attempts: int = 1) -> Served:
        return Served(
            model=candidate.model.id,
            provider=candidate.endpoint.provider,
            upstream_ms=upstream_ms,
            upstream_model=candidate.endpoint.model,
            pricing=candidate.endpoint.pricing,
            dropped=tuple(sorted(candidate.dropped)),
            attempts=attempts,
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
        epoch = self._enter()
        try:
            return await self._unary_in(capability, model, needs, routing, call, run, tokens)
        finally:
            self._leave(epoch)

    async def _unary_in(
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
        result, candidate, health, attempts = await self._attempts(
            candidates, deadline, run, record=call.record
        )
        elapsed = time.perf_counter() - started
        succeeded(health, candidate.endpoint.key, self._health.now(), elapsed * 1000)
        produced = tokens(result)
        if produced and elapsed:
            health.measured(produced / elapsed)
        return result, self._served(candidate, elapsed * 1000, attempts)

    async def chat(self, request: ChatRequest, call: CallContext) -> tuple[ChatResult, Served]:
        return await self._unary(
            "chat",
            request.model,
            requirements.for_chat(request),
            request.routing,
            call,
            lambda c, a: c.provider.complete(_fitted(request, c), a),
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

    async def count_tokens(self, request: ChatRequest, call: CallContext) -> int | None:
        """The prompt's input tokens as counted by the endpoint that routing puts first
        for `request`, when its provider can count (a `TokenCounter`); None when it
        cannot, for the caller to estimate. One attempt: no retries, no fallback to
        another endpoint (whose count would be another model's), and a failure is the
        contract's error for it, as a generation's would be."""
        epoch = self._enter()
        try:
            candidate = self._router.plan(
                request.model, "chat", request.routing, requirements.for_chat(request)
            )[0]
            provider = candidate.provider
            if not isinstance(provider, TokenCounter):
                return None
            deadline = self._deadline(call, [candidate])
            attempt = Attempt(candidate.endpoint.model, deadline)
            try:
                return await provider.count_tokens(_fitted(request, candidate), attempt)
            except ProviderError as err:
                log.info("counting tokens on %s failed: %s", candidate.endpoint.key, described(err))
                raise provider_failure(err, deadline) from err
        finally:
            self._leave(epoch)

    async def chat_stream(
        self,
        request: ChatRequest,
        call: CallContext,
        timing: StreamTiming,
        announce: Callable[[Served], Awaitable[None]] | None = None,
    ) -> tuple[AsyncIterator[ChatDelta], Served]:
        """Open the stream, falling back until a delta with content arrives; then commit.

        `announce` is awaited once, before the first attempt, with what would serve if
        it succeeds: the caller can tell its client before any output exists.
        """
        epoch = self._enter()
        try:
            return await self._open_stream(request, call, timing, announce, epoch)
        except BaseException:
            self._leave(epoch)
            raise

    async def _open_stream(
        self,
        request: ChatRequest,
        call: CallContext,
        timing: StreamTiming,
        announce: Callable[[Served], Awaitable[None]] | None,
        epoch: int,
    ) -> tuple[AsyncIterator[ChatDelta], Served]:
        candidates = self._router.plan(
            request.model, "chat", request.routing, requirements.for_chat(request)
        )
        deadline = self._deadline(call, candidates)

        async def open_stream(
            candidate: Candidate, attempt: Attempt
        ) -> tuple[list[ChatDelta], AsyncIterator[ChatDelta], float]:
            started = time.perf_counter()
            deltas = candidate.provider.stream(_fitted(request, candidate), attempt)
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

        (held, deltas, started), candidate, health, attempts = await self._attempts(
            candidates, deadline, open_stream, announce, call.record
        )
        timing.first_delta_ms = (time.perf_counter() - started) * 1000
        # The endpoint's verdict: it answered. A failure later in the stream counts too.
        succeeded(health, candidate.endpoint.key, self._health.now(), timing.first_delta_ms)
        served = self._served(candidate, timing.first_delta_ms, attempts)
        stream = self._committed(held, deltas, health, deadline, timing, started, epoch)
        return stream, served

    async def _committed(
        self,
        held: list[ChatDelta],
        deltas: AsyncIterator[ChatDelta],
        health: EndpointHealth,
        deadline: float | None,
        timing: StreamTiming,
        started: float,
        epoch: int,
    ) -> AsyncIterator[ChatDelta]:
        """The rest of a committed stream: failures now end it (in-stream error). The
        stream counts in its config's epoch until it ends."""
        produced = 0
        try:
            for delta in held:
                yield delta
            async for delta in deltas:
                if delta.usage is not None:
                    produced = delta.usage.completion_tokens
                yield delta
        except ProviderError as err:
            if counts_against(err):
                health.failure(self._health.now())
            raise provider_failure(err, deadline) from err
        finally:
            try:
                await deltas.aclose()  # type: ignore[attr-defined]
            finally:
                self._leave(epoch)
        duration = time.perf_counter() - started - timing.first_delta_ms / 1000
        if produced and duration > 0:
            health.measured(produced / duration)

    async def warm(self, names: Sequence[str] | None = None) -> None:
        """Let each provider (or those `names`) that loads something lazily load it now
        (an optional `warm` method)."""
        for name, provider in self._providers.items():
            if names is not None and name not in names:
                continue
            warm = getattr(provider, "warm", None)
            if warm is None:
                continue
            try:
                await warm()
            except Exception as exc:  # noqa: BLE001 - logged; its requests will say it again
                log.error("could not load the models of provider %s: %s", provider.name, exc)

    async def aclose(self) -> None:
        retired = [p for _, ps in self._retired for p in ps]
        self._retired = []
        for provider in (*self._providers.values(), *retired):
            await provider.aclose()


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("closing the providers a reload replaced failed", exc_info=task.exception())
