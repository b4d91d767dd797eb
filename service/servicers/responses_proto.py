"""Responses API: proto request -> the domain's chat request, chat result -> Response.

A Responses request is a chat request in other clothes: `instructions` is a leading
system message, input items become messages (consecutive `function_call` items one
assistant turn's tool calls, `function_call_output` items tool messages), `text.format`
the response format and `max_output_tokens` the completion limit. The core then serves
it exactly as a chat completion. The service is stateless: `store` and
`previous_response_id` are refused rather than silently ignored.

Reasoning items carry the provider's signed reasoning (the chat side's
`reasoning_details`) in `encrypted_content`, so that a client that returns them, as the
Agents SDK and Codex do without stored state, continues a tool loop with thinking.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from switchyard.v1 import responses_pb2

from service import errors
from service.domain import chat
from service.engine import Served
from service.servicers.chat_proto import (
    function_from_proto,
    reasoning_from_proto,
    shown_details,
    tool_choice_from_proto,
    usage_to_proto,
)
from service.servicers.reasoning_seal import seal, unseal
from service.servicers.routing_proto import routing_from_proto
from service.servicers.validate import at_least, json_text, number_in, required

FORMAT_TYPES = frozenset({"text", "json_object", "json_schema"})
INPUT_ROLES = frozenset({"user", "system", "developer", "assistant"})
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


# --- requests -------------------------------------------------------------------------


def _content(message: responses_pb2.InputMessage, param: str) -> chat.Content:
    """A message's content parts; text-only content becomes plain text."""
    parts: list[chat.ContentPart] = []
    for j, item in enumerate(message.content):
        where = f"{param}.content[{j}]"
        kind = item.WhichOneof("part")
        if kind == "input_text":
            parts.append(chat.TextPart(item.input_text))
        elif kind == "output_text":
            parts.append(chat.TextPart(item.output_text))
        elif kind == "refusal":
            parts.append(chat.RefusalPart(item.refusal))
        elif kind == "input_image":
            image = item.input_image
            if not image.image_url:
                raise errors.invalid_request(
                    f"'{where}.image_url' is required (file ids are not supported).",
                    f"{where}.image_url",
                )
            parts.append(chat.ImagePart(url=image.image_url, detail=image.detail or None))
        elif kind == "input_file":
            file = item.input_file
            if file.file_url:
                raise errors.invalid_request(
                    f"'{where}.file_url' is not supported; send 'file_data'.", f"{where}.file_url"
                )
            if not (file.file_id or file.file_data):
                raise errors.invalid_request(
                    f"'{where}' needs 'file_id' or 'file_data'.", f"{where}.file_data"
                )
            parts.append(
                chat.FilePart(
                    file_id=file.file_id or None,
                    filename=file.filename or None,
                    file_data=file.file_data or None,
                )
            )
        else:
            raise errors.invalid_request(f"'{where}' has no content.", where)
    if all(isinstance(p, chat.TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, chat.TextPart))
    return tuple(parts)


class _Conversation:
    """Input items folded into chat messages, in order."""

    def __init__(self) -> None:
        self.messages: list[chat.Message] = []
        self._pending: tuple[chat.ReasoningDetail, ...] = ()  # for the next assistant turn
        self._open_turn = False  # the last message is an assistant turn calls may join

    def _assistant(self, message: chat.Message) -> None:
        if self._pending:
            details = message.reasoning_details + self._pending
            message = replace(message, reasoning_details=details)
            self._pending = ()
        self.messages.append(message)
        self._open_turn = True

    def message(self, item: responses_pb2.InputMessage, param: str) -> None:
        role = item.role or "user"
        if role not in INPUT_ROLES:
            raise errors.invalid_request(
                f"'{param}.role' must be one of {', '.join(sorted(INPUT_ROLES))}; got '{role}'.",
                f"{param}.role",
            )
        content = _content(item, param)
        if role == "assistant":
            if isinstance(content, tuple):
                refusals = [p.refusal for p in content if isinstance(p, chat.RefusalPart)]
                texts = [p.text for p in content if isinstance(p, chat.TextPart)]
                self._assistant(
                    chat.Message(
                        "assistant", "".join(texts) or None, refusal="".join(refusals) or None
                    )
                )
            else:
                self._assistant(chat.Message("assistant", content))
            return
        self.messages.append(chat.Message(role, content))
        self._open_turn = False

    def function_call(self, item: responses_pb2.FunctionCallItem, param: str) -> None:
        call = chat.ToolCall(
            id=required(item.call_id, f"{param}.call_id"),
            name=required(item.name, f"{param}.name"),
            arguments=item.arguments,
        )
        if self._open_turn and not self._pending:
            last = self.messages[-1]
            self.messages[-1] = replace(last, tool_calls=(*last.tool_calls, call))
        else:
            self._assistant(chat.Message("assistant", None, tool_calls=(call,)))

    def function_output(self, item: responses_pb2.FunctionCallOutputItem, param: str) -> None:
        call_id = required(item.call_id, f"{param}.call_id")
        self.messages.append(chat.Message("tool", item.output, tool_call_id=call_id))
        self._open_turn = False

    def reasoning(self, item: responses_pb2.ReasoningItem, param: str) -> None:
        details = unseal(item.encrypted_content, f"{param}.encrypted_content")
        self._pending = self._pending + details


def _input(request: responses_pb2.ResponseRequest) -> list[chat.Message]:
    conversation = _Conversation()
    if request.instructions:
        conversation.messages.append(chat.Message("system", request.instructions))
    kind = request.WhichOneof("input_kind")
    if kind == "input_text":
        conversation.messages.append(chat.Message("user", request.input_text))
    elif kind == "input_items":
        for i, item in enumerate(request.input_items.items):
            param = f"input[{i}]"
            which = item.WhichOneof("item")
            if which == "message":
                conversation.message(item.message, param)
            elif which == "function_call":
                conversation.function_call(item.function_call, param)
            elif which == "function_call_output":
                conversation.function_output(item.function_call_output, param)
            elif which == "reasoning":
                conversation.reasoning(item.reasoning, param)
            else:
                raise errors.invalid_request(f"'{param}' is empty.", param)
    if not any(m.role != "system" for m in conversation.messages):
        raise errors.invalid_request("'input' must contain at least one item.", "input")
    return conversation.messages


def _format(fmt: responses_pb2.TextFormat) -> chat.ResponseFormat:
    if fmt.type not in FORMAT_TYPES:
        raise errors.invalid_request(
            "'text.format.type' must be 'text', 'json_object' or 'json_schema'.",
            "text.format.type",
        )
    if fmt.type != "json_schema":
        return chat.ResponseFormat(type=fmt.type)
    return chat.ResponseFormat(
        type="json_schema",
        name=required(fmt.name, "text.format.name"),
        description=fmt.description or None,
        schema_json=json_text(fmt.schema_json, "text.format.schema") if fmt.schema_json else None,
        strict=fmt.strict if fmt.HasField("strict") else None,
    )


def _refuse_state(request: responses_pb2.ResponseRequest) -> None:
    if request.previous_response_id:
        raise errors.invalid_request(
            "'previous_response_id' is not supported: this gateway stores no responses. "
            "Send the whole conversation as 'input' items.",
            "previous_response_id",
        )
    if request.store:
        raise errors.invalid_request(
            "'store: true' is not supported: this gateway stores no responses. "
            "Send 'store: false' (and the whole conversation as 'input').",
            "store",
        )


def request_from_proto(request: responses_pb2.ResponseRequest) -> chat.ChatRequest:
    """Validate and convert; a `GatewayError` (400) names the first bad param."""
    model = required(request.model, "model")
    _refuse_state(request)
    messages = tuple(_input(request))
    options: dict[str, Any] = {}
    tools = tuple(function_from_proto(t, f"tools[{i}]") for i, t in enumerate(request.tools))
    if tools:
        options["tools"] = tools
    if request.HasField("tool_choice"):
        options["tool_choice"] = tool_choice_from_proto(request.tool_choice, tools)
    if request.HasField("text_format"):
        options["response_format"] = _format(request.text_format)
    if request.HasField("reasoning"):
        options["reasoning"] = reasoning_from_proto(request.reasoning)
    if request.HasField("max_output_tokens"):
        options["max_completion_tokens"] = at_least(
            request.max_output_tokens, 1, "max_output_tokens"
        )
    if request.HasField("temperature"):
        options["temperature"] = number_in(request.temperature, 0, 2, "temperature")
    if request.HasField("top_p"):
        options["top_p"] = number_in(request.top_p, 0, 1, "top_p")
    if request.HasField("parallel_tool_calls"):
        options["parallel_tool_calls"] = request.parallel_tool_calls
    if request.user:
        options["user"] = request.user
    if request.extra_json:
        options["extra_json"] = json_text(request.extra_json, "extra")
    if request.HasField("provider") or request.models:
        options["routing"] = routing_from_proto(
            request.provider, request.HasField("provider"), request.models
        )
    return chat.ChatRequest(model, messages, **options)


# --- results --------------------------------------------------------------------------


def item_ids(response_id: str) -> tuple[str, str, str]:
    """The id prefixes of a response's message, reasoning and function-call items."""
    return f"msg_{response_id}", f"rs_{response_id}", f"fc_{response_id}"


def reasoning_item(
    item_id: str, summary: str | None, details: tuple[chat.ReasoningDetail, ...]
) -> responses_pb2.ReasoningItem:
    out = responses_pb2.ReasoningItem(id=item_id, status="completed")
    if summary:
        out.summary.append(summary)
    out.encrypted_content = seal(details)
    return out


def status_of(finish_reason: str) -> tuple[str, str]:
    """(status, incomplete reason) for a chat finish reason."""
    reason = _INCOMPLETE.get(finish_reason, "")
    return ("incomplete" if reason else "completed"), reason


def response_to_proto(
    result: chat.ChatResult,
    served: Served,
    response_id: str,
    created: int,
    exclude_reasoning: bool = False,
) -> responses_pb2.Response:
    out = responses_pb2.Response(
        id=response_id,
        created_at=created,
        model=served.model,
        provider=served.provider,
        upstream_ms=served.upstream_ms,
    )
    if served.dropped:
        out.dropped_parameters.extend(served.dropped)
    msg_id, rs_id, fc_id = item_ids(response_id)
    choice = result.choices[0] if result.choices else None
    if choice is not None:
        message = choice.message
        summary = None if exclude_reasoning else message.reasoning
        details = shown_details(message.reasoning_details, exclude_reasoning)
        if summary or details:
            out.output.add(reasoning=reasoning_item(rs_id, summary, details))
        text = message.content if isinstance(message.content, str) else None
        status, reason = status_of(choice.finish_reason)
        if text or message.refusal is not None or not message.tool_calls:
            item = out.output.add().message
            item.id, item.status, item.text = msg_id, status, text or ""
            if message.refusal is not None:
                item.refusal = message.refusal
        for k, call in enumerate(message.tool_calls):
            out.output.add(
                function_call=responses_pb2.FunctionCallItem(
                    id=f"{fc_id}_{k}",
                    call_id=call.id,
                    name=call.name,
                    arguments=call.arguments,
                    status="completed",
                )
            )
        out.status, out.incomplete_reason = status, reason
    else:
        out.status = "completed"
    if result.usage is not None:
        usage_to_proto(result.usage, out.usage)
    return out
