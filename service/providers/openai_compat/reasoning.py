"""Reasoning with OpenAI-compatible upstreams: OpenAI's `reasoning_effort` out, and the
reasoning in: `reasoning_content` (DeepSeek, vLLM) or `reasoning` / `reasoning_details`
(OpenRouter and gateways like it).

Read leniently: nothing the gateway does depends on the reasoning, so a field of the
wrong shape is left out rather than failing an answer that is otherwise good.
"""

from __future__ import annotations

from typing import Any

from service.domain.chat import Reasoning, ReasoningDetail

_FIELDS = ("text", "signature", "data", "summary", "id", "format")


def reasoning_effort(reasoning: Reasoning) -> str | None:
    """OpenAI's `reasoning_effort` for a unified reasoning request (None: send none).

    A thinking budget (`max_tokens`) has no OpenAI equivalent; it is mapped to the
    effort whose usual budget it is nearest (OpenRouter does the same).
    """
    if reasoning.effort is not None:
        return reasoning.effort
    if not reasoning.wanted:
        return None
    budget = reasoning.max_tokens
    if budget is None:
        return "medium"
    if budget < 1024:
        return "minimal"
    if budget < 4096:
        return "low"
    return "medium" if budget < 16384 else "high"


def reasoning_text(message: dict[str, Any]) -> str | None:
    """The reasoning text of a message or delta object, if it has one."""
    value = message.get("reasoning_content")
    if value is None:
        value = message.get("reasoning")
    return value if isinstance(value, str) else None


def reasoning_details(value: Any) -> tuple[ReasoningDetail, ...]:
    """`reasoning_details` as an OpenRouter-style upstream sends them."""
    if not isinstance(value, list):
        return ()
    details = []
    for k, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        fields = {name: item[name] for name in _FIELDS if isinstance(item.get(name), str)}
        index = item.get("index")
        details.append(
            ReasoningDetail(type=item["type"], index=index if type(index) is int else k, **fields)
        )
    return tuple(details)
