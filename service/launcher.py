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
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import uvicorn
import uvloop

from gateway_http import create_app
from gateway_http.protocol import HttpProtocol
from service import logs
from service.config import load_config
from service.server import Service
from service.store.keys import KeyPolicy, KeyStore

log = logging.getLogger("switchyard")

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


def _save_secret(path: Path, plain: str, what: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(plain + "\n")
    os.chmod(path, 0o600)
    # Printed once, on purpose, to the console only: it is never logged.
    print(f"Created {what} (saved to {path}):\n\n    {plain}\n", flush=True)


def ensure_dev_key(keys: KeyStore, data_dir: Path) -> None:
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


def http_config(app: Any, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
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
    )


class UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: `serve()` below owns the shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(options: ServeOptions) -> None:
    options.data_dir.mkdir(parents=True, exist_ok=True)
    service: Service | None = None
    grpc_server: grpc.aio.Server | None = None
    channel: Any = None
    http: UvicornServer | None = None
    http_task: asyncio.Task[None] | None = None
    # A co-located `--channel grpc` hop goes over an abstract unix socket of this
    # process: the same gRPC stack, without TCP's loopback costs.
    local = f"unix-abstract:switchyard-{os.getpid()}-{options.grpc_port}"
    try:
        if options.mode != "http-only":
            service = Service.build(load_config(options.config), options.data_dir)
            ensure_dev_key(service.keys, options.data_dir)
            address = f"{options.grpc_host}:{options.grpc_port}"
            grpc_server = await service.grpc_server(address, local)
            await grpc_server.start()
            log.info("gRPC service listening on %s", address)
        if options.mode != "grpc-only":
            if options.mode == "http-only" or options.channel == "grpc":
                target = options.grpc_target or local
                channel = grpc.aio.insecure_channel(target, options=CLIENT_CHANNEL_OPTIONS)
            else:
                assert service is not None
                channel = service.in_process_channel()
            app = create_app(channel, stream_hold=options.stream_hold)
            http = UvicornServer(http_config(app, options.host, options.http_port))
            http_task = asyncio.create_task(http.serve(sockets=[_listen(options)]))
            log.info(
                "HTTP gateway listening on http://%s:%d/v1 (channel: %s)",
                options.host,
                options.http_port,
                "grpc" if options.mode == "http-only" or options.channel == "grpc" else "inprocess",
            )
        # Everything allocated so far lives as long as the process: keep it out of every
        # future collection (measured: c16 p99 from 17 ms to 2-3 ms, DESIGN §9).
        gc.collect()
        gc.freeze()
        # The request path makes no reference cycles (tests/resilience/test_no_cycles.py), so
        # young objects are freed by reference counting; what a young collection finds is
        # the live state of requests in flight (suspended coroutines, ~20 objects per
        # stream), costing ~1 ms at 256 streams for nothing. Collect 35x less often.
        gc.set_threshold(GC_YOUNG_THRESHOLD)
        stop_task = asyncio.create_task(_wait_for_stop())
        watched = {stop_task} | ({http_task} if http_task else set())
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if http_task in done and http is not None and not http.started:
            raise SystemExit(f"the HTTP server could not start on port {options.http_port}")
        stop_task.cancel()
    finally:
        if http is not None and http_task is not None:
            http.should_exit = True
            with contextlib.suppress(Exception):
                await http_task
        if grpc_server is not None:
            await grpc_server.stop(grace=5)
        if channel is not None:
            await channel.close()
        if service is not None:
            await service.aclose()


def _listen(options: ServeOptions) -> socket.socket:
    """The HTTP listening socket, with SO_REUSEPORT so that workers share the port."""
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((options.host, options.http_port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _run_one(options: ServeOptions) -> None:
    logs.configure()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(options))


def _run_workers(options: ServeOptions) -> None:
    """N processes, each a whole gateway on one event loop, sharing both ports through
    SO_REUSEPORT; the kernel spreads connections across them."""
    logs.configure()
    options.data_dir.mkdir(parents=True, exist_ok=True)
    if options.mode != "http-only":  # create the dev key once, before anyone races for it
        keys = KeyStore(options.data_dir / "switchyard.db")
        try:
            ensure_dev_key(keys, options.data_dir)
        finally:
            keys.close()
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_run_one, args=(options,), name=f"switchyard-worker-{i}")
        for i in range(options.workers)
    ]
    for child in children:
        child.start()
    stop = threading.Event()

    def forward(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while not stop.is_set() and all(child.is_alive() for child in children):
        stop.wait(0.5)
    if not stop.is_set():
        log.error("a worker exited unexpectedly; stopping the others")
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join(timeout=15)
        if child.is_alive():
            child.kill()


def run(options: ServeOptions) -> None:
    if options.workers > 1:
        _run_workers(options)
    else:
        _run_one(options)
