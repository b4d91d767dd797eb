"""A cached answer, and the two ways between it and a stream.

An entry holds the whole answer as a `ChatResult`, whether it came from a streamed or
an unstreamed call: a stream's deltas are assembled into one (`Assembler`), and a hit
on a streamed request replays the result as deltas (`replay`) that go through the same
chunk builder as an upstream's, so the frames have the same shapes and invariants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.domain.chat import (
    ChatDelta,
    ChatResult,
    Choice,
    ChoiceDelta,
    ChoiceLogprobs,
    Message,
    ReasoningDetail,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
)

# An answer that ended any other way (an error, a content filter, a cut) is not cached.
CACHEABLE_FINISH = frozenset({"stop", "length", "tool_calls"})
# Nor is a very long one: the size bound counts entries, so one entry must stay small.
MAX_ENTRY_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class Entry:
    result: ChatResult
    model: str  # the public model that answered
    provider: str
    upstream_model: str
    partition: str  # "shared" or the key's id: what a purge by key drops
    requested_model: str  # the model the request named: what a purge by model drops
    created: float
    expires: float

    def usage(self) -> Usage:
        return self.result.usage or Usage()


def _chars(choice: Choice) -> int:
    message = choice.message
    text = message.content if isinstance(message.content, str) else ""
    return len(text) + sum(len(c.arguments) + len(c.name) for c in message.tool_calls)


def cacheable(result: ChatResult) -> bool:
    """A clean answer of bounded size without reasoning: reasoning comes signed, in
    pieces a replay would have to reassemble exactly, so it is not cached (yet)."""
    return (
        bool(result.choices)
        and not any(c.message.reasoning or c.message.reasoning_details for c in result.choices)
        and all(c.finish_reason in CACHEABLE_FINISH for c in result.choices)
        and sum(_chars(c) for c in result.choices) <= MAX_ENTRY_CHARS
    )


@dataclass(slots=True)
class _Choice:
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, args...]
    logprobs: list[TokenLogprob] = field(default_factory=list)
    has_logprobs: bool = False
    finish_reason: str = ""
    stop_sequence: str | None = None
    reasoning: list[str] = field(default_factory=list)  # only to know there was some
    reasoning_details: list[ReasoningDetail] = field(default_factory=list)


class Assembler:
    """Gathers a stream's deltas into the `ChatResult` an unstreamed call would return."""

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._fingerprint: str | None = None

    def add(self, delta: ChatDelta) -> None:
        if delta.system_fingerprint:
            self._fingerprint = delta.system_fingerprint
        for choice in delta.choices:
            acc = self._choices.setdefault(choice.index, _Choice())
            if choice.content:
                acc.content.append(choice.content)
            if choice.refusal:
                acc.refusal.append(choice.refusal)
            for call in choice.tool_calls:
                parts = acc.calls.setdefault(call.index, ["", ""])
                if call.id:
                    parts[0] = call.id
                if call.name:
                    parts[1] = call.name
                if call.arguments:
                    parts.append(call.arguments)
            if choice.logprobs is not None and choice.logprobs.content is not None:
                acc.has_logprobs = True
                acc.logprobs.extend(choice.logprobs.content)
            if choice.finish_reason:
                acc.finish_reason = choice.finish_reason
            if choice.stop_sequence:
                acc.stop_sequence = choice.stop_sequence
            if choice.reasoning:
                acc.reasoning.append(choice.reasoning)
            acc.reasoning_details.extend(choice.reasoning_details)

    def result(self, usage: Usage | None) -> ChatResult:
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            calls = tuple(
                ToolCall(id=p[0], name=p[1], arguments="".join(p[2:]))
                for _, p in sorted(acc.calls.items())
            )
            text = "".join(acc.content)
            message = Message(
                role="assistant",
                content=text if text or not calls else None,
                tool_calls=calls,
                refusal="".join(acc.refusal) if acc.refusal else None,
                reasoning="".join(acc.reasoning) if acc.reasoning else None,
                reasoning_details=tuple(acc.reasoning_details),
            )
            logprobs = ChoiceLogprobs(content=tuple(acc.logprobs)) if acc.has_logprobs else None
            choices.append(Choice(index, message, acc.finish_reason, logprobs, acc.stop_sequence))
        return ChatResult(tuple(choices), usage, self._fingerprint)


def replay(result: ChatResult) -> list[ChatDelta]:
    """The deltas of a stream that answers `result`: the text (with the role), each tool
    call whole, then the finish reasons, and the usage in a delta of its own."""
    fingerprint = result.system_fingerprint
    deltas: list[ChatDelta] = []
    opening = []
    for choice in result.choices:
        message = choice.message
        text = message.content if isinstance(message.content, str) else None
        opening.append(
            ChoiceDelta(
                index=choice.index,
                role="assistant",
                content=text if text is not None or not message.tool_calls else None,
                refusal=message.refusal,
                logprobs=choice.logprobs,
            )
        )
    deltas.append(ChatDelta(choices=tuple(opening), system_fingerprint=fingerprint))
    for choice in result.choices:
        for i, call in enumerate(choice.message.tool_calls):
            piece = ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.arguments)
            deltas.append(
                ChatDelta(choices=(ChoiceDelta(index=choice.index, tool_calls=(piece,)),))
            )
    closing = tuple(
        ChoiceDelta(index=c.index, finish_reason=c.finish_reason, stop_sequence=c.stop_sequence)
        for c in result.choices
    )
    deltas.append(ChatDelta(choices=closing, system_fingerprint=fingerprint))
    if result.usage is not None:
        deltas.append(ChatDelta(usage=result.usage))
    return deltas
