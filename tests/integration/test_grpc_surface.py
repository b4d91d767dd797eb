"""The gRPC surface through a client generated from protos/, over a real port."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from switchyard.v1 import (
    chat_pb2,
    chat_pb2_grpc,
    embeddings_pb2,
    embeddings_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    rerank_pb2,
    rerank_pb2_grpc,
)

from tests.fixtures.gateway import Gateway
from tests.fixtures.mock_openai import MockOpenAI


@pytest.fixture
def channel(service: Gateway) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(service.grpc_target) as channel:
        yield channel


def auth(service: Gateway) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {service.key}"),)


def hello(model: str = "mock/echo", text: str = "hello grpc") -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(model=model, messages=[chat_pb2.Message(role="user", text=text)])


def rich_status(err: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, status_pb2.Status]:
    trailing: Any = err.trailing_metadata() or ()
    for key, value in trailing:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info, status
    raise AssertionError("the status carries no ErrorInfo")


def test_chat_complete(service: Gateway, channel: grpc.Channel, mock: MockOpenAI) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    request = hello()
    request.temperature = 0.2
    request.tools.add(
        type="function",
        function=chat_pb2.FunctionDefinition(
            name="lookup", parameters_json='{"type":"object","properties":{"n":{"maxItems":3}}}'
        ),
    )
    response = stub.Complete(request, metadata=auth(service), timeout=10)
    assert response.choices[0].message.text == "echo: hello grpc"
    assert response.choices[0].finish_reason == "stop"
    assert (response.model, response.provider) == ("mock/echo", "mock")
    assert (
        response.usage.total_tokens
        == response.usage.prompt_tokens + response.usage.completion_tokens
    )
    sent = mock.requests[-1].body
    assert sent is not None
    assert sent["temperature"] == 0.2
    assert sent["tools"][0]["function"]["parameters"]["properties"]["n"]["maxItems"] == 3


def test_chat_stream(service: Gateway, channel: grpc.Channel) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    request = hello(text="a b c d e f g")
    request.stream_options.include_usage = True
    chunks = list(stub.Stream(request, metadata=auth(service), timeout=10))
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content for c in chunks if c.choices)
    assert text == "echo: a b c d e f g"
    assert not chunks[-1].choices
    assert chunks[-1].usage.total_tokens > 0
    assert all(not c.HasField("usage") for c in chunks[:-1])


def test_tool_call_stream(service: Gateway, channel: grpc.Channel) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    request = hello("mock/tools")
    for name in ("a", "b"):
        request.tools.add(type="function", function=chat_pb2.FunctionDefinition(name=name))
    arguments: dict[int, str] = {}
    for chunk in stub.Stream(request, metadata=auth(service), timeout=10):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls:
                arguments[call.index] = arguments.get(call.index, "") + call.arguments
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"city": "Paris"},
        1: {"city": "Tokyo"},
    }


def test_embed_and_rerank(service: Gateway, channel: grpc.Channel) -> None:
    embed = embeddings_pb2_grpc.EmbeddingServiceStub(channel).Embed(
        embeddings_pb2.EmbedRequest(model="mock/embed", texts=["x y", "z"], dimensions=12),
        metadata=auth(service),
        timeout=10,
    )
    assert [len(e.values) for e in embed.data] == [12, 12]
    assert [e.index for e in embed.data] == [0, 1]
    assert embed.usage.prompt_tokens == 3

    rerank = rerank_pb2_grpc.RerankServiceStub(channel).Rerank(
        rerank_pb2.RerankRequest(
            model="mock/rerank",
            query="red apple",
            documents=["a blue car", "a red apple", "green grass"],
            return_documents=True,
        ),
        metadata=auth(service),
        timeout=10,
    )
    assert rerank.results[0].index == 1
    assert rerank.results[0].document == "a red apple"


def test_models(service: Gateway, channel: grpc.Channel) -> None:
    stub = models_pb2_grpc.ModelServiceStub(channel)
    listing = stub.List(models_pb2.ListModelsRequest(), metadata=auth(service))
    assert "mock/echo" in [m.id for m in listing.models]
    model = stub.Get(models_pb2.GetModelRequest(id="mock/embed"), metadata=auth(service))
    assert list(model.capabilities) == ["embeddings"]


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "switchyard.v1.ChatService", "switchyard.v1.EmbeddingService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {
        "switchyard.v1.ChatService",
        "switchyard.v1.EmbeddingService",
        "switchyard.v1.RerankService",
        "switchyard.v1.ModelService",
        "switchyard.v1.ResponsesService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names


@pytest.mark.parametrize(
    ("request_", "metadata", "code", "reason"),
    [
        (hello(), (), grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY"),
        (
            hello(),
            (("authorization", "Bearer sk-sy-bad"),),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_API_KEY",
        ),
        (hello("acme/nope"), None, grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND"),
        (
            chat_pb2.ChatRequest(model="mock/echo"),
            None,
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST",
        ),
        (hello("mock/fail500"), None, grpc.StatusCode.UNAVAILABLE, "UPSTREAM_ERROR"),
        (hello("dead/chat"), None, grpc.StatusCode.UNAVAILABLE, "UPSTREAM_ERROR"),
    ],
)
@pytest.mark.parametrize("method", ["Complete", "Stream"])
def test_errors_carry_reason(
    service: Gateway,
    channel: grpc.Channel,
    request_: chat_pb2.ChatRequest,
    metadata: tuple[tuple[str, str], ...] | None,
    code: grpc.StatusCode,
    reason: str,
    method: str,
) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    call_metadata = auth(service) if metadata is None else metadata
    with pytest.raises(grpc.RpcError) as raised:
        if method == "Complete":
            stub.Complete(request_, metadata=call_metadata, timeout=10)
        else:
            list(stub.Stream(request_, metadata=call_metadata, timeout=10))
    err = raised.value
    assert err.code() == code
    info, status = rich_status(err)
    assert info.reason == reason
    assert info.domain == "switchyard"
    assert status.code == code.value[0]
    if reason == "INVALID_REQUEST":
        bad = error_details_pb2.BadRequest()
        assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
        assert bad.field_violations[0].field == "messages"


@pytest.mark.parametrize("method", ["Complete", "Stream"])
def test_deadline(service: Gateway, channel: grpc.Channel, method: str) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        if method == "Complete":
            stub.Complete(hello("mock/hang"), metadata=auth(service), timeout=0.5)
        else:
            list(stub.Stream(hello("mock/hang"), metadata=auth(service), timeout=0.5))
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5
