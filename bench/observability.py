"""What metrics, the access log and tracing cost (issue 18, item 6), in one run.

Three gateways on CPU 0, the same config but for its observability: `off` (metrics,
access log and tracing off), `on` (metrics and the access log on, as shipped, and
tracing configured but sampled at 0) and `traced` (the same, every call sampled, spans
exported to bench/otlp_sink.py on the clients' core). Each gets wrk c=64 saturation runs
in turns (`rounds` of them, after a warm-up), so that host drift between minutes lands
on all three alike. RPS per core is requests per CPU-second of the gateway process,
read from /proc around the measured runs: on a host whose other work takes CPU time
from the gateway's core (or the clients'), wall-clock RPS swings with it, while the
CPU each request costs does not.
"""

from __future__ import annotations

import socket
import statistics
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import chat_body
from bench.procs import CLIENT_CPU, PYTHON, Gateway, Proc, cpu_seconds, free_port, pinned, start
from bench.scenarios import Settings
from bench.wrk import run_wrk, write_script

JSON = dict[str, Any]
LABELS = ("off", "on", "traced")
CONNECTIONS = 64


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_sink(port: int, log_dir: Path) -> Proc:
    argv = pinned(CLIENT_CPU, [PYTHON, "-m", "bench.otlp_sink", "--port", str(port)])
    return start("otlp-sink", argv, log_dir, lambda: _listening(port))


def configs(base: Path, scratch: Path, sink_port: int) -> dict[str, Path]:
    """The three configs: the bench's own, and each label's observability sections."""
    text = base.read_text(encoding="utf-8")
    tracing = f"{{enabled: true, endpoint: 'http://127.0.0.1:{sink_port}', sample_ratio: %s}}"
    sections = {
        "off": "metrics: {enabled: false}\naccess_log: {enabled: false}\n"
        "tracing: {enabled: false}\n",
        "on": f"access_log: {{path: '{scratch / 'access-on.log'}'}}\ntracing: {tracing % 0}\n",
        "traced": f"access_log: {{path: '{scratch / 'access-traced.log'}'}}\n"
        f"tracing: {tracing % 1.0}\n",
    }
    out = {}
    for label, extra in sections.items():
        path = scratch / f"bench-{label}.yaml"
        path.write_text(text + extra, encoding="utf-8")
        out[label] = path
    return out


def suite(
    start_gateway: Callable[[str, Path], Gateway],
    base: Path,
    settings: Settings,
    scratch: Path,
    keep: Callable[[Proc], Proc],
    release: Callable[[Proc], None],
) -> JSON:
    rounds = max(1, settings.rate_rounds)
    sink_port = free_port()
    sink = keep(start_sink(sink_port, scratch))
    gateways: dict[str, Gateway] = {}
    try:
        for label, config in configs(base, scratch, sink_port).items():
            gateways[label] = start_gateway(f"gateway-obs-{label}", config)
        body = orjson.dumps(chat_body("bench/chat", stream=False))
        runs: dict[str, list[JSON]] = {label: [] for label in gateways}
        cpu: dict[str, float] = dict.fromkeys(gateways, 0.0)
        requests: dict[str, int] = dict.fromkeys(gateways, 0)
        for label, gw in gateways.items():  # a warm-up each, before any measured run
            script = write_script(scratch / f"wrk-obs-{label}.lua", body, gw.key)
            url = gw.url + "/v1/chat/completions"
            run_wrk(url, script, connections=CONNECTIONS, duration=settings.warmup, cpu=CLIENT_CPU)
        for _ in range(rounds):
            for label, gw in gateways.items():
                script = scratch / f"wrk-obs-{label}.lua"
                url = gw.url + "/v1/chat/completions"
                before = cpu_seconds(gw.proc.pid)
                result = run_wrk(
                    url,
                    script,
                    connections=CONNECTIONS,
                    duration=settings.wrk_seconds / rounds * 2,
                    cpu=CLIENT_CPU,
                )
                cpu[label] += cpu_seconds(gw.proc.pid) - before
                requests[label] += result.requests
                runs[label].append(asdict(result))
    finally:
        for gw in gateways.values():
            release(gw.proc)
        release(sink)
    out: JSON = {}
    for label, blocks in runs.items():
        rps = [b["rps"] for b in blocks]
        out[label] = {
            "rps": statistics.median(rps),
            "rps_rounds": rps,
            "errors": sum(b["errors"] for b in blocks),
            "ms_per_request": cpu[label] * 1000 / requests[label] if requests[label] else None,
            "rps_per_core": requests[label] / cpu[label] if cpu[label] else None,
        }
    off = out["off"]["rps_per_core"]
    for label in ("on", "traced"):
        mine = out[label]["rps_per_core"]
        out[label]["fewer_rps_pct"] = (1 - mine / off) * 100 if off and mine else None
    return out
