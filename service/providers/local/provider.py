"""The built-in local provider: MiniLM embeddings/rerank and GGUF chat models, in process.

Upstream model names: `all-minilm-l6-v2` (embeddings, rerank), `smollm2-135m-instruct`
(chat), and any GGUF the operator lists under the provider's `gguf:` option.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from service.config import ProviderConfig
from service.domain.chat import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    Choice,
    ChoiceDelta,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from service.domain.embeddings import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from service.providers.base import Attempt
from service.providers.errors import FailureKind, ProviderError
from service.providers.local.assets import SMOLLM2_GGUF, verify_sha256
from service.providers.local.embedder import LocalEmbedder
from service.providers.local.llm import Finish, LocalLLM, Piece, Sampling
from service.providers.local.prompt import Plan, Unsupported, parse_call, plan

EMBEDDING_MODEL = "all-minilm-l6-v2"
DEFAULT_MAX_TOKENS = 512


def _gguf_locator(name: str, spec: Mapping[str, Any]) -> Any:
    path = Path(str(spec["path"])).expanduser()
    digest = spec.get("sha256")

    def locate() -> Path:
        if not path.is_file():
            raise FileNotFoundError(f"GGUF for {name} not found at {path}")
        if digest:
            verify_sha256(path, str(digest))
        return path

    return locate


class LocalProvider:
    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        options = config.options
        threads = int(options.get("threads", 1))
        self._embedder = LocalEmbedder(
            config.name,
            threads=threads,
            max_batch=int(options.get("max_batch", 64)),
            batch_wait=float(options.get("batch_wait_ms", 1.0)) / 1000,
        )
        queue = int(options.get("queue", 8))
        self._llms: dict[str, LocalLLM] = {
            "smollm2-135m-instruct": LocalLLM(
                config.name,
                SMOLLM2_GGUF.verified_path,
                context_length=int(options.get("context_length", 2048)),
                threads=threads,
                max_queue=queue,
                name="smollm2-135m-instruct",
            )
        }
        for name, spec in dict(options.get("gguf") or {}).items():
            self._llms[name] = LocalLLM(
                config.name,
                _gguf_locator(name, spec),
                context_length=int(spec.get("context_length", 2048)),
                threads=threads,
                max_queue=queue,
                name=name,
            )

    @property
    def embedder(self) -> LocalEmbedder:
        return self._embedder

    def _llm(self, model: str) -> LocalLLM:
        llm = self._llms.get(model)
        if llm is None:
            raise ProviderError(
                FailureKind.STATUS, self.name, f"no local chat model named {model}", status=404
            )
        return llm

    def _reject(self, message: str, param: str) -> ProviderError:
        return ProviderError(FailureKind.STATUS, self.name, message, status=400, param=param)

    def _prepare(self, request: ChatRequest) -> tuple[Plan, Sampling]:
        if request.n not in (None, 1):
            raise self._reject("Local models return one choice ('n' must be 1).", "n")
        if request.logprobs:
            raise self._reject("Local models do not return logprobs.", "logprobs")
        try:
            prepared = plan(request)
        except Unsupported as exc:
            raise ProviderError(FailureKind.UNSUPPORTED, self.name, str(exc)) from None
        try:
            logit_bias = {int(k): v for k, v in request.logit_bias.items()}
        except ValueError:
            raise self._reject("'logit_bias' keys must be token ids.", "logit_bias") from None
        sampling = Sampling(
            max_tokens=request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=0.2 if request.temperature is None else request.temperature,
            top_p=0.95 if request.top_p is None else request.top_p,
            stop=request.stop,
            seed=request.seed,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            logit_bias=logit_bias,
        )
        return prepared, sampling

    def _events(
        self, request: ChatRequest, attempt: Attempt
    ) -> tuple[Plan, AsyncIterator[Piece | Finish]]:
        prepared, sampling = self._prepare(request)
        llm = self._llm(attempt.upstream_model)
        schema = json.dumps(prepared.schema) if prepared.schema is not None else None
        return prepared, llm.generate(prepared.messages, schema, sampling, attempt.deadline)

    async def complete(self, request: ChatRequest, attempt: Attempt) -> ChatResult:
        prepared, events = self._events(request, attempt)
        pieces: list[str] = []
        finish = Finish("stop", 0, 0)
        async for event in events:
            if isinstance(event, Piece):
                pieces.append(event.text)
            else:
                finish = event
        text = "".join(pieces)
        call = parse_call(text, prepared.tools) if prepared.tool_mode != "none" else None
        if call is not None:
            message = Message(role="assistant", content=None, tool_calls=(call,))
            reason = "tool_calls"
        else:
            message = Message(role="assistant", content=text)
            reason = finish.reason
        return ChatResult(choices=(Choice(0, message, reason),), usage=_usage(finish))

    async def stream(self, request: ChatRequest, attempt: Attempt) -> AsyncIterator[ChatDelta]:
        prepared, events = self._events(request, attempt)
        buffered: list[str] = []
        streaming_text = prepared.tool_mode == "none"
        started = False
        async for event in events:
            if isinstance(event, Piece):
                if not streaming_text:
                    buffered.append(event.text)
                    head = "".join(buffered).lstrip()
                    if prepared.tool_mode == "forced" or not head or head.startswith("{"):
                        continue
                    streaming_text, text = True, "".join(buffered)
                else:
                    text = event.text
                yield _content(text, first=not started)
                started = True
                continue
            reason = event.reason
            if buffered and not streaming_text:
                text = "".join(buffered)
                call = parse_call(text, prepared.tools)
                if call is not None:
                    for delta in _tool_call_deltas(call):
                        yield delta
                    reason = "tool_calls"
                else:
                    yield _content(text, first=not started)
                started = True
            if not started:
                yield _content("", first=True)
            yield ChatDelta(
                choices=(ChoiceDelta(index=0, finish_reason=reason),), usage=_usage(event)
            )

    async def count_tokens(self, request: ChatRequest, attempt: Attempt) -> int:
        """The prompt's tokens through the model's own chat template and tokenizer: what
        a generation would report as `prompt_tokens` (tools described in the prompt)."""
        prepared, _ = self._prepare(request)
        return await self._llm(attempt.upstream_model).count(prepared.messages, attempt.deadline)

    async def embed(self, request: EmbedRequest, attempt: Attempt) -> EmbedResult:
        self._check_embedding_model(attempt)
        return await self._embedder.embed(request)

    async def rerank(self, request: RerankRequest, attempt: Attempt) -> RerankResult:
        self._check_embedding_model(attempt)
        return await self._embedder.rerank(request)

    def _check_embedding_model(self, attempt: Attempt) -> None:
        if attempt.upstream_model != EMBEDDING_MODEL:
            raise ProviderError(
                FailureKind.STATUS,
                self.name,
                f"no local embedding model named {attempt.upstream_model}",
                status=404,
            )

    async def warm(self) -> None:
        """Load MiniLM and every GGUF model now rather than on first use (readiness)."""
        await self._embedder.load()
        for llm in self._llms.values():
            await llm.load()

    async def aclose(self) -> None:
        await self._embedder.aclose()
        for llm in self._llms.values():
            await llm.aclose()


def _usage(finish: Finish) -> Usage:
    return Usage(
        prompt_tokens=finish.prompt_tokens,
        completion_tokens=finish.completion_tokens,
        total_tokens=finish.prompt_tokens + finish.completion_tokens,
    )


def _content(text: str, *, first: bool) -> ChatDelta:
    role = "assistant" if first else None
    return ChatDelta(choices=(ChoiceDelta(index=0, role=role, content=text),))


def _tool_call_deltas(call: ToolCall) -> list[ChatDelta]:
    """As OpenAI streams a call: id, type and name first, then the arguments in pieces."""
    head = ChoiceDelta(
        index=0,
        role="assistant",
        tool_calls=(ToolCallDelta(index=0, id=call.id, name=call.name, arguments=""),),
    )
    args = call.arguments
    step = max(1, len(args) // 3)
    pieces = [args[i : i + step] for i in range(0, len(args), step)] or [""]
    return [ChatDelta(choices=(head,))] + [
        ChatDelta(
            choices=(ChoiceDelta(index=0, tool_calls=(ToolCallDelta(index=0, arguments=p),)),)
        )
        for p in pieces
    ]
