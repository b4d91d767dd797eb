"""Anthropic Messages: request JSON -> `MessagesRequest`, proto results -> Anthropic JSON.

Shapes as Anthropic documents them (the Messages API and its streaming events); errors
are rendered in Anthropic's shape too (`{"type": "error", "error": {...}}`), with the
gateway's statuses (DESIGN §4) and Anthropic's error type names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from switchyard.v1 import messages_pb2

from gateway_http.errors import HttpError, bad_request
from gateway_http.transcode.caching import read_cache_control
from gateway_http.transcode.fields import (
    JSON,
    array,
    integer,
    number,
    obj,
    opt_bool,
    opt_number,
    opt_str,
    req_str,
    string,
)
from gateway_http.transcode.routing import ROUTING_FIELDS, parse_routing

# Fields this layer maps itself. Any other top-level field is one of Anthropic's own
# (service_tier, context_management, ...): it goes to Anthropic endpoints as is and to no
# other upstream, which would refuse it. `thinking` is mapped: every upstream can reason.
_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "temperature",
        "top_p", "top_k", "tools", "tool_choice", "metadata", "stream", "timeout", "thinking",
    }
) | ROUTING_FIELDS  # fmt: skip

# status -> Anthropic's error type (the statuses stay the gateway's: DESIGN §4).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


@dataclass(frozen=True, slots=True)
class ParsedMessages:
    request: messages_pb2.MessagesRequest
    stream: bool
    timeout: float | None


def error_json(err: HttpError, rid: str) -> JSON:
    kind = ERROR_TYPES.get(err.status, "invalid_request_error" if err.status < 500 else "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": err.message},
        "request_id": rid,
    }


def _image(block: JSON, param: str, out: messages_pb2.ImageSource) -> None:
    source = obj(block.get("source"), f"{param}.source")
    out.type = req_str(source, "type", f"{param}.source.type")
    if out.type == "base64":
        out.media_type = req_str(source, "media_type", f"{param}.source.media_type")
        out.data = req_str(source, "data", f"{param}.source.data")
    elif out.type == "url":
        out.url = req_str(source, "url", f"{param}.source.url")
    else:
        raise bad_request(
            f"'{param}.source.type' must be 'base64' or 'url'.", f"{param}.source.type"
        )


def _document(block: JSON, param: str, out: messages_pb2.DocumentSource) -> None:
    source = obj(block.get("source"), f"{param}.source")
    out.type = req_str(source, "type", f"{param}.source.type")
    if out.type not in ("base64", "text"):
        raise bad_request(
            f"'{param}.source.type' must be 'base64' or 'text' (URL documents are not taken).",
            f"{param}.source.type",
        )
    out.media_type = opt_str(source, "media_type", f"{param}.source.media_type") or ""
    out.data = req_str(source, "data", f"{param}.source.data")
    out.title = opt_str(block, "title", f"{param}.title") or ""


def _blocks(raw: Any, param: str, out: messages_pb2.ContentBlocks) -> None:
    for j, item in enumerate(array(raw, param)):
        where = f"{param}[{j}]"
        block = obj(item, where)
        kind = req_str(block, "type", f"{where}.type")
        target = out.blocks.add()
        if kind == "text":
            target.text = req_str(block, "text", f"{where}.text")
        elif kind == "thinking":
            # The signature is "" on thinking an unsigning upstream returned through here.
            target.thinking.thinking = req_str(block, "thinking", f"{where}.thinking")
            target.thinking.signature = opt_str(block, "signature", f"{where}.signature") or ""
        elif kind == "redacted_thinking":
            target.redacted_thinking = req_str(block, "data", f"{where}.data")
        elif kind == "image":
            _image(block, where, target.image)
        elif kind == "document":
            _document(block, where, target.document)
        elif kind == "tool_use":
            target.tool_use.id = req_str(block, "id", f"{where}.id")
            target.tool_use.name = req_str(block, "name", f"{where}.name")
            target.tool_use.input_json = orjson.dumps(
                obj(block.get("input", {}), f"{where}.input")
            ).decode()
        elif kind == "tool_result":
            result = target.tool_result
            result.tool_use_id = req_str(block, "tool_use_id", f"{where}.tool_use_id")
            content = block.get("content")
            if isinstance(content, list):
                _blocks(content, f"{where}.content", result.blocks)
                result.blocks.SetInParent()
            elif content is not None:
                result.text = string(content, f"{where}.content")
            result.is_error = bool(opt_bool(block, "is_error", f"{where}.is_error"))
        else:
            raise bad_request(
                f"'{where}.type' '{kind}' is not a content block this gateway takes.",
                f"{where}.type",
            )
        read_cache_control(block, where, target.cache_control)


def _messages(raw: Any, out: messages_pb2.MessagesRequest) -> None:
    for i, item in enumerate(array(raw, "messages")):
        where = f"messages[{i}]"
        message = obj(item, where)
        target = out.messages.add(role=req_str(message, "role", f"{where}.role"))
        content = message.get("content")
        if isinstance(content, str):
            target.text = content
        elif isinstance(content, list):
            _blocks(content, f"{where}.content", target.blocks)
            target.blocks.SetInParent()
        else:
            raise bad_request(
                f"'{where}.content' must be a string or an array.", f"{where}.content"
            )


def _tools(raw: Any, out: messages_pb2.MessagesRequest) -> None:
    for i, item in enumerate(array(raw, "tools")):
        where = f"tools[{i}]"
        tool = obj(item, where)
        kind = opt_str(tool, "type", f"{where}.type")
        if kind not in (None, "custom"):
            raise bad_request(
                f"'{where}.type' '{kind}': server tools are not served here; "
                "define the tool with 'input_schema'.",
                f"{where}.type",
            )
        target = out.tools.add(
            name=req_str(tool, "name", f"{where}.name"),
            description=opt_str(tool, "description", f"{where}.description") or "",
            input_schema_json=orjson.dumps(
                obj(tool.get("input_schema"), f"{where}.input_schema")
            ).decode(),
        )
        read_cache_control(tool, where, target.cache_control)


def _tool_choice(raw: Any, out: messages_pb2.MessagesToolChoice) -> None:
    choice = obj(raw, "tool_choice")
    out.type = req_str(choice, "type", "tool_choice.type")
    out.name = opt_str(choice, "name", "tool_choice.name") or ""
    disable = opt_bool(choice, "disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use")
    if disable is not None:
        out.disable_parallel_tool_use = disable


def _thinking(raw: Any, out: messages_pb2.ThinkingConfig) -> None:
    config = obj(raw, "thinking")
    out.type = req_str(config, "type", "thinking.type")
    if config.get("budget_tokens") is not None:
        out.budget_tokens = integer(config["budget_tokens"], "thinking.budget_tokens")
    out.display = opt_str(config, "display", "thinking.display") or ""


def _system(raw: Any, out: messages_pb2.MessagesRequest) -> None:
    if isinstance(raw, str):
        out.system_text = raw
    else:
        _blocks(raw, "system", out.system_blocks)
        out.system_blocks.SetInParent()


def parse_messages(body: JSON) -> ParsedMessages:
    out = messages_pb2.MessagesRequest(model=opt_str(body, "model") or "")
    if body.get("messages") is None:
        raise bad_request("'messages' is required.", "messages")
    _messages(body["messages"], out)
    extra: JSON = {}
    for name, value in body.items():
        if value is None or name in ("model", "messages"):
            continue
        if name == "max_tokens":
            out.max_tokens = integer(value, "max_tokens")
        elif name == "system":
            _system(value, out)
        elif name == "stop_sequences":
            out.stop_sequences.extend(
                string(s, f"stop_sequences[{i}]") for i, s in enumerate(array(value, name))
            )
        elif name in ("temperature", "top_p"):
            setattr(out, name, number(value, name))
        elif name == "top_k":
            out.top_k = integer(value, "top_k")
        elif name == "tools":
            _tools(value, out)
        elif name == "tool_choice":
            _tool_choice(value, out.tool_choice)
        elif name == "thinking":
            _thinking(value, out.thinking)
        elif name == "metadata":
            out.metadata_user_id = opt_str(obj(value, name), "user_id", "metadata.user_id") or ""
        elif name not in _HANDLED:
            extra[name] = value
    if not ROUTING_FIELDS.isdisjoint(body):
        parse_routing(body, out)
    if not out.model:
        raise bad_request("'model' is required.", "model")
    if extra:
        out.extra_json = orjson.dumps(extra).decode()
    timeout = opt_number(body, "timeout")
    if timeout is not None and not 0 < timeout <= 86_400:
        raise bad_request("'timeout' must be a number of seconds above 0.", "timeout")
    return ParsedMessages(out, bool(opt_bool(body, "stream")), timeout)


def parse_count(body: JSON) -> messages_pb2.MessagesRequest:
    """count_tokens takes a Messages body without max_tokens (nothing is generated)."""
    request = parse_messages(body).request
    if not request.max_tokens:
        request.max_tokens = 1
    return request


# --- results --------------------------------------------------------------------------


def _input(text: str) -> orjson.Fragment | JSON:
    """A tool call's input object; arguments that are not one are kept as a string."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": text}
    if not isinstance(value, dict):
        return {"arguments": text}
    return orjson.Fragment(text) if text else {}  # no arguments at all: an empty input


def block_json(block: messages_pb2.ContentBlock) -> JSON:
    kind = block.WhichOneof("block")
    if kind == "tool_use":
        use = block.tool_use
        return {"type": "tool_use", "id": use.id, "name": use.name, "input": _input(use.input_json)}
    if kind == "thinking":
        thought = block.thinking
        return {"type": "thinking", "thinking": thought.thinking, "signature": thought.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.redacted_thinking}
    return {"type": "text", "text": block.text}


# ContentBlockDelta's oneof field -> (Anthropic's delta type, its field).
_DELTAS = {
    "text": ("text_delta", "text"),
    "partial_json": ("input_json_delta", "partial_json"),
    "thinking": ("thinking_delta", "thinking"),
    "signature": ("signature_delta", "signature"),
}


def usage_json(usage: messages_pb2.MessagesUsage) -> JSON:
    out: JSON = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
    }
    if usage.HasField("cost"):
        out["cost"] = usage.cost
    return out


def response_json(response: messages_pb2.MessagesResponse) -> JSON:
    return {
        "id": response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": [block_json(b) for b in response.content],
        "stop_reason": response.stop_reason,
        "stop_sequence": response.stop_sequence if response.HasField("stop_sequence") else None,
        "usage": usage_json(response.usage),
        "provider": response.provider,
    }


def event_json(event: messages_pb2.MessagesEvent) -> tuple[str, JSON]:
    """(SSE event name, data) for one event; the name is the data's `type`."""
    kind = event.WhichOneof("event")
    if kind == "content_block_delta":
        d = event.content_block_delta
        field = d.WhichOneof("delta") or "text"
        delta_type, name = _DELTAS[field]
        delta: JSON = {"type": delta_type, name: getattr(d, field)}
        return kind, {"type": kind, "index": d.index, "delta": delta}
    if kind == "content_block_start":
        s = event.content_block_start
        block = block_json(s.content_block)
        if block["type"] == "tool_use":
            block["input"] = {}
        return kind, {"type": kind, "index": s.index, "content_block": block}
    if kind == "content_block_stop":
        return kind, {"type": kind, "index": event.content_block_stop.index}
    if kind == "message_start":
        m = event.message_start
        message: JSON = {
            "id": m.id,
            "type": "message",
            "role": "assistant",
            "model": m.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_json(m.usage),
            "provider": event.provider,
        }
        return kind, {"type": kind, "message": message}
    if kind == "message_delta":
        md = event.message_delta
        stop_sequence = md.stop_sequence if md.HasField("stop_sequence") else None
        return kind, {
            "type": kind,
            "delta": {"stop_reason": md.stop_reason, "stop_sequence": stop_sequence},
            "usage": usage_json(md.usage),
        }
    return "message_stop", {"type": "message_stop"}


def count_json(response: messages_pb2.CountTokensResponse) -> JSON:
    return {"input_tokens": response.input_tokens}


__all__ = [
    "ParsedMessages",
    "count_json",
    "error_json",
    "event_json",
    "parse_count",
    "parse_messages",
    "response_json",
]
