"""Anthropic's answers as the domain's: a Message object (non-streaming) as a one-choice
`ChatResult`, its usage in OpenAI's terms, its stop reason as a finish reason.

Thinking and redacted_thinking blocks become reasoning details with their signatures
(Anthropic refuses a tool loop that lost them); thinking Claude interleaves between its
tool calls is tied to the call it precedes (the detail's `id`), so that the order
survives the chat shape and comes back upstream as Claude wrote it. An answer of the
wrong shape is a `BadUpstreamError`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from service.domain.chat import ChatResult, Choice, Message, ReasoningDetail, ToolCall, Usage
from service.providers.anthropic.thinking import FORMAT, with_reasoning

JSON = dict[str, Any]
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


class BadUpstreamError(ValueError):
    """The upstream's answer does not have the shape Anthropic documents."""


def obj(value: Any, where: str) -> JSON:
    if not isinstance(value, dict):
        raise BadUpstreamError(f"{where}: expected an object")
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadUpstreamError(f"{where}: expected a string")
    return value


def integer(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadUpstreamError(f"{where}: expected an integer")
    return value


def _count(usage: JSON, key: str) -> int:
    value = usage.get(key)
    return 0 if value is None else integer(value, f"usage.{key}")


def parse_usage(value: Any) -> Usage | None:
    """OpenAI-style usage: prompt tokens include cache reads and writes."""
    if value is None:
        return None
    usage = obj(value, "usage")
    read = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    prompt = _count(usage, "input_tokens") + read + written
    completion = _count(usage, "output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read if usage.get("cache_read_input_tokens") is not None else None,
        cache_write_tokens=written
        if usage.get("cache_creation_input_tokens") is not None
        else None,
    )


def finish_reason(stop_reason: str | None, *, tool_calls: bool) -> str:
    """OpenAI's finish_reason; `tool_use` without real tool calls was the format tool."""
    if stop_reason == "tool_use" and not tool_calls:
        return "stop"
    if stop_reason is None:
        return "tool_calls" if tool_calls else "stop"
    return _FINISH.get(stop_reason, "stop")


def tool_input_json(block: JSON, where: str) -> str:
    value = block.get("input", {})
    return orjson.dumps(obj(value, f"{where}.input")).decode()


def parse_message(value: Any, format_tool: str | None = None) -> ChatResult:
    """A Message object (non-streaming answer) as a one-choice `ChatResult`."""
    body = obj(value, "message")
    if not isinstance(body.get("content"), list):
        raise BadUpstreamError("content: expected an array")
    texts: list[str] = []
    calls: list[ToolCall] = []
    answer: str | None = None
    thoughts: list[str] = []
    details: list[ReasoningDetail] = []
    untied: list[int] = []  # details of thinking after a tool call, before the next one
    for k, raw in enumerate(body["content"]):
        where = f"content[{k}]"
        block = obj(raw, where)
        kind = block.get("type")
        if kind == "text":
            texts.append(string(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            name = string(block.get("name"), f"{where}.name")
            arguments = tool_input_json(block, where)
            if name == format_tool:
                answer = arguments
            else:
                calls.append(ToolCall(string(block.get("id"), f"{where}.id"), name, arguments))
                for k in untied:  # interleaved thinking: tied to this call, to keep the order
                    details[k] = replace(details[k], id=calls[-1].id)
                untied = []
        elif kind in ("thinking", "redacted_thinking"):
            detail = thinking_detail(block, where, len(details))
            if calls:
                untied.append(len(details))
            details.append(detail)
            if detail.text:
                thoughts.append(detail.text)
        # server-tool blocks have no OpenAI equivalent.
    stop_reason = body.get("stop_reason")
    if stop_reason is not None:
        stop_reason = string(stop_reason, "stop_reason")
    content = answer if answer is not None else ("".join(texts) if texts else None)
    reasoning = "".join(thoughts) if thoughts else None
    message = Message(
        role="assistant",
        content=content,
        tool_calls=tuple(calls),
        reasoning=reasoning,
        reasoning_details=tuple(details),
    )
    finish = finish_reason(stop_reason, tool_calls=bool(calls))
    sequence = body.get("stop_sequence") if stop_reason == "stop_sequence" else None
    choice = Choice(
        index=0,
        message=message,
        finish_reason=finish,
        stop_sequence=string(sequence, "stop_sequence") if sequence is not None else None,
    )
    usage = with_reasoning(parse_usage(body.get("usage")), len(reasoning or ""))
    return ChatResult(choices=(choice,), usage=usage)


def thinking_detail(block: JSON, where: str, index: int) -> ReasoningDetail:
    """A thinking or redacted_thinking block as a reasoning detail, signature kept."""
    if block.get("type") == "redacted_thinking":
        data = string(block.get("data"), f"{where}.data")
        return ReasoningDetail(type="reasoning.encrypted", data=data, format=FORMAT, index=index)
    signature = block.get("signature")
    return ReasoningDetail(
        type="reasoning.text",
        text=string(block.get("thinking", ""), f"{where}.thinking"),
        signature=string(signature, f"{where}.signature") if signature else None,
        format=FORMAT,
        index=index,
    )
