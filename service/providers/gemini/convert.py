"""Pure mapping of domain requests to the Gemini API's JSON (v1beta REST).

Messages become `contents` (roles `user`/`model`; system and developer
messages become `systemInstruction`), tools become `functionDeclarations`, sampling
parameters and response formats go into `generationConfig`. Remote attachments are not
fetched here: the client fetches them first (see `remote_attachments`) and hands the
bytes in, keyed by the JSON path of the part they belong to. A request Gemini cannot
express is a `RequestError` naming the offending param (a 400 for the client).
Answers are mapped back in response.py.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.chat import (
    AudioPart,
    ChatRequest,
    ContentPart,
    FilePart,
    ImagePart,
    Message,
    Reasoning,
    ReasoningDetail,
    RefusalPart,
    TextPart,
)
from service.domain.embeddings import EmbedRequest
from service.providers.gemini.schema import SchemaError, to_gemini

JSON = dict[str, Any]

FILES_API = "https://generativelanguage.googleapis.com/v1beta/files/"
IMAGE_TYPES = ("image/",)
FILE_TYPES = ("application/pdf", "text/", "image/", "audio/", "video/")
# Generation settings a client may pass as extra parameters (OpenAI-style or Gemini's).
_GENERATION_EXTRAS = {
    "top_k": "topK",
    "topK": "topK",
    "thinkingConfig": "thinkingConfig",
    "thinking_config": "thinkingConfig",
    "responseModalities": "responseModalities",
    "mediaResolution": "mediaResolution",
}
# Top-level GenerateContentRequest fields a client may pass through as they are.
_REQUEST_EXTRAS = frozenset({"safetySettings", "cachedContent"})
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[^;,]*)*?);base64,(.*)", re.DOTALL)
_OUR_CALL_ID = re.compile(r"call_[0-9a-f]{32}")
SIGNATURE_FORMAT = "google-gemini-v1"
# Models that take a thinking budget, not a level: Gemini 1.x and 2.x.
_BUDGET_MODELS = re.compile(r"(models/)?gemini-[12](\.|-|$)")
# Thinking budgets from an effort for those (a share of the output limit, OpenRouter's
# way), within 1024 and 24576 tokens (the most 2.5 Flash takes).
_EFFORT_SHARE = {"minimal": 0.1, "low": 0.2, "medium": 0.5, "high": 0.8, "xhigh": 0.95}
_DEFAULT_OUTPUT = 8192
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}


class RequestError(ValueError):
    """The request cannot be expressed in Gemini's terms; `param` names the culprit."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Blob:
    mime_type: str
    data: str  # base64


@dataclass(frozen=True, slots=True)
class RemoteAttachment:
    """A URL whose bytes must be fetched and inlined, as Gemini cannot read it itself."""

    url: str
    param: str  # where it is in the request, e.g. messages[0].content[1].image_url.url
    allowed_types: tuple[str, ...]


def _is_gemini_file(uri: str) -> bool:
    return uri.startswith(("gs://", FILES_API))


def _file_uri(file_id: str) -> str | None:
    """The `fileData.fileUri` for a `file_id` naming a Files API file or a GCS object."""
    if _is_gemini_file(file_id):
        return file_id
    if file_id.startswith("files/"):
        return FILES_API + file_id[len("files/") :]
    return None


def _remote(url: str) -> bool:
    return url.startswith(("http://", "https://")) and not _is_gemini_file(url)


def remote_attachments(request: ChatRequest) -> tuple[RemoteAttachment, ...]:
    """Every http(s) attachment of the request, in order, with the types it may have.

    System messages are skipped: `systemInstruction` carries their text only.
    """
    found = []
    for i, message in enumerate(request.messages):
        if not isinstance(message.content, tuple) or message.role in ("system", "developer"):
            continue
        for j, part in enumerate(message.content):
            where = f"messages[{i}].content[{j}]"
            if isinstance(part, ImagePart) and _remote(part.url):
                found.append(RemoteAttachment(part.url, f"{where}.image_url.url", IMAGE_TYPES))
            elif isinstance(part, FilePart) and part.file_id and _remote(part.file_id):
                found.append(RemoteAttachment(part.file_id, f"{where}.file.file_id", FILE_TYPES))
    return tuple(found)


def data_url(url: str, param: str) -> Blob:
    """The media type and base64 payload of a `data:<type>;base64,<data>` URL."""
    match = _DATA_URL.fullmatch(url.strip())
    if not match or not match.group(1):
        raise RequestError(f"'{param}' must be a base64 data URL with a media type.", param)
    data = re.sub(r"\s+", "", match.group(3))
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"'{param}' does not hold valid base64.", param) from None
    return Blob(mime_type=match.group(1).lower(), data=data)


def _file_data(uri: str, name: str | None = None) -> JSON:
    out: JSON = {"fileUri": uri}
    guessed = mimetypes.guess_type(name or uri.split("?", 1)[0])[0]
    if guessed:
        out["mimeType"] = guessed
    return {"fileData": out}


def _inline(blob: Blob) -> JSON:
    return {"inlineData": {"mimeType": blob.mime_type, "data": blob.data}}


def _part(part: ContentPart, where: str, fetched: Mapping[str, Blob]) -> JSON:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, RefusalPart):
        return {"text": part.refusal}
    if isinstance(part, ImagePart):
        param = f"{where}.image_url.url"
        if part.url.startswith("data:"):
            return _inline(data_url(part.url, param))
        if _is_gemini_file(part.url):
            return _file_data(part.url)
        if param in fetched:
            return _inline(fetched[param])
        raise RequestError(f"'{param}' must be an http(s), gs:// or data URL.", param)
    if isinstance(part, AudioPart):
        return _inline(Blob(mime_type=f"audio/{part.format.lower()}", data=part.data))
    if part.file_data:
        param = f"{where}.file.file_data"
        if part.file_data.startswith("data:"):
            return _inline(data_url(part.file_data, param))
        guessed = mimetypes.guess_type(part.filename or "")[0]
        return _inline(Blob(mime_type=guessed or "application/pdf", data=part.file_data))
    param = f"{where}.file.file_id"
    uri = _file_uri(part.file_id or "")
    if uri is not None:
        return _file_data(uri, part.filename)
    if param in fetched:
        return _inline(fetched[param])
    raise RequestError(
        f"'{param}' must name a Gemini Files API file, a gs:// object or an http(s) URL.", param
    )


def _text(content: Any) -> str:
    if isinstance(content, tuple):
        return "".join(
            p.text if isinstance(p, TextPart) else p.refusal
            for p in content
            if isinstance(p, TextPart | RefusalPart)
        )
    return content or ""


def _arguments(text: str, param: str) -> JSON:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise RequestError(f"'{param}' must be a JSON object.", param) from None
    if not isinstance(value, dict):
        raise RequestError(f"'{param}' must be a JSON object.", param)
    return value


def _function_response(text: str, is_error: bool = False) -> JSON:
    """A tool's result as Gemini wants it: an object; plain text is wrapped. A failure
    goes under the `error` key, which Gemini documents for error details."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if is_error:
        return {"error": text if value is None else value}
    return value if isinstance(value, dict) else {"content": text}


def _signatures(details: tuple[ReasoningDetail, ...]) -> dict[str | None, str]:
    """Gemini's thought signatures among a returned message's details: call id (None for
    the text's) -> signature."""
    return {
        d.id: d.data
        for d in details
        if d.type == "reasoning.encrypted" and d.data and d.format == SIGNATURE_FORMAT
    }


def _message_parts(
    message: Message, i: int, fetched: Mapping[str, Blob], call_names: dict[str, str]
) -> list[JSON]:
    where = f"messages[{i}]"
    if message.role == "tool":
        name = call_names.get(message.tool_call_id or "")
        if name is None:
            param = f"{where}.tool_call_id"
            raise RequestError(f"'{param}' matches no earlier assistant tool call.", param)
        result = _function_response(_text(message.content), message.is_error)
        response: JSON = {"name": name, "response": result}
        if not _OUR_CALL_ID.fullmatch(message.tool_call_id or ""):
            response["id"] = message.tool_call_id  # an id Gemini itself gave the call
        return [{"functionResponse": response}]
    parts: list[JSON] = []
    if isinstance(message.content, tuple):
        parts = [_part(p, f"{where}.content[{j}]", fetched) for j, p in enumerate(message.content)]
    elif message.content:
        parts = [{"text": message.content}]
    if message.role == "assistant" and message.refusal and not parts:
        parts = [{"text": message.refusal}]
    signatures = _signatures(message.reasoning_details)
    if None in signatures and parts and "text" in parts[-1]:
        parts[-1]["thoughtSignature"] = signatures[None]
    for j, call in enumerate(message.tool_calls):
        call_names[call.id] = call.name
        args = _arguments(call.arguments, f"{where}.tool_calls[{j}].function.arguments")
        function: JSON = {"name": call.name, "args": args}
        if not _OUR_CALL_ID.fullmatch(call.id):
            function["id"] = call.id
        part: JSON = {"functionCall": function}
        if call.id in signatures:  # Gemini 3 refuses a tool loop without them
            part["thoughtSignature"] = signatures[call.id]
        parts.append(part)
    return parts


def _contents(request: ChatRequest, fetched: Mapping[str, Blob]) -> tuple[list[JSON], JSON | None]:
    """`contents` and `systemInstruction`.

    Consecutive turns of one role are merged (so parallel tool results share one turn, as
    Gemini expects), but tool results are not merged with the user's own text.
    """
    system: list[JSON] = []
    contents: list[JSON] = []
    kinds: list[str] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            text = _text(message.content)
            if text:
                system.append({"text": text})
            continue
        parts = _message_parts(message, i, fetched, call_names)
        if not parts:
            continue  # Gemini refuses a turn without parts
        role = "model" if message.role == "assistant" else "user"
        if kinds and kinds[-1] == message.role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
            kinds.append(message.role)
    return contents, ({"parts": system} if system else None)


def _schema(text: str | None, param: str) -> JSON | None:
    if text is None:
        return None
    try:
        return to_gemini(orjson.loads(text))
    except (orjson.JSONDecodeError, SchemaError) as exc:
        raise RequestError(f"'{param}' cannot be used with Gemini: {exc}", param) from None


def _tools(request: ChatRequest) -> list[JSON]:
    declarations = []
    for i, tool in enumerate(request.tools):
        declaration: JSON = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        parameters = _schema(tool.parameters_json, f"tools[{i}].function.parameters")
        # An OBJECT without properties is refused: a tool without arguments has none.
        if parameters and parameters.get("properties"):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def thinking_config(reasoning: Reasoning, upstream_model: str, max_tokens: int | None) -> JSON:
    """`thinkingConfig` for a unified reasoning request.

    Gemini 1.x/2.x take a token budget (0 turns thinking off on the Flash models; Pro
    cannot stop thinking and would refuse it); later models a level, named as the
    efforts are (xhigh is their high). A budget given in tokens is passed as one either
    way. Thought summaries come back unless the client excludes them.
    """
    config: JSON = {}
    budget_model = _BUDGET_MODELS.match(upstream_model) is not None
    if not reasoning.wanted:
        off = reasoning.enabled is False or reasoning.effort == "none"
        if budget_model and off and "flash" in upstream_model:
            config["thinkingBudget"] = 0
        return config
    if reasoning.max_tokens is not None:
        config["thinkingBudget"] = reasoning.max_tokens
    elif budget_model:
        share = _EFFORT_SHARE.get(reasoning.effort or "medium", 0.5)
        config["thinkingBudget"] = max(
            min(int((max_tokens or _DEFAULT_OUTPUT) * share), 24_576), 1024
        )
    elif reasoning.effort is not None:
        config["thinkingLevel"] = _LEVELS[reasoning.effort]
    config["includeThoughts"] = not reasoning.exclude
    return config


def _generation_config(request: ChatRequest, extra: JSON, upstream_model: str) -> JSON:
    given = extra.get("generationConfig")
    config: JSON = dict(given) if isinstance(given, dict) else {}
    for key, target in _GENERATION_EXTRAS.items():
        if key in extra:
            config[target] = extra[key]
    max_tokens = request.max_completion_tokens or request.max_tokens
    typed = {
        "temperature": request.temperature,
        "topP": request.top_p,
        "maxOutputTokens": max_tokens,
        "seed": request.seed,
        "candidateCount": request.n,
        "presencePenalty": request.presence_penalty,
        "frequencyPenalty": request.frequency_penalty,
        "responseLogprobs": request.logprobs,
        "logprobs": request.top_logprobs,
        "stopSequences": list(request.stop) or None,
    }
    config.update({k: v for k, v in typed.items() if v is not None})
    if request.reasoning is not None:
        thinking = thinking_config(request.reasoning, upstream_model, max_tokens)
        if thinking:
            given = config.get("thinkingConfig")
            config["thinkingConfig"] = {**(given if isinstance(given, dict) else {}), **thinking}
    fmt = request.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = _schema(fmt.schema_json, "response_format.json_schema.schema")
        if schema is not None:
            config["responseSchema"] = schema
    return config


def chat_body(request: ChatRequest, fetched: Mapping[str, Blob], upstream_model: str = "") -> JSON:
    """The generateContent request body; `fetched` holds the bytes of remote attachments.

    Extra parameters that are Gemini request fields pass through; known generation
    settings among them move into `generationConfig`; typed fields win over both.
    """
    extra: Any = orjson.loads(request.extra_json) if request.extra_json else {}
    extra = extra if isinstance(extra, dict) else {}
    body: JSON = {k: v for k, v in extra.items() if k in _REQUEST_EXTRAS}
    contents, system = _contents(request, fetched)
    if not contents:
        raise RequestError("Gemini needs at least one user or assistant message.", "messages")
    body["contents"] = contents
    if system is not None:
        body["systemInstruction"] = system
    if request.tools:
        body["tools"] = _tools(request)
    choice = request.tool_choice
    if choice is not None and request.tools:
        calling: JSON = {"mode": {"auto": "AUTO", "none": "NONE"}.get(choice.mode, "ANY")}
        if choice.mode == "function" and choice.function:
            calling["allowedFunctionNames"] = [choice.function]
        body["toolConfig"] = {"functionCallingConfig": calling}
    config = _generation_config(request, extra, upstream_model)
    if config:
        body["generationConfig"] = config
    return body


def model_path(model: str) -> str:
    """`models/<id>` for a bare model id; names with a collection (tunedModels/x) stay."""
    return model if "/" in model else f"models/{model}"


def embed_body(texts: Sequence[str], request: EmbedRequest, upstream_model: str) -> JSON:
    """A batchEmbedContents body: one EmbedContentRequest per input, in order."""
    extra: Any = orjson.loads(request.extra_json) if request.extra_json else {}
    extra = extra if isinstance(extra, dict) else {}
    common: JSON = {k: extra[k] for k in ("taskType", "title") if k in extra}
    if request.dimensions is not None:
        common["outputDimensionality"] = request.dimensions
    path = model_path(upstream_model)
    return {
        "requests": [
            {"model": path, "content": {"parts": [{"text": text}]}, **common} for text in texts
        ]
    }
