"""Anthropic's streaming events, translated one at a time into domain `ChatDelta`s.

A stream is `message_start`, then content blocks (`content_block_start`, deltas,
`content_block_stop`), each with an `index` into the final message's content, then
`message_delta` (stop reason, cumulative usage) and `message_stop`; `ping` may come
anywhere and an `error` event may replace the rest.

The block index is *not* a tool-call index: a text block at 0 followed by two tool_use
blocks at 1 and 2 are OpenAI tool calls 0 and 1. Tool calls are therefore numbered by
position as their blocks start, which is where translating gateways are known to break.

Nothing is emitted for `message_start`: the first delta is real output, so an error
arriving before any output still reaches the client with its true status (DESIGN §5).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from service.domain.chat import ChatDelta, ChoiceDelta, ReasoningDetail, ToolCallDelta, Usage
from service.providers.anthropic.answer import (
    JSON,
    BadUpstreamError,
    finish_reason,
    integer,
    obj,
    parse_usage,
    string,
    thinking_detail,
)
from service.providers.anthropic.thinking import FORMAT, with_reasoning


class UpstreamStreamError(Exception):
    """The upstream reported an error inside the stream (`event: error`)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class _Block:
    kind: str  # "text" | "tool" | "answer" (the structured-output tool) | "thinking" | "other"
    position: int = -1  # the tool call's position among tool calls (or thinking blocks)


class StreamTranslator:
    """Stateful: feed every event in order; `done` once the message has stopped."""

    def __init__(self, format_tool: str | None = None) -> None:
        self._format_tool = format_tool
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._thoughts = 0  # thinking blocks so far: their details' indexes
        self._thinking_chars = 0
        self._usage: JSON = {}
        self._role_sent = False
        self.finished = False  # a stop reason arrived
        self.done = False  # message_stop arrived

    def feed(self, event: Any) -> ChatDelta | None:
        body = obj(event, "event")
        kind = body.get("type")
        if kind == "message_start":
            usage = obj(body.get("message"), "message_start.message").get("usage")
            if usage is not None:
                self._merge_usage(usage)
            return None
        if kind == "content_block_start":
            return self._block_start(body)
        if kind == "content_block_delta":
            return self._block_delta(body)
        if kind == "message_delta":
            return self._message_delta(body)
        if kind == "message_stop":
            self.done = True
            return None
        if kind == "error":
            error = body.get("error")
            error = error if isinstance(error, dict) else {}
            raise UpstreamStreamError(
                str(error.get("type") or "error"),
                str(error.get("message") or "the upstream reported an error"),
            )
        return None  # ping, content_block_stop, and event types added later

    def _delta(
        self,
        *,
        content: str | None = None,
        tool_call: ToolCallDelta | None = None,
        finish: str | None = None,
        usage: Usage | None = None,
        reasoning: str | None = None,
        detail: ReasoningDetail | None = None,
    ) -> ChatDelta:
        role = None if self._role_sent else "assistant"
        self._role_sent = True
        choice = ChoiceDelta(
            index=0,
            role=role,
            content=content,
            tool_calls=(tool_call,) if tool_call is not None else (),
            finish_reason=finish,
            reasoning=reasoning,
            reasoning_details=(detail,) if detail is not None else (),
        )
        return ChatDelta(choices=(choice,), usage=usage)

    def _merge_usage(self, value: Any) -> None:
        # message_delta counts are cumulative and may repeat message_start's: latest wins.
        self._usage.update((k, v) for k, v in obj(value, "usage").items() if v is not None)

    def _block_start(self, body: JSON) -> ChatDelta | None:
        index = integer(body.get("index"), "content_block_start.index")
        block = obj(body.get("content_block"), "content_block_start.content_block")
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            text = block.get("text")
            return self._delta(content=text) if isinstance(text, str) and text else None
        if kind == "tool_use":
            name = string(block.get("name"), "content_block.name")
            if name == self._format_tool:
                self._blocks[index] = _Block("answer")
                return None
            position = self._calls
            self._calls += 1
            self._blocks[index] = _Block("tool", position)
            call_id = string(block.get("id"), "content_block.id")
            call = ToolCallDelta(index=position, id=call_id, name=name, arguments="")
            return self._delta(tool_call=call)
        if kind in ("thinking", "redacted_thinking"):
            position = self._thoughts
            self._thoughts += 1
            self._blocks[index] = _Block("thinking", position)
            detail = thinking_detail(block, "content_block", position)
            if detail.type == "reasoning.encrypted":
                return self._delta(detail=detail)
            text = detail.text
            if text:
                self._thinking_chars += len(text)
                return self._delta(reasoning=text, detail=detail)
            return None
        self._blocks[index] = _Block("other")  # server tools: nothing to carry
        return None

    def _block_delta(self, body: JSON) -> ChatDelta | None:
        index = integer(body.get("index"), "content_block_delta.index")
        block = self._blocks.get(index)
        if block is None:
            raise BadUpstreamError(f"content_block_delta: block {index} never started")
        delta = obj(body.get("delta"), "content_block_delta.delta")
        kind = delta.get("type")
        if kind == "text_delta" and block.kind == "text":
            text = string(delta.get("text"), "text_delta.text")
            return self._delta(content=text) if text else None
        if kind == "input_json_delta" and block.kind in ("tool", "answer"):
            fragment = string(delta.get("partial_json"), "input_json_delta.partial_json")
            if not fragment:
                return None
            if block.kind == "answer":
                return self._delta(content=fragment)
            return self._delta(tool_call=ToolCallDelta(index=block.position, arguments=fragment))
        if block.kind == "thinking":
            return self._thinking_delta(kind, delta, block.position)
        return None  # citations_delta, ...

    def _thinking_delta(self, kind: Any, delta: JSON, position: int) -> ChatDelta | None:
        """A piece of thinking, or its signature: the same detail (by index), in parts
        that a client joins (texts appended, the signature set)."""
        if kind == "thinking_delta":
            text = string(delta.get("thinking"), "thinking_delta.thinking")
            if not text:
                return None
            self._thinking_chars += len(text)
            detail = ReasoningDetail(
                type="reasoning.text", text=text, format=FORMAT, index=position
            )
            return self._delta(reasoning=text, detail=detail)
        if kind == "signature_delta":
            signature = string(delta.get("signature"), "signature_delta.signature")
            detail = ReasoningDetail(
                type="reasoning.text", text="", signature=signature, format=FORMAT, index=position
            )
            return self._delta(detail=detail)
        return None

    def _message_delta(self, body: JSON) -> ChatDelta | None:
        if body.get("usage") is not None:
            self._merge_usage(body["usage"])
        delta = body.get("delta")
        stop_reason = obj(delta, "message_delta.delta").get("stop_reason") if delta else None
        usage = with_reasoning(parse_usage(self._usage), self._thinking_chars)
        if stop_reason is None or self.finished:
            return ChatDelta(usage=usage) if body.get("usage") else None
        self.finished = True
        finish = finish_reason(string(stop_reason, "stop_reason"), tool_calls=self._calls > 0)
        sequence = obj(delta, "message_delta.delta").get("stop_sequence")
        out = self._delta(finish=finish, usage=usage)
        if stop_reason != "stop_sequence" or sequence is None:
            return out
        choice = replace(out.choices[0], stop_sequence=string(sequence, "stop_sequence"))
        return replace(out, choices=(choice,))
