"""`GET /metrics` on a real gateway (issue 18, item 1): the families an operator reads,
bounded labels, direct gRPC calls counted like HTTP ones, and `--workers 2` adding up."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from switchyard.v1 import chat_pb2, chat_pb2_grpc

from tests.fixtures.gateway import SWITCHYARD, Gateway, free_port, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.scrape import Samples, admin_key, metrics_text, scrape
from tests.integration.test_cli import _workers


def observed_config(path: Path, upstream: str, extra: str = "") -> Path:
    """One retry, a model that falls back from a dead endpoint, and `extra` sections."""
    dead = free_port()
    path.write_text(
        f"""
routing:
  retries: 1
  backoff_base: 0.01
  backoff_max: 0.02
  breaker: {{failures: 100000, min_calls: 100000}}
providers:
  mock: {{kind: openai, base_url: {upstream}, api_key: upstream-secret, timeout: 20}}
  dead: {{kind: openai, base_url: "http://127.0.0.1:{dead}/v1", connect_timeout: 2}}
models:
  - id: mock/echo
    endpoints: [{{provider: mock, model: echo}}]
  - id: mock/flaky
    endpoints: [{{provider: mock, model: flaky}}]
  - id: mock/fallback
    endpoints: [{{provider: dead, model: x}}, {{provider: mock, model: echo}}]
  - id: mock/fail500
    endpoints: [{{provider: mock, model: fail500}}]
  - id: mock/slow
    endpoints: [{{provider: mock, model: slow}}]
{extra}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def mock() -> Iterator[MockOpenAI]:
    upstream = MockOpenAI().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gateway(mock: MockOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("metrics")
    config = observed_config(tmp / "switchyard.yaml", mock.base_url)
    gateway = start_gateway(config, tmp / "data")
    yield gateway
    gateway.stop()


def client(gateway: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key or gateway.key, max_retries=0)


def chat(
    gateway: Gateway,
    model: str,
    *,
    stream: bool = False,
    key: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    messages: Any = [{"role": "user", "content": "count me"}]
    sdk = client(gateway, key)
    if stream:
        for _ in sdk.chat.completions.create(
            model=model, messages=messages, stream=True, extra_body=extra
        ):
            pass
    else:
        sdk.chat.completions.create(model=model, messages=messages, extra_body=extra)


def settled(gateway: Gateway, condition: Callable[[Samples], bool]) -> Samples:
    """A scrape once `condition` holds: a call is counted as it ends, which a gRPC client
    may learn of a moment earlier (an error status leaves before the handler returns)."""
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(gateway)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_requests_tokens_cost_and_attempts_are_counted(gateway: Gateway, mock: MockOpenAI) -> None:
    before = scrape(gateway)
    chat(gateway, "mock/echo")
    chat(gateway, "mock/echo", stream=True)
    mock.flaky_failures = 1
    chat(gateway, "mock/flaky")  # a 503, retried, then an answer
    # The dead endpoint first, then the mock's.
    chat(gateway, "mock/fallback", extra={"provider": {"order": ["dead", "mock"]}})
    with pytest.raises(openai.InternalServerError):
        chat(gateway, "mock/fail500")  # 500 upstream -> our 502
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, "mock/echo", key="sk-not-a-key")
    with pytest.raises(openai.NotFoundError):
        chat(gateway, "no/such-model")
    after = scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("switchyard_requests_total", route="ChatService.Complete", model="mock/echo",
                 provider="mock", status="2xx") == 1  # fmt: skip
    assert delta("switchyard_requests_total", route="ChatService.Stream", model="mock/echo",
                 status="2xx") == 1  # fmt: skip
    assert delta("switchyard_requests_total", route="ChatService.Complete", status="5xx") == 1
    assert delta("switchyard_requests_total", route="ChatService.Complete", status="4xx") == 2
    assert delta("switchyard_request_duration_seconds_count", route="ChatService.Stream") == 1
    assert delta("switchyard_time_to_first_token_seconds_count", model="mock/echo") == 1
    assert delta("switchyard_tokens_total", model="mock/echo", direction="in") > 0
    assert delta("switchyard_tokens_total", model="mock/echo", direction="out") > 0
    assert delta("switchyard_refusals_total", reason="INVALID_API_KEY") == 1
    # flaky: a 503 retried; fail500: a 500 retried, then one that ends the call.
    assert delta("switchyard_upstream_attempts_total", provider="mock", outcome="retried",
                 error="status_5xx") == 2  # fmt: skip
    assert delta("switchyard_upstream_attempts_total", provider="dead", outcome="fell_back",
                 error="connect") == 1  # fmt: skip
    assert delta("switchyard_upstream_attempts_total", provider="mock", outcome="failed",
                 error="status_5xx") == 1  # fmt: skip
    assert delta("switchyard_upstream_attempts_total", provider="mock", outcome="success") == 4
    assert delta("switchyard_upstream_duration_seconds_count", provider="mock") == 7
    assert after.value("switchyard_in_flight", route="ChatService.Stream") == 0
    # Bounded labels: the unknown model the client named is not one of them.
    assert "no/such-model" not in after.label_values("model")


def test_no_key_or_request_id_in_the_metrics(gateway: Gateway) -> None:
    request = urllib.request.Request(
        gateway.base_url + "/chat/completions",
        data=json.dumps(
            {"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}
        ).encode(),
        headers={
            "Authorization": f"Bearer {gateway.key}",
            "Content-Type": "application/json",
            "X-Request-Id": "req-metrics-probe-42",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    text = metrics_text(gateway)
    assert "req-metrics-probe-42" not in text
    assert gateway.key not in text and admin_key(gateway) not in text
    labels = {label for _, labels, _ in Samples(text).samples for label in labels}
    assert labels <= {
        "route", "model", "provider", "status", "direction", "reason", "outcome", "error",
        "endpoint", "le",
    }  # fmt: skip


def test_metrics_need_an_admin_key(gateway: Gateway) -> None:
    for key, status in ((None, 401), (gateway.key, 403), ("sk-wrong", 401)):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        request = urllib.request.Request(gateway.http_url + "/metrics", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == status


def test_direct_grpc_calls_are_counted(gateway: Gateway) -> None:
    before = scrape(gateway)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        request = chat_pb2.ChatRequest(
            model="mock/echo", messages=[chat_pb2.Message(role="user", text="over grpc")]
        )
        metadata = (("authorization", f"Bearer {gateway.key}"),)
        stub.Complete(request, metadata=metadata, timeout=30)
        list(stub.Stream(request, metadata=metadata, timeout=30))
        with pytest.raises(grpc.RpcError):
            stub.Complete(request, metadata=(("authorization", "Bearer nope"),), timeout=30)
    refused = {"route": "ChatService.Complete", "status": "4xx"}
    after = settled(
        gateway,
        lambda now: (
            now.value("switchyard_requests_total", **refused)
            > before.value("switchyard_requests_total", **refused)
        ),
    )
    for route, status, count in (
        ("ChatService.Complete", "2xx", 1),
        ("ChatService.Stream", "2xx", 1),
        ("ChatService.Complete", "4xx", 1),
    ):
        labels = {"route": route, "status": status}
        assert (
            after.value("switchyard_requests_total", **labels)
            - before.value("switchyard_requests_total", **labels)
            == count
        ), (route, status)


def _grpc_chat(gateway: Gateway) -> None:
    """One direct gRPC call on a connection of its own: the kernel spreads connections
    over the workers' SO_REUSEPORT sockets by their addresses, whoever is quicker."""
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        chat_pb2_grpc.ChatServiceStub(channel).Complete(
            chat_pb2.ChatRequest(
                model="mock/echo", messages=[chat_pb2.Message(role="user", text="w")]
            ),
            metadata=(("authorization", f"Bearer {gateway.key}"),),
            timeout=30,
        )


def _metric_files(worker: int) -> set[str]:
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    where = next(v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    return {name for name in os.listdir(where.decode()) if name.endswith(f"_{worker}.db")}


def test_workers_counts_add_up(mock: MockOpenAI, tmp_path: Path) -> None:
    config = observed_config(tmp_path / "switchyard.yaml", mock.base_url)
    metrics_port = free_port()
    args = ("--workers", "2", "--metrics-port", str(metrics_port))
    gateway = start_gateway(config, tmp_path / "data", extra_args=args)
    try:
        workers = _workers(gateway.process.pid)
        assert len(workers) == 2
        served = 0
        labels = {"route": "ChatService.Complete", "status": "2xx"}

        def counted(now: Samples) -> bool:
            return now.value("switchyard_requests_total", **labels) >= served

        # Until each worker has counted calls of its own (a worker writes its counts to
        # its file once a second): rounds of 40 calls, at most five.
        for _ in range(5):
            for _ in range(40):
                _grpc_chat(gateway)
                served += 1
            settled(gateway, counted)
            if all(any(f.startswith("counter_") for f in _metric_files(w)) for w in workers):
                break
        else:
            raise AssertionError("one worker never took a connection")
        for _ in range(6):  # whichever worker answers the scrape, it counts both
            assert scrape(gateway).value("switchyard_requests_total", **labels) == served
            text = _plain_get(metrics_port, "/metrics")[1]  # the same on the metrics port
            assert Samples(text).value("switchyard_requests_total", **labels) == served
    finally:
        gateway.stop()


def _plain_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_grpc_only_gateway_serves_metrics_on_its_own_port(
    mock: MockOpenAI, tmp_path: Path
) -> None:
    """No HTTP port, no key: `--metrics-port` is how a --grpc-only process is scraped."""
    config = observed_config(tmp_path / "switchyard.yaml", mock.base_url)
    metrics_port, grpc_port = free_port(), free_port()
    args = [str(SWITCHYARD), "serve", "--grpc-only", "--config", str(config)]
    args += ["--data-dir", str(tmp_path / "data"), "--grpc-port", str(grpc_port)]
    args += ["--metrics-port", str(metrics_port)]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if _plain_get(metrics_port, "/metrics")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the metrics port never answered"
            time.sleep(0.1)
        key = (tmp_path / "data" / "dev-key").read_text().strip()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            chat_pb2_grpc.ChatServiceStub(channel).Complete(
                chat_pb2.ChatRequest(
                    model="mock/echo", messages=[chat_pb2.Message(role="user", text="m")]
                ),
                metadata=(("authorization", f"Bearer {key}"),),
                timeout=30,
            )
        deadline = time.monotonic() + 30
        while True:  # counted as the call ends, a moment after its client has the answer
            samples = Samples(_plain_get(metrics_port, "/metrics")[1])
            labels = {"route": "ChatService.Complete", "status": "2xx"}
            if samples.value("switchyard_requests_total", **labels) == 1:
                break
            assert time.monotonic() < deadline, samples.text
            time.sleep(0.05)
        assert _plain_get(metrics_port, "/v1/models")[0] == 404
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_a_messages_call_is_counted_once_under_its_own_route(gateway: Gateway) -> None:
    """/v1/messages runs the chat servicer inside: one call, observed as MessagesService."""
    before = scrape(gateway)
    body = {"model": "mock/echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(
        gateway.base_url + "/messages",
        data=json.dumps(body).encode(),
        headers={"x-api-key": gateway.key, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    after = scrape(gateway)

    def delta(route: str) -> float:
        name = "switchyard_requests_total"
        return after.value(name, route=route) - before.value(name, route=route)

    assert delta("MessagesService.Create") == 1
    assert delta("ChatService.Complete") == 0
    labels = {"route": "MessagesService.Create", "model": "mock/echo", "provider": "mock"}
    assert after.value("switchyard_requests_total", status="2xx", **labels) >= 1
