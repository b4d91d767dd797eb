"""Pure mapping of the Gemini API's answers (v1beta REST) to the domain types.

Gemini gives tool calls no ids, so ids are generated ("call_" + uuid) unless the upstream
sent one; a prompt blocked by safety filters has no candidates and is a
`PromptBlockedError`; anything else we cannot read is a `BadUpstreamError` (a 502 for
the client, which the router may retry), never a KeyError deep in the core.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.chat import (
    ChatResult,
    Choice,
    ChoiceLogprobs,
    Message,
    ReasoningDetail,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
)

JSON = dict[str, Any]
# The `format` of the reasoning details Gemini's thoughts and signatures become.
FORMAT = "google-gemini-v1"

_CONTENT_FILTER = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    }
)


class BadUpstreamError(ValueError):
    """The upstream's answer does not have the shape its API documents."""


class PromptBlockedError(Exception):
    """Gemini refused the prompt itself (`promptFeedback.blockReason`, no candidates)."""

    def __init__(self, reason: str, categories: tuple[str, ...]) -> None:
        flagged = f" (flagged: {', '.join(categories)})" if categories else ""
        super().__init__(f"Gemini blocked the prompt: blockReason {reason}{flagged}")
        self.reason = reason


class UpstreamErrorEvent(Exception):  # noqa: N818 - an event, not a local failure
    """An error object sent in the middle of a stream; `payload` is its JSON body."""

    def __init__(self, payload: JSON) -> None:
        super().__init__("error event")
        self.payload = payload


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex


def _obj(value: Any, where: str) -> JSON:
    if not isinstance(value, dict):
        raise BadUpstreamError(f"{where}: expected an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadUpstreamError(f"{where}: expected an array")
    return value


def _count(usage: JSON, key: str) -> int:
    value = usage.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadUpstreamError(f"usageMetadata.{key}: expected an integer")
    return value


def parse_usage(value: Any) -> Usage | None:
    """OpenAI usage from `usageMetadata`: thoughts count as (reasoning) completion tokens."""
    if value is None:
        return None
    usage = _obj(value, "usageMetadata")
    prompt = _count(usage, "promptTokenCount") + _count(usage, "toolUsePromptTokenCount")
    thoughts = _count(usage, "thoughtsTokenCount")
    completion = _count(usage, "candidatesTokenCount") + thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_count(usage, "totalTokenCount") or prompt + completion,
        cached_tokens=_count(usage, "cachedContentTokenCount")
        if "cachedContentTokenCount" in usage
        else None,
        reasoning_tokens=thoughts if "thoughtsTokenCount" in usage else None,
    )


def check_blocked(body: JSON) -> None:
    """Raise `PromptBlockedError` for an answer that refuses the prompt itself."""
    if body.get("candidates"):
        return
    feedback = body.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if not reason:
        return
    ratings = feedback.get("safetyRatings") if isinstance(feedback, dict) else None
    flagged = tuple(
        str(r.get("category"))
        for r in ratings or ()
        if isinstance(r, dict) and (r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH"))
    )
    raise PromptBlockedError(str(reason), flagged)


def finish_reason(raw: Any, has_calls: bool) -> str:
    """OpenAI's finish reason; a stop with function calls is a `tool_calls` stop."""
    if raw == "MAX_TOKENS":
        return "length"
    if raw in _CONTENT_FILTER:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


@dataclass(frozen=True, slots=True)
class CandidateParts:
    index: int
    text: str | None
    calls: tuple[JSON, ...]  # the functionCall objects, in order
    finish: Any  # Gemini's finishReason, if any
    logprobs: ChoiceLogprobs | None
    thoughts: str | None = None  # thought summaries (parts marked `thought`)
    # Each call's `thoughtSignature` (None where its part had none), in call order.
    call_signatures: tuple[str | None, ...] = ()
    # A signature on a part that is not a call (Gemini 3 may sign its last text part).
    text_signature: str | None = None


def signature_detail(signature: str, call_id: str | None, index: int) -> ReasoningDetail:
    """A thought signature as an opaque detail, tied to its call by `id`."""
    return ReasoningDetail(
        type="reasoning.encrypted", data=signature, id=call_id, format=FORMAT, index=index
    )


def thought_detail(text: str) -> ReasoningDetail:
    """Thought summary text; its pieces in a stream share index 0 (signatures follow)."""
    return ReasoningDetail(type="reasoning.text", text=text, format=FORMAT, index=0)


def candidate_parts(raw: Any, position: int, where: str) -> CandidateParts:
    """What a candidate carries: visible text, thoughts, calls with their signatures."""
    candidate = _obj(raw, where)
    index = candidate.get("index", position)
    if not isinstance(index, int) or isinstance(index, bool):
        raise BadUpstreamError(f"{where}.index: expected an integer")
    content = candidate.get("content")
    content = _obj(content, f"{where}.content") if content is not None else {}
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSON] = []
    signatures: list[str | None] = []
    text_signature = None
    for j, part in enumerate(_list(content.get("parts"), f"{where}.content.parts")):
        part = _obj(part, f"{where}.content.parts[{j}]")
        signature = part.get("thoughtSignature")
        if signature is not None and not isinstance(signature, str):
            raise BadUpstreamError(f"{where}.content.parts[{j}].thoughtSignature: not a string")
        if "functionCall" in part:
            call = _obj(part["functionCall"], f"{where}.content.parts[{j}].functionCall")
            if not isinstance(call.get("name"), str) or not call["name"]:
                raise BadUpstreamError(f"{where}.content.parts[{j}].functionCall.name: missing")
            calls.append(call)
            signatures.append(signature)
            continue
        if signature:
            text_signature = signature
        if isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    return CandidateParts(
        index=index,
        text="".join(texts) if texts else None,
        calls=tuple(calls),
        finish=candidate.get("finishReason"),
        logprobs=_logprobs(candidate.get("logprobsResult")),
        thoughts="".join(thoughts) if thoughts else None,
        call_signatures=tuple(signatures),
        text_signature=text_signature,
    )


def call_arguments(call: JSON) -> str:
    return orjson.dumps(call.get("args") or {}).decode()


def _logprob(raw: Any) -> tuple[str, float]:
    item = raw if isinstance(raw, dict) else {}
    value = item.get("logProbability", 0.0)
    return str(item.get("token", "")), float(value) if isinstance(value, int | float) else 0.0


def _logprobs(value: Any) -> ChoiceLogprobs | None:
    if not isinstance(value, dict):
        return None
    tops: list[Any] = [
        t.get("candidates") if isinstance(t, dict) else None
        for t in _list(value.get("topCandidates"), "topCandidates")
    ]
    tokens = []
    for k, chosen in enumerate(_list(value.get("chosenCandidates"), "chosenCandidates")):
        token, logprob = _logprob(chosen)
        alternatives: list[Any] = tops[k] if k < len(tops) and isinstance(tops[k], list) else []
        tokens.append(
            TokenLogprob(
                token=token,
                logprob=logprob,
                top_logprobs=tuple(TopLogprob(*_logprob(t)) for t in alternatives),
            )
        )
    return ChoiceLogprobs(content=tuple(tokens))


def parse_response(value: Any, new_id: Callable[[], str] = new_call_id) -> ChatResult:
    """A GenerateContentResponse as a `ChatResult`."""
    body = _obj(value, "response")
    check_blocked(body)
    raw = _list(body.get("candidates"), "candidates")
    if not raw:
        raise BadUpstreamError("candidates: the upstream returned no candidates")
    choices = []
    for i, item in enumerate(raw):
        got = candidate_parts(item, i, f"candidates[{i}]")
        calls = tuple(
            ToolCall(id=str(c.get("id") or new_id()), name=c["name"], arguments=call_arguments(c))
            for c in got.calls
        )
        details = [thought_detail(got.thoughts)] if got.thoughts else []
        signed: list[tuple[str | None, str]] = [
            (c.id, s) for c, s in zip(calls, got.call_signatures, strict=True) if s
        ]
        if got.text_signature:
            signed.append((None, got.text_signature))
        details += [signature_detail(s, cid, k) for k, (cid, s) in enumerate(signed, 1)]
        message = Message(
            role="assistant",
            content=got.text,
            tool_calls=calls,
            reasoning=got.thoughts,
            reasoning_details=tuple(details),
        )
        choices.append(
            Choice(
                index=got.index,
                message=message,
                finish_reason=finish_reason(got.finish, bool(calls)),
                logprobs=got.logprobs,
            )
        )
    return ChatResult(choices=tuple(choices), usage=parse_usage(body.get("usageMetadata")))


def parse_embeddings(value: Any, expected: int) -> tuple[list[list[float]], int]:
    """The vectors of a BatchEmbedContentsResponse, in order, and its token count if any."""
    body = _obj(value, "response")
    items = _list(body.get("embeddings"), "embeddings")
    if len(items) != expected:
        raise BadUpstreamError(f"embeddings: expected {expected}, got {len(items)}")
    vectors = []
    for i, item in enumerate(items):
        values = _obj(item, f"embeddings[{i}]").get("values")
        if not isinstance(values, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in values
        ):
            raise BadUpstreamError(f"embeddings[{i}].values: expected numbers")
        vectors.append(values)
    usage = body.get("usageMetadata")
    tokens = usage.get("promptTokenCount") if isinstance(usage, dict) else None
    return vectors, tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else 0
