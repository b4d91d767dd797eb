"""Readiness on real processes and real signals (issue 18, item 4): `/readyz` and gRPC
health say "not ready" while the local models load and from the moment a stop signal
arrives, `/healthz` and the `liveness` health service say "alive" throughout, and a
stream in flight still ends intact; the same with `--workers 2`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import write_config
from tests.fixtures.fleet import create_key
from tests.fixtures.gateway import SWITCHYARD, Gateway, free_port, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.scrape import admin_key
from tests.fixtures.servers import RedisServer
from tests.integration.test_shutdown import exit_status, refused, streaming, wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockOpenAI]:
    mock = MockOpenAI().start()
    yield mock
    mock.stop()


@pytest.fixture
def slow_config(upstream: MockOpenAI, tmp_path: Path) -> Path:
    upstream.clear()
    upstream.slow_ticks = 40  # 2 s
    return write_config(tmp_path / "switchyard.yaml", upstream.base_url)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def grpc_status(channel: grpc.Channel, service: str = "") -> int | None:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status)
    except grpc.RpcError:
        return None


def test_not_ready_while_the_local_models_load(tmp_path: Path) -> None:
    """The embedded default (the built-in models): the listeners answer, liveness says
    alive, readiness says 'loading models' until they are loaded, then 'ready'."""
    http_port, grpc_port = free_port(), free_port()
    args = [str(SWITCHYARD), "serve", "--data-dir", str(tmp_path / "data")]
    args += ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    ready_states: list[str] = []
    health_states: list[int] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            deadline = time.monotonic() + 120
            while not ready_states or ready_states[-1] != "ready":
                assert time.monotonic() < deadline, f"never ready: {log_path.read_text()}"
                assert process.poll() is None, log_path.read_text()
                try:
                    status, body = http_get(f"http://127.0.0.1:{http_port}/readyz")
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.02)
                    continue
                state = json.loads(body)["status"]
                assert status == (200 if state == "ready" else 503), (status, body)
                ready_states.append(state)
                assert http_get(f"http://127.0.0.1:{http_port}/healthz")[0] == 200
                health = grpc_status(channel)
                if health is not None:
                    health_states.append(health)
                    assert grpc_status(channel, "liveness") == SERVING
                time.sleep(0.02)
            assert grpc_status(channel) == SERVING
            assert grpc_status(channel, "switchyard.v1.ChatService") == SERVING
        assert "loading models" in ready_states, ready_states
        assert NOT_SERVING in health_states, "gRPC health must mirror the loading"
        # Once ready, it stays ready.
        assert ready_states[ready_states.index("ready") :] == ["ready"]
    finally:
        process.terminate()
        process.wait(30)


class Watch(threading.Thread):
    """gRPC health's Watch of the overall service, on a connection made before the signal."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(target)
        self.seen: list[int] = []
        self.call = health_pb2_grpc.HealthStub(self.channel).Watch(
            health_pb2.HealthCheckRequest(service="")
        )

    def run(self) -> None:
        try:
            for response in self.call:
                self.seen.append(int(response.status))
        except grpc.RpcError:
            pass

    def stop(self) -> None:
        self.call.cancel()
        self.channel.close()


def _drain_with_readiness(gateway: Gateway, upstream: MockOpenAI, workers: int) -> None:
    assert http_get(gateway.http_url + "/readyz") == (200, '{"status":"ready"}')
    watch = Watch(gateway.grpc_target)
    watch.start()
    try:
        wait_for(lambda: watch.seen == [SERVING], "the watch to see SERVING")
        stream = streaming(gateway)
        gateway.process.send_signal(signal.SIGTERM)
        wait_for(lambda: NOT_SERVING in watch.seen, "readiness to go off", 30)
        assert stream.is_alive(), "readiness must go off at once, not after the drain"
        watch.stop()
        wait_for(lambda: refused(gateway), "the listeners to stop taking connections")
        assert exit_status(gateway, 60) == 0
        stream.join(30)
        assert stream.error is None and stream.ended_cleanly
        assert stream.ticks() == upstream.slow_ticks and stream.events[-1] == "[DONE]"
        assert gateway.log().count("readiness: draining") == workers
    finally:
        watch.stop()
        gateway.stop()


def test_sigterm_turns_readiness_off_at_once(
    upstream: MockOpenAI, slow_config: Path, tmp_path: Path
) -> None:
    args = ("--shutdown-grace", "60")
    _drain_with_readiness(start_gateway(slow_config, tmp_path / "d", extra_args=args), upstream, 1)


def test_sigterm_turns_readiness_off_at_once_with_workers(
    upstream: MockOpenAI, slow_config: Path, tmp_path: Path
) -> None:
    args = ("--shutdown-grace", "60", "--workers", "2")
    gateway = start_gateway(slow_config, tmp_path / "d", extra_args=args)
    wait_for(lambda: gateway.log().count("readiness: ready") == 2, "both workers to be ready")
    _drain_with_readiness(gateway, upstream, 2)


def test_readiness_includes_redis_when_refusing_without_it(
    upstream: MockOpenAI, tmp_path: Path
) -> None:
    """`on_backend_error: closed`: once a generation found Redis away (and for the second
    in which the next ones are refused without trying), the replica says it is not
    ready; after that window it is ready again, and the next refused call says otherwise."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        config = tmp_path / "switchyard.yaml"
        write_config(config, upstream.base_url)
        with config.open("a", encoding="utf-8") as f:
            f.write(f"storage: {{redis_url: '{redis.url}', on_backend_error: closed}}\n")
        gateway = start_gateway(config, tmp_path / "data")
        try:
            ready = gateway.http_url + "/readyz"
            wait_for(lambda: http_get(ready)[0] == 200, "ready")
            # A key with limits: its admission is counted in Redis (the dev key's is not).
            limited = create_key(gateway.base_url, admin_key(gateway), rpm=100)
            redis.stop()
            body = json.dumps(
                {"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}
            )
            request = urllib.request.Request(
                gateway.base_url + "/chat/completions",
                data=body.encode(),
                headers={
                    "Authorization": f"Bearer {limited.secret}",
                    "Content-Type": "application/json",
                },
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 503
            assert http_get(ready) == (503, '{"status":"redis unreachable"}')
            assert http_get(gateway.http_url + "/healthz")[0] == 200  # alive all the same
            redis.start()
            wait_for(lambda: http_get(ready)[0] == 200, "ready again", 30)
        finally:
            gateway.stop()
    finally:
        redis.stop()
