"""The moderator interface, and how a verdict becomes a 403."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from service import errors

MAX_FLAGGED_INPUT = 100


@dataclass(frozen=True, slots=True)
class Verdict:
    flagged: bool
    reasons: tuple[str, ...] = ()
    flagged_input: str = ""


CLEAN = Verdict(False)


class Moderator(Protocol):
    async def check(self, texts: Sequence[str]) -> Verdict: ...

    async def aclose(self) -> None: ...


def excerpt(text: str, limit: int = MAX_FLAGGED_INPUT) -> str:
    """At most `limit` characters, the middle elided with "..." when it is longer."""
    if len(text) <= limit:
        return text
    keep = limit - 3
    head = (keep + 1) // 2
    return text[:head] + "..." + text[len(text) - (keep - head) :]


def flagged_error(verdict: Verdict) -> errors.GatewayError:
    return errors.GatewayError(
        "MODERATION_FLAGGED",
        f"The input was flagged by moderation ({', '.join(verdict.reasons)}).",
        metadata={
            "reasons": "json:" + json.dumps(list(verdict.reasons)),
            "flagged_input": excerpt(verdict.flagged_input),
        },
    )
