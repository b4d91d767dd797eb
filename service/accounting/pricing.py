"""Prices from the catalog: the worst case to reserve before a call, the cost after it.

Token counts before a call are estimates (no tokenizer for every upstream): about
three characters per token, rounded up, plus a per-message overhead, which errs on
the side of reserving too much; what is billed is the usage the upstream reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from service.catalog import EndpointConfig, ModelConfig, Pricing
from service.domain.chat import ChatRequest, ImagePart, TextPart
from service.domain.embeddings import EmbedRequest, RerankRequest

CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4
DEFAULT_MAX_OUTPUT = 4096


def tokens_for_chars(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_tokens(text: str) -> int:
    return tokens_for_chars(len(text))


def chat_prompt(request: ChatRequest) -> tuple[int, int]:
    """(estimated prompt tokens, image count)."""
    tokens = images = 0
    for message in request.messages:
        tokens += MESSAGE_OVERHEAD
        content = message.content
        if isinstance(content, str):
            tokens += estimate_tokens(content)
        elif isinstance(content, tuple):
            for part in content:
                if isinstance(part, TextPart):
                    tokens += estimate_tokens(part.text)
                elif isinstance(part, ImagePart):
                    images += 1
        for call in message.tool_calls:
            tokens += estimate_tokens(call.name + call.arguments)
    for tool in request.tools:
        tokens += estimate_tokens(
            tool.name + (tool.description or "") + (tool.parameters_json or "")
        )
    return tokens, images


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request is judged by before it runs."""

    worst_cost: float  # the most it can cost on any endpoint it may reach (reserved)
    tokens: int  # prompt and possible output (counted against tokens-per-minute)
    prompt_tokens: int  # the prompt alone (billed for a stream cut before usage arrived)
    images: int = 0  # image parts (billed per image as well)


def _endpoints(models: Iterable[ModelConfig]) -> list[EndpointConfig]:
    return [e for m in models for e in m.endpoints]


def chat_worst_case(request: ChatRequest, models: Iterable[ModelConfig]) -> Estimate:
    prompt, images = chat_prompt(request)
    worst, tokens = 0.0, prompt
    for endpoint in _endpoints(models):
        output = (
            request.max_completion_tokens
            or request.max_tokens
            or endpoint.max_output_tokens
            or endpoint.context_length
            or DEFAULT_MAX_OUTPUT
        )
        tokens = max(tokens, prompt + output)
        pricing = endpoint.pricing
        # The whole prompt may be written to the cache, when that costs more.
        written = prompt if (pricing.input_cache_write or 0.0) > pricing.prompt else 0
        worst = max(worst, cost(pricing, prompt, output, images, written=written))
    return Estimate(worst, tokens, prompt, images)


def embed_worst_case(request: EmbedRequest, models: Iterable[ModelConfig]) -> Estimate:
    tokens = sum(len(ids) for ids in request.token_inputs) + sum(
        estimate_tokens(t) for t in request.texts
    )
    worst = max((cost(e.pricing, tokens, 0) for e in _endpoints(models)), default=0.0)
    return Estimate(worst, tokens, tokens)


def rerank_worst_case(request: RerankRequest, models: Iterable[ModelConfig]) -> Estimate:
    tokens = estimate_tokens(request.query) * len(request.documents) + sum(
        estimate_tokens(d) for d in request.documents
    )
    worst = max((cost(e.pricing, tokens, 0, units=1) for e in _endpoints(models)), default=0.0)
    return Estimate(worst, tokens, tokens)


def cost(
    pricing: Pricing,
    prompt: int,
    completion: int,
    images: int = 0,
    units: int = 1,
    *,
    cached: int = 0,
    written: int = 0,
) -> float:
    """USD for one call: tokens, the per-request fee (per search unit for rerank), images.

    `cached` and `written` are the prompt tokens (of `prompt`) read from and written to
    the prompt cache, priced at the cache prices when the endpoint has them.
    """
    total = (
        prompt * pricing.prompt
        + completion * pricing.completion
        + units * pricing.request
        + images * pricing.image
    )
    if cached and pricing.input_cache_read is not None:
        total += cached * (pricing.input_cache_read - pricing.prompt)
    if written and pricing.input_cache_write is not None:
        total += written * (pricing.input_cache_write - pricing.prompt)
    return total
