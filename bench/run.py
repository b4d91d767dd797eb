"""`make bench`: every scenario of issue 7, direct and through the gateway, in one run.

Order: client ceilings, the null gRPC floor; saturation direct to the mock, through the
gateway with the in-process channel, with `--channel grpc`, and through the floor; the
fixed-rate runs of those paths in turns; many streams; the cost of metrics, the access
log and tracing (bench/observability.py); `--workers 2`; gRPC clients on
`--grpc-only`; then the local models (raw first, then through a gateway on the
embedded default). A step that fails is recorded and the run goes on, so RESULTS.md is
always written; every process started here is stopped on the way out, whatever happened.

    .venv/bin/python -m bench.run            # ~10 minutes
    .venv/bin/python -m bench.run --quick    # ~2-3 minute smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench import cache, local_models, observability, scenarios, shared_state
from bench.loadgen import messages_body, responses_body
from bench.machine import cpu_totals, describe, foreign_cpu, own_cpu
from bench.procs import (
    CLIENT_CPU,
    GATEWAY_CPU,
    PYTHON,
    ROOT,
    Gateway,
    Proc,
    busy_others,
    cpu_by_process,
    free_port,
    start_forwarder,
    start_gateway,
    start_mock,
    start_null_grpc,
)
from bench.report import render
from bench.scenarios import FULL, QUICK, Settings, Target
from bench.wrk import run_wrk, write_script

JSON = dict[str, Any]
HERE = Path(__file__).resolve().parent
STREAM_CHUNKS = 20
STREAM_DELAY_MS = 5.0
SOAK_HEADING = "## Soak"


def gateway_config(path: Path, mock_port: int, settings: Settings) -> Path:
    path.write_text(
        f"""providers:
  mock:
    kind: openai
    base_url: http://127.0.0.1:{mock_port}/v1
    api_key: bench-upstream
    timeout: 60
models:
  - id: bench/chat
    endpoints: [{{provider: mock, model: chat}}]
  - id: bench/many
    endpoints: [{{provider: mock, model: "{settings.many_model}"}}]
""",
        encoding="utf-8",
    )
    return path


class Bench:
    """One run: settings, scratch space, the processes it started, and the results."""

    def __init__(self, settings: Settings, quick: bool, scratch: Path) -> None:
        self.settings = settings
        self.scratch = scratch
        self.started: list[Proc] = []
        self.failures: list[list[str]] = []
        settings_json = asdict(settings) | {
            "stream_chunks": STREAM_CHUNKS,
            "stream_delay_ms": STREAM_DELAY_MS,
        }
        self.results: JSON = {"quick": quick, "settings": settings_json, "meta": describe()}

    def guard(self, name: str, step: Callable[[], JSON]) -> JSON | None:
        """Run one step; a failure is recorded (and printed) instead of ending the run."""
        print(f"[bench] {name} ...", flush=True)
        began = time.monotonic()
        try:
            result = step()
        except (RuntimeError, OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            message = " ".join(str(exc).split())[:600]
            self.failures.append([name, message])
            print(f"[bench] {name} FAILED: {message}", flush=True)
            return None
        print(f"[bench] {name} done in {time.monotonic() - began:.1f} s", flush=True)
        return result

    def keep(self, proc: Proc) -> Proc:
        self.started.append(proc)
        return proc

    def gateway(self, name: str, config: Path | None, **options: Any) -> Gateway | None:
        """Start a gateway (CPU 0, fresh data dir); None, recorded, if it will not start."""
        try:
            gw = start_gateway(name, config, self.scratch / f"data-{name}", self.scratch, **options)
        except RuntimeError as exc:
            self.failures.append([name, " ".join(str(exc).split())[:600]])
            print(f"[bench] {name} FAILED to start: {exc}", flush=True)
            return None
        self.keep(gw.proc)
        return gw

    def release(self, proc: Proc) -> None:
        if not proc.alive():
            self.failures.append([proc.name, f"exited during the run: {proc.log_tail(400)}"])
        proc.stop()
        self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()

    # --- the steps ---------------------------------------------------------------------

    def ceilings(self) -> None:
        """The clients against a mock alone on CPU 0: what they reach when not the limit."""
        port = free_port()
        mock = self.keep(start_mock(port, self.scratch, cpu=GATEWAY_CPU, name="mock-cpu0"))
        target = Target("ceiling", f"http://127.0.0.1:{port}", "bench", "chat", "many")
        s = self.settings
        out: JSON = {}
        args = ["http", "--url", target.url, "--concurrency", "16"]
        args += ["--duration", str(s.seconds), "--warmup", str(s.warmup)]
        loadgen = self.guard("ceiling/loadgen", lambda: scenarios.loadgen(args, budget=s.seconds))
        if loadgen is not None:
            out["loadgen"] = loadgen
        script = write_script(self.scratch / "wrk-ceiling.lua", b'{"model":"chat"}', "bench")
        url = target.url + "/v1/chat/completions"
        wrk = self.guard(
            "ceiling/wrk",
            lambda: asdict(
                run_wrk(url, script, connections=64, duration=s.wrk_seconds, cpu=CLIENT_CPU)
            ),
        )
        if wrk is not None:
            out["wrk"] = wrk
        self.results["ceiling"] = out
        self.release(mock)

    def grpc_null(self) -> None:
        port = free_port()
        null = self.keep(start_null_grpc(port, self.scratch))
        target = Target("null", f"127.0.0.1:{port}", "bench", "chat", "many")
        suite = self.guard("grpc/null", lambda: scenarios.grpc_suite(target, self.settings))
        self.results.setdefault("grpc", {})["null"] = suite
        self.release(null)

    def http(self, mock_port: int, config: Path) -> None:
        """Direct, both gateways and the floor: saturation one at a time, then the
        fixed-rate runs in turns (`scenarios.interleaved`), then many streams."""
        s = self.settings
        http: JSON = self.results.setdefault("http", {})
        direct = Target("direct", f"http://127.0.0.1:{mock_port}", "bench", "chat", s.many_model)
        targets = [direct]
        doors: list[Target] = []
        procs = []
        http["direct"] = scenarios.http_suite(direct, s, self.scratch, self.guard, ("wrk",))
        for channel in ("inprocess", "grpc"):
            gw = self.gateway(f"gateway-{channel}", config, channel=channel)
            if gw is None:
                continue
            target = Target(channel, gw.url, gw.key, "bench/chat", "bench/many", gw.proc.pid)
            http[channel] = scenarios.http_suite(target, s, self.scratch, self.guard, ("wrk",))
            targets.append(target)
            procs.append(gw.proc)
            if channel == "inprocess":  # the other front doors, same gateway, in turns
                for door in (self.messages_target(gw, target), self.responses_target(target)):
                    http[door.label] = {}
                    doors.append(door)
        # The thinnest forwarder on CPU 0 (bench/forwarder.py): the floor under "added".
        port = free_port()
        floor_proc = self.keep(start_forwarder(port, mock_port, self.scratch))
        floor = Target(
            "forwarder", f"http://127.0.0.1:{port}", "bench", "chat", "many", floor_proc.pid
        )
        http["forwarder"] = scenarios.http_suite(floor, s, self.scratch, self.guard, ("wrk",))
        for step, name, paths in (
            (scenarios.latency_at_rate, "rate", [*targets, *doors, floor]),
            # Non-streaming only for the floor: it reads each answer whole before it replies.
            (scenarios.streaming_at_rate, "stream", [*targets, *doors]),
        ):
            labels = "/".join(t.label for t in paths)
            runs = self.guard(
                f"{labels}/{name} (in turns)", partial(scenarios.interleaved, step, paths, s)
            )
            for label, run in (runs or {}).items():
                http[label][name] = run
        self.release(floor_proc)
        for target in targets:
            http[target.label] |= scenarios.http_suite(
                target, s, self.scratch, self.guard, ("many",)
            )
        for proc in procs:
            self.release(proc)

    def messages_target(self, gw: Gateway, chat: Target) -> Target:
        """/v1/messages on the in-process gateway: the same prompt as chat, in
        Anthropic's shape, so that its added latency compares with chat's."""
        files = []
        for stream in (False, True):
            path = self.scratch / f"messages-{'stream' if stream else 'plain'}.json"
            path.write_bytes(orjson.dumps([messages_body(chat.chat_model, stream=stream)]))
            files.append(str(path))
        return replace(chat, label="messages", path="/v1/messages", bodies=(files[0], files[1]))

    def responses_target(self, chat: Target) -> Target:
        """/v1/responses on the in-process gateway, the same prompt again."""
        files = []
        for stream in (False, True):
            path = self.scratch / f"responses-{'stream' if stream else 'plain'}.json"
            path.write_bytes(orjson.dumps([responses_body(chat.chat_model, stream=stream)]))
            files.append(str(path))
        return replace(chat, label="responses", path="/v1/responses", bodies=(files[0], files[1]))

    def observability(self, config: Path) -> None:
        """Metrics, access log and tracing: off, on (tracing sampled at 0), 100 % sampled."""

        def gateway(name: str, path: Path) -> Gateway:
            gw = self.gateway(name, path)
            if gw is None:
                raise RuntimeError(f"{name} did not start")
            return gw

        self.results["observability"] = self.guard(
            "observability (in turns)",
            lambda: observability.suite(
                gateway, config, self.settings, self.scratch, self.keep, self.release
            ),
        )

    def workers(self, config: Path) -> None:
        """--workers 2 against one worker, the gateway pinned to both cores."""

        def run_gateway(workers: int) -> tuple[str, str, Any, int]:
            name = f"gateway-workers-{workers}"
            gw = self.gateway(name, config, workers=workers, cpus="0,1")
            if gw is None:
                raise RuntimeError(f"{name} did not start")
            return gw.url, gw.key, lambda: self.release(gw.proc), gw.proc.pid

        self.results["workers"] = self.guard(
            "workers", lambda: scenarios.workers_suite(run_gateway, self.settings, self.scratch)
        )

    def shared(self, config: Path) -> None:
        """The embedded default beside Redis-shared limits, with a limited key (issue 17)."""

        def run_gateway(name: str, path: Path) -> tuple[Gateway, Path] | None:
            gw = self.gateway(name, path)
            return (gw, self.scratch / f"data-{name}") if gw is not None else None

        self.results["shared"] = self.guard(
            "shared state",
            lambda: shared_state.suite(
                run_gateway,
                config.read_text(encoding="utf-8"),
                self.settings,
                self.scratch,
                self.guard,
                self.release,
            ),
        )

    def grpc_gateway(self, config: Path) -> None:
        gw = self.gateway("gateway-grpc-only", config, grpc_only=True)
        if gw is None:
            return
        target = Target("grpc-only", gw.grpc_target, gw.key, "bench/chat", "bench/many")
        suite = self.guard("grpc/gateway", lambda: scenarios.grpc_suite(target, self.settings))
        self.results.setdefault("grpc", {})["gateway"] = suite
        self.release(gw.proc)

    def local(self) -> None:
        local: JSON = {"raw": local_models.raw_suite(self.settings, self.guard)}
        self.results["local"] = local
        gw = self.gateway("gateway-local", None)
        if gw is None:
            return
        local["http"] = local_models.http_suite(gw, self.settings, self.scratch, self.guard)
        self.release(gw.proc)

    def run(self, *, local: bool, only_shared: bool = False) -> None:
        mock_port = free_port()
        self.keep(
            start_mock(mock_port, self.scratch, chunks=STREAM_CHUNKS, delay_ms=STREAM_DELAY_MS)
        )
        config = gateway_config(self.scratch / "bench.yaml", mock_port, self.settings)
        if only_shared:
            self.shared(config)
            return
        self.ceilings()
        self.grpc_null()
        self.http(mock_port, config)
        self.observability(config)
        self.workers(config)
        self.shared(config)
        self.grpc_gateway(config)
        quick = bool(self.results["quick"])
        self.results["cache"] = self.guard(
            "cache", lambda: cache.suite(self.settings, self.scratch, quick)
        )
        if local:
            self.local()


def gateway_import_problem() -> str:
    """Why `switchyard serve` cannot even import (a tree mid-edit), or "" if it can.

    Checked first so that a broken tree fails in seconds instead of overwriting a good
    RESULTS.md with a run in which every gateway step failed.
    """
    probe = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [PYTHON, "-c", "import service.launcher"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    return probe.stderr.strip()[-1500:] if probe.returncode else ""


def _soak_section(results_md: Path) -> str:
    """The soak section of the previous RESULTS.md (written by make soak), kept as is."""
    if not results_md.exists():
        return ""
    text = results_md.read_text(encoding="utf-8")
    index = text.find("\n" + SOAK_HEADING)
    return text[index:].strip() if index >= 0 else ""


def write_outputs(results: JSON, out_dir: Path) -> Path:
    soak_json = out_dir / "soak.json"
    if soak_json.exists():
        results["soak"] = orjson.loads(soak_json.read_bytes())
    (out_dir / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    results_md = out_dir / "RESULTS.md"
    markdown = render(results, _soak_section(results_md))
    results_md.write_text(markdown, encoding="utf-8")
    return results_md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~2-3 minutes)")
    parser.add_argument("--no-local", action="store_true", help="skip the local-model scenarios")
    parser.add_argument(
        "--out", type=Path, default=HERE, help="the directory RESULTS.md and results.json go to"
    )
    parser.add_argument("--keep-scratch", action="store_true", help="keep logs and data dirs")
    parser.add_argument(
        "--only-shared", action="store_true", help="only the shared-state step (issue 17)"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("bench: needs wrk and taskset (apt-get install -y wrk util-linux)")
        return 2
    if (os.cpu_count() or 0) < 2:
        print("bench: needs at least 2 CPUs (gateway on CPU 0, clients on CPU 1)")
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"bench: --out {args.out} is a file; give the directory the results go to")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)  # checked now, not after a 25-minute run
    problem = gateway_import_problem()
    if problem:
        print(f"bench: the gateway does not start, so nothing was measured:\n{problem}")
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    bench = Bench(QUICK if args.quick else FULL, args.quick, scratch)
    began = time.monotonic()
    processes_before = cpu_by_process()
    machine_before = (*cpu_totals(), own_cpu())
    try:
        bench.run(local=not args.no_local, only_shared=args.only_shared)
    except RuntimeError as exc:  # a process that would not start: record it, still report
        bench.failures.append(["setup", " ".join(str(exc).split())[:600]])
        print(f"[bench] FAILED: {exc}", flush=True)
    finally:
        bench.stop_all()
        bench.results["failures"] = bench.failures
        bench.results["elapsed_s"] = time.monotonic() - began
        bench.results["meta"]["loadavg_end"] = list(os.getloadavg())
        bench.results["meta"]["other_busy"] = busy_others(processes_before, cpu_by_process())
        wall = time.monotonic() - began
        bench.results["meta"]["interference"] = foreign_cpu(machine_before, wall)
        results_md = write_outputs(bench.results, args.out)
        if args.keep_scratch or bench.failures:
            print(f"[bench] logs and data kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"[bench] wrote {results_md} and results.json in {bench.results['elapsed_s']:.0f} s")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
