"""`make soak`: the gateway's memory under a steady load, for issue 7's "RSS growth ≤ 10 %".

The gateway (in-process channel, the default) runs pinned to CPU 0 in front of the
mock; two open-loop drivers on CPU 1 send ~200 non-streaming req/s and a few streams
per second for `--minutes` (10 by default). VmRSS is read from /proc/<pid>/status
every 10 s. Growth is measured from the end of the warm-up (the first minute, or a
fifth of a shorter soak: caches, pools and allocator arenas fill there) to the end,
because memory that keeps growing after that is what leaks look like.

The result goes to bench/soak.json and into bench/RESULTS.md: re-rendered whole from
results.json when a `make bench` result exists (so the targets table picks it up),
else as a section of its own.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.machine import describe
from bench.procs import (
    CLIENT_CPU,
    PYTHON,
    ROOT,
    Proc,
    free_port,
    pinned,
    rss_kib,
    start_gateway,
    start_mock,
)
from bench.report import render, table
from bench.run import HERE, SOAK_HEADING, STREAM_CHUNKS, STREAM_DELAY_MS, gateway_config
from bench.scenarios import FULL

JSON = dict[str, Any]
RATE = 200.0
STREAM_RATE = 5.0
INTERVAL = 10.0


def _driver(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    argv = pinned(CLIENT_CPU, [PYTHON, "-m", "bench.loadgen", *args])
    with log.open("wb") as out, log.with_suffix(".err").open("wb") as err:
        return subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT)  # noqa: S603


def _driver_result(log: Path) -> JSON | None:
    lines = log.read_text().strip().splitlines() if log.exists() else []
    return orjson.loads(lines[-1]) if lines else None


def slope_kib_per_min(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS over time, in KiB per minute."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return cov / var * 60


def soak(minutes: float, scratch: Path) -> JSON:
    total = minutes * 60
    warmup = min(60.0, total / 5)
    started: list[Proc] = []
    drivers: list[subprocess.Popen[bytes]] = []
    try:
        mock_port = free_port()
        started.append(
            start_mock(mock_port, scratch, chunks=STREAM_CHUNKS, delay_ms=STREAM_DELAY_MS)
        )
        config = gateway_config(scratch / "bench.yaml", mock_port, FULL)
        gw = start_gateway("gateway-soak", config, scratch / "data", scratch)
        started.append(gw.proc)
        pid = gw.proc.pid
        rss_idle = rss_kib(pid)
        common = ["http", "--url", gw.url, "--key", gw.key, "--model", "bench/chat"]
        timing = ["--duration", str(total), "--warmup", "0"]
        logs = [scratch / "soak-chat.json", scratch / "soak-stream.json"]
        drivers.append(_driver([*common, "--rate", str(RATE), *timing], logs[0]))
        drivers.append(_driver([*common, "--stream", "--rate", str(STREAM_RATE), *timing], logs[1]))
        began = time.monotonic()
        samples: list[tuple[float, int]] = []
        deadline = began + total + 60  # the drivers' own grace on top of the duration
        while time.monotonic() < deadline and any(d.poll() is None for d in drivers):
            time.sleep(min(INTERVAL, max(0.0, deadline - time.monotonic())))
            elapsed = time.monotonic() - began
            if elapsed <= total + 1 and gw.proc.alive():
                samples.append((round(elapsed, 1), rss_kib(pid)))
                print(f"[soak] {elapsed:6.0f} s  RSS {samples[-1][1] / 1024:8.1f} MiB", flush=True)
        alive = gw.proc.alive()
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.terminate()
                driver.wait(timeout=10)
        for proc in reversed(started):
            proc.stop()
    settled = next(((t, r) for t, r in samples if t >= warmup), None)
    after_warmup = settled[1] if settled else None
    end = samples[-1][1] if samples else None
    growth = (end - after_warmup) / after_warmup * 100 if end and after_warmup else None
    return {
        "meta": describe(),
        "minutes": minutes,
        "rate": RATE,
        "stream_rate": STREAM_RATE,
        "warmup_s": warmup,
        "after_warmup_at_s": settled[0] if settled else None,
        "rss_idle_kib": rss_idle,
        "rss_after_warmup_kib": after_warmup,
        "rss_end_kib": end,
        "rss_max_kib": max((r for _, r in samples), default=None),
        "growth_pct": growth,
        "slope_kib_per_min": slope_kib_per_min([s for s in samples if s[0] >= warmup]),
        "gateway_alive_at_end": alive,
        "samples": samples,
        "chat": _driver_result(logs[0]),
        "stream": _driver_result(logs[1]),
    }


def _mib(kib: Any) -> str:
    return f"{kib / 1024:.1f} MiB" if isinstance(kib, int | float) else "—"


def section(data: JSON) -> str:
    meta = data["meta"]
    chat, stream = data.get("chat") or {}, data.get("stream") or {}
    growth = data.get("growth_pct")
    verdict = "—" if growth is None else ("pass" if growth <= 10 else "FAIL")
    slope = data.get("slope_kib_per_min")
    lat = chat.get("latency") or {}
    rows = [
        ["date, commit", f"{meta['date']}, `{meta['commit']}`"],
        [
            "load",
            f"{data['minutes']:g} min: {data['rate']:g} req/s non-streaming + "
            f"{data['stream_rate']:g} streams/s ({STREAM_CHUNKS} chunks, {STREAM_DELAY_MS:g} ms "
            "apart), open loop; gateway in-process channel on CPU 0",
        ],
        ["RSS before warm-up (idle, after start)", _mib(data["rss_idle_kib"])],
        [
            f"RSS after warm-up ({data['warmup_s']:.0f} s; sample at "
            f"{data.get('after_warmup_at_s') or 0:.0f} s)",
            _mib(data["rss_after_warmup_kib"]),
        ],
        ["RSS at end / max", f"{_mib(data['rss_end_kib'])} / {_mib(data['rss_max_kib'])}"],
        [
            "growth after warm-up (target ≤ 10 %)",
            f"{growth:.1f} % ({verdict})" if growth is not None else "—",
        ],
        ["trend after warm-up", f"{slope:+.0f} KiB/min" if slope is not None else "—"],
        [
            "non-streaming: requests, errors, p50 / p99",
            f"{chat.get('requests')}, {chat.get('errors')}, "
            f"{lat.get('p50_ms', 0):.2f} / {lat.get('p99_ms', 0):.2f} ms",
        ],
        ["streams: completed, errors", f"{stream.get('requests')}, {stream.get('errors')}"],
        ["gateway alive at end", "yes" if data.get("gateway_alive_at_end") else "**no**"],
    ]
    series = ", ".join(f"{t:.0f}s {r / 1024:.1f}" for t, r in data.get("samples") or [])
    return (
        f"{SOAK_HEADING} (`make soak`)\n\n"
        + table(["", ""], rows)
        + f"\n\nRSS samples (MiB, every {INTERVAL:.0f} s): {series}\n"
    )


def write(data: JSON, out_dir: Path) -> Path:
    (out_dir / "soak.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    results_md = out_dir / "RESULTS.md"
    results_json = out_dir / "results.json"
    if results_json.exists():
        results = orjson.loads(results_json.read_bytes())
        results["soak"] = data
        results_json.write_bytes(
            orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        )
        results_md.write_text(render(results, section(data)), encoding="utf-8")
        return results_md
    head = "# Switchyard benchmark results\n\n(`make bench` has not been run here yet.)\n\n"
    results_md.write_text(head + section(data), encoding="utf-8")
    return results_md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="switchyard-soak-"))
    ok = False
    try:
        data = soak(args.minutes, scratch)
        path = write(data, args.out)
        growth = data.get("growth_pct")
        ok = bool(data.get("gateway_alive_at_end")) and growth is not None
        shown = "—" if growth is None else f"{growth:.1f}"
        print(f"[soak] RSS growth after warm-up: {shown} %; wrote {path}")
    finally:
        if ok:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"[soak] logs kept in {scratch}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
