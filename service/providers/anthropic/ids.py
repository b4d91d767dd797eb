"""Tool-call ids Anthropic accepts, made from the ones a conversation carries.

Anthropic requires every `tool_use` id, and so every `tool_result`'s `tool_use_id`, to
match `^[a-zA-Z0-9_-]+$`, and refuses the whole request with a 400 otherwise. Other
providers mint ids Anthropic would refuse (`functions.get_weather:0`, ids with dots,
colons or spaces), and a conversation begun with one of them and continued with Claude
carries those ids in its history.

So before a conversation goes to Anthropic, each id that does not fit is replaced, and
only those: ids that fit (Anthropic's own `toolu_...`, OpenAI's `call_...`) pass as they
are. The replacement is a pure function of the conversation, so an assistant's tool call
and the tool message answering it always get the same id, and so does every later
request that re-sends the same history. It keeps the readable part of the id (its
characters outside the pattern become `_`) and adds a digest of the original, so two
different ids never meet; it is also checked against every id of the conversation that
fits as it is, so a replacement can never take an id that is already in use.

The other way needs no mapping: Anthropic's answers only carry ids Anthropic minted,
which fit by construction and reach the client unchanged; when the client sends them
back they pass untouched.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from service.domain.chat import Message

_FITS = re.compile(r"[a-zA-Z0-9_-]+")
_UNFIT_CHAR = re.compile(r"[^a-zA-Z0-9_-]")
_READABLE = 40  # characters of the original kept in a replacement, before the digest


def fits(tool_id: str) -> bool:
    """Whether Anthropic accepts `tool_id` as it is."""
    return _FITS.fullmatch(tool_id) is not None


def _ids(messages: Iterable[Message]) -> Iterable[str]:
    for message in messages:
        for call in message.tool_calls:
            yield call.id
        if message.role == "tool" and message.tool_call_id is not None:
            yield message.tool_call_id


def _replacement(original: str, taken: set[str]) -> str:
    readable = _UNFIT_CHAR.sub("_", original)[:_READABLE] or "call"
    stem = f"{readable}_{hashlib.sha256(original.encode()).hexdigest()[:12]}"
    candidate, n = stem, 1
    while candidate in taken:  # only if an id of the conversation already has this form
        n += 1
        candidate = f"{stem}_{n}"
    return candidate


def tool_ids(messages: Iterable[Message]) -> dict[str, str]:
    """The replacement for each id of `messages` that Anthropic would refuse (often none)."""
    ids = list(_ids(messages))
    unfit = [i for i in dict.fromkeys(ids) if not fits(i)]
    if not unfit:
        return {}
    taken = {i for i in ids if fits(i)}
    mapping: dict[str, str] = {}
    for original in unfit:  # in order of first appearance: deterministic
        mapping[original] = replacement = _replacement(original, taken)
        taken.add(replacement)
    return mapping
