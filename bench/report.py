"""bench/RESULTS.md from the raw results: a table per scenario, and issue 7's targets.

Rendering only: every number comes from results.json, and pass/fail from
bench.targets, so the Markdown can always be regenerated from the JSON.
"""

from __future__ import annotations

from typing import Any

from bench.targets import STALL_MS, SUSTAIN, added, checks, first_stall, get

JSON = dict[str, Any]
CHANNELS = (("inprocess", "gateway, in-process channel"), ("grpc", "gateway, --channel grpc"))
PATHS = (("direct", "direct to mock"), *CHANNELS)
# Anthropic's Messages door on the in-process gateway (issue 19): same prompt, in turns.
MESSAGES = ("messages", "gateway, in-process, POST /v1/messages")
RESPONSES = ("responses", "gateway, in-process, POST /v1/responses")
# bench/forwarder.py, on the gateway's core: what the server and the upstream client cost.
FLOOR = ("forwarder", "thinnest forwarder (floor)")


def f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


def targets_section(results: JSON) -> str:
    rows = [[c.name, c.threshold, c.measured, _verdict(c.ok)] for c in checks(results)]
    return "## Targets (issue 7)\n\n" + table(["target", "threshold", "measured", "result"], rows)


def _interference(data: Any) -> str:
    if not isinstance(data, dict):
        return "—"
    text = (
        f"{data['other_cpu_s']:.1f} CPU s ({data['other_cpu_pct_of_machine']:.1f} % of the "
        f"machine); hypervisor steal {data['steal_s']:.1f} s"
    )
    if data["other_cpu_pct_of_machine"] > 5:
        return f"**{text}: the machine was shared, numbers are pessimistic**"
    return text


def _others(busy: Any) -> str:
    if busy is None:
        return "—"
    if not busy:
        return "none"
    return "; ".join(f"pid {b['pid']} ({b['cpu_s']} s): `{b['cmd'][:80]}`" for b in busy)


def header_section(results: JSON) -> str:
    meta = results.get("meta", {})
    versions = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())
    loads = [
        " / ".join(f"{x:.2f}" for x in meta.get(k) or []) for k in ("loadavg_start", "loadavg_end")
    ]
    rows = [
        ["date", f(meta.get("date"))],
        ["run", "quick (`--quick`, smoke durations)" if results.get("quick") else "full"],
        [
            "machine",
            f"{meta.get('cpu_model')}, {meta.get('cores')} cores, kernel {meta.get('kernel')}",
        ],
        ["commit", f"`{meta.get('commit')}`"],
        ["python", f(meta.get("python"))],
        ["packages", versions],
        ["load average (1/5/15 min) at start; at end", f"{loads[0]}; {loads[1]}"],
        ["pinning", "gateway on CPU 0 (taskset); mock upstream and all load clients on CPU 1"],
        ["CPU used by other processes during the run", _interference(meta.get("interference"))],
        ["long-lived ones among them (≥ 2 CPU s)", _others(meta.get("other_busy"))],
        ["total run time", f"{f(results.get('elapsed_s'), 0)} s"],
    ]
    return "# Switchyard benchmark results\n\n" + table(["", ""], rows)


def wrk_section(results: JSON) -> str:
    http = results.get("http", {})
    rows = []
    for c in ("1", "16", "64"):
        for key, label in (*PATHS, FLOOR):
            r = get(http, key, "wrk", c)
            if r is None:
                continue
            rows.append(
                [label, c, f(r["rps"], 0), f(r["p50_ms"], 3), f(r["p99_ms"], 3), f(r["errors"])]
            )
    cpu_rows = []
    for key, label in (*CHANNELS, FLOOR):
        cpu = get(http, key, "wrk", "cpu")
        if cpu is not None:
            ms = f(cpu["ms_per_request"], 3)
            share = f(cpu.get("core_share_pct"), 0)
            cpu_rows.append([label, f(cpu["cpu_seconds"], 2), share, f(cpu["requests"]), ms])
    return (
        "## Non-streaming chat, saturation (wrk, 1 thread, closed loop)\n\n"
        + table(["path", "connections", "RPS", "p50 ms", "p99 ms", "errors"], rows)
        + "\n\n### CPU per request (gateway utime+stime over the measured wrk c=16 run)\n\n"
        + table(["path", "CPU s", "% of core 0", "requests", "CPU ms / request"], cpu_rows)
        + "\n\nAt saturation the gateway should hold about 100 % of core 0; much less means "
        "something else ran there (see the header) or the gateway waited on something."
    )


def rate_section(results: JSON) -> str:
    http = results.get("http", {})
    rows = []
    for key, label in (*PATHS, MESSAGES, RESPONSES, FLOOR):
        r = get(http, key, "rate")
        lat = get(r, "latency")
        if r is None:
            continue
        rows.append(
            [
                label,
                f(r["requests"]),
                f(get(lat, "p50_ms"), 3),
                f(get(lat, "p90_ms"), 3),
                f(get(lat, "p99_ms"), 3),
                f(get(lat, "max_ms"), 3),
                f(r["errors"]),
                f(added(results, key, "rate", "latency", "p50_ms"), 3) if key != "direct" else "",
                f(added(results, key, "rate", "latency", "p99_ms"), 3) if key != "direct" else "",
                f(r["max_send_lag_ms"], 1),
            ]
        )
    rate = get(results, "settings", "latency_rate")
    header = ["path", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"]
    header += ["added p50 ms", "added p99 ms", "client max send lag ms"]
    layers = ""
    gateway = get(http, "inprocess", "rate", "latency", "p50_ms")
    floor = get(http, FLOOR[0], "rate", "latency", "p50_ms")
    if gateway is not None and floor is not None:
        layers = (
            f" Here the in-process gateway's own layers took {f(gateway - floor, 3)} ms of "
            "its p50 (gateway minus floor, measured in turns)."
        )
    return (
        f"## Latency at a fixed {f(rate, 0)} req/s (open loop, non-streaming)\n\n"
        + table(header, rows)
        + "\n\nThe floor is `bench/forwarder.py` on core 0: a bare ASGI callable under the "
        "gateway's uvicorn settings, posting each body unchanged through the gateway's "
        "upstream client. What it adds is the price of the server, the client, the extra "
        "loopback hops and the cores' wake-ups; the gateway adds its own layers on top." + layers
    )


def stream_section(results: JSON) -> str:
    http = results.get("http", {})
    rows = []
    for key, label in (*PATHS, MESSAGES, RESPONSES):
        r = get(http, key, "stream")
        if r is None:
            continue
        rows.append(
            [
                label,
                f(r["requests"]),
                f(get(r, "ttft", "p50_ms"), 3),
                f(get(r, "ttft", "p99_ms"), 3),
                f(get(r, "gap", "p50_ms"), 3),
                f(get(r, "gap", "p99_ms"), 3),
                f(r["errors"]),
                *(
                    f(added(results, key, "stream", *p), 3) if key != "direct" else ""
                    for p in (("ttft", "p50_ms"), ("ttft", "p99_ms"), ("gap", "p99_ms"))
                ),
            ]
        )
    s = results.get("settings", {})
    header = ["path", "streams", "TTFT p50 ms", "TTFT p99 ms", "gap p50 ms", "gap p99 ms"]
    header += ["errors", "added TTFT p50", "added TTFT p99", "added gap p99"]
    title = (
        f"## Streaming ({f(s.get('stream_chunks'))} chunks, {f(s.get('stream_delay_ms'))} ms "
        f"apart; {f(s.get('stream_rate'), 0)} streams/s, open loop)"
    )
    return title + "\n\n" + table(header, rows)


def many_section(results: JSON) -> str:
    http = results.get("http", {})
    s = results.get("settings", {})
    rows = []
    for k in sorted(get(http, "direct", "many") or {}, key=int):
        row = [k]
        errors, cpu, rates, ttfts = [], [], [], []
        for key, _ in PATHS:
            r = get(http, key, "many", k)
            row.append(f"{f(get(r, 'gap', 'p50_ms'), 2)} / {f(get(r, 'gap', 'p99_ms'), 2)}")
            if key != "direct":
                row.append(f(added(results, key, "many", k, "gap", "p99_ms"), 2))
            errors.append(f(get(r, "errors")))
            cpu.append(f(get(r, "client_cpu_pct"), 0))
            rates.append(f(get(r, "rps"), 0))
            ttfts.append(f(get(r, "ttft", "p50_ms"), 1))
        rows.append([*row, *(" / ".join(x) for x in (rates, ttfts, errors, cpu))])
    header = ["K", "direct gap p50 / p99 ms", "in-process gap p50 / p99", "added p99"]
    header += ["--channel grpc gap p50 / p99", "added p99"]
    header += ["streams/s (direct / in-proc / grpc)", "TTFT p50 ms (same order)"]
    header += ["errors (same order)", "client CPU % (same order)"]
    verdicts = []
    for key, label in CHANNELS:
        stall, ks = first_stall(results, key)
        if ks:
            verdicts.append(
                f"- {label}: first K with added inter-chunk p99 > {STALL_MS} ms, errors, or "
                f"< {SUSTAIN:.0%} of the direct streams/s: "
                + (f"**{stall}**" if stall else f"none up to {ks[-1]}")
            )
    title = (
        f"## Many concurrent streams ({f(s.get('many_chunks'))} chunks, "
        f"{f(s.get('many_delay_ms'))} ms apart; K streams kept open, reopened as they end)"
    )
    return title + "\n\n" + table(header, rows) + "\n\n" + "\n".join(verdicts)


def grpc_section(results: JSON) -> str:
    rows = []
    servers = (("null", "null gRPC server (client floor)"), ("gateway", "gateway --grpc-only"))
    for key, label in servers:
        suite = get(results, "grpc", key)
        if suite is None:
            continue
        runs = [(f"Complete, closed c={c}", r) for c, r in (suite.get("closed") or {}).items()]
        runs.append(("Complete, open loop", suite.get("rate")))
        runs.append(("Stream, open loop", suite.get("stream_rate")))
        runs += [
            (f"Stream, closed c={c}", r) for c, r in (suite.get("stream_closed") or {}).items()
        ]
        for what, r in runs:
            if r is None:
                continue
            stream = "Stream" in what
            rows.append(
                [
                    label,
                    what,
                    f(r["rps"], 0),
                    f(get(r, "latency", "p50_ms"), 3) if not stream else "",
                    f(get(r, "latency", "p99_ms"), 3) if not stream else "",
                    f(get(r, "ttft", "p50_ms"), 3) if stream else "",
                    f(get(r, "ttft", "p99_ms"), 3) if stream else "",
                    f(get(r, "gap", "p99_ms"), 3) if stream else "",
                    f(r["errors"]),
                    f(get(r, "client_cpu_pct"), 0),
                ]
            )
    header = ["server", "call, load", "calls/s", "p50 ms", "p99 ms", "TTFT p50", "TTFT p99"]
    header += ["gap p99", "errors", "client CPU %"]
    note = (
        "Open-loop rates as in the HTTP scenarios. The null server answers canned messages on "
        "CPU 0 with no upstream: its row is what the Python gRPC client itself can reach."
    )
    return "## gRPC clients straight to the service\n\n" + note + "\n\n" + table(header, rows)


def local_section(results: JSON) -> str:
    local = results.get("local") or {}
    raw, http = local.get("raw") or {}, local.get("http") or {}
    embed_rows = []
    for c in sorted(set(raw.get("embed") or {}) | set(http.get("embed") or {}), key=int):
        gw, base = get(http, "embed", c, "rps"), get(raw, "embed", c, "per_s")
        ratio = f"{gw / base:.2f}" if gw is not None and base else "—"
        embed_rows.append([c, f(gw, 1), f(base, 1), ratio, f(get(http, "embed", c, "errors"))])
    rerank_rows = [
        [
            c,
            f(r["rps"], 1),
            f(get(r, "latency", "p50_ms"), 2),
            f(get(r, "latency", "p99_ms"), 2),
            f(r["errors"]),
        ]
        for c, r in sorted((http.get("rerank") or {}).items(), key=lambda kv: int(kv[0]))
    ]
    rerank_rows.append(
        ["raw onnxruntime, one at a time", f(get(raw, "rerank", "per_s"), 1), "", "", ""]
    )
    chat_rows = [
        [
            "gateway HTTP, c=1",
            f(get(http, "chat", "tokens_per_s"), 1),
            f(get(http, "chat", "requests")),
        ],
        ["llama-cpp-python, raw", f(get(raw, "chat", "per_s"), 1), f(get(raw, "chat", "requests"))],
    ]
    parts = [
        "## Local models (embedded default, no --config)",
        "### Embeddings, all-MiniLM-L6-v2: sentences/s (HTTP: one sentence per request at "
        "concurrency N; raw: batches of N)",
        table(["N", "gateway HTTP", "raw onnxruntime", "gateway / raw", "errors"], embed_rows),
        "### Rerank (query + 10 documents): requests/s",
        table(["concurrency", "req/s", "p50 ms", "p99 ms", "errors"], rerank_rows),
    ]
    if http.get("chat") is not None or raw.get("chat") is not None:
        parts += [
            "### Chat, SmolLM2-135M-Instruct (greedy, 64 tokens max): completion tokens/s",
            table(["path", "tokens/s", "requests"], chat_rows),
        ]
    else:
        parts.append("Chat tokens/s: not measured (`import llama_cpp` fails in the venv).")
    return "\n\n".join(parts)


def shared_section(results: JSON) -> str:
    """Issue 17: the embedded default against Redis-shared limits, one limited key."""
    shared = results.get("shared")
    if not shared:
        return ""

    def per_core(label: str) -> float | None:
        """Requests per CPU-second of the gateway at c=64: its RPS per core."""
        ms = get(shared, label, "wrk", "64", "cpu", "ms_per_request")
        return 1000 / ms if ms else None

    rows = []
    base_per_core = per_core("embedded")
    base_p50 = get(shared, "embedded", "rate", "latency", "p50_ms")
    for label in ("embedded", "redis", "postgres+redis"):
        wrk = get(shared, label, "wrk")
        if wrk is None:
            continue
        rate = get(shared, label, "rate")
        p50 = get(rate, "latency", "p50_ms")
        core = per_core(label)
        rows.append(
            [
                label,
                f(get(wrk, "64", "rps"), 0),
                f(get(wrk, "64", "cpu", "core_share_pct"), 0),
                f(core, 0),
                f(core / base_per_core * 100, 0) + " %" if core and base_per_core else "",
                f(get(wrk, "cpu", "ms_per_request"), 3),
                f(p50, 3),
                f(p50 - base_p50, 3) if p50 is not None and base_p50 is not None else "",
                f(get(rate, "errors")),
            ]
        )
    header = ["state", "RPS c=64", "core % (c=64)", "RPS per core (c=64)", "vs embedded"]
    header += ["CPU ms/request (c=16)", "p50 ms at rate", "added p50 ms", "errors at rate"]
    return (
        "## Shared state: embedded vs Redis vs PostgreSQL + Redis (issue 17)\n\n"
        + table(header, rows)
        + "\n\nEvery gateway serves a key with every limit set (none binding), so each "
        "request runs the rate and credit checks: in process on the embedded default; on "
        "Redis one script (admit and reserve) before the call, and the finish and settle "
        "queued after it. The gateway is alone on CPU 0; redis-server, PostgreSQL, the mock "
        "and wrk share CPU 1 (bench/shared_state.py), whose saturation can cap the RPS "
        "column before the gateway's core is full (see core %), so RPS per core is the "
        "gateway's requests per CPU-second at c=64 (what a deployment, whose Redis and "
        "PostgreSQL run elsewhere, pays per core). Target: ≥ 70 % of the embedded RPS per "
        "core, added p50 (at the fixed rate) within +0.3 ms."
    )


def ceiling_section(results: JSON) -> str:
    c = results.get("ceiling") or {}
    runs = [("bench.loadgen http, closed c=16", "mock on CPU 0", get(c, "loadgen"))]
    runs.append(("wrk, c=64", "mock on CPU 0", get(c, "wrk")))
    for conc, r in (get(results, "grpc", "null", "closed") or {}).items():
        runs.append((f"bench.loadgen grpc, closed c={conc}", "null gRPC on CPU 0", r))
    rows = [
        [
            client,
            server,
            f(get(r, "rps"), 0),
            f(get(r, "errors")),
            f(get(r, "client_cpu_pct"), 0),
        ]
        for client, server, r in runs
    ]
    title = "## Load client ceilings (clients on CPU 1 against a server alone on CPU 0)"
    return title + "\n\n" + table(["client", "server", "RPS", "errors", "client CPU %"], rows)


def method_section() -> str:
    return """## Method

- Every scenario runs direct to the mock and through the gateway in the same run, with the
  same client, body, rate and pinning; "added" = gateway − direct.
- The fixed-rate runs (latency at 50 req/s, streaming) take turns: direct, in-process,
  --channel grpc (and the floor), block after block, each block after its own warm-up and
  at the path's full rate; each path's blocks are pooled. The host drifts between faster
  and slower phases over minutes, and in turns every path sees the same phases. The
  spread of the blocks' p50s is in `bench/results.json` (`block_p50_ms`).
- Warm-up excluded: wrk runs a separate unrecorded warm-up at the same concurrency; the
  Python driver sends but does not record requests begun during its warm-up.
- Open loop: requests leave on a fixed schedule whatever the server does; latency is from
  the moment the request is written to the last byte parsed (TTFT: to the first chunk that
  carries choices; gaps: between such chunks, as they arrive at the client).
- Throughput counts every call that ended inside the measured window; latencies are of
  the calls begun after the warm-up.
- An "added" percentile below −0.25 ms cannot be real (a gateway does not remove latency):
  it is noise in the direct run's tail and the target reads "inconclusive", never "pass".
- Many streams: K workers each keep one stream open and reopen it when it ends. A K
  stalls on an added inter-chunk p99 above 2 ms, on any error, or when the gateway
  completes under 90 % of the direct run's streams/s: a gateway slow to open streams
  throttles the closed loop, so fewer streams are live and their gaps alone look fine.
- Errors: wrk's own counters (status > 399, socket errors, timeouts); the Python driver
  counts non-200 answers, in-stream error events, empty streams, timeouts and socket
  failures.
- CPU per request: utime+stime of the gateway process (all threads) from /proc/<pid>/stat
  around the measured wrk c=16 run, divided by the requests wrk completed in it.
- The mock upstream is `bench/mock_upstream.py` (asyncio.Protocol, httptools, canned bytes,
  uvloop); the load driver is `bench/loadgen.py`; raw JSON numbers are in `bench/results.json`.
- The mock and the Python driver run with the cyclic garbage collector off (after
  `gc.freeze()`): the mock's own collections paused it for 8-16 ms at 256 streams, and the
  burst of overdue chunks it then sent, not the gateway, set both runs' gap p99. The
  gateway keeps its collector on (DESIGN §9: young threshold 25,000)."""


def failures_section(results: JSON) -> str:
    failed = results.get("failures") or []
    if not failed:
        return ""
    return "## Steps that failed\n\n" + "\n".join(f"- `{name}`: {msg}" for name, msg in failed)


def observability_section(results: JSON) -> str:
    """Issue 18: what metrics, the access log and tracing cost (bench/observability.py)."""
    data = get(results, "observability")
    if not isinstance(data, dict):
        return ""
    rows = []
    for label, what in (
        ("off", "metrics, access log, tracing off"),
        ("on", "metrics + access log on, tracing sampled at 0 (as shipped, traced)"),
        ("traced", "metrics + access log on, tracing sampled at 100 %"),
    ):
        run = data.get(label) or {}
        rounds = ", ".join(f"{r:,.0f}" for r in run.get("rps_rounds", []))
        rows.append(
            [
                what,
                f(run.get("rps_per_core"), 0),
                f(run.get("fewer_rps_pct"), 1) if label != "off" else "—",
                f(run.get("ms_per_request"), 3),
                f(run.get("rps"), 0),
                rounds or "—",
                f(run.get("errors")),
            ]
        )
    header = ["gateway (CPU 0, wrk c=64)", "RPS per core", "% fewer", "CPU ms/req"]
    header += ["wall RPS (median)", "wall RPS by round", "errors"]
    note = (
        "RPS per core: requests per CPU-second of the gateway process, the three taken in "
        "turns (bench/observability.py)."
    )
    return "## Observability cost (issue 18)\n\n" + table(header, rows) + "\n\n" + note


def cache_section(results: JSON) -> str:
    """The response cache's rows (bench/cache.py), when the run measured them."""
    from bench import cache  # bench.cache imports the service: only when there are rows

    found = results.get("cache")
    return cache.render(found).strip() if found else ""


def render(results: JSON, soak_section: str = "") -> str:
    sections = [
        header_section(results),
        targets_section(results),
        wrk_section(results),
        observability_section(results),
        rate_section(results),
        stream_section(results),
        many_section(results),
        grpc_section(results),
        shared_section(results),
        local_section(results),
        cache_section(results),
        ceiling_section(results),
        failures_section(results),
        method_section(),
        soak_section.strip(),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"
