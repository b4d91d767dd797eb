"""The Messages door's thinking, onto the chat core's reasoning and back.

Anthropic's `thinking` parameter becomes the unified ReasoningConfig, which every adapter
maps; thinking and redacted_thinking blocks a client sends back become reasoning details
with their signatures (which Anthropic checks in a tool loop), and an answer's reasoning
becomes thinking blocks again. The stream's side is EventBuilder's (messages_proto.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from switchyard.v1 import chat_pb2, messages_pb2

from service import errors

# The `format` of reasoning details that are Anthropic's thinking blocks (OpenRouter's
# name; the Anthropic adapter sends exactly these back as thinking blocks).
ANTHROPIC_FORMAT = "anthropic-claude-v1"
MIN_BUDGET = 1024  # Anthropic's least thinking budget


def thinking_config(config: messages_pb2.ThinkingConfig, out: chat_pb2.ChatRequest) -> None:
    """Anthropic's `thinking` as the core's reasoning config, which every adapter maps
    (Anthropic: the same `thinking` back; OpenAI-compatible: `reasoning_effort`; Gemini:
    `thinkingConfig`). The parameter also goes to Anthropic endpoints as sent (adaptive
    thinking and `display` have no unified form), merged with the other Anthropic-only
    parameters. Anthropic's own budget rules are checked here, so that the answer does
    not depend on the upstream."""
    kind = config.type
    native: dict[str, Any] = {"type": kind}
    if kind == "enabled":
        budget = config.budget_tokens
        if budget < MIN_BUDGET:
            raise errors.invalid_request(
                f"'thinking.budget_tokens' must be at least {MIN_BUDGET}.",
                "thinking.budget_tokens",
            )
        if budget >= out.max_tokens:
            raise errors.invalid_request(
                "'thinking.budget_tokens' must be less than 'max_tokens'.",
                "thinking.budget_tokens",
            )
        out.reasoning.enabled = True
        out.reasoning.max_tokens = budget
        native["budget_tokens"] = budget
    elif kind == "adaptive":
        out.reasoning.enabled = True
    elif kind == "disabled":
        out.reasoning.enabled = False
    else:
        raise errors.invalid_request(
            "'thinking.type' must be 'enabled', 'disabled' or 'adaptive'.", "thinking.type"
        )
    if config.display:
        native["display"] = config.display
    extra = orjson.loads(out.native_extra_json.get("anthropic") or "{}")
    extra["thinking"] = native
    out.native_extra_json["anthropic"] = orjson.dumps(extra).decode()


def thinking_detail(block: messages_pb2.ContentBlock, out: Any) -> None:
    """A thinking or redacted_thinking block sent back, as a reasoning detail appended to
    `out` (a repeated ReasoningDetail): signature and data kept, for Anthropic refuses a
    tool loop whose thinking lost them."""
    if block.WhichOneof("block") == "thinking":
        out.add(
            type="reasoning.text",
            text=block.thinking.thinking,
            signature=block.thinking.signature,
            format=ANTHROPIC_FORMAT,
            index=len(out),
        )
    else:
        out.add(
            type="reasoning.encrypted",
            data=block.redacted_thinking,
            format=ANTHROPIC_FORMAT,
            index=len(out),
        )


def thinking_blocks(message: chat_pb2.Message, out: Any) -> None:
    """The reasoning of an answer as thinking blocks (into `out`, a repeated
    ContentBlock), ahead of the text and tool calls as Anthropic puts them: each text
    detail a thinking block with its signature ("" from an upstream that does not sign),
    each encrypted one a redacted_thinking block. Gemini's thought signatures (encrypted
    details with the `id` of their tool call) have no Anthropic block and are left out.
    Reasoning without details (DeepSeek, vLLM) is one unsigned thinking block."""
    added = False
    for detail in message.reasoning_details:
        if detail.type == "reasoning.encrypted":
            if detail.data and not detail.id:
                out.add(redacted_thinking=detail.data)
                added = True
        else:
            thought = messages_pb2.Thinking(
                thinking=detail.text or detail.summary, signature=detail.signature
            )
            out.add(thinking=thought)
            added = True
    if not added and message.HasField("reasoning") and message.reasoning:
        out.add(thinking=messages_pb2.Thinking(thinking=message.reasoning))
