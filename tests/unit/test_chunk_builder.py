"""service/servicers/chat_proto.py `ChunkBuilder`: the stream invariants (DESIGN §5)."""

from __future__ import annotations

from switchyard.v1 import chat_pb2

from service.domain.chat import ChatDelta, ChoiceDelta, ToolCallDelta, Usage
from service.engine import Served
from service.servicers.chat_proto import ChunkBuilder

SERVED = Served(model="openai/gpt-4o", provider="openai")


def builder(include_usage: bool = True) -> ChunkBuilder:
    return ChunkBuilder(SERVED, "chatcmpl-42", 1700000000, include_usage)


def text(index: int, content: str, finish: str | None = None) -> ChatDelta:
    return ChatDelta(choices=(ChoiceDelta(index=index, content=content, finish_reason=finish),))


def calls(*deltas: ToolCallDelta, choice: int = 0) -> ChatDelta:
    return ChatDelta(choices=(ChoiceDelta(index=choice, tool_calls=deltas),))


def built(b: ChunkBuilder, delta: ChatDelta) -> chat_pb2.ChatChunk:
    out = b.chunk(delta)
    assert out is not None
    return out


def assert_header(chunk: chat_pb2.ChatChunk) -> None:
    assert (chunk.id, chunk.created, chunk.model, chunk.provider) == (
        "chatcmpl-42",
        1700000000,
        "openai/gpt-4o",
        "openai",
    )


def test_role_only_on_the_first_chunk_of_each_choice() -> None:
    b = builder()
    first = built(b, ChatDelta(choices=(ChoiceDelta(index=0, role="assistant", content=""),)))
    second = built(b, text(0, "Hel"))
    third = built(b, text(0, "lo", finish="stop"))
    assert [c.choices[0].delta.role for c in (first, second, third)] == ["assistant", "", ""]
    assert first.choices[0].delta.content == ""
    assert first.choices[0].delta.HasField("content")
    assert [c.choices[0].delta.content for c in (second, third)] == ["Hel", "lo"]
    assert [c.choices[0].finish_reason for c in (first, second, third)] == ["", "", "stop"]


def test_role_is_added_even_when_the_upstream_omits_it() -> None:
    b = builder()
    assert built(b, text(0, "Hi")).choices[0].delta.role == "assistant"
    assert built(b, text(0, "!")).choices[0].delta.role == ""


def test_each_choice_gets_its_own_first_role() -> None:
    b = builder()
    a = built(b, text(0, "a"))
    both = built(
        b,
        ChatDelta(choices=(ChoiceDelta(index=0, content="b"), ChoiceDelta(index=1, content="x"))),
    )
    later = built(b, text(1, "y"))
    assert a.choices[0].delta.role == "assistant"
    assert [(c.index, c.delta.role) for c in both.choices] == [(0, ""), (1, "assistant")]
    assert later.choices[0].delta.role == ""


def test_every_chunk_has_the_same_header() -> None:
    b = builder(include_usage=True)
    chunks = [
        built(b, text(0, "a")),
        built(b, calls(ToolCallDelta(index=0, id="c", name="f"))),
        built(b, text(0, "", finish="stop")),
    ]
    usage = b.usage_chunk(Usage(), 0.0)
    assert usage is not None
    for chunk in [*chunks, usage]:
        assert_header(chunk)


def test_system_fingerprint_sticks_once_seen() -> None:
    b = builder()
    first = built(
        b, ChatDelta(choices=(ChoiceDelta(index=0, content="a"),), system_fingerprint="fp_1")
    )
    second = built(b, text(0, "b"))
    assert first.system_fingerprint == "fp_1"
    assert second.system_fingerprint == "fp_1"


def test_tool_call_first_delta_is_complete_later_ones_only_arguments() -> None:
    b = builder()
    first = built(b, calls(ToolCallDelta(index=0, id="call_1", name="get_weather")))
    later = built(b, calls(ToolCallDelta(index=0, arguments='{"city":')))
    last = built(b, calls(ToolCallDelta(index=0, arguments='"Paris"}')))

    tc = first.choices[0].delta.tool_calls[0]
    assert (tc.index, tc.id, tc.type) == (0, "call_1", "function")
    assert tc.HasField("name")
    assert tc.name == "get_weather"
    assert tc.HasField("arguments")  # "" even though the upstream sent no arguments
    assert tc.arguments == ""

    for chunk, arguments in ((later, '{"city":'), (last, '"Paris"}')):
        tc = chunk.choices[0].delta.tool_calls[0]
        assert (tc.index, tc.id, tc.type) == (0, "", "")
        assert not tc.HasField("name")
        assert tc.HasField("arguments")
        assert tc.arguments == arguments


def test_tool_call_first_delta_keeps_upstream_arguments() -> None:
    b = builder()
    first = built(b, calls(ToolCallDelta(index=0, id="call_1", name="f", arguments="{}")))
    assert first.choices[0].delta.tool_calls[0].arguments == "{}"


def test_each_tool_call_and_each_choice_has_its_own_first_delta() -> None:
    b = builder()
    built(b, calls(ToolCallDelta(index=0, id="call_1", name="f")))
    second = built(b, calls(ToolCallDelta(index=1, id="call_2", name="g")))
    other_choice = built(b, calls(ToolCallDelta(index=0, id="call_3", name="h"), choice=1))
    again = built(b, calls(ToolCallDelta(index=1, arguments="{}")))
    for chunk, name in ((second, "g"), (other_choice, "h")):
        tc = chunk.choices[0].delta.tool_calls[0]
        assert (tc.type, tc.name, tc.arguments) == ("function", name, "")
    tc = again.choices[0].delta.tool_calls[0]
    assert (tc.index, tc.type, tc.HasField("name")) == (1, "", False)


def test_usage_with_choices_is_held_back_for_the_usage_chunk() -> None:
    b = builder(include_usage=True)
    usage = Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12, cached_tokens=1)
    out = built(
        b,
        ChatDelta(choices=(ChoiceDelta(index=0, content="!", finish_reason="stop"),), usage=usage),
    )
    assert not out.HasField("usage")
    assert out.choices[0].finish_reason == "stop"
    assert b.usage == usage
    assert b.usage is not None
    final = b.usage_chunk(b.usage, 0.25)
    assert final is not None
    assert_header(final)
    assert len(final.choices) == 0
    assert final.usage.cost == 0.25
    assert final.HasField("usage")
    assert (
        final.usage.prompt_tokens,
        final.usage.completion_tokens,
        final.usage.total_tokens,
        final.usage.cached_tokens,
    ) == (5, 7, 12, 1)
    assert not final.usage.HasField("reasoning_tokens")


def test_no_usage_chunk_unless_asked() -> None:
    b = builder(include_usage=False)
    usage = Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12)
    out = built(b, ChatDelta(choices=(ChoiceDelta(index=0, content="!"),), usage=usage))
    assert not out.HasField("usage")
    assert b.usage == usage  # still recorded, for billing
    assert b.usage_chunk(usage, 0.0) is None


def test_usage_only_delta_yields_no_chunk() -> None:
    b = builder(include_usage=True)
    usage = Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    assert b.chunk(ChatDelta(choices=(), usage=usage)) is None
    assert b.usage == usage
    final = b.usage_chunk(usage, 0.0)
    assert final is not None
    assert final.usage.total_tokens == 3


def test_usage_chunk_carries_the_usage_it_is_given() -> None:
    b = builder(include_usage=True)
    built(b, text(0, "abc"))
    assert b.usage is None and b.produced_chars == 3  # what a cut stream is billed from
    final = b.usage_chunk(Usage(prompt_tokens=2, completion_tokens=1, total_tokens=3), 0.5)
    assert final is not None
    assert final.HasField("usage")
    assert (final.usage.total_tokens, final.usage.cost) == (3, 0.5)
