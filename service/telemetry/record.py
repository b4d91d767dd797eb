"""`CallRecord`: what one call did, filled in by whoever learns it, read once at its end.

The record travels with the call: the observing wrapper makes it and files it under the
call's servicer context (`RECORDS`), `servicers.base.begin` puts it into the
`CallContext` that the gate and the engine receive. A context-variable would not do: a
stream's messages may be produced in different tasks (the HTTP layer's hold).
"""

from __future__ import annotations

from typing import Any

# The servicer context of each call in flight -> its record (dropped when the call ends).
RECORDS: dict[Any, CallRecord] = {}
# Label values when a call never chose a model or a provider.
NONE = "none"


class CallRecord:
    """One call's facts. Plain attributes, one object per call: the only allocation
    that observing a call adds."""

    __slots__ = (
        "attempts",
        "completion",
        "cost",
        "key_id",
        "key_name",
        "model",
        "probe",
        "prompt",
        "provider",
        "reason",
        "request_id",
        "route",
        "span",
        "started",
        "tokens_in",
        "tokens_out",
        "ttft",
        "upstream_ms",
    )

    def __init__(self, route: str, started: float) -> None:
        self.route = route
        self.started = started  # perf_counter seconds
        self.request_id = "-"
        self.key_id = ""
        self.key_name = ""
        self.model = NONE  # a configured model id, never the client's free text
        self.provider = NONE
        self.reason = ""  # the contract's ErrorInfo.reason of a failed call, "" if it succeeded
        self.probe = False  # the HTTP layer checking a key for an error answer: not a request
        self.attempts = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost = 0.0
        self.upstream_ms = 0.0
        self.ttft: float | None = None  # seconds to the first streamed delta
        self.prompt: str | None = None  # only with access_log.log_bodies
        self.completion: str | None = None
        self.span: Any = None  # the call's trace span, when tracing is on
