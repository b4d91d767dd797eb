"""The access log: one line per call, as text or JSON, written off the request path.

A line names the request id, the key's id and name (never the key), the route, model
and provider, the status (the contract's HTTP status; 499 for a client that went away)
and error reason, the latency, the upstream's time, tokens, cost and upstream attempts.
Prompt and completion text appear only with `access_log.log_bodies: true`.

Lines are buffered and written by one timer callback a tenth of a second after the
first of them, or at once when many have queued, in one `write` each time: formatting a
line is the only work a request does for it. The buffer is bounded: past MAX_BUFFER
lines a write happens on the spot.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import IO

import orjson

from service.errors import REASON_STATUS
from service.telemetry.record import CallRecord
from service.telemetry.settings import AccessLogSettings

FLUSH_AFTER = 0.1  # seconds
MAX_BUFFER = 256  # lines
MAX_BODY_CHARS = 4000  # of a prompt or completion, with log_bodies


def _status(reason: str) -> int:
    return REASON_STATUS.get(reason, 500) if reason else 200


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_BODY_CHARS:
        return text
    return text[:MAX_BODY_CHARS] + "…"


class AccessLog:
    def __init__(self, settings: AccessLogSettings, stream: IO[str] | None = None) -> None:
        self.settings = settings
        self._json = settings.format == "json"
        self._bodies = settings.log_bodies
        self._owned = stream is None and settings.path != "-"
        if stream is not None:
            self._stream = stream
        elif settings.path == "-":
            self._stream = sys.stderr
        else:
            self._stream = open(settings.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""
        self._keys: dict[tuple[str, str], str] = {}  # the lines' key part, made once per key

    @property
    def bodies(self) -> bool:
        return self._bodies

    def _now(self) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is made once a second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def call(self, record: CallRecord, seconds: float) -> None:
        """The line for a call that ended."""
        status = _status(record.reason)
        if self._json:
            fields: dict[str, object] = {
                "time": self._now(),
                "request_id": record.request_id,
                "key_id": record.key_id,
                "key_name": record.key_name,
                "route": record.route,
                "model": record.model,
                "provider": record.provider,
                "status": status,
                "reason": record.reason,
                "latency_ms": round(seconds * 1000, 3),
                "upstream_ms": round(record.upstream_ms, 3),
                "tokens_in": record.tokens_in,
                "tokens_out": record.tokens_out,
                "cost": record.cost,
                "attempts": record.attempts,
            }
            if self._bodies:
                fields["prompt"] = _clip(record.prompt)
                fields["completion"] = _clip(record.completion)
            line = orjson.dumps(fields).decode()
        else:
            line = (
                f"{self._now()} access request_id={record.request_id}"
                f" {self._key(record.key_id, record.key_name)} route={record.route}"
                f" model={record.model} provider={record.provider} status={status}"
                f" reason={record.reason or '-'} latency_ms={seconds * 1000:.3f}"
                f" upstream_ms={record.upstream_ms:.3f} tokens_in={record.tokens_in}"
                f" tokens_out={record.tokens_out} cost={record.cost:.8g}"
                f" attempts={record.attempts}"
            )
            if self._bodies:
                line += (
                    f" prompt={orjson.dumps(_clip(record.prompt)).decode()}"
                    f" completion={orjson.dumps(_clip(record.completion)).decode()}"
                )
        self._add(line)

    def _key(self, key_id: str, name: str) -> str:
        part = self._keys.get((key_id, name))
        if part is None:
            if len(self._keys) >= 4096:
                self._keys.clear()
            part = f"key_id={key_id or '-'} key_name={orjson.dumps(name).decode()}"
            self._keys[(key_id, name)] = part
        return part

    def edge(self, request_id: str, method: str, path: str, status: int, seconds: float) -> None:
        """The line for an HTTP request that the HTTP layer answered alone (a 400 before
        any call, an unknown route). The path is the client's: it is quoted."""
        if self._json:
            line = orjson.dumps(
                {
                    "time": self._now(),
                    "request_id": request_id,
                    "route": "http",
                    "method": method,
                    "path": path[:256],
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                }
            ).decode()
        else:
            line = (
                f"{self._now()} access request_id={request_id} route=http method={method}"
                f" path={orjson.dumps(path[:256]).decode()} status={status}"
                f" latency_ms={seconds * 1000:.3f}"
            )
        self._add(line)

    def _add(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) >= MAX_BUFFER:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken log stream must not fail the requests it describes

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._stream.close()
