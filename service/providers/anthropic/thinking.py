"""Anthropic's extended thinking: the budget a unified reasoning request asks for, the
thinking blocks a returned assistant message stands for, and reasoning-token counts.

Thinking blocks are signed; Anthropic refuses a tool loop whose last assistant turn lost
them, so they travel to the client as reasoning details (`format` anthropic-claude-v1)
and come back from them whole.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.domain.chat import Reasoning, ReasoningDetail, Usage

JSON = dict[str, Any]
# The `format` of the reasoning details Anthropic's thinking blocks become (OpenRouter's).
FORMAT = "anthropic-claude-v1"
# Thinking budgets from an effort, as OpenRouter computes them: this share of max_tokens,
# within Anthropic's minimum (1024) and a ceiling of 32k.
_EFFORT_SHARE = {"minimal": 0.1, "low": 0.2, "medium": 0.5, "high": 0.8, "xhigh": 0.95}
MIN_BUDGET, MAX_BUDGET = 1024, 32_000


def thinking_blocks(details: tuple[ReasoningDetail, ...]) -> list[JSON]:
    """The thinking blocks a returned assistant message's details stand for: signed
    thinking and redacted thinking of Anthropic's (others' details and unsigned text,
    which Anthropic would refuse, are left out)."""
    blocks: list[JSON] = []
    for detail in details:
        if detail.format not in (None, FORMAT, "unknown"):
            continue
        if detail.type == "reasoning.text" and detail.signature:
            blocks.append(
                {"type": "thinking", "thinking": detail.text or "", "signature": detail.signature}
            )
        elif detail.type == "reasoning.encrypted" and detail.data:
            blocks.append({"type": "redacted_thinking", "data": detail.data})
    return blocks


def thinking_budget(reasoning: Reasoning, max_tokens: int) -> int | None:
    """Anthropic's `thinking.budget_tokens` for a unified reasoning request, or None."""
    if not reasoning.wanted:
        return None
    if reasoning.max_tokens is not None:
        return max(reasoning.max_tokens, MIN_BUDGET)
    share = _EFFORT_SHARE.get(reasoning.effort or "medium", 0.5)
    return max(min(int(max_tokens * share), MAX_BUDGET), MIN_BUDGET)


def with_reasoning(usage: Usage | None, thinking_chars: int) -> Usage | None:
    """Usage with `reasoning_tokens`, which Anthropic does not count apart from output
    tokens: estimated from the thinking text (about 4 characters a token), at most the
    output. Billing is unchanged: output tokens already include the thinking."""
    if usage is None or not thinking_chars:
        return usage
    estimate = min(-(-thinking_chars // 4), usage.completion_tokens)
    return replace(usage, reasoning_tokens=estimate)
