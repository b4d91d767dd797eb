"""Reasoning in OpenRouter's unified form: the request's `reasoning` object (and the
`reasoning_effort` / `include_reasoning` shorthands), and `reasoning_details` both ways.

The details are what makes a tool loop with thinking work: providers sign their
reasoning (Anthropic's thinking blocks, Gemini's thought signatures on function calls)
and refuse a history without the signatures, so each detail is rendered whole and read
back whole when a client returns it in an assistant message.
"""

from __future__ import annotations

from typing import Any

from switchyard.v1 import chat_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.fields import JSON, array, integer, obj, opt_bool, opt_str, string

DETAIL_TYPES = frozenset({"reasoning.text", "reasoning.encrypted", "reasoning.summary"})
# The fields a detail of each type carries, besides type, id, format and index.
_DETAIL_FIELDS = {
    "reasoning.text": ("text", "signature"),
    "reasoning.encrypted": ("data",),
    "reasoning.summary": ("summary",),
}


def parse_reasoning(body: JSON, out: chat_pb2.ReasoningConfig) -> None:
    """`reasoning`, `reasoning_effort` and `include_reasoning` of a request body, merged.

    `reasoning_effort` is OpenAI's name for `reasoning.effort`; `include_reasoning`
    is OpenRouter's older switch: true asks for the reasoning, false hides it.
    """
    raw = body.get("reasoning")
    if raw is not None:
        config = obj(raw, "reasoning")
        effort = opt_str(config, "effort", "reasoning.effort")
        if effort is not None:
            out.effort = effort
        if config.get("max_tokens") is not None:
            out.max_tokens = integer(config["max_tokens"], "reasoning.max_tokens")
        exclude = opt_bool(config, "exclude", "reasoning.exclude")
        if exclude is not None:
            out.exclude = exclude
        enabled = opt_bool(config, "enabled", "reasoning.enabled")
        if enabled is not None:
            out.enabled = enabled
    effort = opt_str(body, "reasoning_effort")
    if effort is not None:
        if out.HasField("effort") and out.effort != effort:
            raise bad_request(
                "'reasoning_effort' and 'reasoning.effort' disagree; send one.", "reasoning_effort"
            )
        out.effort = effort
    include = opt_bool(body, "include_reasoning")
    if include is not None and not out.HasField("exclude"):
        out.exclude = not include
        if include and not out.HasField("enabled"):
            out.enabled = True


REASONING_FIELDS = frozenset({"reasoning", "reasoning_effort", "include_reasoning"})


def parse_details(raw: Any, param: str, out: Any) -> None:
    """A `reasoning_details` array into `out`, a repeated ReasoningDetail field."""
    for k, item in enumerate(array(raw, param)):
        where = f"{param}[{k}]"
        detail = obj(item, where)
        kind = opt_str(detail, "type", f"{where}.type") or "reasoning.text"
        if kind not in DETAIL_TYPES:
            raise bad_request(
                f"'{where}.type' must be one of {', '.join(sorted(DETAIL_TYPES))}.",
                f"{where}.type",
            )
        entry = out.add(type=kind)
        for name in ("text", "signature", "data", "summary", "id", "format"):
            value = detail.get(name)
            if value is not None:
                setattr(entry, name, string(value, f"{where}.{name}"))
        if detail.get("index") is not None:
            entry.index = integer(detail["index"], f"{where}.index")


def details_json(details: Any) -> list[JSON]:
    """A repeated ReasoningDetail field as OpenRouter's `reasoning_details`."""
    out = []
    for d in details:
        item: JSON = {"type": d.type}
        for name in _DETAIL_FIELDS.get(d.type, ()):
            value = getattr(d, name)
            item[name] = value if value or name != "signature" else None
        item["id"] = d.id or None
        item["format"] = d.format or "unknown"
        item["index"] = d.index
        out.append(item)
    return out
