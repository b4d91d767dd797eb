"""ResponsesService and chat reasoning through a client generated from protos/, over a
real gRPC port: the typed API offers what the HTTP front doors do."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from switchyard.v1 import chat_pb2, chat_pb2_grpc, responses_pb2, responses_pb2_grpc

from tests.fixtures.gateway import Gateway
from tests.integration.test_grpc_surface import auth, rich_status


@pytest.fixture
def channel(service: Gateway) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(service.grpc_target) as channel:
        yield channel


def _weather() -> responses_pb2.FunctionTool:
    return responses_pb2.FunctionTool(
        name="get_weather", parameters_json='{"type":"object","properties":{"city":{}}}'
    )


def test_create_with_items_and_a_tool_loop(service: Gateway, channel: grpc.Channel) -> None:
    stub = responses_pb2_grpc.ResponsesServiceStub(channel)
    question = responses_pb2.InputItem(
        message=responses_pb2.InputMessage(
            role="user", content=[responses_pb2.InputContent(input_text="weather in Paris?")]
        )
    )
    request = responses_pb2.ResponseRequest(
        model="mock/think", instructions="Be brief.", tools=[_weather()]
    )
    request.input_items.items.append(question)
    request.reasoning.effort = "low"
    first = stub.Create(request, metadata=auth(service), timeout=10)
    assert first.status == "completed" and first.provider == "mock"
    kinds = [item.WhichOneof("item") for item in first.output]
    assert kinds == ["reasoning", "function_call"]
    assert first.output[0].reasoning.summary == ["The user said weather in Paris? so I think"]
    assert first.usage.reasoning_tokens > 0 and first.usage.HasField("cost")
    call = first.output[1].function_call
    follow = responses_pb2.ResponseRequest(model="mock/think", tools=[_weather()])
    follow.input_items.items.append(question)
    follow.input_items.items.add(function_call=call)
    follow.input_items.items.add(
        function_call_output=responses_pb2.FunctionCallOutputItem(
            call_id=call.call_id, output='{"temp": 21}'
        )
    )
    second = stub.Create(follow, metadata=auth(service), timeout=10)
    assert second.output[-1].message.text == 'done: {"temp": 21}'


def test_stream_events(service: Gateway, channel: grpc.Channel) -> None:
    stub = responses_pb2_grpc.ResponsesServiceStub(channel)
    request = responses_pb2.ResponseRequest(model="mock/echo", input_text="one two three four")
    batches = list(stub.Stream(request, metadata=auth(service), timeout=10))
    events = [event for batch in batches for event in batch.events]
    # One batch per upstream delta: the first also opens the response and its message.
    assert len(batches[0].events) == 5 and len(batches) < len(events)
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: one two three four"
    final = events[-1].response
    assert final.output[0].message.text == text and final.usage.completion_tokens > 0
    assert events[0].response.provider == "mock"


def test_stateful_requests_are_invalid_argument(service: Gateway, channel: grpc.Channel) -> None:
    stub = responses_pb2_grpc.ResponsesServiceStub(channel)
    request = responses_pb2.ResponseRequest(
        model="mock/echo", input_text="hi", previous_response_id="resp_1"
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Create(request, metadata=auth(service), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, _ = rich_status(caught.value)
    assert info.reason == "INVALID_REQUEST"


def test_chat_reasoning_over_grpc(service: Gateway, channel: grpc.Channel) -> None:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    request = chat_pb2.ChatRequest(
        model="mock/think", messages=[chat_pb2.Message(role="user", text="why?")]
    )
    request.reasoning.effort = "high"
    response = stub.Complete(request, metadata=auth(service), timeout=10)
    message = response.choices[0].message
    assert message.reasoning == "The user said why? so I think"
    assert message.text == "echo: why?"
    assert response.usage.reasoning_tokens == 7  # the upstream's count: words of the thought
    chunks = list(stub.Stream(request, metadata=auth(service), timeout=10))
    streamed = "".join(c.choices[0].delta.reasoning for c in chunks if c.choices)
    assert streamed == message.reasoning
