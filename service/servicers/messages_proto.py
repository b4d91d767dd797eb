"""Anthropic Messages <-> the chat core, as protos: the front door's one translation.

A `MessagesRequest` becomes a `ChatRequest` (system -> a system message, `tool_result`
blocks -> tool messages ahead of the rest of their user turn, `tool_use` -> tool calls,
`thinking` / `redacted_thinking` blocks -> reasoning details with their signatures,
`thinking` -> the unified reasoning config, `any` -> `required`, `top_k` -> an upstream
extra), which the chat servicer validates and
serves like any other; its `ChatResponse` and `ChatChunk`s become Anthropic's Message and
event stream. Every adapter (OpenAI-compatible, Gemini, local, Anthropic itself) is
therefore reachable from this door, and nothing of the core is duplicated. Toward an
Anthropic endpoint every field of the request survives the trip (cache_control included).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
from switchyard.v1 import chat_pb2, common_pb2, messages_pb2

from service import errors
from service.servicers.messages_thinking import (
    content_blocks,
    detail_block,
    thinking_config,
    thinking_detail,
)

# OpenAI's finish_reason -> Anthropic's stop_reason.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _cache(source: common_pb2.CacheControl, has: bool, out: common_pb2.CacheControl) -> None:
    if has:
        out.CopyFrom(source)


def _image_url(image: messages_pb2.ImageSource, param: str) -> str:
    if image.type == "base64":
        if not image.media_type or not image.data:
            raise errors.invalid_request(
                f"'{param}.source' needs 'media_type' and 'data'.", f"{param}.source"
            )
        return f"data:{image.media_type};base64,{image.data}"
    if image.type == "url":
        if not image.url:
            raise errors.invalid_request(f"'{param}.source.url' is required.", f"{param}.source")
        return image.url
    raise errors.invalid_request(
        f"'{param}.source.type' must be 'base64' or 'url'.", f"{param}.source.type"
    )


def _file(document: messages_pb2.DocumentSource, param: str) -> chat_pb2.FileInput:
    """A document as chat's file part: a data URL, which adapters turn back into what
    their upstream takes (Anthropic: the same document block)."""
    if document.type == "base64" and document.media_type == "application/pdf":
        data = document.data
    elif document.type == "text" and document.media_type in ("", "text/plain"):
        data = base64.b64encode(document.data.encode()).decode()
    else:
        raise errors.invalid_request(
            f"'{param}.source' must be a base64 PDF or plain text.", f"{param}.source"
        )
    media_type = "text/plain" if document.type == "text" else document.media_type
    return chat_pb2.FileInput(filename=document.title, file_data=f"data:{media_type};base64,{data}")


def _part(block: messages_pb2.ContentBlock, param: str, out: chat_pb2.ContentParts) -> None:
    """A text, image or document block as a chat content part."""
    kind = block.WhichOneof("block")
    if kind == "text":
        part = out.parts.add(text=block.text)
    elif kind == "image":
        part = out.parts.add(image_url=chat_pb2.ImageUrl(url=_image_url(block.image, param)))
    elif kind == "document":
        part = out.parts.add(file=_file(block.document, param))
    else:
        raise errors.invalid_request(
            f"'{param}' must be a text, image or document block here, got '{kind}'.",
            f"{param}.type",
        )
    _cache(block.cache_control, block.HasField("cache_control"), part.cache_control)


def _tool_result(block: messages_pb2.ContentBlock, param: str, out: chat_pb2.Message) -> None:
    result = block.tool_result
    out.role = "tool"
    out.tool_call_id = result.tool_use_id
    if not result.tool_use_id:
        raise errors.invalid_request(f"'{param}.tool_use_id' is required.", param)
    kind = result.WhichOneof("content")
    if kind == "blocks":
        for j, inner in enumerate(result.blocks.blocks):
            _part(inner, f"{param}.content[{j}]", out.parts)
        out.parts.SetInParent()
    else:
        out.text = result.text
    if result.is_error:
        out.is_error = True  # Anthropic takes it as is; other upstreams read "Error: ..."
    if block.HasField("cache_control"):
        # A breakpoint on the result (where Claude Code puts its last one) goes on the
        # result's last part: the cached prefix ends at the same place.
        if out.WhichOneof("content") == "text":
            out.parts.parts.add(text=out.text)
        if out.parts.parts:
            out.parts.parts[-1].cache_control.CopyFrom(block.cache_control)


def _user(message: messages_pb2.MessageParam, i: int, out: chat_pb2.ChatRequest) -> None:
    if message.WhichOneof("content") != "blocks":
        out.messages.add(role="user", text=message.text)
        return
    rest = chat_pb2.Message(role="user")
    for j, block in enumerate(message.blocks.blocks):
        param = f"messages[{i}].content[{j}]"
        if block.WhichOneof("block") == "tool_result":
            _tool_result(block, param, out.messages.add())
        else:
            _part(block, param, rest.parts)
    if rest.parts.parts:
        out.messages.append(rest)


def _assistant(message: messages_pb2.MessageParam, i: int, out: chat_pb2.ChatRequest) -> None:
    if message.WhichOneof("content") != "blocks":
        out.messages.add(role="assistant", text=message.text)
        return
    if not message.blocks.blocks:
        return  # no turn at all, not an empty one
    turn = out.messages.add(role="assistant")
    untied: list[chat_pb2.ReasoningDetail] = []  # thinking after a tool_use, before the next
    for j, block in enumerate(message.blocks.blocks):
        param = f"messages[{i}].content[{j}]"
        kind = block.WhichOneof("block")
        if kind in ("thinking", "redacted_thinking"):
            before = len(turn.reasoning_details)
            thinking_detail(block, param, turn.reasoning_details)
            if turn.tool_calls:  # interleaved: tied to the next call, to keep the order
                untied += [d for d in turn.reasoning_details[before:] if not d.id]
        elif kind == "tool_use":
            use = block.tool_use
            for detail in untied:
                detail.id = use.id
            untied = []
            turn.tool_calls.add(
                id=use.id,
                type="function",
                function=chat_pb2.FunctionCall(name=use.name, arguments=use.input_json or "{}"),
            )
        elif kind == "text":
            _part(block, param, turn.parts)
        else:
            raise errors.invalid_request(
                f"'{param}' must be a text, thinking or tool_use block in an assistant turn.",
                param,
            )
    if not turn.parts.parts and not turn.tool_calls:
        # Only thinking (an answer cut short while thinking): no upstream takes an
        # assistant turn with nothing said, so it is left out rather than sent empty.
        del out.messages[-1]


def _tool_choice(choice: messages_pb2.MessagesToolChoice, out: chat_pb2.ChatRequest) -> None:
    if choice.type == "tool":
        if not choice.name:
            raise errors.invalid_request("'tool_choice.name' is required.", "tool_choice.name")
        out.tool_choice.function_name = choice.name
    elif choice.type in TOOL_CHOICES:
        out.tool_choice.mode = TOOL_CHOICES[choice.type]
    else:
        raise errors.invalid_request(
            "'tool_choice.type' must be 'auto', 'any', 'tool' or 'none'.", "tool_choice.type"
        )
    if choice.HasField("disable_parallel_tool_use"):
        out.parallel_tool_calls = not choice.disable_parallel_tool_use


def _system(request: messages_pb2.MessagesRequest, out: chat_pb2.ChatRequest) -> None:
    if request.WhichOneof("system") == "system_text":
        if request.system_text:
            out.messages.add(role="system", text=request.system_text)
        return
    message = out.messages.add(role="system")
    for j, block in enumerate(request.system_blocks.blocks):
        if block.WhichOneof("block") != "text":
            raise errors.invalid_request(f"'system[{j}]' must be a text block.", "system")
        _part(block, f"system[{j}]", message.parts)
    message.parts.SetInParent()


def _messages(messages: Any, out: chat_pb2.ChatRequest) -> None:
    for i, message in enumerate(messages):
        role = message.role
        if role == "user":
            if message.WhichOneof("content") == "text":
                out.messages.add(role="user", text=message.text)
            else:
                _user(message, i, out)
        elif role == "assistant":
            _assistant(message, i, out)
        else:
            raise errors.invalid_request(
                f"'messages[{i}].role' must be 'user' or 'assistant'; got '{role}'.",
                f"messages[{i}].role",
            )


def _tools(tools: Any, out: chat_pb2.ChatRequest) -> None:
    for tool in tools:
        item = out.tools.add(
            type="function",
            function=chat_pb2.FunctionDefinition(
                name=tool.name,
                description=tool.description,
                parameters_json=tool.input_schema_json,
            ),
        )
        _cache(tool.cache_control, tool.HasField("cache_control"), item.cache_control)


def _copy(name: str) -> Callable[[Any, chat_pb2.ChatRequest], None]:
    def copy(value: Any, out: chat_pb2.ChatRequest) -> None:
        setattr(out, name, value)

    return copy


def _provider(value: Any, out: chat_pb2.ChatRequest) -> None:
    out.provider.CopyFrom(value)


# The request fields that are set, by name, and where each goes (system first, apart:
# it must lead the messages). Visiting only the fields set (ListFields) rather than
# asking after each one: a request sets three or four, and on a core fresh from idle
# every field asked after costs cache misses (as request_from_proto in chat_proto.py).
_FIELDS: dict[str, Callable[[Any, chat_pb2.ChatRequest], None]] = {
    "messages": _messages,
    "stop_sequences": lambda value, out: out.stop.extend(value),
    "temperature": _copy("temperature"),
    "top_p": _copy("top_p"),
    "tools": _tools,
    "tool_choice": _tool_choice,
    "metadata_user_id": _copy("user"),
    "extra_json": lambda value, out: out.native_extra_json.__setitem__("anthropic", value),
    # A sampling parameter other upstreams (vLLM) take too: a plain extra.
    "top_k": lambda value, out: setattr(out, "extra_json", orjson.dumps({"top_k": value}).decode()),
    "provider": _provider,
    "models": lambda value, out: out.models.extend(value),
    "thinking": thinking_config,  # after extra_json (a later field number): it merges into it
    "cache": lambda value, out: out.cache.CopyFrom(value),  # the response cache's mode
}


def chat_request(request: messages_pb2.MessagesRequest) -> chat_pb2.ChatRequest:
    """The chat request that serves `request`; what chat cannot say is a 400 here."""
    if request.max_tokens < 1:
        raise errors.invalid_request("'max_tokens' must be at least 1.", "max_tokens")
    out = chat_pb2.ChatRequest(model=request.model, max_tokens=request.max_tokens)
    if request.WhichOneof("system") is not None:
        _system(request, out)
    for field, value in request.ListFields():
        handler = _FIELDS.get(field.name)
        if handler is not None:
            handler(value, out)
    return out


# --- results --------------------------------------------------------------------------


def usage_to_proto(usage: common_pb2.Usage, out: messages_pb2.MessagesUsage) -> None:
    """Anthropic's counts: input_tokens without the cache reads and writes, which chat's
    prompt_tokens include."""
    read = usage.cached_tokens
    write = usage.cache_write_tokens
    out.input_tokens = max(0, usage.prompt_tokens - read - write)
    out.output_tokens = usage.completion_tokens
    out.cache_read_input_tokens = read
    out.cache_creation_input_tokens = write
    if usage.HasField("cost"):
        out.cost = usage.cost


def stop_reason(finish_reason: str) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn")


def response(chat: chat_pb2.ChatResponse) -> messages_pb2.MessagesResponse:
    out = messages_pb2.MessagesResponse(
        id=chat.id,
        model=chat.model,
        provider=chat.provider,
        upstream_ms=chat.upstream_ms,
        cache=chat.cache,
    )
    # Copied only when set: a message-typed keyword argument costs a copy (7 us here).
    if chat.HasField("rate_limits"):
        out.rate_limits.CopyFrom(chat.rate_limits)
    if chat.dropped_parameters:
        out.dropped_parameters.extend(chat.dropped_parameters)
    if chat.choices:
        choice = chat.choices[0]
        content_blocks(choice.message, out.content)
        out.stop_reason = stop_reason(choice.finish_reason)
        if choice.HasField("stop_sequence"):
            out.stop_reason = "stop_sequence"
            out.stop_sequence = choice.stop_sequence
    else:
        out.stop_reason = "end_turn"
    usage_to_proto(chat.usage, out.usage)
    return out


class EventBuilder:
    """Chat chunks in, Anthropic's event sequence out (one choice: Anthropic has one).

    Blocks are numbered as they open: thinking, text, then each tool call as its first
    delta comes, each closed when the next opens (Anthropic's blocks never interleave). A
    tool call's later argument deltas go to its own block whatever is open. Thinking
    comes as reasoning details, pieces of one detail sharing its `index`: the pieces of
    an open thinking block become its thinking_delta events and its signature the
    signature_delta (Anthropic's order: the signature last, just before the stop); a
    redacted block is whole in its start event. Reasoning text without details (DeepSeek,
    vLLM) is one unsigned thinking block.
    """

    def __init__(self) -> None:
        self._next = 0
        self._open: int | None = None  # the index of the open block
        self._text: int | None = None  # the open block, if it is text
        self._tools: dict[int, int] = {}  # tool-call index -> block index
        self._thoughts: dict[int, int] = {}  # reasoning-detail index -> block index
        self._finish = ""
        self._stop_sequence: str | None = None
        self._usage: common_pb2.Usage | None = None
        self.started = False

    def _start(self, chunk: chat_pb2.ChatChunk) -> messages_pb2.MessagesEvent:
        self.started = True
        event = messages_pb2.MessagesEvent(
            id=chunk.id, provider=chunk.provider, upstream_ms=chunk.upstream_ms, cache=chunk.cache
        )
        if chunk.HasField("rate_limits"):
            event.rate_limits.CopyFrom(chunk.rate_limits)
        if chunk.dropped_parameters:
            event.dropped_parameters.extend(chunk.dropped_parameters)
        event.message_start.id = chunk.id
        event.message_start.model = chunk.model
        event.message_start.usage.SetInParent()
        return event

    def _close(self, events: list[messages_pb2.MessagesEvent]) -> None:
        if self._open is not None:
            events.append(
                messages_pb2.MessagesEvent(
                    content_block_stop=messages_pb2.ContentBlockStop(index=self._open)
                )
            )
        self._open = self._text = None

    def _begin(
        self, events: list[messages_pb2.MessagesEvent], block: messages_pb2.ContentBlock
    ) -> int:
        self._close(events)
        index = self._open = self._next
        self._next += 1
        events.append(
            messages_pb2.MessagesEvent(
                content_block_start=messages_pb2.ContentBlockStart(index=index, content_block=block)
            )
        )
        return index

    def events(self, chunk: chat_pb2.ChatChunk) -> list[messages_pb2.MessagesEvent]:
        events: list[messages_pb2.MessagesEvent] = []
        if not self.started:
            events.append(self._start(chunk))
        if chunk.HasField("usage"):
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.reasoning_details or delta.HasField("reasoning"):
                self._reasoning(events, delta)
            if delta.HasField("content") and delta.content:
                if self._text is None:
                    self._text = self._begin(events, messages_pb2.ContentBlock(text=""))
                events.append(_delta(self._text, text=delta.content))
            for call in delta.tool_calls:
                index = self._tools.get(call.index)
                if index is None:
                    block = messages_pb2.ContentBlock(
                        tool_use=messages_pb2.ToolUse(id=call.id, name=call.name, input_json="{}")
                    )
                    index = self._tools[call.index] = self._begin(events, block)
                if call.HasField("arguments") and call.arguments:
                    events.append(_delta(index, partial_json=call.arguments))
            if choice.finish_reason:
                self._finish = choice.finish_reason
            if choice.HasField("stop_sequence"):
                self._stop_sequence = choice.stop_sequence
        return events

    def _reasoning(self, events: list[messages_pb2.MessagesEvent], delta: chat_pb2.Delta) -> None:
        texts = False
        for detail in delta.reasoning_details:
            if detail.type == "reasoning.encrypted":
                block = detail_block(detail)  # whole in its start event
                if block is not None:
                    self._begin(events, block)
                continue
            text = detail.text or detail.summary
            texts = texts or bool(text)
            self._thought(events, detail.index, text, detail.signature)
        if not texts and delta.HasField("reasoning") and delta.reasoning:
            self._thought(events, -1, delta.reasoning, "")

    def _thought(
        self, events: list[messages_pb2.MessagesEvent], key: int, text: str, signature: str
    ) -> None:
        """A piece of the thinking block of detail `key`, opened if it is not open."""
        index = self._thoughts.get(key)
        if index is None or index != self._open:
            if not text and not signature:
                return
            block = messages_pb2.ContentBlock(thinking=messages_pb2.Thinking())
            index = self._thoughts[key] = self._begin(events, block)
        if text:
            events.append(_delta(index, thinking=text))
        if signature:
            events.append(_delta(index, signature=signature))

    def end(self) -> list[messages_pb2.MessagesEvent]:
        """The closing events, once the chat stream has ended."""
        events: list[messages_pb2.MessagesEvent] = []
        self._close(events)
        final = messages_pb2.MessagesEvent()
        final.message_delta.stop_reason = stop_reason(self._finish)
        if self._stop_sequence is not None:
            final.message_delta.stop_reason = "stop_sequence"
            final.message_delta.stop_sequence = self._stop_sequence
        if self._usage is not None:
            usage_to_proto(self._usage, final.message_delta.usage)
        else:
            final.message_delta.usage.SetInParent()
        events.append(final)
        events.append(messages_pb2.MessagesEvent(message_stop=messages_pb2.MessageStop()))
        return events


def _delta(index: int, **delta: str) -> messages_pb2.MessagesEvent:
    return messages_pb2.MessagesEvent(
        content_block_delta=messages_pb2.ContentBlockDelta(index=index, **delta)
    )
