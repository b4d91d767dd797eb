"""Pure mapping between domain types and OpenAI's JSON objects, in both directions.

Parsing is strict about what we rely on and lenient about what we do not: an answer we
cannot read is a `BadUpstreamError` (the caller turns it into a 502 and may retry), never
a KeyError deep in the core.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from service.domain.chat import (
    SAMPLING_PARAMETERS,
    AudioPart,
    ChatDelta,
    ChatRequest,
    ChatResult,
    Choice,
    ChoiceDelta,
    ChoiceLogprobs,
    ContentPart,
    FilePart,
    ImagePart,
    Message,
    TextPart,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
    tool_result,
)
from service.domain.embeddings import (
    EmbedRequest,
    EmbedResult,
    RerankHit,
    RerankRequest,
    RerankResult,
)
from service.providers.openai_compat.reasoning import (
    reasoning_details,
    reasoning_effort,
    reasoning_text,
)

JSON = dict[str, Any]


class BadUpstreamError(ValueError):
    """The upstream's answer does not have the shape its API documents."""


# --- requests -------------------------------------------------------------------------


def _part_json(part: ContentPart) -> JSON:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        image: JSON = {"url": part.url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, AudioPart):
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}}
    if isinstance(part, FilePart):
        file: JSON = {}
        if part.file_id is not None:
            file["file_id"] = part.file_id
        if part.filename is not None:
            file["filename"] = part.filename
        if part.file_data is not None:
            file["file_data"] = part.file_data
        return {"type": "file", "file": file}
    return {"type": "refusal", "refusal": part.refusal}


def message_json(message: Message) -> JSON:
    out: JSON = {"role": message.role}
    content = tool_result(message)
    if isinstance(content, tuple):
        out["content"] = [_part_json(p) for p in content]
    else:
        out["content"] = content
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.refusal is not None:
        out["refusal"] = message.refusal
    return out


def chat_body(request: ChatRequest, upstream_model: str, *, stream: bool) -> JSON:
    """The upstream request body. Provider extras go first so typed fields win."""
    body: JSON = orjson.loads(request.extra_json) if request.extra_json else {}
    body["model"] = upstream_model
    body["messages"] = [message_json(m) for m in request.messages]
    for name in (*SAMPLING_PARAMETERS, "user"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop:
        body["stop"] = list(request.stop)
    if request.logit_bias:
        body["logit_bias"] = dict(request.logit_bias)
    if request.reasoning is not None:
        effort = reasoning_effort(request.reasoning)
        if effort is not None:
            body["reasoning_effort"] = effort
    if request.tools:
        tools = []
        for tool in request.tools:
            function: JSON = {"name": tool.name}
            if tool.description is not None:
                function["description"] = tool.description
            if tool.parameters_json is not None:
                function["parameters"] = orjson.Fragment(tool.parameters_json)
            if tool.strict is not None:
                function["strict"] = tool.strict
            tools.append({"type": "function", "function": function})
        body["tools"] = tools
    choice = request.tool_choice
    if choice is not None:
        if choice.mode == "function":
            body["tool_choice"] = {"type": "function", "function": {"name": choice.function}}
        else:
            body["tool_choice"] = choice.mode
    fmt = request.response_format
    if fmt is not None:
        if fmt.type == "json_schema":
            schema: JSON = {"name": fmt.name or "response"}
            if fmt.description is not None:
                schema["description"] = fmt.description
            if fmt.schema_json is not None:
                schema["schema"] = orjson.Fragment(fmt.schema_json)
            if fmt.strict is not None:
                schema["strict"] = fmt.strict
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        else:
            body["response_format"] = {"type": fmt.type}
    if stream:
        # Always ask for usage: the gateway needs it even when the client did not.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


def embed_body(request: EmbedRequest, upstream_model: str) -> JSON:
    body: JSON = orjson.loads(request.extra_json) if request.extra_json else {}
    body["model"] = upstream_model
    if request.token_inputs:
        body["input"] = [list(ids) for ids in request.token_inputs]
    else:
        body["input"] = list(request.texts)
    body["encoding_format"] = "float"
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


def rerank_body(request: RerankRequest, upstream_model: str) -> JSON:
    body: JSON = orjson.loads(request.extra_json) if request.extra_json else {}
    body["model"] = upstream_model
    body["query"] = request.query
    body["documents"] = list(request.documents)
    if request.top_n is not None:
        body["top_n"] = request.top_n
    # Documents are echoed by the gateway from the request; no need to ship them back.
    body["return_documents"] = False
    return body


# --- responses ------------------------------------------------------------------------


def _obj(value: Any, where: str) -> JSON:
    if not isinstance(value, dict):
        raise BadUpstreamError(f"{where}: expected an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadUpstreamError(f"{where}: expected an array")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadUpstreamError(f"{where}: expected a string")
    return value


def _int(value: Any, where: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadUpstreamError(f"{where}: expected an integer")
    return value


def parse_usage(value: Any) -> Usage | None:
    if value is None:
        return None
    usage = _obj(value, "usage")
    prompt = _int(usage.get("prompt_tokens"), "usage.prompt_tokens", 0)
    completion = _int(usage.get("completion_tokens"), "usage.completion_tokens", 0)
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    details = prompt_details if isinstance(prompt_details, dict) else {}
    cached, written = details.get("cached_tokens"), details.get("cache_write_tokens")
    reasoning = (
        completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    )
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(usage.get("total_tokens"), "usage.total_tokens", prompt + completion),
        cached_tokens=cached if isinstance(cached, int) else None,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else None,
        # OpenRouter (and gateways like it) report cache writes beside the reads.
        cache_write_tokens=written if isinstance(written, int) else None,
    )


def _bytes(value: Any) -> tuple[int, ...] | None:
    return tuple(value) if isinstance(value, list) else None


def _token_logprobs(value: Any, where: str) -> tuple[TokenLogprob, ...] | None:
    if value is None:
        return None
    out = []
    for i, raw in enumerate(_list(value, where)):
        item = _obj(raw, f"{where}[{i}]")
        tops = tuple(
            TopLogprob(
                token=str(t.get("token", "")),
                logprob=float(t.get("logprob", 0.0)),
                bytes=_bytes(t.get("bytes")),
            )
            for t in item.get("top_logprobs") or ()
            if isinstance(t, dict)
        )
        out.append(
            TokenLogprob(
                token=str(item.get("token", "")),
                logprob=float(item.get("logprob", 0.0)),
                bytes=_bytes(item.get("bytes")),
                top_logprobs=tops,
            )
        )
    return tuple(out)


def _logprobs(value: Any, where: str) -> ChoiceLogprobs | None:
    if value is None:
        return None
    raw = _obj(value, where)
    return ChoiceLogprobs(
        content=_token_logprobs(raw.get("content"), f"{where}.content"),
        refusal=_token_logprobs(raw.get("refusal"), f"{where}.refusal"),
    )


def _tool_call(value: Any, where: str) -> ToolCall:
    raw = _obj(value, where)
    function = _obj(raw.get("function"), f"{where}.function")
    name = _opt_str(function.get("name"), f"{where}.function.name")
    arguments = _opt_str(function.get("arguments"), f"{where}.function.arguments")
    if not name:
        raise BadUpstreamError(f"{where}.function.name: missing")
    return ToolCall(id=str(raw.get("id") or ""), name=name, arguments=arguments or "")


def _content(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    # Some upstreams answer with content parts; the OpenAI object carries plain text.
    texts = [p.get("text", "") for p in _list(value, where) if isinstance(p, dict)]
    return "".join(t for t in texts if isinstance(t, str))


def parse_chat_response(value: Any) -> ChatResult:
    body = _obj(value, "response")
    raw_choices = _list(body.get("choices"), "choices")
    if not raw_choices:
        raise BadUpstreamError("choices: the upstream returned no choices")
    choices = []
    for i, raw in enumerate(raw_choices):
        where = f"choices[{i}]"
        choice = _obj(raw, where)
        message = _obj(choice.get("message"), f"{where}.message")
        tool_calls = tuple(
            _tool_call(c, f"{where}.message.tool_calls[{j}]")
            for j, c in enumerate(message.get("tool_calls") or ())
        )
        choices.append(
            Choice(
                index=_int(choice.get("index"), f"{where}.index", i),
                message=Message(
                    role="assistant",
                    content=_content(message.get("content"), f"{where}.message.content"),
                    tool_calls=tool_calls,
                    refusal=_opt_str(message.get("refusal"), f"{where}.message.refusal"),
                    reasoning=reasoning_text(message),
                    reasoning_details=reasoning_details(message.get("reasoning_details")),
                ),
                finish_reason=_opt_str(choice.get("finish_reason"), f"{where}.finish_reason")
                or ("tool_calls" if tool_calls else "stop"),
                logprobs=_logprobs(choice.get("logprobs"), f"{where}.logprobs"),
            )
        )
    return ChatResult(
        choices=tuple(choices),
        usage=parse_usage(body.get("usage")),
        system_fingerprint=_opt_str(body.get("system_fingerprint"), "system_fingerprint"),
    )


def _tool_call_delta(value: Any, where: str, position: int) -> ToolCallDelta:
    raw = _obj(value, where)
    function = raw.get("function")
    function = _obj(function, f"{where}.function") if function is not None else {}
    return ToolCallDelta(
        index=_int(raw.get("index"), f"{where}.index", position),
        id=_opt_str(raw.get("id"), f"{where}.id"),
        name=_opt_str(function.get("name"), f"{where}.function.name"),
        arguments=_opt_str(function.get("arguments"), f"{where}.function.arguments"),
    )


def parse_chunk(value: Any) -> ChatDelta:
    body = _obj(value, "chunk")
    if "error" in body and "choices" not in body:
        error = body["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise BadUpstreamError(f"the upstream reported an error mid-stream: {message}")
    choices = [
        _text_delta(raw, i) or _choice_delta(raw, i)
        for i, raw in enumerate(_list(body.get("choices", []), "chunk.choices"))
    ]
    return ChatDelta(
        choices=tuple(choices),
        usage=parse_usage(body.get("usage")),
        system_fingerprint=_opt_str(body.get("system_fingerprint"), "system_fingerprint"),
    )


def _text_delta(raw: Any, i: int) -> ChoiceDelta | None:
    """A delta of plain fields only (most chunks), when every one of them has its JSON
    type; anything else (tool calls, logprobs, content parts, a wrong type) is None and
    goes through `_choice_delta`, which checks field by field and names the culprit."""
    if type(raw) is not dict:
        return None
    delta = raw.get("delta")
    index = raw.get("index", i)
    finish = raw.get("finish_reason")
    if (
        type(delta) is not dict
        or type(index) is not int
        or raw.get("logprobs") is not None
        or delta.get("tool_calls")
        or delta.get("reasoning_content") is not None
        or delta.get("reasoning") is not None
        or delta.get("reasoning_details")
        or not (finish is None or type(finish) is str)
    ):
        return None
    role = delta.get("role")
    content = delta.get("content")
    refusal = delta.get("refusal")
    if (
        (role is None or type(role) is str)
        and (content is None or type(content) is str)
        and (refusal is None or type(refusal) is str)
    ):
        return ChoiceDelta(
            index=index, role=role, content=content, refusal=refusal, finish_reason=finish
        )
    return None


def _choice_delta(raw: Any, i: int) -> ChoiceDelta:
    where = f"chunk.choices[{i}]"
    choice = _obj(raw, where)
    delta = choice.get("delta")
    delta = _obj(delta, f"{where}.delta") if delta is not None else {}
    return ChoiceDelta(
        index=_int(choice.get("index"), f"{where}.index", i),
        role=_opt_str(delta.get("role"), f"{where}.delta.role"),
        content=_content(delta.get("content"), f"{where}.delta.content"),
        tool_calls=tuple(
            _tool_call_delta(c, f"{where}.delta.tool_calls[{j}]", j)
            for j, c in enumerate(delta.get("tool_calls") or ())
        ),
        refusal=_opt_str(delta.get("refusal"), f"{where}.delta.refusal"),
        finish_reason=_opt_str(choice.get("finish_reason"), f"{where}.finish_reason"),
        logprobs=_logprobs(choice.get("logprobs"), f"{where}.logprobs"),
        reasoning=reasoning_text(delta) or None,
        reasoning_details=reasoning_details(delta.get("reasoning_details")),
    )


def _vector(value: Any, where: str) -> list[float]:
    if isinstance(value, str):  # base64 of little-endian float32, as OpenAI encodes it
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise BadUpstreamError(f"{where}: invalid base64") from exc
        if len(raw) % 4:
            raise BadUpstreamError(f"{where}: base64 payload is not float32")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    items = _list(value, where)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in items):
        raise BadUpstreamError(f"{where}: expected numbers")
    return items


def parse_embeddings(value: Any, expected: int) -> EmbedResult:
    body = _obj(value, "response")
    data = _list(body.get("data"), "data")
    if len(data) != expected:
        raise BadUpstreamError(f"data: expected {expected} embeddings, got {len(data)}")
    vectors: list[list[float] | None] = [None] * expected
    for i, raw in enumerate(data):
        item = _obj(raw, f"data[{i}]")
        index = _int(item.get("index"), f"data[{i}].index", i)
        if not 0 <= index < expected or vectors[index] is not None:
            raise BadUpstreamError(f"data[{i}].index: {index} is out of range or repeated")
        vectors[index] = _vector(item.get("embedding"), f"data[{i}].embedding")
    usage = parse_usage(body.get("usage")) or Usage()
    if usage.total_tokens == 0 and usage.prompt_tokens:
        usage = Usage(prompt_tokens=usage.prompt_tokens, total_tokens=usage.prompt_tokens)
    return EmbedResult(vectors=tuple(v for v in vectors if v is not None), usage=usage)


def parse_rerank(value: Any, documents: int, top_n: int | None) -> RerankResult:
    body = _obj(value, "response")
    hits = []
    for i, raw in enumerate(_list(body.get("results"), "results")):
        item = _obj(raw, f"results[{i}]")
        index = _int(item.get("index"), f"results[{i}].index")
        score = item.get("relevance_score")
        if not 0 <= index < documents:
            raise BadUpstreamError(f"results[{i}].index: {index} is out of range")
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise BadUpstreamError(f"results[{i}].relevance_score: expected a number")
        hits.append(RerankHit(index=index, score=float(score)))
    hits.sort(key=lambda h: (-h.score, h.index))
    if top_n is not None:
        hits = hits[:top_n]
    usage = body.get("usage")
    meta = body.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    units = billed.get("search_units") if isinstance(billed, dict) else None
    return RerankResult(
        hits=tuple(hits),
        total_tokens=total if isinstance(total, int) else None,
        search_units=units if isinstance(units, int) else None,
    )


def error_message(status: int, payload: bytes) -> tuple[str, str | None]:
    """The message and `param` of an upstream error body, however it is shaped."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        text = payload.decode("utf-8", "replace").strip()[:500]
        return (text or f"HTTP {status}"), None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        param = error.get("param")
        return str(error.get("message") or f"HTTP {status}"), param if isinstance(
            param, str
        ) else None
    if isinstance(error, str):
        return error, None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"], None
    return f"HTTP {status}", None
