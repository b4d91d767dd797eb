"""The Anthropic door through the official `anthropic` SDK: /v1/messages is answered from
the response cache like a chat completion, and says so in `x-switchyard-cache`."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.cache.conftest import nonce, upstream_calls
from tests.fixtures.gateway import Gateway
from tests.fixtures.mock_openai import MockOpenAI


def sdk(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.http_url, api_key=gateway.key, max_retries=0)


def ask(gateway: Gateway, text: str, model: str = "cached/echo", **kwargs: Any) -> tuple[str, str]:
    """One message; returns its x-switchyard-cache header and its text."""
    raw = sdk(gateway).messages.with_raw_response.create(
        model=model,
        max_tokens=32,
        messages=[{"role": "user", "content": text}],
        **kwargs,
    )
    message = raw.parse()
    block = message.content[0]
    assert block.type == "text"
    return raw.headers["x-switchyard-cache"], block.text


def ask_streamed(gateway: Gateway, text: str) -> tuple[str, str]:
    with sdk(gateway).messages.stream(
        model="cached/echo",
        max_tokens=32,
        messages=[{"role": "user", "content": text}],
    ) as stream:
        said = "".join(stream.text_stream)
        return stream.response.headers["x-switchyard-cache"], said


def test_a_repeated_message_is_a_hit(gw: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    first_cache, first_text = ask(gw, f"hello {word}")
    second_cache, second_text = ask(gw, f"hello {word}")
    assert (first_cache, second_cache) == ("miss", "hit")
    assert second_text == first_text
    assert upstream_calls(cache_upstream, word) == 1


def test_a_repeated_streamed_message_is_a_hit(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    first_cache, first_text = ask_streamed(gw1, f"stream {word}")
    second_cache, second_text = ask_streamed(gw1, f"stream {word}")
    assert (first_cache, second_cache) == ("miss", "hit")
    assert second_text == first_text and first_text
    # A unary message and a stream share the entry, as chat completions do.
    assert ask(gw1, f"stream {word}") == ("hit", first_text)
    assert upstream_calls(cache_upstream, word) == 1


def mode(name: str) -> dict[str, Any]:
    return {"extra_headers": {"x-switchyard-cache": name}}


def test_the_cache_header_chooses_the_mode(gw: Gateway, cache_upstream: MockOpenAI) -> None:
    """`x-switchyard-cache` on /v1/messages as on chat completions: `skip` goes to the
    upstream past a stored answer, `refresh` goes and stores anew, `use` opts in."""
    word = nonce()
    assert ask(gw, f"modes {word}")[0] == "miss"
    assert ask(gw, f"modes {word}", **mode("skip"))[0] == "miss"
    assert ask(gw, f"modes {word}", **mode("REFRESH"))[0] == "miss"  # as chat reads it
    assert upstream_calls(cache_upstream, word) == 3
    assert ask(gw, f"modes {word}")[0] == "hit"
    assert upstream_calls(cache_upstream, word) == 3
    # A model that caches only when asked: `use` asks.
    assert ask(gw, f"optin {word}", model="cached/optin")[0] == "miss"
    assert ask(gw, f"optin {word}", model="cached/optin")[0] == "miss"
    assert ask(gw, f"optin {word}", model="cached/optin", **mode("use"))[0] == "miss"
    assert ask(gw, f"optin {word}", model="cached/optin", **mode("use"))[0] == "hit"
    assert upstream_calls(cache_upstream, f"optin {word}") == 3


def test_a_streamed_message_takes_the_mode_too(gw1: Gateway, cache_upstream: MockOpenAI) -> None:
    word = nonce()
    ask(gw1, f"stream modes {word}")
    with sdk(gw1).messages.stream(
        model="cached/echo",
        max_tokens=32,
        messages=[{"role": "user", "content": f"stream modes {word}"}],
        **mode("skip"),
    ) as stream:
        assert "".join(stream.text_stream)
        assert stream.response.headers["x-switchyard-cache"] == "miss"
    assert upstream_calls(cache_upstream, word) == 2


def test_an_unknown_mode_is_a_400_in_anthropic_shape(gw1: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(gw1, f"bad mode {nonce()}", **mode("no-store"))
    assert "cache mode" in str(caught.value)
