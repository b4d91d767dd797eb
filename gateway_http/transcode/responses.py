"""Responses API: request JSON -> `ResponseRequest`, proto results -> OpenAI's objects.

The answer echoes the request's settings (instructions, tools, tool_choice, text,
reasoning, sampling, metadata) as OpenAI's Response object does; the service never sees
them twice. Fields that only make sense with stored state or OpenAI's hosted tools are
refused with a 400 naming them, never dropped in silence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import orjson
from switchyard.v1 import common_pb2, responses_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.fields import (
    JSON,
    array,
    boolean,
    integer,
    number,
    obj,
    opt_bool,
    opt_number,
    opt_str,
    req_str,
    string,
)
from gateway_http.transcode.reasoning import parse_reasoning
from gateway_http.transcode.routing import ROUTING_FIELDS, parse_routing

# Fields this layer maps (or accepts and echoes) itself; others go upstream as they are.
_HANDLED = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "text", "reasoning",
        "max_output_tokens", "temperature", "top_p", "parallel_tool_calls", "user", "store",
        "previous_response_id", "stream", "metadata", "include", "truncation",
        "service_tier", "safety_identifier", "prompt_cache_key", "stream_options",
        "background", "timeout",
    }
) | ROUTING_FIELDS  # fmt: skip
# What needs state or OpenAI's own hosted machinery.
_UNSUPPORTED = ("conversation", "prompt", "max_tool_calls", "top_logprobs")


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    request: responses_pb2.ResponseRequest
    stream: bool
    body: JSON  # the request, for the settings the answer echoes
    timeout: float | None = None  # `timeout` (seconds), as chat completions take it


# --- requests -------------------------------------------------------------------------


def _content(raw: Any, param: str, out: responses_pb2.InputMessage) -> None:
    if isinstance(raw, str):
        out.content.add(input_text=raw)
        return
    for j, item in enumerate(array(raw, param)):
        where = f"{param}[{j}]"
        part = obj(item, where)
        kind = req_str(part, "type", f"{where}.type")
        if kind == "input_text":
            out.content.add(input_text=req_str(part, "text", f"{where}.text"))
        elif kind == "output_text":
            out.content.add(output_text=req_str(part, "text", f"{where}.text"))
        elif kind == "refusal":
            out.content.add(refusal=req_str(part, "refusal", f"{where}.refusal"))
        elif kind == "input_image":
            out.content.add(
                input_image=responses_pb2.InputImage(
                    image_url=opt_str(part, "image_url", f"{where}.image_url") or "",
                    file_id=opt_str(part, "file_id", f"{where}.file_id") or "",
                    detail=opt_str(part, "detail", f"{where}.detail") or "",
                )
            )
        elif kind == "input_file":
            out.content.add(
                input_file=responses_pb2.InputFile(
                    file_id=opt_str(part, "file_id", f"{where}.file_id") or "",
                    filename=opt_str(part, "filename", f"{where}.filename") or "",
                    file_data=opt_str(part, "file_data", f"{where}.file_data") or "",
                    file_url=opt_str(part, "file_url", f"{where}.file_url") or "",
                )
            )
        else:
            raise bad_request(f"'{where}.type' '{kind}' is not supported here.", f"{where}.type")


def _output_text(raw: Any, param: str) -> str:
    """A function_call_output's `output`: a string, or text parts joined."""
    if isinstance(raw, str):
        return raw
    texts = []
    for j, item in enumerate(array(raw, param)):
        part = obj(item, f"{param}[{j}]")
        if part.get("type") not in ("input_text", "output_text"):
            raise bad_request(f"'{param}[{j}]' must be a text part.", f"{param}[{j}].type")
        texts.append(req_str(part, "text", f"{param}[{j}].text"))
    return "".join(texts)


def _item(raw: Any, param: str, out: responses_pb2.InputItem) -> None:
    item = obj(raw, param)
    kind = opt_str(item, "type", f"{param}.type") or "message"
    if kind == "message":
        message = out.message
        message.role = req_str(item, "role", f"{param}.role")
        message.id = opt_str(item, "id", f"{param}.id") or ""
        if item.get("content") is None:
            raise bad_request(f"'{param}.content' is required.", f"{param}.content")
        _content(item["content"], f"{param}.content", message)
    elif kind == "function_call":
        out.function_call.CopyFrom(
            responses_pb2.FunctionCallItem(
                id=opt_str(item, "id", f"{param}.id") or "",
                call_id=req_str(item, "call_id", f"{param}.call_id"),
                name=req_str(item, "name", f"{param}.name"),
                arguments=opt_str(item, "arguments", f"{param}.arguments") or "",
            )
        )
    elif kind == "function_call_output":
        if item.get("output") is None:
            raise bad_request(f"'{param}.output' is required.", f"{param}.output")
        out.function_call_output.CopyFrom(
            responses_pb2.FunctionCallOutputItem(
                id=opt_str(item, "id", f"{param}.id") or "",
                call_id=req_str(item, "call_id", f"{param}.call_id"),
                output=_output_text(item["output"], f"{param}.output"),
            )
        )
    elif kind == "reasoning":
        reasoning = out.reasoning
        reasoning.id = opt_str(item, "id", f"{param}.id") or ""
        for k, part in enumerate(array(item.get("summary") or [], f"{param}.summary")):
            summary = obj(part, f"{param}.summary[{k}]")
            reasoning.summary.append(req_str(summary, "text", f"{param}.summary[{k}].text"))
        reasoning.encrypted_content = (
            opt_str(item, "encrypted_content", f"{param}.encrypted_content") or ""
        )
    elif kind == "item_reference":
        raise bad_request(
            f"'{param}': item references need stored responses, which this gateway does not "
            "keep; send the item itself.",
            f"{param}.type",
        )
    else:
        raise bad_request(f"'{param}.type' '{kind}' is not supported.", f"{param}.type")


def _tools(raw: Any, out: responses_pb2.ResponseRequest) -> None:
    for i, item in enumerate(array(raw, "tools")):
        tool = obj(item, f"tools[{i}]")
        kind = req_str(tool, "type", f"tools[{i}].type")
        if kind != "function":
            raise bad_request(
                f"'tools[{i}].type' '{kind}': only function tools are supported.",
                f"tools[{i}].type",
            )
        definition = out.tools.add(
            name=req_str(tool, "name", f"tools[{i}].name"),
            description=opt_str(tool, "description", f"tools[{i}].description") or "",
        )
        if tool.get("parameters") is not None:
            parameters = obj(tool["parameters"], f"tools[{i}].parameters")
            definition.parameters_json = orjson.dumps(parameters).decode()
        strict = opt_bool(tool, "strict", f"tools[{i}].strict")
        if strict is not None:
            definition.strict = strict


def _tool_choice(raw: Any, out: responses_pb2.ResponseRequest) -> None:
    if isinstance(raw, str):
        out.tool_choice.mode = raw
        return
    choice = obj(raw, "tool_choice")
    if choice.get("type") != "function":
        raise bad_request("'tool_choice.type' must be 'function'.", "tool_choice.type")
    out.tool_choice.function_name = req_str(choice, "name", "tool_choice.name")


def _text(raw: Any, out: responses_pb2.ResponseRequest) -> None:
    text = obj(raw, "text")
    if text.get("format") is None:
        return
    fmt = obj(text["format"], "text.format")
    target = out.text_format
    target.type = req_str(fmt, "type", "text.format.type")
    if target.type == "json_schema":
        target.name = req_str(fmt, "name", "text.format.name")
        target.description = opt_str(fmt, "description", "text.format.description") or ""
        if fmt.get("schema") is not None:
            target.schema_json = orjson.dumps(obj(fmt["schema"], "text.format.schema")).decode()
        strict = opt_bool(fmt, "strict", "text.format.strict")
        if strict is not None:
            target.strict = strict


def _check_unsupported(body: JSON) -> None:
    for name in _UNSUPPORTED:
        if body.get(name) is not None:
            raise bad_request(f"'{name}' is not supported by this gateway.", name)
    if body.get("background"):
        raise bad_request(
            "'background: true' needs stored responses, which this gateway does not keep.",
            "background",
        )
    truncation = body.get("truncation")
    if truncation not in (None, "disabled", "auto"):
        raise bad_request("'truncation' must be 'auto' or 'disabled'.", "truncation")


def parse_response_request(body: JSON) -> ParsedResponse:
    if body.get("model") is None and not any(body.get(f) for f in ("models", "fallback_models")):
        raise bad_request("'model' is required.", "model")
    if body.get("input") is None:
        raise bad_request("'input' is required.", "input")
    _check_unsupported(body)
    out = responses_pb2.ResponseRequest()
    if body.get("model") is not None:
        out.model = string(body["model"], "model")
    raw_input = body["input"]
    if isinstance(raw_input, str):
        out.input_text = raw_input
    else:
        items = out.input_items
        items.SetInParent()
        for i, raw in enumerate(array(raw_input, "input")):
            _item(raw, f"input[{i}]", items.items.add())
    if body.get("instructions") is not None:
        out.instructions = string(body["instructions"], "instructions")
    if body.get("tools") is not None:
        _tools(body["tools"], out)
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], out)
    if body.get("text") is not None:
        _text(body["text"], out)
    if body.get("reasoning") is not None:
        parse_reasoning({"reasoning": body["reasoning"]}, out.reasoning)
    if body.get("max_output_tokens") is not None:
        out.max_output_tokens = integer(body["max_output_tokens"], "max_output_tokens")
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            setattr(out, name, number(body[name], name))
    if body.get("parallel_tool_calls") is not None:
        out.parallel_tool_calls = boolean(body["parallel_tool_calls"], "parallel_tool_calls")
    if body.get("user") is not None:
        out.user = string(body["user"], "user")
    if body.get("store") is not None:
        out.store = boolean(body["store"], "store")
    if body.get("previous_response_id") is not None:
        out.previous_response_id = string(body["previous_response_id"], "previous_response_id")
    if body.get("metadata") is not None:
        obj(body["metadata"], "metadata")
    if not ROUTING_FIELDS.isdisjoint(body):
        parse_routing(body, out)
    if not out.model:
        raise bad_request("'model' is required.", "model")
    extra = {k: v for k, v in body.items() if k not in _HANDLED and v is not None}
    if extra:
        out.extra_json = orjson.dumps(extra).decode()
    timeout = opt_number(body, "timeout")
    if timeout is not None and not 0 < timeout <= 86_400:
        raise bad_request("'timeout' must be a number of seconds above 0.", "timeout")
    return ParsedResponse(out, bool(opt_bool(body, "stream")), body, timeout)


# --- results --------------------------------------------------------------------------


def usage_json(usage: common_pb2.Usage) -> JSON:
    out: JSON = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
    if usage.HasField("cost"):
        out["cost"] = usage.cost
    if usage.cache:
        out["cache"] = usage.cache  # hit | semantic-hit: answered by the response cache
    return out


def item_json(item: responses_pb2.OutputItem) -> JSON:
    kind = item.WhichOneof("item")
    if kind == "message":
        message = item.message
        content: list[JSON] = []
        if message.text or not message.HasField("refusal"):
            content.append(
                {"type": "output_text", "text": message.text, "annotations": [], "logprobs": []}
            )
        if message.HasField("refusal"):
            content.append({"type": "refusal", "refusal": message.refusal})
        if message.status == "in_progress":
            content = []
        return {
            "type": "message",
            "id": message.id,
            "status": message.status,
            "role": "assistant",
            "content": content,
        }
    if kind == "function_call":
        call = item.function_call
        return {
            "type": "function_call",
            "id": call.id,
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
            "status": call.status,
        }
    reasoning = item.reasoning
    return {
        "type": "reasoning",
        "id": reasoning.id,
        "summary": [{"type": "summary_text", "text": t} for t in reasoning.summary],
        "encrypted_content": reasoning.encrypted_content or None,
        "status": reasoning.status,
    }


def _tools_json(body: JSON) -> list[JSON]:
    return [
        {
            "type": "function",
            "name": t.get("name"),
            "description": t.get("description"),
            "parameters": t.get("parameters"),
            "strict": t.get("strict", True),
        }
        for t in body.get("tools") or []
    ]


def _reasoning_json(body: JSON) -> JSON:
    given = body.get("reasoning")
    given = given if isinstance(given, dict) else {}
    return {"effort": given.get("effort"), "summary": given.get("summary")}


def response_json(response: responses_pb2.Response, body: JSON) -> JSON:
    """OpenAI's Response object, the request's settings echoed from `body`."""
    incomplete = {"reason": response.incomplete_reason} if response.incomplete_reason else None
    out: JSON = {
        "id": response.id,
        "object": "response",
        "created_at": response.created_at,
        "status": response.status,
        "completed_at": int(time.time()) if response.status == "completed" else None,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": response.model,
        "provider": response.provider,
        "output": [item_json(item) for item in response.output],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": _reasoning_json(body),
        "store": False,
        "temperature": body.get("temperature"),
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": _tools_json(body),
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "metadata": body.get("metadata") or {},
    }
    if response.HasField("usage"):  # absent (not null) until the response is done
        out["usage"] = usage_json(response.usage)
    if body.get("user") is not None:
        out["user"] = body["user"]
    return out


_RESPONSE_EVENTS = frozenset(
    {"response.created", "response.in_progress", "response.completed", "response.incomplete"}
)
_ITEM_EVENTS = frozenset({"response.output_item.added", "response.output_item.done"})


def _text_part(event: responses_pb2.ResponseEvent) -> JSON:
    return {"type": "output_text", "text": event.text, "annotations": [], "logprobs": []}


def _summary_part(event: responses_pb2.ResponseEvent) -> JSON:
    return {"type": "summary_text", "text": event.text}


Field = Callable[[responses_pb2.ResponseEvent], Any]
_CONTENT: Field = attrgetter("content_index")
_SUMMARY: Field = attrgetter("summary_index")
_DELTA: Field = attrgetter("delta")
_TEXT: Field = attrgetter("text")


def _no_logprobs(event: responses_pb2.ResponseEvent) -> list[Any]:
    return []


# The fields of the other events after item_id and output_index, in OpenAI's order: one
# lookup per event rather than a chain of tests (a first batch renders five of them).
_FIELDS: dict[str, tuple[tuple[str, Field], ...]] = {
    "response.output_text.delta": (
        ("content_index", _CONTENT),
        ("delta", _DELTA),
        ("logprobs", _no_logprobs),
    ),
    "response.output_text.done": (
        ("content_index", _CONTENT),
        ("text", _TEXT),
        ("logprobs", _no_logprobs),
    ),
    "response.content_part.added": (("content_index", _CONTENT), ("part", _text_part)),
    "response.content_part.done": (("content_index", _CONTENT), ("part", _text_part)),
    "response.function_call_arguments.delta": (("delta", _DELTA),),
    "response.function_call_arguments.done": (("arguments", _TEXT),),
    "response.reasoning_summary_text.delta": (("summary_index", _SUMMARY), ("delta", _DELTA)),
    "response.reasoning_summary_text.done": (("summary_index", _SUMMARY), ("text", _TEXT)),
    "response.reasoning_summary_part.added": (
        ("summary_index", _SUMMARY),
        ("part", _summary_part),
    ),
    "response.reasoning_summary_part.done": (
        ("summary_index", _SUMMARY),
        ("part", _summary_part),
    ),
}


def event_json(
    event: responses_pb2.ResponseEvent, body: JSON, rendered: JSON | None = None
) -> JSON:
    """One typed stream event, as OpenAI sends it. `rendered` is its response's JSON when
    the caller already has it (response.created and .in_progress carry the same)."""
    kind = event.type
    out: JSON = {"type": kind, "sequence_number": event.sequence_number}
    if kind in _RESPONSE_EVENTS:
        out["response"] = rendered if rendered is not None else response_json(event.response, body)
    elif kind in _ITEM_EVENTS:
        out["output_index"] = event.output_index
        out["item"] = item_json(event.item)
    else:
        out["item_id"] = event.item_id
        out["output_index"] = event.output_index
        for name, read in _FIELDS.get(kind, ()):
            out[name] = read(event)
    return out


def events_json(events: Any, body: JSON) -> list[JSON]:
    """A batch of events; an opening pair renders its (identical) response once."""
    out = []
    opening: JSON | None = None
    for event in events:
        if event.type in ("response.created", "response.in_progress"):
            opening = opening or response_json(event.response, body)
            out.append(event_json(event, body, opening))
        else:
            out.append(event_json(event, body))
    return out


__all__ = [
    "ParsedResponse",
    "event_json",
    "events_json",
    "parse_response_request",
    "response_json",
]
