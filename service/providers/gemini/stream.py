"""Gemini's stream (`streamGenerateContent?alt=sse`) as domain deltas.

Each SSE `data:` payload is a whole GenerateContentResponse carrying the *new* parts of
each candidate; there is no `[DONE]`: the body simply ends after the chunk with a
`finishReason`. Translation is where gateways break, so the invariants are kept here:

- a function call arrives whole, but OpenAI clients expect a first delta with id and
  name (and `arguments: ""`) then the arguments, so each call becomes those two deltas;
- tool-call indexes count the calls of a candidate (0..n-1) across chunks, and each call
  gets its own id (Gemini sends none);
- the finish reason travels in a delta of its own after the content, and usage (which
  Gemini repeats, growing, in every chunk) is sent once, the last one, at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.domain.chat import ChatDelta, ChoiceDelta, ToolCallDelta, Usage
from service.providers.gemini.response import (
    BadUpstreamError,
    UpstreamErrorEvent,
    call_arguments,
    candidate_parts,
    check_blocked,
    finish_reason,
    new_call_id,
    parse_usage,
    signature_detail,
    thought_detail,
)


def _one(choice: ChoiceDelta) -> ChatDelta:
    return ChatDelta(choices=(choice,))


class StreamTranslator:
    """Feed it each parsed chunk in order, then `finish()` at the end of the body."""

    def __init__(self, new_id: Callable[[], str] = new_call_id) -> None:
        self._new_id = new_id
        self._calls: dict[int, int] = {}  # candidate index -> function calls so far
        self._signatures: dict[int, int] = {}  # candidate index -> signatures so far
        self._finished: set[int] = set()
        self.usage: Usage | None = None

    def feed(self, value: Any) -> list[ChatDelta]:
        if not isinstance(value, dict):
            raise BadUpstreamError("chunk: expected an object")
        if "error" in value and "candidates" not in value:
            raise UpstreamErrorEvent(value)
        check_blocked(value)
        usage = parse_usage(value.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        candidates = value.get("candidates") or []
        if not isinstance(candidates, list):
            raise BadUpstreamError("chunk.candidates: expected an array")
        deltas: list[ChatDelta] = []
        for i, raw in enumerate(candidates):
            got = candidate_parts(raw, i, f"chunk.candidates[{i}]")
            if got.thoughts:
                detail = thought_detail(got.thoughts)
                deltas.append(
                    _one(
                        ChoiceDelta(got.index, reasoning=got.thoughts, reasoning_details=(detail,))
                    )
                )
            if got.text or got.logprobs is not None:
                deltas.append(_one(ChoiceDelta(got.index, content=got.text, logprobs=got.logprobs)))
            if got.text_signature:
                detail = signature_detail(got.text_signature, None, self._signed(got.index))
                deltas.append(_one(ChoiceDelta(got.index, reasoning_details=(detail,))))
            for call, signature in zip(got.calls, got.call_signatures, strict=True):
                position = self._calls.get(got.index, 0)
                self._calls[got.index] = position + 1
                head = ToolCallDelta(
                    index=position,
                    id=str(call.get("id") or self._new_id()),
                    name=call["name"],
                    arguments="",
                )
                rest = ToolCallDelta(index=position, arguments=call_arguments(call))
                # The call's signature travels with its first delta, tied to it by id.
                signed = (
                    (signature_detail(signature, head.id, self._signed(got.index)),)
                    if signature
                    else ()
                )
                deltas.append(
                    _one(ChoiceDelta(got.index, tool_calls=(head,), reasoning_details=signed))
                )
                deltas.append(_one(ChoiceDelta(got.index, tool_calls=(rest,))))
            if got.finish and got.index not in self._finished:
                self._finished.add(got.index)
                reason = finish_reason(got.finish, self._calls.get(got.index, 0) > 0)
                deltas.append(_one(ChoiceDelta(got.index, finish_reason=reason)))
        return deltas

    def _signed(self, candidate: int) -> int:
        """The next signature's detail index (from 1: thought text has index 0)."""
        index = self._signatures.get(candidate, 0) + 1
        self._signatures[candidate] = index
        return index

    def finish(self) -> list[ChatDelta]:
        """The closing deltas (usage); a body that ended before any finish is broken."""
        if not self._finished:
            raise BadUpstreamError("the stream ended before it finished")
        return [ChatDelta(usage=self.usage)] if self.usage is not None else []
