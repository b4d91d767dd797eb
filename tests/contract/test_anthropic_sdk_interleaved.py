"""Claude's interleaved thinking through the Messages door, as the `anthropic` SDK sees it.

With interleaved thinking an answer's content can be [thinking, tool_use, thinking,
tool_use]; it crosses the chat-shaped core on its way to the client and again on its way
back upstream, and must keep its order both ways: the client gets the blocks as Claude
wrote them, and the Anthropic mock (as the real API, which wants the assistant message
echoed exactly as received) refuses the next turn otherwise. Streamed and not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.contract.test_reasoning import Pool
from tests.fixtures.flavors import Flavor, discover
from tests.fixtures.mock_anthropic import interleaved

ANTHROPIC: Flavor = next(f for f in discover() if f.name == "anthropic")
TOOLS: Any = [
    {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
OPTIONS: Any = {
    "model": "up/interleave",
    "max_tokens": 4096,
    "tools": TOOLS,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
}
QUESTION: Any = {"role": "user", "content": "weather in Paris and Tokyo?"}
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])


@pytest.fixture(scope="module")
def claude(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    running = Pool(tmp_path_factory)
    yield running.get(ANTHROPIC)
    running.stop()


def _ask(client: anthropic.Anthropic, messages: Any, streamed: bool) -> Any:
    if not streamed:
        return client.messages.create(**OPTIONS, messages=messages)
    with client.messages.stream(**OPTIONS, messages=messages) as stream:
        starts = [e.index for e in stream if e.type == "content_block_start"]
        final = stream.get_final_message()
    assert starts == list(range(len(final.content)))  # each block opened once, in order
    return final


@STREAMED
def test_interleaved_thinking_keeps_its_order_both_ways(
    claude: tuple[Any, Any], streamed: bool
) -> None:
    mock, gateway = claude
    client = anthropic.Anthropic(
        base_url=gateway.http_url, api_key=gateway.key, max_retries=0, timeout=60
    )
    first = _ask(client, [QUESTION], streamed)
    content = [b.model_dump(exclude_none=True) for b in first.content]
    assert content == interleaved("get_weather")
    assert first.stop_reason == "tool_use"
    results: Any = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": f"sunny in {b.input['city']}"}
            for b in first.content
            if b.type == "tool_use"
        ],
    }
    turn: Any = {"role": "assistant", "content": first.content}
    second = _ask(client, [QUESTION, turn, results], streamed)
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text == "done: sunny in Paris sunny in Tokyo"
    sent = mock.requests[-1].body["messages"][1]["content"]
    assert sent == interleaved("get_weather")
