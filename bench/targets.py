"""Issue 7's targets, checked against the numbers of one run.

Pass/fail is computed from results.json, never typed by hand; a target whose scenario
did not run is "not measured" (None), not a pass. "Added" is always the gateway's
number minus the direct-to-mock number of the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
STALL_MS = 2.0  # added inter-chunk p99 above this is a stall
SUSTAIN = 0.9  # below this share of the direct run's streams/s, the gateway fell behind
NOISE_MS = 0.25  # an "added" value below -NOISE_MS cannot be real: the direct tail was noisier


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    threshold: str
    measured: str
    ok: bool | None  # None: not measured


def get(data: Any, *keys: str) -> Any:
    """data[k1][k2]..., or None as soon as a level is missing."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def minus(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) - float(b)
    return None


def added(results: JSON, channel: str, *path: str) -> float | None:
    """The gateway's value at `path` minus the direct run's, same run."""
    http = results.get("http", {})
    return minus(get(http, channel, *path), get(http, "direct", *path))


def sustained(results: JSON, channel: str, k: str) -> float | None:
    """The gateway's completed streams/s as a share of the direct run's, at K streams."""
    mine = get(results, "http", channel, "many", k, "rps")
    theirs = get(results, "http", "direct", "many", k, "rps")
    return mine / theirs if isinstance(mine, int | float) and theirs else None


def first_stall(results: JSON, channel: str) -> tuple[str | None, list[str]]:
    """The first K at which the gateway stalls, and every K measured.

    A stall is an added inter-chunk p99 above STALL_MS, any error, or a stream rate
    below SUSTAIN of the direct run's. The last one matters: a gateway too slow to
    open streams throttles the closed loop, so fewer streams are live at once and the
    gaps of those few look fine while K streams were never really served.
    """
    ks = sorted(get(results, "http", "direct", "many") or {}, key=int)
    for k in ks:
        extra = added(results, channel, "many", k, "gap", "p99_ms")
        errors = get(results, "http", channel, "many", k, "errors")
        share = sustained(results, channel, k)
        if extra is None or extra > STALL_MS or errors or share is None or share < SUSTAIN:
            return k, ks
    return None, ks


def _rps(name: str, run: Any, floor: float) -> Check:
    threshold = f"≥ {floor:,.0f}, 0 errors"
    rps, errors = get(run, "rps"), get(run, "errors")
    if rps is None:
        return Check(name, threshold, "not measured", None)
    return Check(name, threshold, f"{rps:,.0f} ({errors} errors)", rps >= floor and errors == 0)


def _at_most(name: str, value: float | None, ceiling: float) -> Check:
    if value is None:
        return Check(name, f"≤ {ceiling} ms", "not measured", None)
    if value < -NOISE_MS:  # a gateway cannot remove latency: this is noise in the direct run
        return Check(name, f"≤ {ceiling} ms", f"{value:.3f} ms: inconclusive, re-run", None)
    return Check(name, f"≤ {ceiling} ms", f"{value:.3f} ms", value <= ceiling)


def _grpc_direct(results: JSON) -> Check:
    name = "gRPC clients straight to the service: unary RPS (best of c=16/64)"
    closed = get(results, "grpc", "gateway", "closed") or {}
    if not closed:
        return Check(name, "≥ 2,500, 0 errors", "not measured", None)
    best = max(closed.values(), key=lambda r: float(r["rps"]))
    errors = sum(int(r["errors"]) for r in closed.values())
    return _rps(name, {"rps": best["rps"], "errors": errors}, 2500)


def _streams(results: JSON) -> Check:
    name = "in-process: ≥ 256 concurrent streams without stalls"
    threshold = f"added inter-chunk p99 ≤ {STALL_MS} ms, ≥ {SUSTAIN:.0%} of direct streams/s"
    stall, ks = first_stall(results, "inprocess")
    if "256" not in ks:
        return Check(name, threshold, "not measured", None)
    at_256 = added(results, "inprocess", "many", "256", "gap", "p99_ms")
    share = sustained(results, "inprocess", "256")
    text = f"first stall at K={stall}" if stall else f"no stall up to K={ks[-1]}"
    shown = f"{at_256:+.3f} ms" if at_256 is not None else "—"
    rate = f", {share:.0%} of direct streams/s" if share is not None else ""
    return Check(
        name, threshold, f"{text} (K=256: {shown}{rate})", stall is None or int(stall) > 256
    )


def _soak(results: JSON) -> Check:
    growth = get(results, "soak", "growth_pct")
    if growth is None:
        return Check("RSS growth over the soak", "≤ 10 %", "not measured: run make soak", None)
    minutes = get(results, "soak", "minutes")
    return Check(
        "RSS growth over the soak", "≤ 10 %", f"{growth:.1f} % ({minutes:g} min)", growth <= 10
    )


def _workers(results: JSON) -> Check:
    name = "--workers 2 reaches ≥ 1.7× one worker (both cores)"
    ratio = get(results, "workers", "ratio")
    if ratio is None:
        return Check(name, "≥ 1.7×", "not measured", None)
    one, two = get(results, "workers", "1", "rps"), get(results, "workers", "2", "rps")
    measured = f"{ratio:.2f}× ({one:,.0f} → {two:,.0f} RPS"
    per_request = [get(results, "workers", n, "gateway_ms_per_request") for n in ("1", "2")]
    others = get(results, "workers", "2", "others_cpu_s")
    seconds = get(results, "workers", "2", "duration_s")
    if None not in per_request and others is not None and seconds:
        measured += (
            f"; gateway CPU/request {per_request[0]:.3f} → {per_request[1]:.3f} ms;"
            f" client, mock and kernel took {others / seconds:.2f} of the 2 cores"
        )
    return Check(name, "≥ 1.7×", measured + ")", ratio >= 1.7)


def _door(results: JSON, name: str, *path: str, label: str = "messages") -> Check:
    """A front door's added latency against chat completions' (issue 19: within 10 %)."""
    threshold = "≤ chat completions' + 10 %"
    door, chat = added(results, label, *path), added(results, "inprocess", *path)
    if door is None or chat is None:
        return Check(name, threshold, "not measured", None)
    measured = f"{door:.3f} ms vs {chat:.3f} ms"
    if door < -NOISE_MS or chat < -NOISE_MS:
        return Check(name, threshold, measured + ": inconclusive, re-run", None)
    return Check(name, threshold, measured, door <= chat * 1.1)


def _observability(results: JSON) -> Check:
    """Issue 18: metrics and access log on, tracing sampled at 0 -> at most 5 % fewer RPS
    per core (requests per CPU-second of the gateway) than all off (same run, in turns)."""
    name = "metrics + access log on, tracing at 0: RPS per core vs all off"
    fewer = get(results, "observability", "on", "fewer_rps_pct")
    if not isinstance(fewer, int | float):
        return Check(name, "≤ 5 % fewer", "not measured", None)
    return Check(name, "≤ 5 % fewer", f"{fewer:.1f} % fewer", fewer <= 5.0)


def checks(results: JSON) -> list[Check]:
    inproc = get(results, "http", "inprocess")
    grpc_channel = get(results, "http", "grpc")
    return [
        _observability(results),
        _rps("in-process: non-streaming RPS, c=16", get(inproc, "wrk", "16"), 3000),
        _rps("in-process: non-streaming RPS, c=64", get(inproc, "wrk", "64"), 3000),
        _at_most(
            "in-process: added latency p50 at 50 req/s",
            added(results, "inprocess", "rate", "latency", "p50_ms"),
            0.7,
        ),
        _at_most(
            "in-process: added latency p99 at 50 req/s",
            added(results, "inprocess", "rate", "latency", "p99_ms"),
            2.0,
        ),
        _at_most(
            "in-process: CPU per request (wrk c=16)",
            get(inproc, "wrk", "cpu", "ms_per_request"),
            0.3,
        ),
        _rps("--channel grpc: non-streaming RPS, c=16", get(grpc_channel, "wrk", "16"), 1500),
        _rps("--channel grpc: non-streaming RPS, c=64", get(grpc_channel, "wrk", "64"), 1500),
        _at_most(
            "--channel grpc: added latency p50 at 50 req/s",
            added(results, "grpc", "rate", "latency", "p50_ms"),
            2.0,
        ),
        _grpc_direct(results),
        _at_most(
            "in-process: added time to first chunk p99",
            added(results, "inprocess", "stream", "ttft", "p99_ms"),
            2.0,
        ),
        _streams(results),
        _door(
            results,
            "/v1/messages: added latency p50 at 50 req/s",
            "rate",
            "latency",
            "p50_ms",
        ),
        _door(results, "/v1/messages: added time to first chunk p50", "stream", "ttft", "p50_ms"),
        _door(
            results,
            "/v1/responses: added latency p50 at 50 req/s",
            *("rate", "latency", "p50_ms"),
            label="responses",
        ),
        _door(
            results,
            "/v1/responses: added time to first chunk p50",
            *("stream", "ttft", "p50_ms"),
            label="responses",
        ),
        _soak(results),
        _workers(results),
    ]
