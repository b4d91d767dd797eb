"""Entries as bytes, for a backend outside the process (Redis): compact JSON, by hand.

Hand-written rather than `dataclasses.asdict` + a generic loader: the domain types are
small and fixed, and a stored entry must come back exactly as it went in (a tuple stays
a tuple, None stays None), or a hit would answer differently from the miss it copies.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.cache.entry import Entry
from service.domain.chat import (
    ChatResult,
    Choice,
    ChoiceLogprobs,
    Message,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
)

VERSION = 1


def _tokens(items: tuple[TokenLogprob, ...] | None) -> Any:
    if items is None:
        return None
    return [
        [t.token, t.logprob, t.bytes, [[x.token, x.logprob, x.bytes] for x in t.top_logprobs]]
        for t in items
    ]


def _untokens(raw: Any) -> tuple[TokenLogprob, ...] | None:
    if raw is None:
        return None
    return tuple(
        TokenLogprob(
            token,
            logprob,
            tuple(data) if data is not None else None,
            tuple(TopLogprob(a, b, tuple(c) if c is not None else None) for a, b, c in top),
        )
        for token, logprob, data, top in raw
    )


def _choice(c: Choice) -> Any:
    m = c.message
    content = m.content if isinstance(m.content, str) or m.content is None else None
    logprobs = (
        None if c.logprobs is None else [_tokens(c.logprobs.content), _tokens(c.logprobs.refusal)]
    )
    calls = [[t.id, t.name, t.arguments] for t in m.tool_calls]
    return [c.index, content, calls, m.refusal, c.finish_reason, logprobs, c.stop_sequence]


def _unchoice(raw: Any) -> Choice:
    index, content, calls, refusal, finish, logprobs, stop_sequence = raw
    message = Message(
        "assistant",
        content,
        tool_calls=tuple(ToolCall(*call) for call in calls),
        refusal=refusal,
    )
    lp = (
        None if logprobs is None else ChoiceLogprobs(_untokens(logprobs[0]), _untokens(logprobs[1]))
    )
    return Choice(index, message, finish, lp, stop_sequence)


def _usage(u: Usage | None) -> Any:
    if u is None:
        return None
    return [
        u.prompt_tokens,
        u.completion_tokens,
        u.total_tokens,
        u.cached_tokens,
        u.reasoning_tokens,
    ]


def encode(entry: Entry) -> bytes:
    result = entry.result
    return orjson.dumps(
        [
            VERSION,
            [_choice(c) for c in result.choices],
            _usage(result.usage),
            result.system_fingerprint,
            entry.model,
            entry.provider,
            entry.upstream_model,
            entry.partition,
            entry.requested_model,
            entry.created,
            entry.expires,
        ]
    )


def decode(data: bytes) -> Entry | None:
    """The entry, or None for bytes of another version (or not an entry at all)."""
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, list) or raw[0] != VERSION:
            return None
        _, choices, usage, fingerprint, *rest = raw
        result = ChatResult(
            tuple(_unchoice(c) for c in choices),
            Usage(*usage) if usage is not None else None,
            fingerprint,
        )
        model, provider, upstream, partition, requested, created, expires = rest
        return Entry(result, model, provider, upstream, partition, requested, created, expires)
    except (orjson.JSONDecodeError, ValueError, TypeError, IndexError):
        return None
