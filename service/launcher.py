"""`switchyard serve`: the gRPC service and the HTTP gateway, together or apart.

This is the one module in `service` that imports `gateway_http` (DESIGN §2). In the
default co-located mode the HTTP layer talks to the service through the in-process
channel; `--channel grpc` keeps a real loopback gRPC hop, and `--http-only` points the
HTTP layer at a remote service.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import uvicorn
import uvloop

from gateway_http import create_app
from gateway_http.protocol import HttpProtocol
from service import logs, ports
from service.accounting.backends import KeyStoreBackend, open_keys
from service.config import Config, ConfigError, load_config
from service.errors import GatewayError
from service.inprocess import InProcessChannel
from service.lifecycle import DRAINING, LOADING, READY, Lifecycle
from service.server import Service
from service.shutdown import STOP_SIGNALS, StopSignals, waiting_for
from service.startup import DATABASE, StartupError, check_database, prepare_data_dir
from service.store import shared_sqlite
from service.store.keys import KeyPolicy
from service.telemetry import metrics as metrics_module
from service.telemetry import tracing as tracing_module
from service.telemetry.access_log import AccessLog
from service.telemetry.endpoint import serve_metrics
from service.telemetry.observed import Observer
from service.telemetry.settings import TelemetrySettings
from service.workers import run_workers

log = logging.getLogger("switchyard")

# After the grace period, how long the HTTP layer gets to end the answers the service cut
# (a 503, a stream's error chunk) before uvicorn cancels what is left.
CUT_MARGIN = 3.0
GC_YOUNG_THRESHOLD = 25_000  # allocations between young collections (CPython default: 700)
CLIENT_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    # The gateway retries at the routing layer, with its own policy; gRPC's transparent
    # retry machinery only adds per-call work here.
    ("grpc.enable_retries", 0),
    ("grpc.http2.bdp_probe", 0),
)


@dataclass(frozen=True)
class ServeOptions:
    config: Path | None
    data_dir: Path
    host: str
    http_port: int
    grpc_host: str
    grpc_port: int
    channel: str  # "inprocess" | "grpc"
    mode: str  # "both" | "grpc-only" | "http-only"
    grpc_target: str | None
    stream_hold: float = 10.0
    workers: int = 1
    shutdown_grace: float = 30.0  # seconds the requests in flight get at shutdown
    metrics_port: int | None = None  # the exposition on a port of its own, without a key


def _save_secret(path: Path, plain: str, what: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(plain + "\n")
    os.chmod(path, 0o600)
    # Printed once, on purpose, to the console only: it is never logged.
    print(f"Created {what} (saved to {path}):\n\n    {plain}\n", flush=True)


def ensure_dev_key(keys: KeyStoreBackend, data_dir: Path) -> None:
    """First start: a development key (and an admin key), each saved 0600 in the data dir.

    The admin key is SWITCHYARD_ADMIN_KEY when set (stored hashed, like any key), else a
    new one is made once, next to the development key.
    """
    if not keys.count():
        _, plain = keys.create("development")
        _save_secret(data_dir / "dev-key", plain, "a development API key")
    given = os.environ.get("SWITCHYARD_ADMIN_KEY")
    if given:
        if keys.find_by_secret(given) is None:
            keys.insert("admin (SWITCHYARD_ADMIN_KEY)", given, KeyPolicy(is_admin=True))
    elif not keys.has_admin():
        _, plain = keys.create("admin", KeyPolicy(is_admin=True))
        _save_secret(data_dir / "admin-key", plain, "an admin API key")


def http_config(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, shutdown_grace: float | None = None
) -> uvicorn.Config:
    """uvicorn as the gateway runs it, on a loop the caller runs (uvloop).

    The test gateways and the benchmark's floor (bench/forwarder.py) use it too, so
    they run under exactly the server settings measured and shipped.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="none",
        # httptools, with each response's head sent in one write with its body.
        http=HttpProtocol,
        ws="none",
        lifespan="off",
        access_log=False,
        # Client addresses are not used: no X-Forwarded-* rewriting per request.
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        # Whole seconds in uvicorn's signature; rounded up, as it only bounds our own cut.
        timeout_graceful_shutdown=None if shutdown_grace is None else math.ceil(shutdown_grace),
    )


class UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: `serve()` below owns the shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Running:
    """What one gateway process runs, for its shutdown to stop in order."""

    service: Service | None = None
    grpc_server: grpc.aio.Server | None = None
    channel: Any = None
    http: UvicornServer | None = None
    http_task: asyncio.Task[None] | None = None
    observer: Observer | None = None
    metrics_server: asyncio.Server | None = None
    lifecycle: Lifecycle | None = None
    warming: asyncio.Task[None] | None = None

    def in_flight(self) -> str:
        http = len(self.http.server_state.tasks) if self.http is not None else None
        generations = self.service.in_flight if self.service is not None else None
        return waiting_for(http, generations)


async def serve(
    options: ServeOptions,
    config: Config | None,
    listening: socket.socket | None,
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
    metrics_listening: socket.socket | None = None,
) -> int:
    """Run the gateway until a stop signal; the process's exit status."""
    running = _Running()
    observer = running.observer = _observer(config.telemetry if config else TelemetrySettings())
    lifecycle = running.lifecycle = Lifecycle()
    # Taken over before anything starts: a stop signal while the servers start up (a
    # worker's first moments) is a graceful stop once they are up, never a kill.
    stop = StopSignals(running.in_flight, signals)
    stop.install()
    # A co-located `--channel grpc` hop goes over an abstract unix socket of this
    # process: the same gRPC stack, without TCP's loopback costs.
    local = f"unix-abstract:switchyard-{os.getpid()}-{options.grpc_port}"
    try:
        if options.mode != "http-only":
            assert config is not None
            service = running.service = Service.build(
                config,
                options.data_dir,
                workers=options.workers,
                observer=observer,
                config_path=options.config,
            )
            await service.start()
            if service.backends is not None:  # readiness includes the shared stores
                lifecycle.checks.append(service.backends.not_ready)
            if options.workers > 1:  # a reload asked of one worker reaches them all
                service.reload_others = _reload_siblings
            ensure_dev_key(service.keys, options.data_dir)
            address = f"{options.grpc_host}:{options.grpc_port}"
            try:
                running.grpc_server = await service.grpc_server(
                    address, local, shared=options.workers > 1, lifecycle=lifecycle
                )
            except OSError:
                raise ports.bind_failure("gRPC", options.grpc_host, options.grpc_port) from None
            await running.grpc_server.start()
            log.info("gRPC service listening on %s", address)
        if options.mode != "grpc-only":
            assert listening is not None
            if options.mode == "http-only" or options.channel == "grpc":
                target = options.grpc_target or local
                running.channel = grpc.aio.insecure_channel(target, options=CLIENT_CHANNEL_OPTIONS)
            else:
                assert running.service is not None
                running.channel = running.service.in_process_channel()
            metrics = metrics_module.ACTIVE
            app = create_app(
                running.channel,
                stream_hold=options.stream_hold,
                metrics=metrics.render if metrics is not None else None,
                ready=lifecycle.not_ready,
                edge=_edge_log(observer),
            )
            # uvicorn's own cut (tasks cancelled, streams broken off) is the backstop: the
            # service side ends what is left at the grace period (`_drain`).
            grace = options.shutdown_grace + CUT_MARGIN
            config_http = http_config(app, options.host, options.http_port, shutdown_grace=grace)
            running.http = UvicornServer(config_http)
            running.http_task = asyncio.create_task(running.http.serve(sockets=[listening]))
            log.info(
                "HTTP gateway listening on http://%s:%d/v1 (channel: %s)",
                options.host,
                options.http_port,
                "grpc" if options.mode == "http-only" or options.channel == "grpc" else "inprocess",
            )
        if metrics_listening is not None and metrics_module.ACTIVE is not None:
            running.metrics_server = await serve_metrics(metrics_listening, metrics_module.ACTIVE)
            log.info("metrics on http://%s:%d/metrics", options.host, options.metrics_port)
        # Everything allocated so far lives as long as the process: keep it out of every
        # future collection (measured: c16 p99 from 17 ms to 2-3 ms, DESIGN §9).
        gc.collect()
        gc.freeze()
        # The request path makes no reference cycles (tests/resilience/test_no_cycles.py), so
        # young objects are freed by reference counting; what a young collection finds is
        # the live state of requests in flight (suspended coroutines, ~20 objects per
        # stream), costing ~1 ms at 256 streams for nothing. Collect 35x less often.
        gc.set_threshold(GC_YOUNG_THRESHOLD)
        running.warming = asyncio.create_task(_warm(running.service, lifecycle))
        if running.service is not None:
            _reload_on_sighup(running.service)
        stop_task = asyncio.create_task(stop.wait())
        watched = {stop_task} | ({running.http_task} if running.http_task else set())
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if stop_task not in done:  # the HTTP server ended by itself
            stop_task.cancel()
            if running.http is not None and not running.http.started:
                raise StartupError(f"the HTTP server could not start on port {options.http_port}")
            log.error("the HTTP server stopped unexpectedly; shutting down")
            status = 1
        else:
            status = 0
            await _stop_warming(running)
            await lifecycle.enter(DRAINING)  # unready at once: before the listeners close
            log.warning(
                "%s: stopping; waiting for %s, up to %g s (Ctrl-C again to exit now)",
                signal.Signals(stop_task.result()).name,
                running.in_flight(),
                options.shutdown_grace,
            )
        await _drain(running, options.shutdown_grace)
        return status
    finally:
        await _close(running)


def _observer(settings: TelemetrySettings) -> Observer:
    """This process's metrics, access log and tracing, as the config sets them."""
    if settings.metrics.enabled:
        metrics_module.enable().start_flushing()
    else:
        metrics_module.disable()
    access_log = AccessLog(settings.access_log) if settings.access_log.enabled else None
    return Observer(access_log, tracing_module.enable(settings.tracing))


def _edge_log(observer: Observer) -> Any:
    """What the HTTP layer reports the requests it answered alone to (None: nothing)."""
    metrics, access_log = metrics_module.ACTIVE, observer.access_log
    if metrics is None and access_log is None:
        return None

    def edge(rid: str, method: str, path: str, status: int, seconds: float) -> None:
        if metrics is not None:
            metrics.edge(status)
        if access_log is not None:
            access_log.edge(rid, method, path, status, seconds)

    return edge


def _reload_siblings() -> None:
    """The parent of `--workers N` passes SIGHUP on to every worker (service/workers.py)."""
    os.kill(os.getppid(), signal.SIGHUP)


def _reload_on_sighup(service: Service) -> None:
    """SIGHUP reloads the config file; a file that does not load is logged and ignored."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await service.reload(others=False)
        except GatewayError as exc:
            log.error("SIGHUP: %s The running config stays.", exc.message)

    def received() -> None:
        task = loop.create_task(reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, received)


async def _warm(service: Service | None, lifecycle: Lifecycle) -> None:
    """Ready once the local models are loaded (at once without a service here)."""
    if service is not None:
        await lifecycle.enter(LOADING)
        await service.warm()
    await lifecycle.enter(READY)


async def _stop_warming(running: _Running) -> None:
    if running.warming is not None and not running.warming.done():
        running.warming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.warming


async def _drain(running: _Running, grace: float) -> None:
    """Stop taking work, give what is in flight `grace` seconds, then end the rest."""
    stopping = []
    if running.grpc_server is not None:
        stopping.append(asyncio.ensure_future(running.grpc_server.stop(grace)))
    if running.http is not None and running.http_task is not None:
        running.http.should_exit = True
        done, _ = await asyncio.wait({running.http_task}, timeout=grace)
        if not done:
            log.warning("the %g s grace period is over: ending %s", grace, running.in_flight())
            # Co-located, the service ends its calls (the gRPC server's stop, or the
            # in-process channel's close: UNAVAILABLE); a remote service's calls are
            # cancelled here. Either way the HTTP layer still ends its answers properly.
            if running.grpc_server is None or isinstance(running.channel, InProcessChannel):
                await running.channel.close()
            with contextlib.suppress(Exception):
                await running.http_task
    if stopping:
        await asyncio.gather(*stopping)


async def _close(running: _Running) -> None:
    """Release everything, in the order it depends on itself; idempotent after `_drain`."""
    await _stop_warming(running)
    if running.metrics_server is not None:
        running.metrics_server.close()
    if running.http is not None and running.http_task is not None:
        running.http.should_exit = True
        with contextlib.suppress(Exception):
            await running.http_task
    if running.grpc_server is not None:
        await running.grpc_server.stop(0)
    if running.channel is not None:
        await running.channel.close()
    if running.service is not None:
        await running.service.aclose()
    if metrics_module.ACTIVE is not None:
        metrics_module.ACTIVE.stop_flushing()  # the last counts, into a worker's file too
    if running.observer is not None and running.observer.access_log is not None:
        running.observer.access_log.close()
    if running.observer is not None and running.observer.tracer is not None:
        await asyncio.to_thread(running.observer.tracer.shutdown)


def _run_one(
    options: ServeOptions,
    config: Config | None,
    listening: socket.socket | None,
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
    metrics_listening: socket.socket | None = None,
) -> int:
    try:
        return uvloop.run(serve(options, config, listening, signals, metrics_listening))
    except KeyboardInterrupt:  # Ctrl-C before the stop signals were taken over
        return 128 + signal.SIGINT


def _worker(
    options: ServeOptions,
    metrics_listening: socket.socket | None,
    listening: socket.socket | None,
) -> None:
    """One worker process of `--workers N` (service/workers.py): SIGTERM stops it."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until serving: then it reloads
    logs.configure()
    try:
        config = load_config(options.config) if options.mode != "http-only" else None
        status = _run_one(options, config, listening, (signal.SIGTERM,), metrics_listening)
    except (StartupError, ConfigError) as exc:
        print(f"switchyard: error: {exc}", file=sys.stderr)
        status = 2
    sys.exit(status)


def run(options: ServeOptions) -> int:
    """`switchyard serve`: check what can be checked, bind the ports, then serve.

    The config, both ports, the data directory and the database are checked before any
    model loads, so that each mistake is reported at once, in one line
    (`StartupError`, `ConfigError`: the CLI prints them and exits 2).
    """
    logs.configure()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until serving: then it reloads
    config = load_config(options.config) if options.mode != "http-only" else None
    listening = metrics_listening = None
    if options.mode != "grpc-only":
        listening = ports.listen(options.host, options.http_port, "HTTP")
    try:
        if options.metrics_port is not None:
            metrics_listening = ports.listen(options.host, options.metrics_port, "metrics")
        if options.mode != "http-only":
            ports.ensure_free(options.grpc_host, options.grpc_port, "gRPC")
            prepare_data_dir(options.data_dir, create=True)
            check_database(options.data_dir)
        if options.workers == 1:
            return _run_one(options, config, listening, metrics_listening=metrics_listening)
        if options.mode != "http-only":  # the dev key is made once, before anyone races for it
            assert config is not None
            keys = open_keys(config.storage, options.data_dir / DATABASE)
            try:
                ensure_dev_key(keys, options.data_dir)
            finally:
                keys.close()
            if config.storage.redis_url is None:  # the workers share limits through SQLite
                shared_sqlite.reset(options.data_dir / DATABASE)
        with metrics_module.multiprocess_dir(options.workers):
            return run_workers(
                options.workers,
                options.shutdown_grace,
                _worker,
                (options, metrics_listening),
                listening,
            )
    finally:
        for sock in (listening, metrics_listening):
            if sock is not None:
                sock.close()
