"""Golden conversions of reasoning, both ways, for every layer and adapter it crosses.

OpenRouter's unified request (`reasoning`, `reasoning_effort`, `include_reasoning`) in
the HTTP layer and the proto; out to OpenAI's `reasoning_effort`, Anthropic's
`thinking.budget_tokens` and Gemini's `thinkingConfig`; back as `reasoning` and
`reasoning_details`, with the provider signatures that a later tool loop must return.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from switchyard.v1 import chat_pb2

from gateway_http.errors import HttpError
from gateway_http.transcode.chat import chunk_json, parse_chat, response_json
from service.catalog import EndpointConfig
from service.domain.chat import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    Choice,
    ChoiceDelta,
    Message,
    Reasoning,
    ReasoningDetail,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from service.engine import Served
from service.errors import GatewayError
from service.providers.anthropic import answer as claude_answer
from service.providers.anthropic import convert as anthropic
from service.providers.anthropic.stream import StreamTranslator as AnthropicStream
from service.providers.gemini import convert as gemini
from service.providers.gemini import response as gemini_answers
from service.providers.gemini.stream import StreamTranslator as GeminiStream
from service.providers.openai_compat import convert as openai_compat
from service.routing import requirements
from service.servicers.chat_proto import ChunkBuilder, request_from_proto, response_to_proto

JSON = dict[str, Any]
WEATHER = Tool(name="get_weather", parameters_json='{"type":"object"}')
CLAUDE = "anthropic-claude-v1"
GOOGLE = "google-gemini-v1"


def chat(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=messages or (Message("user", "hi"),), **fields)


# --- the HTTP layer and the proto -----------------------------------------------------


def _request(**fields: Any) -> ChatRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return request_from_proto(parse_chat(body).request)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"reasoning": {"effort": "high"}}, Reasoning(effort="high")),
        ({"reasoning_effort": "low"}, Reasoning(effort="low")),
        (
            {"reasoning": {"max_tokens": 2000, "exclude": True}},
            Reasoning(max_tokens=2000, exclude=True),
        ),
        ({"reasoning": {"enabled": True}}, Reasoning(enabled=True)),
        ({"include_reasoning": True}, Reasoning(enabled=True)),
        ({"include_reasoning": False}, Reasoning(exclude=True)),
        (
            {"reasoning": {"effort": "medium"}, "reasoning_effort": "medium"},
            Reasoning(effort="medium"),
        ),
        ({}, None),
    ],
)
def test_unified_reasoning_request(fields: JSON, expected: Reasoning | None) -> None:
    assert _request(**fields).reasoning == expected


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"reasoning": {"effort": "low", "max_tokens": 100}}, "reasoning"),
        ({"reasoning": {"max_tokens": -1}}, "reasoning.max_tokens"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"effort": "low"}, "reasoning_effort": "high"}, "reasoning_effort"),
        ({"reasoning": {"exclude": "yes"}}, "reasoning.exclude"),
    ],
)
def test_bad_reasoning_is_a_400_naming_it(fields: JSON, param: str) -> None:
    with pytest.raises((HttpError, GatewayError)) as caught:
        _request(**fields)
    error = caught.value
    assert isinstance(error, HttpError | GatewayError) and error.param == param


def test_returned_details_are_read_back_whole() -> None:
    details = [
        {"type": "reasoning.text", "text": "hm", "signature": "s1", "format": CLAUDE, "index": 0},
        {"type": "reasoning.encrypted", "data": "x", "id": "call_1", "format": GOOGLE, "index": 1},
    ]
    assistant = {
        "role": "assistant",
        "content": None,
        "reasoning": "hm",
        "reasoning_details": details,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f"}}],
    }
    request = _request(
        messages=[
            {"role": "user", "content": "hi"},
            assistant,
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ]
    )
    returned = request.messages[1]
    assert returned.reasoning == "hm"
    assert returned.reasoning_details == (
        ReasoningDetail("reasoning.text", text="hm", signature="s1", format=CLAUDE),
        ReasoningDetail("reasoning.encrypted", data="x", id="call_1", format=GOOGLE, index=1),
    )
    with pytest.raises(HttpError) as caught:
        _request(
            messages=[{"role": "assistant", "content": "a", "reasoning_details": [{"type": 1}]}]
        )
    assert caught.value.param == "messages[0].reasoning_details[0].type"


SERVED = Served(model="m", provider="p")
DETAILS = (
    ReasoningDetail("reasoning.text", text="hm", signature="s1", format=CLAUDE),
    ReasoningDetail("reasoning.encrypted", data="x", id="call_1", format=GOOGLE, index=1),
)


def test_response_and_chunk_render_openrouter_fields() -> None:
    result = ChatResult(
        choices=(
            Choice(
                0, Message("assistant", "42", reasoning="hm", reasoning_details=DETAILS), "stop"
            ),
        ),
        usage=Usage(3, 10, 13, reasoning_tokens=6),
    )
    out = response_json(response_to_proto(result, SERVED, "gen", 1))
    message = out["choices"][0]["message"]
    assert message["reasoning"] == "hm"
    assert message["reasoning_details"] == [
        {"type": "reasoning.text", "text": "hm", "signature": "s1"}
        | {"id": None, "format": CLAUDE, "index": 0},
        {"type": "reasoning.encrypted", "data": "x", "id": "call_1", "format": GOOGLE, "index": 1},
    ]
    assert out["usage"]["completion_tokens_details"] == {"reasoning_tokens": 6}
    hidden = response_json(response_to_proto(result, SERVED, "gen", 1, exclude_reasoning=True))
    assert "reasoning" not in hidden["choices"][0]["message"]
    assert [d["type"] for d in hidden["choices"][0]["message"]["reasoning_details"]] == [
        "reasoning.encrypted"
    ]
    builder = ChunkBuilder(SERVED, "gen", 1, include_usage=False)
    chunk = builder.chunk(
        ChatDelta(choices=(ChoiceDelta(0, reasoning="hm", reasoning_details=DETAILS[:1]),))
    )
    assert chunk is not None
    delta = chunk_json(chunk, include_usage=False)["choices"][0]["delta"]
    assert delta["reasoning"] == "hm" and delta["reasoning_details"][0]["signature"] == "s1"


def test_excluded_reasoning_deltas_are_not_sent_at_all() -> None:
    builder = ChunkBuilder(SERVED, "gen", 1, include_usage=False, exclude_reasoning=True)
    thinking = ChoiceDelta(0, role="assistant", reasoning="hm", reasoning_details=DETAILS[:1])
    assert builder.chunk(ChatDelta(choices=(thinking,))) is None
    signature = ChoiceDelta(0, reasoning_details=DETAILS[1:])
    kept = builder.chunk(ChatDelta(choices=(signature,)))
    assert kept is not None and len(kept.choices[0].delta.reasoning_details) == 1
    answer = builder.chunk(ChatDelta(choices=(ChoiceDelta(0, content="42"),)))
    assert answer is not None and answer.choices[0].delta.content == "42"
    assert builder.produced_chars == 2  # the hidden thinking is still billed (2 + 2 chars)


def test_reasoning_is_a_soft_parameter_the_catalog_can_refuse() -> None:
    request = chat(reasoning=Reasoning(effort="low"))
    needs = requirements.for_chat(request)
    assert "reasoning" in needs.parameters and "reasoning" not in needs.hard_parameters
    plain = EndpointConfig(provider="p", model="m", reasoning=False)
    assert needs.dropped(plain) == {"reasoning"}
    assert needs.unmet(plain, require_parameters=True) == "the 'reasoning' parameter"
    assert needs.unmet(plain, require_parameters=False) is None
    declared = EndpointConfig(
        provider="p", model="m", supported_parameters=frozenset({"tools"}), reasoning=True
    )
    assert needs.dropped(declared) == frozenset()
    assert needs.dropped(EndpointConfig(provider="p", model="m")) == frozenset()
    assert requirements.without(request, frozenset({"reasoning"})).reasoning is None


# --- OpenAI-compatible upstreams ------------------------------------------------------


@pytest.mark.parametrize(
    ("reasoning", "effort"),
    [
        (Reasoning(effort="xhigh"), "xhigh"),
        (Reasoning(enabled=True), "medium"),
        (Reasoning(max_tokens=500), "minimal"),
        (Reasoning(max_tokens=2000), "low"),
        (Reasoning(max_tokens=20000), "high"),
        (Reasoning(exclude=True), None),
        (Reasoning(enabled=False), None),
    ],
)
def test_openai_reasoning_effort(reasoning: Reasoning, effort: str | None) -> None:
    body = openai_compat.chat_body(chat(reasoning=reasoning), "o4-mini", stream=False)
    assert body.get("reasoning_effort") == effort


def test_openai_reads_reasoning_content_and_details() -> None:
    answer: Any = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "42",
                    "reasoning_content": "Let me see.",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 20,
            "total_tokens": 25,
            "completion_tokens_details": {"reasoning_tokens": 15},
        },
    }
    result = openai_compat.parse_chat_response(answer)
    assert result.choices[0].message.reasoning == "Let me see."
    assert result.usage == Usage(5, 20, 25, reasoning_tokens=15)
    routed: JSON = {"role": "assistant", "content": None, "reasoning": "r"}
    routed["reasoning_details"] = [{"type": "reasoning.text", "text": "r", "format": CLAUDE}]
    answer["choices"][0]["message"] = routed  # an OpenRouter-style upstream
    message = openai_compat.parse_chat_response(answer).choices[0].message
    assert message.reasoning == "r"
    assert message.reasoning_details == (
        ReasoningDetail("reasoning.text", text="r", format=CLAUDE),
    )
    chunk = {"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]}
    assert openai_compat.parse_chunk(chunk).choices[0].reasoning == "hm"
    plain = {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]}
    assert openai_compat.parse_chunk(plain).choices[0].reasoning is None


def test_openai_does_not_send_reasoning_back_upstream() -> None:
    returned = Message("assistant", "a", reasoning="r", reasoning_details=DETAILS)
    body = openai_compat.chat_body(chat(Message("user", "q"), returned), "deepseek", stream=False)
    assert body["messages"][1] == {"role": "assistant", "content": "a"}


# --- Anthropic ------------------------------------------------------------------------


def _claude(request: ChatRequest, stream: bool = False) -> JSON:
    call = anthropic.build_request(request, "claude", stream=stream, default_max_tokens=4096)
    return orjson.loads(orjson.dumps(call.body))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "budget", "sent_max"),
    [
        (Reasoning(effort="high"), None, 3276, 4096),  # 80 % of the default 4096
        (Reasoning(effort="low"), 10_000, 2000, 10_000),
        (Reasoning(effort="minimal"), 500, 1024, 1524),  # Anthropic's minimum, on top
        (Reasoning(effort="xhigh"), 100_000, 32_000, 100_000),  # the ceiling
        (Reasoning(max_tokens=5000), 1000, 5000, 6000),  # a budget above the answer's
        (Reasoning(enabled=True), 8000, 4000, 8000),
    ],
)
def test_anthropic_thinking_budget(
    reasoning: Reasoning, max_tokens: int | None, budget: int, sent_max: int
) -> None:
    body = _claude(chat(reasoning=reasoning, max_tokens=max_tokens))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == sent_max


def test_anthropic_keeps_the_messages_doors_own_thinking() -> None:
    """The Messages door's adaptive thinking reaches Anthropic as sent (Claude picks the
    budget), and a `display` it asked for survives the budget the core computes."""
    adaptive = {"anthropic": '{"thinking":{"type":"adaptive","display":"summarized"}}'}
    body = _claude(chat(reasoning=Reasoning(enabled=True), max_tokens=8000, native_extra=adaptive))
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["max_tokens"] == 8000
    shown = {
        "anthropic": '{"thinking":{"type":"enabled","budget_tokens":2048,"display":"omitted"}}'
    }
    body = _claude(chat(reasoning=Reasoning(max_tokens=2048), max_tokens=8000, native_extra=shown))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048, "display": "omitted"}


def test_anthropic_thinking_drops_sampling_and_refuses_forced_tools() -> None:
    body = _claude(chat(reasoning=Reasoning(effort="low"), temperature=0.2, top_p=0.5))
    assert "temperature" not in body and "top_p" not in body
    assert "thinking" not in _claude(chat(reasoning=Reasoning(exclude=True)))
    assert "thinking" not in _claude(chat(reasoning=Reasoning(effort="none")))
    for forced in (
        {"tools": (WEATHER,), "tool_choice": ToolChoice("required")},
        {"response_format": ResponseFormat("json_object")},
    ):
        with pytest.raises(anthropic.RejectedError) as caught:
            _claude(chat(reasoning=Reasoning(effort="low"), **forced))
        assert caught.value.param == "reasoning"


def test_anthropic_returned_thinking_leads_the_assistant_turn() -> None:
    details = (
        ReasoningDetail("reasoning.text", text="hm", signature="s1", format=CLAUDE),
        ReasoningDetail("reasoning.encrypted", data="opaque", format=CLAUDE, index=1),
        ReasoningDetail("reasoning.text", text="unsigned", format=CLAUDE, index=2),
        ReasoningDetail("reasoning.encrypted", data="g", id="call_1", format=GOOGLE, index=3),
    )
    assistant = Message(
        "assistant",
        "Let me check.",
        tool_calls=(ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),),
        reasoning_details=details,
    )
    body = _claude(
        chat(
            Message("user", "weather?"),
            assistant,
            Message("tool", "21C", tool_call_id="toolu_1"),
            tools=(WEATHER,),
            reasoning=Reasoning(effort="low"),
        )
    )
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "hm", "signature": "s1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]


def test_anthropic_thinking_blocks_become_reasoning() -> None:
    message = {
        "content": [
            {"type": "thinking", "thinking": "Let me think about it.", "signature": "EqQBCg"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": "42"},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 30},
    }
    result = claude_answer.parse_message(message)
    got = result.choices[0].message
    assert got.content == "42"
    assert got.reasoning == "Let me think about it."
    assert got.reasoning_details == (
        ReasoningDetail(
            "reasoning.text", text="Let me think about it.", signature="EqQBCg", format=CLAUDE
        ),
        ReasoningDetail("reasoning.encrypted", data="EmwKAhgB", format=CLAUDE, index=1),
    )
    # Anthropic counts no reasoning tokens apart: estimated from the text (22 chars).
    assert result.usage == Usage(10, 30, 40, reasoning_tokens=6)


def test_anthropic_thinking_stream() -> None:
    translator = AnthropicStream()
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0}
        | {"content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0}
        | {"delta": {"type": "thinking_delta", "thinking": "Let me "}},
        {"type": "content_block_delta", "index": 0}
        | {"delta": {"type": "thinking_delta", "thinking": "see."}},
        {"type": "content_block_delta", "index": 0}
        | {"delta": {"type": "signature_delta", "signature": "EqQB"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1}
        | {"content_block": {"type": "redacted_thinking", "data": "EmwK"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2}
        | {"content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2}
        | {"delta": {"type": "text_delta", "text": "42"}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
        | {"usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]
    deltas = [d for d in (translator.feed(e) for e in events) if d is not None]

    def piece(**fields: Any) -> ChoiceDelta:
        return ChoiceDelta(index=0, **fields)

    text = "reasoning.text"
    assert [d.choices[0] for d in deltas] == [
        piece(
            role="assistant",
            reasoning="Let me ",
            reasoning_details=(ReasoningDetail(text, text="Let me ", format=CLAUDE),),
        ),
        piece(reasoning="see.", reasoning_details=(ReasoningDetail(text, "see.", format=CLAUDE),)),
        piece(reasoning_details=(ReasoningDetail(text, "", signature="EqQB", format=CLAUDE),)),
        piece(
            reasoning_details=(
                ReasoningDetail("reasoning.encrypted", data="EmwK", format=CLAUDE, index=1),
            )
        ),
        piece(content="42"),
        piece(finish_reason="stop"),
    ]
    assert deltas[-1].usage == Usage(5, 20, 25, reasoning_tokens=3)  # 11 chars


# --- Gemini ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "reasoning", "max_tokens", "config"),
    [
        ("gemini-3-pro-preview", Reasoning(effort="high"), None, {"thinkingLevel": "high"}),
        ("gemini-3-flash", Reasoning(effort="xhigh"), None, {"thinkingLevel": "high"}),
        ("gemini-3-flash", Reasoning(effort="minimal"), None, {"thinkingLevel": "minimal"}),
        ("gemini-3-pro", Reasoning(enabled=True), None, {}),
        ("gemini-3-pro", Reasoning(max_tokens=4000), None, {"thinkingBudget": 4000}),
        ("gemini-2.5-flash", Reasoning(effort="medium"), 10_000, {"thinkingBudget": 5000}),
        ("gemini-2.5-pro", Reasoning(effort="low"), None, {"thinkingBudget": 1638}),
        ("models/gemini-2.5-flash", Reasoning(effort="xhigh"), 90_000, {"thinkingBudget": 24576}),
    ],
)
def test_gemini_thinking_config(
    model: str, reasoning: Reasoning, max_tokens: int | None, config: JSON
) -> None:
    body = gemini.chat_body(chat(reasoning=reasoning, max_tokens=max_tokens), {}, model)
    assert body["generationConfig"]["thinkingConfig"] == config | {"includeThoughts": True}


def test_gemini_thinking_off_and_hidden() -> None:
    off = gemini.chat_body(chat(reasoning=Reasoning(enabled=False)), {}, "gemini-2.5-flash")
    assert off["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    pro = gemini.chat_body(chat(reasoning=Reasoning(enabled=False)), {}, "gemini-2.5-pro")
    assert "generationConfig" not in pro  # Pro cannot stop thinking: it would be a 400
    assert "generationConfig" not in gemini.chat_body(
        chat(reasoning=Reasoning(effort="none")), {}, "gemini-3-pro"
    )
    hidden = gemini.chat_body(
        chat(reasoning=Reasoning(effort="low", exclude=True)), {}, "gemini-3-pro"
    )
    assert hidden["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "low",
        "includeThoughts": False,
    }
    extra = '{"thinking_config": {"thinkingBudget": 99}}'  # a client's own, merged under ours
    merged = gemini.chat_body(
        chat(reasoning=Reasoning(exclude=True), extra_json=extra), {}, "gemini-3-pro"
    )
    assert merged["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 99}


def test_gemini_signatures_go_back_on_their_calls() -> None:
    details = (
        ReasoningDetail("reasoning.text", text="hm", format=GOOGLE),
        ReasoningDetail("reasoning.encrypted", data="sigA", id="call_" + "a" * 32, format=GOOGLE),
        ReasoningDetail("reasoning.encrypted", data="sigT", format=GOOGLE, index=2),
        ReasoningDetail("reasoning.text", text="x", signature="claude", format=CLAUDE),
    )
    first, second = "call_" + "a" * 32, "call_" + "b" * 32
    assistant = Message(
        "assistant",
        "Checking.",
        tool_calls=(ToolCall(first, "get_weather", "{}"), ToolCall(second, "get_weather", "{}")),
        reasoning_details=details,
    )
    body = gemini.chat_body(
        chat(
            Message("user", "weather?"),
            assistant,
            Message("tool", "21C", tool_call_id=first),
            Message("tool", "22C", tool_call_id=second),
            tools=(WEATHER,),
        ),
        {},
        "gemini-3-pro",
    )
    assert body["contents"][1]["parts"] == [
        {"text": "Checking.", "thoughtSignature": "sigT"},
        {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": "sigA"},
        {"functionCall": {"name": "get_weather", "args": {}}},  # parallel: the first signs
    ]


GEMINI_CALL_ANSWER = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Looking it up.", "thought": True},
                    {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": "S1"},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 4,
        "candidatesTokenCount": 6,
        "thoughtsTokenCount": 9,
        "totalTokenCount": 19,
    },
}


def _ids() -> Any:
    count = iter(range(100))
    return lambda: f"call_gen{next(count)}"


def test_gemini_signatures_come_back_tied_to_their_calls() -> None:
    result = gemini_answers.parse_response(GEMINI_CALL_ANSWER, _ids())
    message = result.choices[0].message
    assert [c.id for c in message.tool_calls] == ["call_gen0", "call_gen1"]
    assert message.reasoning == "Looking it up."
    assert message.reasoning_details == (
        ReasoningDetail("reasoning.text", text="Looking it up.", format=GOOGLE),
        ReasoningDetail("reasoning.encrypted", data="S1", id="call_gen0", format=GOOGLE, index=1),
    )
    assert result.usage == Usage(4, 15, 19, reasoning_tokens=9)


def test_gemini_stream_sends_each_signature_with_its_call() -> None:
    translator = GeminiStream(_ids())
    deltas = translator.feed(GEMINI_CALL_ANSWER) + translator.finish()
    choices = [d.choices[0] for d in deltas if d.choices]
    assert choices[0] == ChoiceDelta(
        0,
        reasoning="Looking it up.",
        reasoning_details=(
            ReasoningDetail("reasoning.text", text="Looking it up.", format=GOOGLE),
        ),
    )
    assert choices[1] == ChoiceDelta(
        0,
        tool_calls=(ToolCallDelta(0, id="call_gen0", name="get_weather", arguments=""),),
        reasoning_details=(
            ReasoningDetail(
                "reasoning.encrypted", data="S1", id="call_gen0", format=GOOGLE, index=1
            ),
        ),
    )
    assert choices[3].tool_calls[0].id == "call_gen1" and not choices[3].reasoning_details


def test_proto_round_trip_of_returned_details() -> None:
    message = chat_pb2.Message(role="assistant", text="a")
    message.reasoning_details.add(type="reasoning.encrypted", data="S1", id="c1", format=GOOGLE)
    out = chat_pb2.ChatRequest(model="m")
    out.messages.add(role="user", text="q")
    out.messages.append(message)
    domain = request_from_proto(out)
    assert domain.messages[1].reasoning_details == (
        ReasoningDetail("reasoning.encrypted", data="S1", id="c1", format=GOOGLE),
    )
