"""wrk for saturation: a generated Lua script for the POST, numbers read back as JSON.

wrk (C, epoll) is the saturating client because a Python client would saturate before
the gateway does. The Lua script sets the body and Authorization once (no per-request
Lua, which would slow wrk down) and prints one `WRKJSON {...}` line from its `done` hook.
Errors are wrk's own counters: `status` counts responses with a status above 399, and
connect/read/write/timeout count socket failures. Latency percentiles are wrk's
(closed loop: they include queueing, which is what saturation means).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = [==[Bearer {key}]==]

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,' ..
    '"max_us":%.1f,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    rps: float
    errors: int  # non-2xx/3xx responses plus socket errors and timeouts
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def write_script(path: Path, body: bytes, key: str) -> Path:
    text = body.decode()
    if "]==]" in text or "]==]" in key:
        raise ValueError("the body or key cannot be quoted in a Lua long string")
    path.write_text(_LUA.format(body=text, key=key), encoding="utf-8")
    return path


def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    duration: float,
    cpu: int | str,
    timeout_s: float = 5.0,
) -> WrkResult:
    """One wrk run on one thread, pinned to `cpu`; bounded by its duration plus a margin."""
    argv = [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        argv, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            raw = json.loads(line[len("WRKJSON ") :])
            break
    else:
        raise RuntimeError(f"wrk printed no result (rc {proc.returncode}): {proc.stderr[-500:]}")
    seconds = raw["duration_us"] / 1e6
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return WrkResult(
        connections=connections,
        requests=raw["requests"],
        duration_s=seconds,
        rps=raw["requests"] / seconds if seconds else 0.0,
        errors=raw["status"] + socket_errors,
        status_errors=raw["status"],
        socket_errors=socket_errors,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )
