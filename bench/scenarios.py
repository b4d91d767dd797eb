"""The chat scenarios of issue 7, run the same way against any target.

A target is the mock itself (direct) or a gateway in front of it: the suites below
take only a URL, a model name and a key, so direct and gateway numbers come from the
same clients, the same bodies, the same rates and the same pinning, and "added" is a
plain subtraction. Each step is bounded by its duration plus a fixed margin.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import chat_body
from bench.machine import busy_seconds
from bench.procs import CLIENT_CPU, PYTHON, ROOT, cpu_seconds, pinned, rss_kib, tree_cpu_seconds
from bench.stats import summarize
from bench.wrk import run_wrk, write_script

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Settings:
    """Durations and loads; `QUICK` is the ~2-minute smoke run."""

    wrk_seconds: float = 10.0
    warmup: float = 2.0
    seconds: float = 10.0  # closed-loop and gRPC loadgen runs
    tail_seconds: float = 20.0  # the added-latency runs: 1,000 requests, 400 streams for p99
    many_seconds: float = 6.0
    many_ks: tuple[int, ...] = (64, 128, 256, 512)
    many_chunks: int = 50
    many_delay_ms: int = 20
    connections: tuple[int, ...] = (1, 16, 64)
    latency_rate: float = 50.0
    stream_rate: float = 20.0
    rate_rounds: int = 5  # fixed-rate runs: blocks per target, taken in turns
    grpc_concurrency: tuple[int, ...] = (16, 64)
    local_seconds: float = 8.0
    local_concurrency: tuple[int, ...] = (1, 8, 32)
    chat_seconds: float = 20.0

    @property
    def many_model(self) -> str:
        """The mock's per-request override: CHUNKS chunks DELAY ms apart."""
        return f"many@{self.many_chunks}x{self.many_delay_ms}"


FULL = Settings()
QUICK = Settings(
    wrk_seconds=2.0,
    warmup=1.0,
    seconds=2.0,
    tail_seconds=2.0,
    many_seconds=2.0,
    many_ks=(64, 256),
    local_seconds=2.0,
    chat_seconds=4.0,
    rate_rounds=1,
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a suite sends its load: the mock (direct) or a gateway."""

    label: str
    url: str  # http://127.0.0.1:PORT (HTTP) or 127.0.0.1:PORT (gRPC)
    key: str
    chat_model: str
    many_model: str
    pid: int | None = None  # the server process to account CPU and RSS to
    path: str = "/v1/chat/completions"
    # Request bodies for another front door: (non-streaming, streaming) JSON list files.
    bodies: tuple[str, str] | None = None

    def door(self, stream: bool) -> list[str]:
        """The loadgen arguments that send this target's own bodies to its path."""
        if self.bodies is None:
            return []
        return ["--path", self.path, "--body-file", self.bodies[1 if stream else 0]]


def loadgen(args: list[str], *, budget: float) -> JSON:
    """Run bench.loadgen pinned to the client core; its JSON result."""
    argv = pinned(CLIENT_CPU, [PYTHON, "-m", "bench.loadgen", *args])
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        argv, capture_output=True, text=True, timeout=budget + 60, check=False, cwd=ROOT
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"loadgen failed (rc {proc.returncode}): {proc.stderr[-800:]}")
    result: JSON = orjson.loads(lines[-1])
    return result


def _timing(settings: Settings, seconds: float | None = None) -> list[str]:
    return ["--duration", str(seconds or settings.seconds), "--warmup", str(settings.warmup)]


def wrk_suite(target: Target, settings: Settings, scratch: Path) -> JSON:
    """Non-streaming chat at each concurrency: a warm-up run, then the measured run.

    The target's CPU time (utime+stime) is read around each measured run and divided by
    the requests wrk completed in it: under each run as `cpu`, and at c=16 as the
    suite's `cpu` (the figure the other tables quote). With the target alone on its
    core, requests per CPU-second is its RPS per core even when the load generator's
    core is what stops it going faster.
    """
    body = orjson.dumps(chat_body(target.chat_model, stream=False))
    script = write_script(scratch / f"wrk-{target.label}.lua", body, target.key)
    url = target.url + "/v1/chat/completions"
    out: JSON = {}
    for connections in settings.connections:
        run_wrk(url, script, connections=connections, duration=settings.warmup, cpu=CLIENT_CPU)
        before = cpu_seconds(target.pid) if target.pid else 0.0
        result = run_wrk(
            url, script, connections=connections, duration=settings.wrk_seconds, cpu=CLIENT_CPU
        )
        out[str(connections)] = asdict(result)
        if target.pid:
            used = cpu_seconds(target.pid) - before
            cpu = {
                "cpu_seconds": used,
                "core_share_pct": used / result.duration_s * 100 if result.duration_s else None,
                "requests": result.requests,
                "ms_per_request": used * 1000 / result.requests if result.requests else None,
            }
            out[str(connections)]["cpu"] = cpu
            if connections == 16:
                out["cpu"] = cpu
    return out


def latency_at_rate(target: Target, settings: Settings, seconds: float) -> JSON:
    """Non-streaming chat at the fixed rate for `seconds` (one block of `interleaved`)."""
    args = ["http", "--url", target.url, "--key", target.key, "--model", target.chat_model]
    args += ["--rate", str(settings.latency_rate), "--raw", *_timing(settings, seconds)]
    args += target.door(stream=False)
    return loadgen(args, budget=seconds + settings.warmup)


def streaming_at_rate(target: Target, settings: Settings, seconds: float) -> JSON:
    """Streams opened at the fixed rate for `seconds` (one block of `interleaved`)."""
    args = ["http", "--url", target.url, "--key", target.key, "--model", target.chat_model]
    args += ["--stream", "--rate", str(settings.stream_rate), "--raw"]
    args += _timing(settings, seconds) + target.door(stream=True)
    return loadgen(args, budget=seconds + settings.warmup)


RateStep = Callable[[Target, Settings, float], JSON]


def interleaved(step: RateStep, targets: list[Target], settings: Settings) -> dict[str, JSON]:
    """A fixed-rate step for every target, in turns: each gets `rate_rounds` blocks of
    tail_seconds / rate_rounds (each after its own warm-up), and its blocks are pooled.

    Why: "added" is a difference of two runs, and this host drifts between faster and
    slower phases over minutes (added p50 at 50 req/s ranged 0.62-0.77 ms between A/B
    rounds on one day). Run one after the other, minutes apart, the direct and the
    gateway runs could land in different phases; in turns, every path sees the same ones.
    Each block keeps the target's own rate, so the gateway still sees 50 req/s.
    """
    rounds = settings.rate_rounds
    seconds = settings.tail_seconds / rounds
    blocks: dict[str, list[JSON]] = {t.label: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            blocks[target.label].append(step(target, settings, seconds))
    return {label: pooled(runs) for label, runs in blocks.items()}


def pooled(runs: list[JSON]) -> JSON:
    """One result from several runs of one target: counts summed, percentiles over all
    their samples (`--raw`, not kept), and each block's p50 (TTFT for streams) to show
    the spread."""
    raw = [run["raw"] for run in runs]

    def summary(kind: str) -> JSON | None:
        found = summarize(x for r in raw for x in r[kind])
        return asdict(found) if found is not None else None

    return {
        "mode": runs[0]["mode"],
        "blocks": len(runs),
        "duration_s": sum(r["duration_s"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "error_samples": [e for r in runs for e in r["error_samples"]][:5],
        "rps": sum(r["rps"] for r in runs) / len(runs),
        "tokens": sum(r["tokens"] for r in runs),
        "tokens_per_s": sum(r["tokens_per_s"] for r in runs) / len(runs),
        "max_send_lag_ms": max(r["max_send_lag_ms"] for r in runs),
        "latency": summary("latency"),
        "ttft": summary("ttft"),
        "gap": summary("gap"),
        "client_cpu_pct": max(r["client_cpu_pct"] for r in runs),
        "block_p50_ms": [(r["ttft"] or r["latency"] or {}).get("p50_ms") for r in runs],
    }


def many_streams(target: Target, settings: Settings) -> JSON:
    """K streams kept open (each worker reopens when one ends), ramped in over 1 s."""
    out: JSON = {}
    warmup = max(settings.warmup, 1.5)  # covers the 1 s ramp
    for k in settings.many_ks:
        args = ["http", "--url", target.url, "--key", target.key, "--model", target.many_model]
        args += ["--stream", "--concurrency", str(k), "--stagger", "1"]
        args += ["--duration", str(settings.many_seconds), "--warmup", str(warmup)]
        args += ["--timeout", "30"]
        out[str(k)] = loadgen(args, budget=settings.many_seconds + warmup + 30)
    return out


def grpc_suite(target: Target, settings: Settings) -> JSON:
    """ChatService over gRPC: closed-loop unary and streaming, fixed-rate unary and stream."""
    base = ["grpc", "--target", target.url, "--key", target.key, "--model", target.chat_model]
    budget = settings.seconds + settings.warmup
    out: JSON = {"closed": {}, "stream_closed": {}}
    for c in settings.grpc_concurrency:
        out["closed"][str(c)] = loadgen(
            [*base, "--concurrency", str(c), *_timing(settings)], budget=budget
        )
    out["rate"] = loadgen(
        [*base, "--rate", str(settings.latency_rate), *_timing(settings)], budget=budget
    )
    out["stream_rate"] = loadgen(
        [*base, "--stream", "--rate", str(settings.stream_rate), *_timing(settings)],
        budget=budget,
    )
    for c in settings.grpc_concurrency:
        out["stream_closed"][str(c)] = loadgen(
            [*base, "--stream", "--concurrency", str(c), *_timing(settings)], budget=budget
        )
    return out


# The fixed-rate steps are not here: they run for several targets in turns (`interleaved`).
HTTP_STEPS = ("wrk", "many")


def http_suite(
    target: Target,
    settings: Settings,
    scratch: Path,
    guard: Callable[[str, Callable[[], JSON]], JSON | None],
    steps: tuple[str, ...] = HTTP_STEPS,
) -> JSON:
    """The HTTP chat scenarios `steps` for one target; `guard` records a failed step and
    goes on."""
    out: JSON = {}
    for name, step in (
        ("wrk", lambda: wrk_suite(target, settings, scratch)),
        ("many", lambda: many_streams(target, settings)),
    ):
        if name not in steps:
            continue
        result = guard(f"{target.label}/{name}", step)
        if result is not None:
            out[name] = result
    if target.pid:
        with contextlib.suppress(OSError):  # a gateway that died is reported by the caller
            out["rss_kib"] = rss_kib(target.pid)
    return out


def workers_suite(run_gateway: Any, settings: Settings, scratch: Path) -> JSON:
    """Saturation RPS (wrk c=64) of one worker and of two, the gateway given both cores.

    `run_gateway(workers)` starts a gateway and returns (url, key, stop, pid). wrk runs
    unpinned here, beside the mock: the two workers get the cores they are meant to use.
    The gateway's CPU (the process and its workers) and the whole machine's are read
    around the measured run: what the load client and the mock take of the two cores
    (and the kernel's loopback work) is what the workers cannot have.
    """
    out: JSON = {}
    for workers in (1, 2):
        url, key, stop, pid = run_gateway(workers)
        try:
            body = orjson.dumps(chat_body("bench/chat", stream=False))
            script = write_script(scratch / f"wrk-workers-{workers}.lua", body, key)
            endpoint = url + "/v1/chat/completions"
            run_wrk(endpoint, script, connections=64, duration=settings.warmup, cpu="0,1")
            gateway_before, machine_before = tree_cpu_seconds(pid), busy_seconds()
            result = run_wrk(
                endpoint, script, connections=64, duration=settings.wrk_seconds, cpu="0,1"
            )
            gateway = tree_cpu_seconds(pid) - gateway_before
            machine = busy_seconds() - machine_before
            out[str(workers)] = asdict(result) | {
                "gateway_cpu_s": gateway,
                "others_cpu_s": max(0.0, machine - gateway),
                "gateway_ms_per_request": gateway * 1000 / result.requests
                if result.requests
                else None,
            }
        finally:
            stop()
    one, two = out["1"]["rps"], out["2"]["rps"]
    out["ratio"] = two / one if one else None
    return out
