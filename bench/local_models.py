"""Local models: the built-in MiniLM and SmolLM2 through the gateway vs. run raw.

The gateway runs the embedded default (no --config) on CPU 0; the raw baselines
(bench.local_raw) run on CPU 0 too, while the gateway is not running, on the same
inputs. HTTP embeddings send one sentence per request at concurrency 1/8/32 (the
gateway batches across requests); raw runs batches of 1/8/32 sentences, which is
the best the gateway's batcher could do.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench.corpus import CHAT_MAX_TOKENS, CHAT_PROMPT, RERANK_DOCUMENTS, RERANK_QUERY, SENTENCES
from bench.procs import GATEWAY_CPU, PYTHON, ROOT, Gateway, pinned
from bench.scenarios import Settings, loadgen

JSON = dict[str, Any]
EMBED_MODEL = "local/all-minilm-l6-v2"
CHAT_MODEL = "local/smollm2-135m-instruct"
RERANK_CONCURRENCY = (1, 8)


def llama_available() -> bool:
    probe = [PYTHON, "-c", "import llama_cpp"]
    return subprocess.run(probe, capture_output=True, check=False, timeout=60).returncode == 0  # noqa: S603


def raw(what: str, extra: list[str], budget: float) -> JSON:
    argv = pinned(GATEWAY_CPU, [PYTHON, "-m", "bench.local_raw", what, *extra])
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        argv, capture_output=True, text=True, timeout=budget + 120, check=False, cwd=ROOT
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"local_raw {what} failed (rc {proc.returncode}): {proc.stderr[-800:]}")
    result: JSON = orjson.loads(lines[-1])
    return result


def raw_suite(settings: Settings, guard: Callable[[str, Callable[[], JSON]], JSON | None]) -> JSON:
    timing = ["--duration", str(settings.local_seconds), "--warmup", "1"]
    out: JSON = {"embed": {}}
    for batch in settings.local_concurrency:
        args = ["--batch", str(batch), *timing]
        result = guard(f"raw/embed-{batch}", partial(raw, "embed", args, settings.local_seconds))
        if result is not None:
            out["embed"][str(batch)] = result
    out["rerank"] = guard("raw/rerank", lambda: raw("rerank", timing, settings.local_seconds))
    if llama_available():
        chat = ["--duration", str(settings.chat_seconds)]
        out["chat"] = guard("raw/chat", lambda: raw("chat", chat, settings.chat_seconds))
    return out


def write_bodies(scratch: Path) -> dict[str, Path]:
    bodies = {
        "embed": [{"model": EMBED_MODEL, "input": s} for s in SENTENCES],
        "rerank": [
            {"model": EMBED_MODEL, "query": RERANK_QUERY, "documents": list(RERANK_DOCUMENTS)}
        ],
        "chat": [
            {
                "model": CHAT_MODEL,
                "messages": [{"role": "user", "content": CHAT_PROMPT}],
                "max_tokens": CHAT_MAX_TOKENS,
                "temperature": 0,
                "seed": 1,
            }
        ],
    }
    paths = {}
    for name, content in bodies.items():
        path = scratch / f"body-{name}.json"
        path.write_bytes(orjson.dumps(content))
        paths[name] = path
    return paths


def http_suite(
    gateway: Gateway,
    settings: Settings,
    scratch: Path,
    guard: Callable[[str, Callable[[], JSON]], JSON | None],
) -> JSON:
    bodies = write_bodies(scratch)
    # The first requests load the models; the warm-up keeps that out of the numbers.
    warm = ["--warmup", str(max(settings.warmup, 3.0))]

    def run(path: str, body: str, concurrency: int, seconds: float, *extra: str) -> JSON:
        args = ["http", "--url", gateway.url, "--key", gateway.key, "--path", path]
        args += ["--body-file", str(bodies[body]), "--concurrency", str(concurrency)]
        args += ["--duration", str(seconds), *warm, "--timeout", "60", *extra]
        return loadgen(args, budget=seconds + 60)

    out: JSON = {"embed": {}, "rerank": {}}
    seconds = settings.local_seconds
    for c in settings.local_concurrency:
        result = guard(f"local/embed-c{c}", partial(run, "/v1/embeddings", "embed", c, seconds))
        if result is not None:
            out["embed"][str(c)] = result
    for c in RERANK_CONCURRENCY:
        result = guard(f"local/rerank-c{c}", partial(run, "/v1/rerank", "rerank", c, seconds))
        if result is not None:
            out["rerank"][str(c)] = result
    if llama_available():
        out["chat"] = guard(
            "local/chat",
            lambda: run("/v1/chat/completions", "chat", 1, settings.chat_seconds, "--count-tokens"),
        )
    return out
