"""Reloading the config on a real gateway (issue 18, item 5): SIGHUP, the admin call over
HTTP and over gRPC; a stream in flight finishes on the provider it started with; a
broken file is refused naming its line and the running config stays."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from switchyard.v1 import admin_pb2, admin_pb2_grpc, models_pb2, models_pb2_grpc

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.scrape import admin_key
from tests.integration.test_shutdown import streaming, wait_for


def config_text(upstream: str, timeout: int = 20, extra_model: str = "") -> str:
    text = f"""providers:
  mock: {{kind: openai, base_url: {upstream}, api_key: upstream-secret, timeout: {timeout}}}
models:
  - id: mock/echo
    endpoints: [{{provider: mock, model: echo}}]
  - id: mock/slow
    endpoints: [{{provider: mock, model: slow}}]
"""
    if extra_model:
        text += f"  - id: {extra_model}\n    endpoints: [{{provider: mock, model: echo}}]\n"
    return text


BROKEN_LINE = 7  # the line of `modle:` below


def broken_text(upstream: str) -> str:
    return f"""providers:
  mock: {{kind: openai, base_url: {upstream}, api_key: upstream-secret}}
models:
  - id: mock/echo
    endpoints:
      - provider: mock
        modle: echo
"""


@pytest.fixture(scope="module")
def mock() -> Iterator[MockOpenAI]:
    upstream = MockOpenAI().start()
    yield upstream
    upstream.stop()


def post(
    gateway: Gateway, path: str, key: str, body: object | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        gateway.base_url + path,
        data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def chat(gateway: Gateway, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "reload"}]}
    return post(gateway, "/chat/completions", gateway.key, body)[0]


def test_sighup_reloads_without_dropping_a_stream(mock: MockOpenAI, tmp_path: Path) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(config_text(mock.base_url), encoding="utf-8")
    mock.slow_ticks = 60  # 3 s
    gateway = start_gateway(config, tmp_path / "data")
    try:
        stream = streaming(gateway)
        # The provider's settings change: it is rebuilt, and a model is added.
        config.write_text(config_text(mock.base_url, 21, "mock/added"), encoding="utf-8")
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded " in gateway.log(), "the reload")
        assert "(mock rebuilt)" in gateway.log()
        assert stream.is_alive(), "the reload must not wait for the stream"
        assert chat(gateway, "mock/added") == 200
        stream.join(60)
        assert stream.error is None and stream.ended_cleanly
        assert stream.ticks() == 60 and stream.events[-1] == "[DONE]"
        # A broken file: refused, naming its line; the running config stays.
        config.write_text(broken_text(mock.base_url), encoding="utf-8")
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "The running config stays" in gateway.log(), "the refusal")
        assert f"line {BROKEN_LINE}: config.models[0].endpoints[0].modle" in gateway.log()
        assert chat(gateway, "mock/added") == 200
        assert gateway.process.poll() is None
    finally:
        gateway.stop()


def test_the_admin_call_over_http_and_grpc(mock: MockOpenAI, tmp_path: Path) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(config_text(mock.base_url), encoding="utf-8")
    gateway = start_gateway(config, tmp_path / "data")
    try:
        admin = admin_key(gateway)
        assert post(gateway, "/admin/reload", gateway.key)[0] == 403  # not an admin key
        config.write_text(broken_text(mock.base_url), encoding="utf-8")
        status, body = post(gateway, "/admin/reload", admin)
        assert status == 400, body
        assert (
            f"line {BROKEN_LINE}: config.models[0].endpoints[0].modle" in (body["error"]["message"])
        )
        assert chat(gateway, "mock/echo") == 200  # still the running catalog
        assert chat(gateway, "mock/added") == 404
        config.write_text(config_text(mock.base_url, extra_model="mock/added"), encoding="utf-8")
        status, body = post(gateway, "/admin/reload", admin)
        assert (status, body["models"], body["rebuilt_providers"]) == (200, 3, [])
        assert chat(gateway, "mock/added") == 200
        # The same over gRPC.
        config.write_text(config_text(mock.base_url, extra_model="mock/other"), encoding="utf-8")
        with grpc.insecure_channel(gateway.grpc_target) as channel:
            stub = admin_pb2_grpc.AdminServiceStub(channel)
            auth = (("authorization", f"Bearer {admin}"),)
            answer = stub.ReloadConfig(admin_pb2.ReloadConfigRequest(), metadata=auth, timeout=30)
            assert (answer.providers, answer.models) == (1, 3)
            config.write_text("models: [", encoding="utf-8")
            with pytest.raises(grpc.RpcError) as refused:
                stub.ReloadConfig(admin_pb2.ReloadConfigRequest(), metadata=auth, timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "invalid YAML" in (refused.value.details() or "")
        assert chat(gateway, "mock/other") == 200 and chat(gateway, "mock/added") == 404
    finally:
        gateway.stop()


def test_a_reload_reaches_every_worker(mock: MockOpenAI, tmp_path: Path) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(config_text(mock.base_url), encoding="utf-8")
    gateway = start_gateway(config, tmp_path / "data", extra_args=("--workers", "2"))
    try:
        wait_for(lambda: gateway.log().count("readiness: ready") == 2, "both workers")
        config.write_text(config_text(mock.base_url, extra_model="mock/added"), encoding="utf-8")
        assert post(gateway, "/admin/reload", admin_key(gateway))[0] == 200
        # The worker asked reloads, then has the parent tell both (SIGHUP).
        wait_for(lambda: gateway.log().count("reloaded ") >= 3, "every worker to reload")
        for _ in range(30):  # fresh connections, spread over the workers by the kernel
            with grpc.insecure_channel(gateway.grpc_target) as channel:
                models_pb2_grpc.ModelServiceStub(channel).Get(
                    models_pb2.GetModelRequest(id="mock/added"),
                    metadata=(("authorization", f"Bearer {gateway.key}"),),
                    timeout=30,
                )
    finally:
        gateway.stop()


def cached_text(upstream: str, cached: list[str], max_entries: int = 100) -> str:
    text = f"""providers:
  mock: {{kind: openai, base_url: {upstream}, api_key: upstream-secret, timeout: 20}}
cache: {{max_entries: {max_entries}}}
models:
"""
    for model in ("mock/echo", "mock/plain"):
        text += f"  - id: {model}\n    endpoints: [{{provider: mock, model: echo}}]\n"
        if model in cached:
            text += "    cache: {ttl: 60}\n"
    return text


def cache_outcome(gateway: Gateway, model: str, text: str) -> str:
    """The x-switchyard-cache header of a second identical request."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})
    outcome = ""
    for _ in range(2):
        request = urllib.request.Request(
            gateway.base_url + "/chat/completions",
            data=body.encode(),
            headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            outcome = response.headers.get("x-switchyard-cache", "")
    return outcome


def test_a_reload_applies_the_models_cache_settings(mock: MockOpenAI, tmp_path: Path) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(cached_text(mock.base_url, ["mock/echo"]), encoding="utf-8")
    gateway = start_gateway(config, tmp_path / "data")
    try:
        admin = admin_key(gateway)
        assert cache_outcome(gateway, "mock/echo", "one") == "hit"
        assert cache_outcome(gateway, "mock/plain", "two") == "miss"
        config.write_text(cached_text(mock.base_url, ["mock/plain"]), encoding="utf-8")
        assert post(gateway, "/admin/reload", admin)[0] == 200
        assert cache_outcome(gateway, "mock/plain", "three") == "hit"  # on at once
        assert cache_outcome(gateway, "mock/echo", "four") == "miss"  # off at once
        # A new backend (here: its size) takes a restart, and the log says so.
        config.write_text(cached_text(mock.base_url, ["mock/plain"], 50), encoding="utf-8")
        assert post(gateway, "/admin/reload", admin)[0] == 200
        assert "the cache backend settings changed; they apply at restart" in gateway.log()
        assert cache_outcome(gateway, "mock/plain", "five") == "hit"
    finally:
        gateway.stop()


def test_turning_the_cache_on_by_reload_says_it_needs_a_restart(
    mock: MockOpenAI, tmp_path: Path
) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(cached_text(mock.base_url, []), encoding="utf-8")
    gateway = start_gateway(config, tmp_path / "data")
    try:
        config.write_text(cached_text(mock.base_url, ["mock/echo"]), encoding="utf-8")
        assert post(gateway, "/admin/reload", admin_key(gateway))[0] == 200
        assert "turning it on applies at restart" in gateway.log()
        assert cache_outcome(gateway, "mock/echo", "six") == "miss"
    finally:
        gateway.stop()
