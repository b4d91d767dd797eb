"""MessagesService over a real gRPC port: Anthropic's objects as typed messages.

The same core as ChatService (auth, billing, errors with ErrorInfo), reached by a
polyglot client with the generated stubs only: no JSON but tool schemas and inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from switchyard.v1 import admin_pb2, admin_pb2_grpc, messages_pb2, messages_pb2_grpc

from tests.fixtures.gateway import Gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.integration.test_grpc_surface import auth, rich_status

WEATHER = messages_pb2.ToolDefinition(
    name="get_weather",
    input_schema_json='{"type":"object","properties":{"city":{"type":"string"}}}',
)


@pytest.fixture
def stub(service: Gateway) -> Iterator[messages_pb2_grpc.MessagesServiceStub]:
    with grpc.insecure_channel(service.grpc_target) as channel:
        yield messages_pb2_grpc.MessagesServiceStub(channel)


def ask(model: str, text: str, **fields: object) -> messages_pb2.MessagesRequest:
    return messages_pb2.MessagesRequest(
        model=model,
        max_tokens=50,
        messages=[messages_pb2.MessageParam(role="user", text=text)],
        **fields,  # type: ignore[arg-type]
    )


def test_create(
    service: Gateway, stub: messages_pb2_grpc.MessagesServiceStub, mock: MockOpenAI
) -> None:
    response = stub.Create(
        ask("mock/echo", "hello typed", system_text="Be brief."), metadata=auth(service), timeout=10
    )
    assert [b.text for b in response.content] == ["echo: hello typed"]
    assert response.stop_reason == "end_turn"
    assert (response.model, response.provider) == ("mock/echo", "mock")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.HasField("cost")
    sent = mock.requests[-1].body
    assert sent is not None and sent["messages"][0] == {"role": "system", "content": "Be brief."}
    # Billed like any generation: it can be looked up by its id.
    account = admin_pb2_grpc.AccountServiceStub(grpc.insecure_channel(service.grpc_target))
    generation = account.GetGeneration(
        admin_pb2.GetGenerationRequest(id=response.id), metadata=auth(service), timeout=10
    )
    assert generation.model == "mock/echo"


def test_stream_tool_use(service: Gateway, stub: messages_pb2_grpc.MessagesServiceStub) -> None:
    events = list(
        stub.Stream(
            ask("mock/tools", "weather?", tools=[WEATHER]), metadata=auth(service), timeout=10
        )
    )
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0].provider == "mock" and events[0].id
    starts = [e.content_block_start for e in events if e.HasField("content_block_start")]
    assert [(s.index, s.content_block.tool_use.id) for s in starts] == [
        (0, "call_a"),
        (1, "call_b"),
    ]
    inputs: dict[int, str] = {}
    for event in events:
        if event.HasField("content_block_delta"):
            delta = event.content_block_delta
            inputs[delta.index] = inputs.get(delta.index, "") + delta.partial_json
    assert {i: json.loads(text) for i, text in inputs.items()} == {
        0: {"city": "Paris"},
        1: {"city": "Tokyo"},
    }
    final = events[-2].message_delta
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0


def test_errors_carry_the_contract(
    service: Gateway, stub: messages_pb2_grpc.MessagesServiceStub
) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        stub.Create(
            messages_pb2.MessagesRequest(model="mock/echo"), metadata=auth(service), timeout=10
        )
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, _ = rich_status(missing.value)
    assert info.reason == "INVALID_REQUEST"
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Create(ask("mock/nope", "x"), metadata=auth(service), timeout=10)
    assert rich_status(unknown.value)[0].reason == "MODEL_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as anonymous:
        stub.Create(ask("mock/echo", "x"), timeout=10)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_count_tokens(service: Gateway, stub: messages_pb2_grpc.MessagesServiceStub) -> None:
    counted = stub.CountTokens(
        ask("mock/echo", "count me " * 20), metadata=auth(service), timeout=10
    )
    assert counted.input_tokens > 20
