"""OpenTelemetry traces against a real OTLP receiver (issue 18, item 2): a span per call
under the caller's W3C trace, a CLIENT span per upstream attempt (a retry and a
fallback show as siblings), GenAI attributes, and `traceparent` passed upstream."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.trace.v1 import trace_pb2
from switchyard.v1 import chat_pb2, chat_pb2_grpc

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.fixtures.otlp import Receiver, attributes
from tests.integration.test_metrics import observed_config

SERVER = trace_pb2.Span.SpanKind.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SpanKind.SPAN_KIND_CLIENT
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # ms between the exporter's batches


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    otlp = Receiver().start()
    yield otlp
    otlp.stop()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockOpenAI]:
    upstream = MockOpenAI().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gateway(
    receiver: Receiver, mock: MockOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("tracing")
    extra = f"tracing: {{enabled: true, endpoint: '{receiver.endpoint}', sample_ratio: 1.0}}"
    config = observed_config(tmp / "c.yaml", mock.base_url, extra)
    gateway = start_gateway(config, tmp / "data", env=FAST_EXPORT)
    yield gateway
    gateway.stop()


def new_trace(sampled: bool = True) -> tuple[str, str, str]:
    """A caller's trace id, span id and `traceparent`."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def chat(gateway: Gateway, body: dict[str, object], traceparent: str | None) -> int:
    headers = {"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}
    if traceparent:
        headers["traceparent"] = traceparent
    request = urllib.request.Request(
        gateway.base_url + "/chat/completions", data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        if body.get("stream"):
            response.read()
        return int(response.status)


def hello(model: str, **more: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "trace me"}], **more}


def upstream_traceparents(mock: MockOpenAI, trace_id: str) -> list[str]:
    return [
        r.headers["traceparent"]
        for r in list(mock.requests)
        if trace_id in r.headers.get("traceparent", "")
    ]


def split(spans: list[trace_pb2.Span]) -> tuple[trace_pb2.Span, list[trace_pb2.Span]]:
    (server,) = [s for s in spans if s.kind == SERVER]
    attempts = sorted((s for s in spans if s.kind == CLIENT), key=lambda s: s.start_time_unix_nano)
    return server, attempts


def test_a_fallback_shows_as_sibling_attempts(
    gateway: Gateway, receiver: Receiver, mock: MockOpenAI
) -> None:
    trace_id, caller, traceparent = new_trace()
    body = hello("mock/fallback", provider={"order": ["dead", "mock"]})
    assert chat(gateway, body, traceparent) == 200
    server, attempts = split(receiver.wait(4, bytes.fromhex(trace_id)))
    assert server.parent_span_id.hex() == caller
    assert server.name == "chat mock/fallback"
    got = attributes(server)
    assert got["gen_ai.operation.name"] == "chat"
    assert got["gen_ai.request.model"] == "mock/fallback"
    assert got["gen_ai.response.model"] == "mock/fallback"
    assert got["gen_ai.provider.name"] == "mock"
    assert got["gen_ai.usage.input_tokens"] > 0 and got["gen_ai.usage.output_tokens"] > 0
    # The dead endpoint is tried twice (one retry), then the request falls back.
    assert [attributes(a)["gen_ai.provider.name"] for a in attempts] == ["dead", "dead", "mock"]
    assert all(a.parent_span_id == server.span_id for a in attempts)
    retried, fell_back, served = (attributes(a) for a in attempts)
    assert (retried["switchyard.outcome"], retried["error.type"]) == ("retried", "connect")
    assert (fell_back["switchyard.outcome"], fell_back["error.type"]) == ("fell_back", "connect")
    assert served["switchyard.outcome"] == "success" and "error.type" not in served
    assert served["gen_ai.request.model"] == "echo"  # the upstream's name for the model
    # The upstream got the trace, its parent being the attempt that reached it.
    (sent,) = upstream_traceparents(mock, trace_id)
    assert sent == f"00-{trace_id}-{attempts[2].span_id.hex()}-01"


def test_a_retry_shows_as_sibling_attempts(
    gateway: Gateway, receiver: Receiver, mock: MockOpenAI
) -> None:
    mock.flaky_failures = 1
    trace_id, _, traceparent = new_trace()
    assert chat(gateway, hello("mock/flaky"), traceparent) == 200
    server, attempts = split(receiver.wait(3, bytes.fromhex(trace_id)))
    assert len(attempts) == 2 and all(a.parent_span_id == server.span_id for a in attempts)
    outcomes = [attributes(a)["switchyard.outcome"] for a in attempts]
    assert outcomes == ["retried", "success"]
    assert attributes(attempts[0])["error.type"] == "status_5xx"
    assert attempts[0].end_time_unix_nano <= attempts[1].start_time_unix_nano
    assert upstream_traceparents(mock, trace_id) == [
        f"00-{trace_id}-{a.span_id.hex()}-01" for a in attempts
    ]


def test_a_direct_grpc_stream_continues_the_callers_trace(
    gateway: Gateway, receiver: Receiver
) -> None:
    trace_id, caller, traceparent = new_trace()
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        chunks = list(
            chat_pb2_grpc.ChatServiceStub(channel).Stream(
                chat_pb2.ChatRequest(
                    model="mock/echo", messages=[chat_pb2.Message(role="user", text="hi")]
                ),
                metadata=(("authorization", f"Bearer {gateway.key}"), ("traceparent", traceparent)),
                timeout=30,
            )
        )
    assert chunks
    server, attempts = split(receiver.wait(2, bytes.fromhex(trace_id)))
    assert server.parent_span_id.hex() == caller and server.name == "chat mock/echo"
    assert attributes(server)["gen_ai.usage.output_tokens"] > 0
    assert len(attempts) == 1 and attempts[0].parent_span_id == server.span_id


def test_a_failed_call_is_an_error_span(gateway: Gateway, receiver: Receiver) -> None:
    trace_id, _, traceparent = new_trace()
    with pytest.raises(urllib.error.HTTPError):
        chat(gateway, hello("mock/fail500"), traceparent)
    server, attempts = split(receiver.wait(3, bytes.fromhex(trace_id)))
    assert server.status.code == trace_pb2.Status.StatusCode.STATUS_CODE_ERROR
    assert attributes(server)["error.type"] == "UPSTREAM_ERROR"
    assert [attributes(a)["switchyard.outcome"] for a in attempts] == ["retried", "failed"]


def test_env_variables_turn_it_on_and_ratio_zero_keeps_only_sampled_callers(
    receiver: Receiver, mock: MockOpenAI, tmp_path: Path
) -> None:
    config = observed_config(tmp_path / "c.yaml", mock.base_url, "tracing: {sample_ratio: 0}")
    env = {
        **FAST_EXPORT,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "switchyard-under-test",
    }
    gateway = start_gateway(config, tmp_path / "data", env=env)
    try:
        before = len(receiver.spans())
        seen = len(mock.requests)
        assert chat(gateway, hello("mock/echo"), None) == 200
        # A caller that sampled its trace is followed whatever our own ratio.
        trace_id, caller, traceparent = new_trace(sampled=True)
        assert chat(gateway, hello("mock/echo"), traceparent) == 200
        server, _ = split(receiver.wait(2, bytes.fromhex(trace_id)))
        assert server.parent_span_id.hex() == caller
        assert {"service.name": "switchyard-under-test"} in [
            {k: v for k, v in r.items() if k == "service.name"} for r in receiver.resources
        ]
        # A caller that did not sample is not traced, and its decision is passed on.
        unsampled, _, unsampled_parent = new_trace(sampled=False)
        assert chat(gateway, hello("mock/echo"), unsampled_parent) == 200
        (sent,) = upstream_traceparents(mock, unsampled)
        assert sent.endswith("-00")
        time.sleep(1.0)  # a tenth of a second between batches: ten of them
        ours = [s for s in receiver.spans()[before:] if s.trace_id != bytes.fromhex(trace_id)]
        assert ours == [], "an unsampled call was exported"
        # The unparented call made no span and sent no trace upstream.
        first = list(mock.requests)[seen]
        assert "traceparent" not in first.headers
    finally:
        gateway.stop()
