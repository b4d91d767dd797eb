"""The response cache's cost (issue 20): a hit beside a miss through the gateway and the
mock, and the semantic index's lookup at 100,000 entries.

Through the gateway (in-process channel, pinned to CPU 0, clients on CPU 1), the same
prompt four ways: `miss` goes to the upstream through a model without a cache (the
default path); `refresh` goes to the upstream through a caching model and stores the
answer each time (a miss's full cost with the cache on); `hit` is answered from the
exact cache; `semantic` is a paraphrase, answered from the semantic cache (an embedding
per request). Each gets wrk at 16 connections (RPS, the gateway's CPU per request) and
loadgen at a fixed rate (latency p50/p99), the fixed-rate blocks taken in turns.

The index is measured in this process: lookups in one bucket of N random unit vectors
(the worst case: every entry in one bucket), and the embedding of one question with
the built-in model, which every semantic lookup also pays.

    .venv/bin/python -m bench.cache           # ~3 minutes; also a step of `make bench`
    .venv/bin/python -m bench.cache --quick
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import scenarios
from bench.loadgen import MAX_TOKENS, PROMPT
from bench.procs import CLIENT_CPU, cpu_seconds, free_port, start_gateway, start_mock
from bench.scenarios import FULL, QUICK, Settings, Target
from bench.stats import summarize
from bench.wrk import run_wrk, write_script

JSON = dict[str, Any]
HERE = Path(__file__).resolve().parent
PARAPHRASE = "Please say hello to the benchmark."
SIZES = (1_000, 10_000, 100_000)


def config(path: Path, mock_port: int) -> Path:
    path.write_text(
        f"""providers:
  mock:
    kind: openai
    base_url: http://127.0.0.1:{mock_port}/v1
    api_key: bench-upstream
    timeout: 60
cache:
  max_entries: 100000
models:
  - id: bench/chat
    endpoints: [{{provider: mock, model: chat}}]
  - id: bench/cached
    endpoints: [{{provider: mock, model: chat}}]
    cache: {{ttl: 86400}}
  - id: bench/semantic
    endpoints: [{{provider: mock, model: chat}}]
    cache: {{ttl: 86400, semantic: true}}
""",
        encoding="utf-8",
    )
    return path


def body(model: str, prompt: str = PROMPT, **extra: Any) -> JSON:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        **extra,
    }


# label -> the request body sent over and over.
PATHS: dict[str, JSON] = {
    "miss": body("bench/chat"),
    "refresh": body("bench/cached", cache="refresh"),
    "hit": body("bench/cached"),
    "semantic": body("bench/semantic", PARAPHRASE),
}


def _wrk(url: str, key: str, pid: int, label: str, settings: Settings, scratch: Path) -> JSON:
    script = write_script(scratch / f"wrk-cache-{label}.lua", orjson.dumps(PATHS[label]), key)
    target = url + "/v1/chat/completions"
    run_wrk(target, script, connections=16, duration=settings.warmup, cpu=CLIENT_CPU)
    before = cpu_seconds(pid)
    result = run_wrk(target, script, connections=16, duration=settings.wrk_seconds, cpu=CLIENT_CPU)
    used = cpu_seconds(pid) - before
    return asdict(result) | {
        "cpu_ms_per_request": used * 1000 / result.requests if result.requests else None
    }


def _rate_step(scratch: Path, key: str) -> scenarios.RateStep:
    def step(target: Target, settings: Settings, seconds: float) -> JSON:
        bodies = scratch / f"bodies-{target.label}.json"
        bodies.write_bytes(orjson.dumps([PATHS[target.label]]))
        args = ["http", "--url", target.url, "--key", key, "--body-file", str(bodies)]
        args += ["--rate", str(settings.latency_rate), "--raw"]
        args += ["--duration", str(seconds), "--warmup", str(settings.warmup)]
        return scenarios.loadgen(args, budget=seconds + settings.warmup)

    return step


def _post(url: str, key: str, payload: JSON) -> str:
    """One chat request; its x-switchyard-cache header."""
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
        url + "/v1/chat/completions",
        data=orjson.dumps(payload),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        response.read()
        return str(response.headers.get("x-switchyard-cache"))


def _prime(url: str, key: str) -> None:
    """Fill the entries the hit paths read (loading the embeddings model), and check
    that each path is what its name says."""
    _post(url, key, PATHS["hit"])
    _post(url, key, body("bench/semantic"))
    for label, expected in (("miss", "miss"), ("hit", "hit"), ("semantic", "semantic-hit")):
        found = _post(url, key, PATHS[label])
        if found != expected:
            raise RuntimeError(f"bench.cache: the {label} path answered {found}, not {expected}")


def gateway_suite(settings: Settings, scratch: Path) -> JSON:
    mock_port = free_port()
    mock = start_mock(mock_port, scratch)
    gateway = None
    try:
        path = config(scratch / "cache.yaml", mock_port)
        gateway = start_gateway("gateway-cache", path, scratch / "data-cache", scratch)
        _prime(gateway.url, gateway.key)
        out: JSON = {"wrk": {}}
        for label in PATHS:
            out["wrk"][label] = _wrk(
                gateway.url, gateway.key, gateway.proc.pid, label, settings, scratch
            )
        targets = [Target(label, gateway.url, gateway.key, "", "") for label in PATHS]
        out["rate"] = scenarios.interleaved(_rate_step(scratch, gateway.key), targets, settings)
        for run in out["rate"].values():
            run.pop("raw", None)
        return out
    finally:
        if gateway is not None:
            gateway.proc.stop()
        mock.stop()


def _unit_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    rows = rng.standard_normal((n, 384), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def index_suite(lookups: int) -> JSON:
    """Lookups in one bucket of N entries: on the loop below THREAD_ROWS, on a thread
    above (what SemanticIndex.search does), timed end to end in an event loop."""
    from service.cache.semantic import SemanticIndex

    rng = np.random.default_rng(20)
    out: JSON = {}
    for n in SIZES:
        index = SemanticIndex(max_entries=n)
        rows = _unit_rows(n, rng)
        for i in range(n):
            index.add("bucket", f"k{i}", rows[i], "m", "p", "")
        queries = _unit_rows(lookups, rng)
        # Half the queries are near an entry (a hit), half are not (a miss).
        queries[::2] = rows[: len(queries[::2])] + 0.05 * queries[::2]
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)

        async def run(queries: np.ndarray = queries, index: SemanticIndex = index) -> list[float]:
            times = []
            for q in queries:
                began = time.perf_counter()
                await index.search("bucket", q, 0.9)
                times.append(time.perf_counter() - began)
            return times

        times = asyncio.run(run())
        found = summarize(times)
        out[str(n)] = asdict(found) if found is not None else None
        out[str(n)]["matrix_mb"] = n * 384 * 4 / 1e6
    return out


def embed_suite(lookups: int) -> JSON:
    """The built-in model embedding one question, one at a time (a lookup's other cost)."""
    from service.providers.local.embedder import LocalEmbedder

    async def run() -> list[float]:
        embedder = LocalEmbedder("bench")
        try:
            await embedder.vector("warm up")
            times = []
            for i in range(lookups):
                began = time.perf_counter()
                await embedder.vector(f"How do I reset the password of account {i}?")
                times.append(time.perf_counter() - began)
            return times
        finally:
            await embedder.aclose()

    found = summarize(asyncio.run(run()))
    return asdict(found) if found is not None else {}


def suite(settings: Settings, scratch: Path, quick: bool) -> JSON:
    lookups = 200 if quick else 1000
    return {
        "gateway": gateway_suite(settings, scratch),
        "index": index_suite(lookups),
        "embed": embed_suite(lookups // 4),
    }


def render(cache: JSON) -> str:
    """The markdown section of RESULTS.md."""
    lines = ["## Response cache (issue 20)", ""]
    wrk, rate = cache["gateway"]["wrk"], cache["gateway"]["rate"]
    lines += [
        "Same prompt through the gateway (in-process channel, CPU 0) and the mock. `miss`: a"
        " model without a cache; `refresh`: a caching model told to go upstream and store;"
        " `hit`: the exact cache; `semantic`: a paraphrase, from the semantic cache.",
        "",
        "| path | wrk c=16 RPS | gateway CPU ms/request | p50 ms at 50 req/s | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for label in PATHS:
        w, r = wrk.get(label, {}), rate.get(label, {})
        latency = r.get("latency") or {}
        cpu = w.get("cpu_ms_per_request")
        lines.append(
            f"| {label} | {w.get('rps', 0):,.0f} | {cpu if cpu is None else f'{cpu:.3f}'} | "
            f"{latency.get('p50_ms', 0):.2f} | {latency.get('p99_ms', 0):.2f} |"
        )
    lines += [
        "",
        "Semantic index lookup (one bucket of N entries, the worst case), and the embedding"
        " every semantic lookup pays first:",
        "",
        "| entries | matrix MB | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for n, found in cache["index"].items():
        lines.append(
            f"| {int(n):,} | {found['matrix_mb']:.0f} | {found['p50_ms']:.3f} | "
            f"{found['p99_ms']:.3f} | {found['max_ms']:.3f} |"
        )
    embed = cache["embed"]
    lines.append(
        f"| (embed one question) | | {embed.get('p50_ms', 0):.3f} | "
        f"{embed.get('p99_ms', 0):.3f} | {embed.get('max_ms', 0):.3f} |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.cache", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "cache.json")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="switchyard-bench-cache-"))
    try:
        result = suite(QUICK if args.quick else FULL, scratch, args.quick)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
