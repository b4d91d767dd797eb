"""Pure preparation of a local chat generation: messages, tools and output constraints.

Small local models have no native tool-calling format, so tools are described in the
system prompt and a call is *decoded under a grammar*: the model must emit
`{"name": <one of the tools>, "arguments": <that tool's parameters>}`. The same
machinery enforces `response_format` (json_object, json_schema): llama.cpp ignores the
OpenAI `json_schema` form, so the schema is turned into a grammar here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from service.domain.chat import ChatRequest, Message, TextPart, Tool, ToolCall, tool_result

ANY_OBJECT: dict[str, Any] = {"type": "object"}


class Unsupported(ValueError):  # noqa: N818 - reads as the condition it reports
    """The request needs a capability this model lacks; `capability` names it."""

    def __init__(self, capability: str) -> None:
        super().__init__(f"This model does not accept {capability}.")
        self.capability = capability


@dataclass(frozen=True, slots=True)
class Plan:
    """How to run one chat request on a local model."""

    messages: list[dict[str, str]]
    schema: dict[str, Any] | None  # constrain the output to this JSON Schema
    tool_mode: str  # "none": plain text; "forced": output is a call; "auto": may be a call
    tools: tuple[Tool, ...]


def _text(message: Message) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        else:
            kind = {
                "ImagePart": "image input",
                "AudioPart": "audio input",
                "FilePart": "file input",
            }.get(type(part).__name__)
            if kind is not None:
                raise Unsupported(kind)
    return "\n".join(texts)


def _call_text(call: ToolCall) -> str:
    try:
        arguments = json.loads(call.arguments) if call.arguments else {}
    except json.JSONDecodeError:
        arguments = call.arguments
    return json.dumps({"name": call.name, "arguments": arguments})


def _tool_schema(tool: Tool) -> dict[str, Any]:
    parameters = json.loads(tool.parameters_json) if tool.parameters_json else ANY_OBJECT
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": parameters},
        "required": ["name", "arguments"],
    }


def _tools_prompt(tools: tuple[Tool, ...], forced: bool) -> str:
    listing = "\n".join(
        json.dumps(
            {
                "name": t.name,
                "description": t.description or "",
                "parameters": json.loads(t.parameters_json) if t.parameters_json else ANY_OBJECT,
            }
        )
        for t in tools
    )
    how = (
        "Call one of them now."
        if forced
        else "If one of them helps, reply with only the JSON call; otherwise answer normally."
    )
    return (
        "You can call these tools:\n"
        f"{listing}\n"
        'To call a tool, reply with JSON: {"name": <tool name>, "arguments": {...}}. ' + how
    )


def plan(request: ChatRequest) -> Plan:
    messages: list[dict[str, str]] = []
    for message in request.messages:
        text = _text(message)
        if message.role in ("system", "developer"):
            messages.append({"role": "system", "content": text})
        elif message.role == "tool":
            text = _text(replace(message, content=tool_result(message)))
            messages.append(
                {"role": "user", "content": f"Tool result ({message.tool_call_id}): {text}"}
            )
        elif message.role == "assistant" and message.tool_calls:
            calls = "\n".join(_call_text(c) for c in message.tool_calls)
            messages.append({"role": "assistant", "content": (text + "\n" + calls).strip()})
        else:
            messages.append({"role": message.role, "content": text})

    choice = request.tool_choice
    mode = choice.mode if choice is not None else ("auto" if request.tools else "none")
    tools: tuple[Tool, ...] = request.tools if mode != "none" else ()
    if mode == "function":
        tools = tuple(t for t in request.tools if t.name == choice.function)  # type: ignore[union-attr]
    schema: dict[str, Any] | None = None
    tool_mode = "none"
    if tools:
        forced = mode in ("required", "function")
        tool_mode = "forced" if forced else "auto"
        if forced:
            options = [_tool_schema(t) for t in tools]
            schema = options[0] if len(options) == 1 else {"anyOf": options}
        prompt = _tools_prompt(tools, forced)
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + prompt}
        else:
            messages.insert(0, {"role": "system", "content": prompt})
    fmt = request.response_format
    if schema is None and fmt is not None and fmt.type != "text":
        if fmt.type == "json_schema" and fmt.schema_json:
            schema = json.loads(fmt.schema_json)
        else:
            schema = ANY_OBJECT
    return Plan(messages=messages, schema=schema, tool_mode=tool_mode, tools=tools)


def parse_call(text: str, tools: tuple[Tool, ...]) -> ToolCall | None:
    """The tool call in a model's output, if the output is one."""
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    if value["name"] not in {t.name for t in tools}:
        return None
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        return None
    return ToolCall(
        id="call_" + uuid.uuid4().hex[:24],
        name=value["name"],
        arguments=json.dumps(arguments, ensure_ascii=False),
    )
