"""A built-in moderator: categories of regular expressions, configured by the operator."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from service.moderation.base import CLEAN, Verdict


class RuleModerator:
    def __init__(self, categories: Mapping[str, Sequence[str]]) -> None:
        self._rules = {
            name: [re.compile(p, re.IGNORECASE) for p in patterns]
            for name, patterns in categories.items()
        }

    async def check(self, texts: Sequence[str]) -> Verdict:
        reasons: list[str] = []
        flagged = ""
        for text in texts:
            for name, patterns in self._rules.items():
                if name not in reasons and any(p.search(text) for p in patterns):
                    reasons.append(name)
                    flagged = flagged or text
        return Verdict(True, tuple(reasons), flagged) if reasons else CLEAN

    async def aclose(self) -> None:
        """Nothing to release."""
