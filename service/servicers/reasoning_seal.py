"""Reasoning details sealed in an opaque string a client hands back unchanged.

Providers sign their reasoning and refuse a tool loop without it (Gemini 3's thought
signatures, Anthropic's thinking); a door whose wire format has no field for another
provider's reasoning carries it in the opaque field it does have: a Responses
reasoning item's `encrypted_content`, a Messages `redacted_thinking` block's `data`.
Clients return both as they got them (the Agents SDK, Codex, the Anthropic SDKs' tool
loops), so the details come back whole.

The envelope is self-describing: `sy1:` then base64url of the details' JSON (their
type, format, the tool call they belong to, the signature or data). The colon never
occurs in base64 (Anthropic's own redacted data, OpenAI's encrypted content), so a
string is ours exactly when it has the prefix; one that has it but does not decode is
a 400 naming the field, never a silent loss of the signatures.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict
from typing import Any

import orjson

from service import errors
from service.domain.chat import ReasoningDetail

PREFIX = "sy1:"
DETAIL_TYPES = frozenset({"reasoning.text", "reasoning.encrypted", "reasoning.summary"})
_STRINGS = frozenset({"type", "text", "signature", "data", "summary", "id", "format"})


def is_sealed(content: str) -> bool:
    return content.startswith(PREFIX)


def seal(details: tuple[ReasoningDetail, ...]) -> str:
    """The details as one opaque string ("" for none)."""
    if not details:
        return ""
    fields = [{k: v for k, v in asdict(d).items() if v is not None} for d in details]
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(fields)).decode()


def _detail(value: Any, param: str) -> ReasoningDetail:
    if not isinstance(value, dict) or value.get("type") not in DETAIL_TYPES:
        raise ValueError
    for name, field in value.items():
        if name == "index":
            if not isinstance(field, int) or isinstance(field, bool):
                raise ValueError
        elif name not in _STRINGS or not isinstance(field, str):
            raise ValueError
    return ReasoningDetail(**value)


def unseal(content: str, param: str) -> tuple[ReasoningDetail, ...]:
    """The details sealed in `content`; () for content this gateway did not write (another
    provider's own opaque data). Ours but damaged: a 400 naming `param`."""
    if not content.startswith(PREFIX):
        return ()
    try:
        fields = orjson.loads(base64.urlsafe_b64decode(content[len(PREFIX) :]))
        if not isinstance(fields, list) or not fields:
            raise ValueError
        return tuple(_detail(f, param) for f in fields)
    except (binascii.Error, ValueError, TypeError):
        raise errors.invalid_request(
            f"'{param}' is damaged: it must be returned exactly as the gateway sent it.", param
        ) from None
