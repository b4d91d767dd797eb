"""`/v1/messages/count_tokens` through the official `anthropic` SDK: counted by the
upstream that would serve the request when it can count, else the gateway's estimate.

Toward an Anthropic endpoint the count is Anthropic's own (the mock's, which no
estimate comes near); toward the built-in local model it is the model's own chat
template and tokenizer; toward an OpenAI-compatible one, which has no such endpoint,
the gateway's estimate. A failure to count is the contract's error, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.fixtures.gateway import Gateway, free_port, start_gateway
from tests.fixtures.mock_anthropic import MockAnthropic, count_tokens
from tests.fixtures.mock_openai import MockOpenAI

WEATHER: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
LOCAL = "local/smollm2-135m-instruct"


@pytest.fixture(scope="module")
def claude() -> Iterator[MockAnthropic]:
    mock = MockAnthropic().start()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def oai() -> Iterator[MockOpenAI]:
    mock = MockOpenAI().start()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def gateway(
    claude: MockAnthropic, oai: MockOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("count") / "switchyard.yaml"
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    path.write_text(
        f"""
routing: {{retries: 0}}
providers:
  claude: {{kind: anthropic, base_url: '{claude.base_url}', api_key: upstream-secret}}
  slowclaude:
    kind: anthropic
    base_url: '{claude.base_url}'
    api_key: upstream-secret
    timeout: 1
  down: {{kind: anthropic, base_url: '{down}', api_key: upstream-secret}}
  oai: {{kind: openai, base_url: '{oai.base_url}', api_key: upstream-secret}}
models:
  - {{id: claude/echo, endpoints: [{{provider: claude, model: echo}}]}}
  - {{id: claude/overloaded, endpoints: [{{provider: claude, model: overloaded}}]}}
  - {{id: claude/hang, endpoints: [{{provider: slowclaude, model: hang}}]}}
  - {{id: claude/down, endpoints: [{{provider: down, model: echo}}]}}
  - {{id: oai/echo, endpoints: [{{provider: oai, model: echo}}]}}
""",
        encoding="utf-8",
    )
    running = start_gateway(path, tmp_path_factory.mktemp("count-data"))
    yield running
    running.stop()


def sdk(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.http_url, api_key=gateway.key, max_retries=0)


def count_bodies(mock: MockAnthropic) -> list[dict[str, Any]]:
    return [r.body for r in list(mock.requests) if r.path.endswith("/count_tokens") and r.body]


def test_an_anthropic_model_is_counted_by_anthropic(
    gateway: Gateway, claude: MockAnthropic
) -> None:
    claude.clear()
    counted = sdk(gateway).messages.count_tokens(
        model="claude/echo",
        system="Be brief and exact.",
        messages=[
            {"role": "user", "content": "What is the weather in Paris today?"},
            {"role": "assistant", "content": "Let me look."},
            {"role": "user", "content": [{"type": "text", "text": "Thanks, go on."}]},
        ],
        tools=WEATHER,
        tool_choice={"type": "auto"},
    )
    [sent] = count_bodies(claude)
    # The request as a message call would send it, minus what count_tokens refuses.
    assert sent["model"] == "echo"
    assert "max_tokens" not in sent and "stream" not in sent
    assert sent["system"] == [{"type": "text", "text": "Be brief and exact."}]
    assert [t["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["tool_choice"]["type"] == "auto"
    assert counted.input_tokens == count_tokens(sent)
    # 1000 + 3 x 17 words + 50 for the tool: no estimate of this prompt comes near it.
    assert counted.input_tokens == 1101
    # Counting is not a generation: no message call reached the upstream.
    assert not [r for r in list(claude.requests) if r.path.endswith("/v1/messages")]


def test_anthropic_only_fields_stay_out_of_the_count(
    gateway: Gateway, claude: MockAnthropic
) -> None:
    """Fields a message call takes and count_tokens refuses (sampling, metadata, the
    service tier) are left out, so the count succeeds where a plain copy would be a 400."""
    claude.clear()
    counted = sdk(gateway).messages.count_tokens(
        model="claude/echo",
        messages=[{"role": "user", "content": "one two three"}],
        extra_body={"temperature": 0.2, "top_k": 5, "service_tier": "auto"},
    )
    [sent] = count_bodies(claude)
    assert set(sent) <= {"model", "messages", "system", "tools", "tool_choice", "thinking"}
    assert counted.input_tokens == 1000 + 3 * 3


def test_the_local_model_counts_with_its_own_tokenizer(local_gateway: Gateway) -> None:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from service.providers.local.assets import SMOLLM2_GGUF

    system, question = "Answer in one word.", "What is the capital of France, please?"
    counted = sdk(local_gateway).messages.count_tokens(
        model=LOCAL, system=system, messages=[{"role": "user", "content": question}]
    )
    # The tokenizer itself, on the prompt rendered with the GGUF's own chat template.
    llama = Llama(model_path=str(SMOLLM2_GGUF.path()), vocab_only=True, verbose=False)
    template = llama.metadata["tokenizer.chat_template"]
    eos, bos = llama.token_eos(), llama.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=llama.detokenize([eos], special=True).decode() if eos != -1 else "",
        bos_token=llama.detokenize([bos], special=True).decode() if bos != -1 else "",
    )
    prompt = formatter(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}]
    ).prompt
    expected = len(llama.tokenize(prompt.encode(), add_bos=False, special=True))
    assert counted.input_tokens == expected
    # And what a generation of the same prompt reports it read.
    reply = sdk(local_gateway).messages.create(
        model=LOCAL,
        max_tokens=1,
        system=system,
        messages=[{"role": "user", "content": question}],
    )
    assert reply.usage.input_tokens == counted.input_tokens


def test_an_openai_compatible_model_gets_the_estimate(
    gateway: Gateway, oai: MockOpenAI, claude: MockAnthropic
) -> None:
    oai.clear()
    claude.clear()
    client = sdk(gateway)
    short = client.messages.count_tokens(
        model="oai/echo", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="oai/echo", messages=[{"role": "user", "content": "hi there " * 100}]
    )
    # The gateway's estimate: no upstream asked, and it grows with the prompt.
    assert not list(oai.requests) and not list(claude.requests)
    assert 0 < short.input_tokens < long.input_tokens < 1000


def status_of(call: Any) -> int:
    with pytest.raises(anthropic.APIStatusError) as caught:
        call()
    body: Any = caught.value.body
    assert body["type"] == "error"  # Anthropic's shape, whatever the status
    return caught.value.status_code


@pytest.mark.parametrize(
    ("model", "expected"),
    [("claude/down", 502), ("claude/overloaded", 502), ("claude/hang", 502)],
)
def test_a_failed_count_is_the_contracts_error(gateway: Gateway, model: str, expected: int) -> None:
    """An upstream that cannot count answers as it would a message call: the same
    status (upstream down, overloaded, past the provider's timeout), never a 500."""
    client = sdk(gateway)
    ask: list[Any] = [{"role": "user", "content": "count me"}]
    started = time.monotonic()
    counted = status_of(lambda: client.messages.count_tokens(model=model, messages=ask))
    assert time.monotonic() - started < 30  # bounded by the provider's 1 s timeout
    created = status_of(lambda: client.messages.create(model=model, max_tokens=5, messages=ask))
    assert counted == created == expected


def test_the_request_deadline_bounds_the_count(gateway: Gateway) -> None:
    client = sdk(gateway)
    status = status_of(
        lambda: client.messages.count_tokens(
            model="claude/hang",
            messages=[{"role": "user", "content": "count me"}],
            extra_headers={"x-switchyard-timeout": "0.3"},
        )
    )
    assert status == 408


def test_counting_needs_a_good_key_allowed_the_model(gateway: Gateway) -> None:
    bad = anthropic.Anthropic(base_url=gateway.http_url, api_key="sk-bad", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.count_tokens(model="claude/echo", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError):
        sdk(gateway).messages.count_tokens(
            model="claude/nope", messages=[{"role": "user", "content": "x"}]
        )
