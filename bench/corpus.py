"""The inputs of the local-model scenarios, shared by the HTTP run and the raw baseline.

Both sides must see exactly the same texts in the same order, or the comparison says
nothing; they are generated deterministically (no data set to download), varied in
length like real sentences (about 8 to 20 words).
"""

from __future__ import annotations

import itertools

_SUBJECTS = (
    "The gateway",
    "A small language model",
    "Our on-call engineer",
    "The billing service",
    "Every request in the queue",
    "The nightly batch job",
    "A customer in Lisbon",
    "The embedding index",
)
_VERBS = (
    "forwards",
    "summarises",
    "rejects",
    "caches",
    "retries",
    "ranks",
    "measures",
    "streams",
)
_OBJECTS = (
    "the reply",
    "a long document about distributed consensus",
    "the invoice for last month",
    "every token it receives",
    "the search results by relevance to the question",
    "a stack trace from the failing deployment",
    "the weather forecast for the coming weekend in northern Portugal",
    "the latency of each upstream provider",
)
_TAILS = ("", " before lunch", " without any errors at all", " as quickly as it possibly can")

SENTENCES: tuple[str, ...] = tuple(
    f"{s} {v} {o}{t}."
    for (s, v, o), t in zip(
        itertools.islice(itertools.product(_SUBJECTS, _VERBS, _OBJECTS), 0, None, 7),
        itertools.cycle(_TAILS),
        strict=False,
    )
)[:64]

RERANK_QUERY = "Which service retries failed requests to upstream providers?"
RERANK_DOCUMENTS: tuple[str, ...] = SENTENCES[:10]

CHAT_PROMPT = "Write two sentences about why benchmarks should be reproducible."
CHAT_MAX_TOKENS = 64
