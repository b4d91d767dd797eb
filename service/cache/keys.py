"""Cache keys: a hash of the normalised request, and the semantic cache's bucket.

The exact key covers everything that can change the answer: the model (and its
fallbacks and provider preferences, which choose who answers), the messages, tools,
tool choice, response format, every sampling parameter and the provider extras. It
leaves out what does not: `stream` (a streamed and an unstreamed request share an
entry), `stream_options` and `user`. JSON texts (schemas, extras) are re-serialised with
sorted keys, so that key order does not split an entry. The partition (the calling key,
or `shared`) is hashed in, so one key never reads another's entries.

The semantic bucket is the same hash without the last user message: a semantic hit
needs the same model, parameters, tools and earlier turns, and a similar last question.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from service.domain.chat import (
    SAMPLING_PARAMETERS,
    AudioPart,
    ChatRequest,
    Content,
    FilePart,
    ImagePart,
    Message,
    RefusalPart,
    TextPart,
)

VERSION = "1"  # bump when the normalisation changes: old entries stop matching


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _content(content: Content) -> Any:
    if content is None or isinstance(content, str):
        return content
    if len(content) == 1 and isinstance(content[0], TextPart):
        return content[0].text  # [{"type": "text", "text": t}] says what "t" says
    parts: list[Any] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append(["text", part.text])
        elif isinstance(part, ImagePart):
            parts.append(["image", part.url, part.detail])
        elif isinstance(part, AudioPart):
            parts.append(["audio", part.data, part.format])
        elif isinstance(part, FilePart):
            parts.append(["file", part.file_id, part.filename, part.file_data])
        elif isinstance(part, RefusalPart):
            parts.append(["refusal", part.refusal])
    return parts


def _message(message: Message) -> Any:
    return [
        message.role,
        _content(message.content),
        message.name,
        [[c.id, c.name, _json(c.arguments)] for c in message.tool_calls],
        message.tool_call_id,
        message.refusal,
        message.reasoning,
        repr(message.reasoning_details),
        *([True] if message.is_error else []),  # only when set: earlier keys stay valid
    ]


def _parameters(request: ChatRequest) -> dict[str, Any]:
    """Everything but the messages that changes the answer (or who gives it)."""
    out: dict[str, Any] = {name: getattr(request, name) for name in SAMPLING_PARAMETERS}
    out["model"] = request.model
    out["stop"] = list(request.stop)
    out["logit_bias"] = dict(request.logit_bias)
    out["tools"] = [
        [t.name, t.description, _json(t.parameters_json), t.strict] for t in request.tools
    ]
    choice = request.tool_choice
    out["tool_choice"] = None if choice is None else [choice.mode, choice.function]
    fmt = request.response_format
    out["response_format"] = (
        None
        if fmt is None
        else [fmt.type, fmt.name, fmt.description, _json(fmt.schema_json), fmt.strict]
    )
    out["extra"] = _json(request.extra_json)
    out["native_extra"] = {kind: _json(text) for kind, text in request.native_extra.items()}
    out["reasoning"] = repr(request.reasoning)
    out["routing"] = repr(request.routing)  # frozen dataclasses of tuples: a stable text
    return out


def _digest(partition: str, document: Any) -> str:
    raw = orjson.dumps([VERSION, partition, document], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def exact_key(request: ChatRequest, partition: str) -> str:
    params = _parameters(request)
    return _digest(partition, [params, [_message(m) for m in request.messages]])


def last_user_text(request: ChatRequest) -> str | None:
    """The text of the last message when it is the user's and text only, else None
    (then there is nothing for the semantic cache to compare)."""
    last = request.messages[-1]
    if last.role != "user":
        return None
    content = _content(last.content)
    return content if isinstance(content, str) and content.strip() else None


def semantic_bucket(request: ChatRequest, partition: str) -> str:
    """Entries a semantic hit may come from: the same request but for its last message."""
    params = _parameters(request)
    return _digest(partition, ["semantic", params, [_message(m) for m in request.messages[:-1]]])
