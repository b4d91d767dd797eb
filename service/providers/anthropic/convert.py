"""Pure mapping between the domain's chat types and Anthropic's Messages API objects.

Where the dialects differ: system and developer messages become the top-level `system`
blocks; tool results are `tool_result` blocks in a *user* turn, and consecutive messages
landing on the same role are merged into one turn (results first, as Anthropic asks);
`max_tokens` is required upstream and falls back to the provider's default; tool-call
ids Anthropic would refuse are replaced, consistently, by ones it accepts (ids.py); structured
output travels as a forced tool whose input comes back as message *content*; Anthropic
counts cache reads and writes apart from `input_tokens`, OpenAI's `prompt_tokens`
include them (reads as `cached_tokens`, writes as `cache_write_tokens`); `cache_control`
breakpoints on text, images, system blocks and tools are passed through.

What cannot be expressed is refused before any I/O: `RejectedError` when the request
is at fault (a 400 naming `param`), `UnsupportedError` when it is valid but Anthropic
cannot serve it (another provider might). Answers are read in answer.py.

A returned assistant message's reasoning goes back as thinking blocks (Anthropic's own
details only: another provider's signatures would be refused), ahead of the text, and
thinking tied to a tool call (interleaved between calls) right before that call.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.chat import (
    AudioPart,
    CacheControl,
    ChatRequest,
    Content,
    FilePart,
    ImagePart,
    Message,
    RefusalPart,
    TextPart,
)
from service.providers.anthropic.ids import tool_ids
from service.providers.anthropic.thinking import (
    thinking_blocks,
    thinking_budget,
)

JSON = dict[str, Any]
# The structured-output tool's name when the response format names none.
FORMAT_TOOL = "json_response"
_FORMAT_DESCRIPTION = "Give your final answer by calling this tool: its input is the answer."
_TOOL_CHOICE = {"none": "none", "auto": "auto", "required": "any"}
# What `POST /v1/messages/count_tokens` takes of a message body (the prompt and what
# shapes it); the rest (max_tokens, sampling, stop_sequences, metadata, stream,
# service_tier) it refuses as extra inputs.
COUNT_FIELDS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
)


class RejectedError(ValueError):
    """The client's request cannot be expressed for Anthropic; `param` names the culprit."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


class UnsupportedError(ValueError):
    """A valid request that Anthropic cannot serve (audio input, foreign file ids)."""


@dataclass(frozen=True, slots=True)
class MessagesCall:
    """The upstream body, plus what reading the answer needs to know about it."""

    body: JSON
    format_tool: str | None = None  # the tool whose input is the structured answer


# --- requests -------------------------------------------------------------------------


def _cache(block: JSON, control: CacheControl | None) -> JSON:
    """`block` with its prompt-cache breakpoint, as Anthropic takes it."""
    if control is not None:
        block["cache_control"] = (
            {"type": control.type, "ttl": control.ttl} if control.ttl else {"type": control.type}
        )
    return block


def _text(text: str, control: CacheControl | None = None) -> JSON:
    return _cache({"type": "text", "text": text}, control)


def _data_url(url: str, param: str) -> tuple[str, str] | None:
    """(media type, base64 payload) of a `data:` URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    media_type, *flags = header.split(";")
    if not comma or "base64" not in flags:
        raise RejectedError("Data URLs must be base64-encoded ('data:<type>;base64,...').", param)
    return media_type.strip().lower(), data


def _image(part: ImagePart, param: str) -> JSON:
    where = f"{param}.image_url.url"
    inline = _data_url(part.url, where)
    if inline is not None:
        media_type, data = inline
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if part.url.startswith(("https://", "http://")):
        # Anthropic fetches URL images itself; `detail` has no equivalent there.
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    raise RejectedError("An image URL must be http(s) or a base64 data URL.", where)


def _document(part: FilePart, param: str) -> JSON:
    if part.file_data is None:
        raise UnsupportedError("Anthropic cannot resolve OpenAI file ids; send 'file_data'.")
    where = f"{param}.file.file_data"
    # OpenAI clients send a data URL; bare base64 is taken as a PDF, OpenAI's one file type.
    media_type, data = _data_url(part.file_data, where) or ("application/pdf", part.file_data)
    if media_type == "application/pdf":
        source: JSON = {"type": "base64", "media_type": media_type, "data": data}
    elif media_type == "text/plain":
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RejectedError("The file is not base64 of UTF-8 text.", where) from None
        source = {"type": "text", "media_type": media_type, "data": text}
    else:
        raise UnsupportedError(f"Anthropic reads PDF and plain-text files, not {media_type}.")
    block: JSON = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def _user_blocks(content: Content, param: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)] if content else []  # Anthropic refuses empty text blocks
    blocks = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(_text(part.text, part.cache_control))
        elif isinstance(part, ImagePart):
            blocks.append(_cache(_image(part, where), part.cache_control))
        elif isinstance(part, FilePart):
            blocks.append(_document(part, where))
        elif isinstance(part, RefusalPart):
            blocks.append(_text(part.refusal))
        elif isinstance(part, AudioPart):
            raise UnsupportedError("Anthropic does not accept audio input.")
    return blocks


def _text_only(content: Content, param: str, role: str) -> list[JSON]:
    if content is None or isinstance(content, str):
        return [_text(content)] if content else []
    blocks = []
    for j, part in enumerate(content):
        control = None
        if isinstance(part, TextPart):
            text, control = part.text, part.cache_control
        elif isinstance(part, RefusalPart):
            text = part.refusal
        else:
            raise RejectedError(f"Anthropic takes only text in {role} messages.", f"{param}[{j}]")
        if text:
            blocks.append(_text(text, control))
    return blocks


def _arguments(arguments: str, param: str) -> orjson.Fragment:
    """A tool call's arguments as the `input` object, kept byte-for-byte."""
    if not arguments.strip():
        return orjson.Fragment(b"{}")
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise RejectedError("Tool-call arguments must be a JSON object.", param)
    return orjson.Fragment(arguments)


def _assistant_blocks(message: Message, i: int, ids: dict[str, str]) -> list[JSON]:
    """Thinking, text, tool calls; thinking tied to a call (`id`: Claude interleaved it
    between calls) right before that call, as Claude wrote them."""
    calls = {call.id for call in message.tool_calls}
    blocks = thinking_blocks(tuple(d for d in message.reasoning_details if d.id not in calls))
    blocks += _text_only(message.content, f"messages[{i}].content", "assistant")
    for j, call in enumerate(message.tool_calls):
        where = f"messages[{i}].tool_calls[{j}].function.arguments"
        blocks += thinking_blocks(tuple(d for d in message.reasoning_details if d.id == call.id))
        blocks.append(
            {
                "type": "tool_use",
                "id": ids.get(call.id, call.id),
                "name": call.name,
                "input": _arguments(call.arguments, where),
            }
        )
    return blocks


def _tool_result(message: Message, i: int, ids: dict[str, str]) -> JSON:
    if not message.tool_call_id:
        raise RejectedError("A tool message needs 'tool_call_id'.", f"messages[{i}].tool_call_id")
    tool_use_id = ids.get(message.tool_call_id, message.tool_call_id)
    block: JSON = {"type": "tool_result", "tool_use_id": tool_use_id}
    if message.is_error:
        block["is_error"] = True
    if isinstance(message.content, str):
        block["content"] = message.content
    elif message.content is not None:
        block["content"] = _user_blocks(message.content, f"messages[{i}].content")
    return block


def _conversation(messages: tuple[Message, ...]) -> tuple[list[JSON], list[JSON]]:
    """(system blocks, alternating user/assistant turns)."""
    system: list[JSON] = []
    turns: list[JSON] = []
    ids = tool_ids(messages)  # replacements for ids Anthropic would refuse
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            system.extend(_text_only(message.content, f"messages[{i}].content", "system"))
            continue
        if message.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, i, ids)
        elif message.role == "tool":
            role, blocks = "user", [_tool_result(message, i, ids)]
        else:
            role, blocks = "user", _user_blocks(message.content, f"messages[{i}].content")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # tool results must lead their user turn
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _tools(request: ChatRequest) -> tuple[list[JSON], JSON | None, str | None]:
    """(tools, tool_choice, name of the structured-output tool)."""
    tools: list[JSON] = []
    for tool in request.tools:
        item: JSON = {"name": tool.name}
        if tool.description is not None:
            item["description"] = tool.description
        schema = tool.parameters_json
        item["input_schema"] = orjson.Fragment(schema) if schema else {"type": "object"}
        tools.append(_cache(item, tool.cache_control))
    fmt, choice = request.response_format, request.tool_choice
    format_tool = None
    if fmt is not None and fmt.type in ("json_schema", "json_object"):
        format_tool = fmt.name if fmt.type == "json_schema" and fmt.name else FORMAT_TOOL
        if any(tool.name == format_tool for tool in request.tools):
            raise RejectedError(f"A tool is already named '{format_tool}'.", "response_format")
        schema_json = fmt.schema_json if fmt.type == "json_schema" else None
        tools.append(
            {
                "name": format_tool,
                "description": fmt.description or _FORMAT_DESCRIPTION,
                "input_schema": orjson.Fragment(schema_json) if schema_json else {"type": "object"},
            }
        )
    tool_choice: JSON | None = None
    if choice is not None and choice.mode == "function":
        tool_choice = {"type": "tool", "name": choice.function}
    elif format_tool is not None:
        # With callable tools the model must either call one or answer through the
        # format tool ("any"); otherwise the format tool is the answer.
        callable_tools = request.tools and (choice is None or choice.mode != "none")
        tool_choice = {"type": "any"} if callable_tools else {"type": "tool", "name": format_tool}
    elif choice is not None and tools:
        tool_choice = {"type": _TOOL_CHOICE.get(choice.mode, "auto")}
    if request.parallel_tool_calls is False and tools:
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    return tools, tool_choice, format_tool


def _refuse_unsupported(request: ChatRequest) -> None:
    # seed and the penalties are sampling hints Anthropic lacks: they are dropped. These
    # change what the client gets back, so they are refused instead.
    if request.n not in (None, 1):
        raise RejectedError("Anthropic returns one choice ('n' must be 1).", "n")
    if request.logprobs:
        raise RejectedError("Anthropic does not return logprobs.", "logprobs")
    if request.logit_bias:
        raise RejectedError("Anthropic does not support 'logit_bias'.", "logit_bias")


def _think(body: JSON, request: ChatRequest, tool_choice: JSON | None) -> None:
    """Turn on extended thinking, within what Anthropic allows alongside it.

    `max_tokens` counts thinking too and must exceed the budget: a budget that does not
    fit below it is added on top. Thinking refuses a changed temperature or top_k and a
    top_p below 0.95, which are dropped (sampling hints); it refuses a forced tool,
    which would change the answer, so that is a 400.
    """
    reasoning = request.reasoning
    budget = None if reasoning is None else thinking_budget(reasoning, body["max_tokens"])
    if budget is None:
        return
    if tool_choice is not None and tool_choice.get("type") in ("any", "tool"):
        raise RejectedError(
            "Anthropic cannot think while a tool is forced (tool_choice 'required' or a "
            "named function, or a JSON response format): drop 'reasoning' or the forcing.",
            "reasoning",
        )
    native = body.get("thinking")  # from the Messages door: adaptive, or with `display`
    native = native if isinstance(native, dict) else {}
    if native.get("type") != "adaptive":  # adaptive: Claude picks its budget itself
        if body["max_tokens"] <= budget:
            body["max_tokens"] += budget
        body["thinking"] = {**native, "type": "enabled", "budget_tokens": budget}
    body.pop("temperature", None)
    body.pop("top_k", None)
    if body.get("top_p", 1) < 0.95:
        del body["top_p"]


def build_request(
    request: ChatRequest, upstream_model: str, *, stream: bool, default_max_tokens: int
) -> MessagesCall:
    """The `POST /v1/messages` body. Provider extras (e.g. `top_k`) and Anthropic's own
    parameters from the Messages door go first; typed fields win."""
    _refuse_unsupported(request)
    extra = orjson.loads(request.extra_json) if request.extra_json else {}
    body: JSON = extra if isinstance(extra, dict) else {}
    native = request.native_extra.get("anthropic")
    if native:
        body.update(orjson.loads(native))
    system, turns = _conversation(request.messages)
    body["model"] = upstream_model
    body["messages"] = turns
    if system:
        body["system"] = system
    limits = (request.max_completion_tokens, request.max_tokens, default_max_tokens)
    body["max_tokens"] = next(n for n in limits if n is not None)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user is not None:
        metadata = body.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        body["metadata"] = {**metadata, "user_id": request.user}
    tools, tool_choice, format_tool = _tools(request)
    if tools:
        body["tools"] = tools
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    _think(body, request, tool_choice)
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return MessagesCall(body=body, format_tool=format_tool)


def count_body(call: MessagesCall) -> JSON:
    """The `POST /v1/messages/count_tokens` body for a message call: its prompt fields."""
    return {name: call.body[name] for name in COUNT_FIELDS if name in call.body}
