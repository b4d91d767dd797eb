"""The Messages door's thinking, onto the chat core's reasoning and back.

Anthropic's `thinking` parameter becomes the unified ReasoningConfig, which every adapter
maps; thinking and redacted_thinking blocks a client sends back become reasoning details
with their signatures (which Anthropic checks in a tool loop), and an answer's reasoning
becomes thinking blocks again. The stream's side is EventBuilder's (messages_proto.py).

Other providers' signed reasoning has no Anthropic block: Gemini 3 signs each function
call (`thoughtSignature`) and refuses a tool round trip without it. Such a detail becomes
a `redacted_thinking` block, the opaque blob Anthropic's clients echo back unchanged,
whose `data` is the gateway's sealed envelope (reasoning_seal.py), placed right before
the tool_use it signs; coming back, the envelope is the detail again. Redacted data
without the envelope's prefix is Anthropic's own. Each adapter then sends upstream only
the details of its own format, so a turn that falls back to another provider drops them.

Blocks keep their order as far as the chat shape can say it: a detail whose `id` is a
tool call's goes right before that call (Gemini's signatures, and the thinking Anthropic
interleaves between its tool calls), the others ahead of the text.
"""

from __future__ import annotations

from typing import Any

import orjson
from switchyard.v1 import chat_pb2, messages_pb2

from service import errors
from service.servicers.chat_proto import details_from_proto, details_to_proto
from service.servicers.reasoning_seal import is_sealed, seal, unseal

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


def thinking_detail(block: messages_pb2.ContentBlock, param: str, out: Any) -> None:
    """A thinking or redacted_thinking block sent back, as reasoning details appended to
    `out` (a repeated ReasoningDetail): signature and data kept, for Anthropic refuses a
    tool loop whose thinking lost them; our envelope, the details it seals."""
    if block.WhichOneof("block") == "thinking":
        out.add(
            type="reasoning.text",
            text=block.thinking.thinking,
            signature=block.thinking.signature,
            format=ANTHROPIC_FORMAT,
            index=len(out),
        )
    elif is_sealed(block.redacted_thinking):
        details_to_proto(unseal(block.redacted_thinking, f"{param}.data"), out)
    else:
        out.add(
            type="reasoning.encrypted",
            data=block.redacted_thinking,
            format=ANTHROPIC_FORMAT,
            index=len(out),
        )


def _anthropic(detail: chat_pb2.ReasoningDetail) -> bool:
    return detail.format in ("", ANTHROPIC_FORMAT, "unknown")


def detail_block(detail: chat_pb2.ReasoningDetail) -> messages_pb2.ContentBlock | None:
    """The block a reasoning detail is on this door, or None: text as a thinking block
    with its signature ("" from an upstream that does not sign), Anthropic's encrypted
    reasoning as its redacted_thinking, another provider's as our sealed envelope."""
    if detail.type != "reasoning.encrypted":
        thought = messages_pb2.Thinking(
            thinking=detail.text or detail.summary, signature=detail.signature
        )
        return messages_pb2.ContentBlock(thinking=thought)
    if not detail.data:
        return None
    if _anthropic(detail) and not is_sealed(detail.data):
        return messages_pb2.ContentBlock(redacted_thinking=detail.data)
    return messages_pb2.ContentBlock(redacted_thinking=seal(details_from_proto([detail])))


def content_blocks(message: chat_pb2.Message, out: Any) -> None:
    """An answer as content blocks (into `out`, a repeated ContentBlock), in Anthropic's
    order: reasoning, then text, then each tool call with the details tied to it right
    before it. Another provider's signature tied to no call (Gemini signs its last text
    part) follows the text, where a stream has it. Reasoning without details (DeepSeek,
    vLLM) is one unsigned thinking block."""
    calls = {call.id for call in message.tool_calls}
    tied: dict[str, list[messages_pb2.ContentBlock]] = {}
    after_text: list[messages_pb2.ContentBlock] = []
    for detail in message.reasoning_details:
        block = detail_block(detail)
        if block is None:
            continue
        if detail.id in calls:
            tied.setdefault(detail.id, []).append(block)
        elif block.WhichOneof("block") == "redacted_thinking" and not _anthropic(detail):
            after_text.append(block)
        else:
            out.append(block)
    texts = any(d.type != "reasoning.encrypted" for d in message.reasoning_details)
    if not texts and message.HasField("reasoning") and message.reasoning:
        out.add(thinking=messages_pb2.Thinking(thinking=message.reasoning))
    if message.WhichOneof("content") == "text" and message.text:
        out.add(text=message.text)
    out.extend(after_text)
    for call in message.tool_calls:
        out.extend(tied.get(call.id, ()))
        out.add(
            tool_use=messages_pb2.ToolUse(
                id=call.id, name=call.function.name, input_json=call.function.arguments
            )
        )
