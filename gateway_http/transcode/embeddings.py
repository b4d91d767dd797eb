"""Embeddings: OpenAI request JSON -> `EmbedRequest`, `EmbedResponse` -> OpenAI JSON.

`encoding_format: base64` (the OpenAI SDK's default) is little-endian float32, which
is exactly what the proto's `repeated float` holds, so no precision is lost either way.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
from switchyard.v1 import embeddings_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.fields import JSON, integer, opt_int, opt_str
from gateway_http.transcode.routing import ROUTING_FIELDS, parse_routing

_HANDLED = frozenset({"model", "input", "encoding_format", "dimensions", "user"}) | ROUTING_FIELDS


def _is_token_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    )


def parse_embeddings(body: JSON) -> tuple[embeddings_pb2.EmbedRequest, str]:
    out = embeddings_pb2.EmbedRequest(model=opt_str(body, "model") or "")
    parse_routing(body, out)
    if not out.model:
        raise bad_request("'model' is required.", "model")
    raw = body.get("input")
    if raw is None:
        raise bad_request("'input' is required.", "input")
    if isinstance(raw, str):
        out.texts.append(raw)
    elif _is_token_list(raw):
        out.token_inputs.add(ids=[integer(t, "input") for t in raw])
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        out.texts.extend(raw)
    elif isinstance(raw, list) and raw and all(_is_token_list(x) for x in raw):
        for ids in raw:
            out.token_inputs.add(ids=[integer(t, "input") for t in ids])
    else:
        raise bad_request(
            "'input' must be a string, an array of strings, an array of token ids, "
            "or an array of token id arrays (and not empty).",
            "input",
        )
    encoding = opt_str(body, "encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    dimensions = opt_int(body, "dimensions")
    if dimensions is not None:
        out.dimensions = dimensions
    out.user = opt_str(body, "user") or ""
    extra = {k: v for k, v in body.items() if k not in _HANDLED and v is not None}
    if extra:
        out.extra_json = orjson.dumps(extra).decode()
    return out, encoding


def _base64(values: Any) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def embeddings_json(response: embeddings_pb2.EmbedResponse, encoding: str) -> JSON:
    encode = _base64 if encoding == "base64" else list
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": item.index, "embedding": encode(item.values)}
            for item in response.data
        ],
        "model": response.model,
        "provider": response.provider,
        "usage": {
            "prompt_tokens": response.usage.prompt_tokens,
            "total_tokens": response.usage.total_tokens,
        },
    }
