"""Extended thinking through the Messages door, as the official `anthropic` SDK sees it.

A Claude Code-style tool loop with `thinking` enabled, streamed and not, through two
upstreams: the Anthropic mock, which (as the real API) refuses a tool loop whose last
assistant turn lost its signed thinking block, and the OpenAI-compatible mock, which
reasons DeepSeek-style and refuses its reasoning sent back as input. The client sends
the answer's content blocks back as it got them (what the SDKs and Claude Code do).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.contract.test_reasoning import Pool
from tests.fixtures.flavors import Flavor, discover
from tests.fixtures.mock_anthropic import sign

FLAVORS = [f for f in discover() if f.name in ("anthropic", "openai")]
UPSTREAMS = pytest.mark.parametrize("flavor", FLAVORS, ids=[f.name for f in FLAVORS])
TOOLS: Any = [
    {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
QUESTION: Any = {"role": "user", "content": "weather in Paris?"}
THOUGHT = "The user said weather in Paris? so I think"
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    assert {f.name for f in FLAVORS} == {"anthropic", "openai"}, "a flavor went missing"
    running = Pool(tmp_path_factory)
    yield running
    running.stop()


def _sdk(gateway: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.http_url, api_key=gateway.key, max_retries=0, timeout=60
    )


def _signature(flavor: Flavor) -> str:
    """Anthropic signs its thinking; an OpenAI-compatible upstream does not ("")."""
    return sign(THOUGHT) if flavor.name == "anthropic" else ""


def _result(tool_use_id: str) -> Any:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": '{"temp": 21}'}],
    }


def _check_upstream(flavor: Flavor, mock: Any) -> None:
    """What the second turn sent upstream: the signed thinking block back to Anthropic
    with the client's budget; the budget as an effort, and no reasoning, elsewhere."""
    sent = dict(mock.requests[-1].body)
    if flavor.name == "anthropic":
        assert sent["thinking"] == THINKING
        assistant = [m for m in sent["messages"] if m["role"] == "assistant"][-1]
        assert assistant["content"][0] == {
            "type": "thinking",
            "thinking": THOUGHT,
            "signature": sign(THOUGHT),
        }
    else:
        assert sent["reasoning_effort"] == "low"  # 2,048 tokens: the nearest effort
        assert "thinking" not in sent
        assert all("reasoning_content" not in m for m in sent["messages"])


@UPSTREAMS
def test_tool_loop_with_thinking(pool: Pool, flavor: Flavor) -> None:
    mock, gateway = pool.get(flavor)
    client = _sdk(gateway)
    first = client.messages.create(
        model="up/think", max_tokens=4096, thinking=THINKING, tools=TOOLS, messages=[QUESTION]
    )
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    thought, use = first.content
    assert thought.type == "thinking" and use.type == "tool_use"
    assert thought.thinking == THOUGHT
    assert thought.signature == _signature(flavor)
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    assert first.stop_reason == "tool_use"
    second = client.messages.create(
        model="up/think",
        max_tokens=4096,
        thinking=THINKING,
        tools=TOOLS,
        messages=[QUESTION, {"role": "assistant", "content": first.content}, _result(use.id)],
    )
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["thinking", "text"]
    assert second.content[-1].text == 'done: {"temp": 21}'  # type: ignore[union-attr]
    _check_upstream(flavor, mock)


@UPSTREAMS
def test_tool_loop_with_thinking_streamed(pool: Pool, flavor: Flavor) -> None:
    mock, gateway = pool.get(flavor)
    client = _sdk(gateway)
    with client.messages.stream(
        model="up/think", max_tokens=4096, thinking=THINKING, tools=TOOLS, messages=[QUESTION]
    ) as stream:
        events: list[Any] = [e for e in stream if e.type.startswith("content_block_")]
        first = stream.get_final_message()
    # Anthropic's order: the thinking block opens empty, its thinking_delta pieces, the
    # signature_delta last (from a signing upstream), then its stop; then the tool call.
    steps = [
        e.type if e.type != "content_block_delta" else e.delta.type for e in events if e.index == 0
    ]
    thinking_deltas = steps[1:-2] if flavor.name == "anthropic" else steps[1:-1]
    assert steps[0] == "content_block_start" and steps[-1] == "content_block_stop"
    assert thinking_deltas and set(thinking_deltas) == {"thinking_delta"}
    assert (steps[-2] == "signature_delta") == (flavor.name == "anthropic")
    opened = events[0].content_block
    assert opened.type == "thinking" and opened.thinking == "" and opened.signature == ""
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    thought, use = first.content
    assert thought.type == "thinking" and use.type == "tool_use"
    assert thought.thinking == THOUGHT and thought.signature == _signature(flavor)
    assert use.input == {"city": "Paris"}
    with client.messages.stream(
        model="up/think",
        max_tokens=4096,
        thinking=THINKING,
        tools=TOOLS,
        messages=[QUESTION, {"role": "assistant", "content": first.content}, _result(use.id)],
    ) as stream:
        text = "".join(stream.text_stream)
        second = stream.get_final_message()
    assert text == 'done: {"temp": 21}'
    assert [b.type for b in second.content] == ["thinking", "text"]
    _check_upstream(flavor, mock)


def test_budget_at_max_tokens_is_refused_as_anthropic_refuses_it(pool: Pool) -> None:
    _, gateway = pool.get(FLAVORS[0])
    with pytest.raises(anthropic.BadRequestError) as caught:
        _sdk(gateway).messages.create(
            model="up/think", max_tokens=2048, thinking=THINKING, messages=[QUESTION]
        )
    assert caught.value.status_code == 400
    assert "budget_tokens" in str(caught.value.body)
