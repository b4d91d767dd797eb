"""A GGUF chat model on llama.cpp: one generation at a time, a bounded queue of waiters.

The prompt is rendered with the GGUF's own chat template; generation runs on the
model's own thread and streams pieces back through a `TokenChannel`. Token counts come
from the model itself: the prompt through its tokenizer, the completion by counting
sampling steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.providers.errors import FailureKind, ProviderError
from service.providers.local.channel import TokenChannel
from service.telemetry import metrics as metrics_module


@dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.2
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Piece:
    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


Event = Piece | Finish


class _StepCounter:
    """A logits processor called once per sampled token: it counts the steps, and applies
    the request's `logit_bias` itself (llama-cpp-python 0.3.36 drops every other logits
    processor, ours included, when it is handed `logit_bias`)."""

    def __init__(self, logit_bias: dict[int, float]) -> None:
        self.steps = 0
        self._bias = [(t, b) for t, b in logit_bias.items() if t >= 0]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.steps += 1
        for token, bias in self._bias:
            if token < len(scores):
                scores[token] += bias
        return scores


class LocalLLM:
    def __init__(
        self,
        provider: str,
        locate: Callable[[], Path],
        *,
        context_length: int = 2048,
        threads: int = 1,
        max_queue: int = 8,
        name: str = "llm",
    ) -> None:
        self._provider = provider
        self._name = name  # the metrics' label for its queue
        self._locate = locate
        self.context_length = context_length
        self._threads = threads
        self._max_queue = max_queue
        self._llama: Any = None
        self._formatter: Any = None
        self._loading = asyncio.Lock()
        self._slot = asyncio.Semaphore(1)
        self._waiting = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")

    def _load_sync(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = Llama(
            model_path=str(self._locate()),
            n_ctx=self.context_length,
            n_threads=self._threads,
            n_threads_batch=self._threads,
            verbose=False,
        )
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise RuntimeError("the GGUF carries no chat template")
        eos, bos = llama.token_eos(), llama.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama.detokenize([eos], special=True).decode() if eos != -1 else "",
            bos_token=llama.detokenize([bos], special=True).decode() if bos != -1 else "",
            stop_token_ids=[eos] if eos != -1 else None,
        )
        self._llama = llama

    async def load(self) -> None:
        async with self._loading:
            if self._llama is None:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._load_sync)

    def _render(self, messages: list[dict[str, str]]) -> tuple[Any, int]:
        """The prompt rendered with the model's chat template, and its tokens: what a
        generation feeds the model, and so what it reports as prompt tokens."""
        rendered = self._formatter(messages=messages)
        prompt: str = rendered.prompt
        return rendered, len(self._llama.tokenize(prompt.encode(), add_bos=False, special=True))

    async def count(self, messages: list[dict[str, str]], deadline: float | None) -> int:
        """The prompt tokens a generation of `messages` would report, without running it.

        Tokenizing reads the model's vocabulary only, so it runs on a thread of its own
        rather than queueing behind a generation on the model's; a model not loaded yet
        is loaded first (as a generation would be), all within the deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                await self.load()
                rendered = asyncio.to_thread(self._render, messages)
                try:
                    _, tokens = await rendered
                except Exception as exc:  # the template or the tokenizer refused it
                    raise ProviderError(
                        FailureKind.STATUS,
                        self._provider,
                        f"The local model cannot count this request: {exc}",
                        status=400,
                    ) from exc
                return tokens
        except TimeoutError:
            raise ProviderError(
                FailureKind.TIMEOUT, self._provider, "the local model ran out of time"
            ) from None

    def _generate_sync(
        self,
        messages: list[dict[str, str]],
        schema_grammar: str | None,
        sampling: Sampling,
        channel: TokenChannel[Event | BaseException],
    ) -> None:
        """Runs on the model's thread: render, then stream pieces until done or closed."""
        from llama_cpp.llama_grammar import LlamaGrammar

        try:
            rendered, prompt_tokens = self._render(messages)
            prompt: str = rendered.prompt
            budget = self.context_length - prompt_tokens
            if budget <= 0:
                raise ValueError(
                    f"the prompt has {prompt_tokens} tokens; this model's context is "
                    f"{self.context_length}"
                )
            grammar = (
                LlamaGrammar.from_json_schema(schema_grammar, verbose=False)
                if schema_grammar is not None
                else None
            )
            counter = _StepCounter(sampling.logit_bias)
            # Evaluate every prompt from scratch: reusing a cached prefix changes the
            # batch split, and with it the logits, which breaks "same seed, same output".
            self._llama.reset()
            stream = self._llama.create_completion(
                prompt=prompt,
                max_tokens=min(sampling.max_tokens, budget),
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                stop=[*sampling.stop, *(rendered.stop or [])] or None,
                seed=sampling.seed,
                presence_penalty=sampling.presence_penalty,
                frequency_penalty=sampling.frequency_penalty,
                grammar=grammar,
                logits_processor=[counter],
                stream=True,
            )
            reason = "stop"
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    if choice["text"] and not channel.put(Piece(choice["text"])):
                        return
                    if choice.get("finish_reason"):
                        reason = choice["finish_reason"]
            finally:
                stream.close()
            channel.put(Finish(reason, prompt_tokens, counter.steps))
        except Exception as exc:  # noqa: BLE001 - re-raised on the loop side
            channel.put(exc)

    def _report_queue(self) -> None:
        metrics = metrics_module.ACTIVE
        if metrics is not None:  # a generation takes seconds: a gauge write is nothing
            metrics.local_queue.labels(self._name).set(self._waiting)

    async def generate(
        self,
        messages: list[dict[str, str]],
        schema_json: str | None,
        sampling: Sampling,
        deadline: float | None,
    ) -> AsyncIterator[Event]:
        """Pieces of text, then one Finish. Waits its turn; refuses when the queue is full."""
        if self._slot.locked() and self._waiting >= self._max_queue:
            raise ProviderError(
                FailureKind.OVERLOADED,
                self._provider,
                f"The local model is busy ({self._max_queue} requests already waiting).",
                retry_after=2.0,
            )
        self._waiting += 1
        self._report_queue()
        try:
            async with asyncio.timeout_at(deadline):
                await self._slot.acquire()
        except TimeoutError:
            raise ProviderError(
                FailureKind.TIMEOUT, self._provider, "timed out waiting for the local model"
            ) from None
        finally:
            self._waiting -= 1
            self._report_queue()
        try:
            await self.load()
            loop = asyncio.get_running_loop()
            channel: TokenChannel[Event | BaseException] = TokenChannel(loop)
            job = loop.run_in_executor(
                self._executor, self._generate_sync, messages, schema_json, sampling, channel
            )
            try:
                while True:
                    try:
                        async with asyncio.timeout_at(deadline):
                            event = await channel.get()
                    except TimeoutError:
                        raise ProviderError(
                            FailureKind.TIMEOUT, self._provider, "the local model ran out of time"
                        ) from None
                    if isinstance(event, BaseException):
                        raise ProviderError(
                            FailureKind.STATUS,
                            self._provider,
                            f"The local model cannot run this request: {event}",
                            status=400,
                        ) from event
                    yield event
                    if isinstance(event, Finish):
                        return
            finally:
                channel.close()
                # The model is single-threaded: hold the slot until its thread is done.
                with contextlib.suppress(Exception):
                    await asyncio.shield(job)
        finally:
            self._slot.release()

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["Event", "Finish", "LocalLLM", "Piece", "Sampling"]
