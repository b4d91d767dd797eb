"""What a client reads when something behind the gateway fails: words, not internals.

An upstream nobody listens on, an attachment URL that cannot be fetched, a moderation
service that is down: each answer says what failed in plain words and never shows an
exception's class, a host or a port (those would tell a client how our network is laid
out). What went wrong underneath is in the gateway's log, on a line carrying the
request's id, for the operator.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.gateway import Gateway, free_port, start_gateway
from tests.fixtures.http import RawResponse, request

HELLO = [{"role": "user", "content": "hello"}]
# Exception class names as Python and aiohttp spell them, e.g. ConnectError,
# ClientConnectorError, ConnectionRefusedError, gaierror.
CLASS_NAME = re.compile(r"\b[A-Za-z]*(Error|Exception)\b|gaierror|ConnectionKey")


@pytest.fixture(scope="module")
def dead_port() -> int:
    return free_port()  # nothing listens here: every connection is refused


@pytest.fixture(scope="module")
def gateway(dead_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    dead = f"http://127.0.0.1:{dead_port}"
    config = tmp_path_factory.mktemp("error-messages") / "switchyard.yaml"
    config.write_text(
        f"""
routing: {{retries: 0, breaker: {{failures: 100000, min_calls: 100000}}}}
moderation: {{kind: openai, base_url: "{dead}/v1", api_key: moderation-secret}}
providers:
  down_openai: {{kind: openai, base_url: "{dead}/v1", connect_timeout: 5}}
  down_anthropic: {{kind: anthropic, base_url: "{dead}", api_key: k, connect_timeout: 5}}
  down_gemini: {{kind: gemini, base_url: "{dead}", api_key: k, connect_timeout: 5}}
  down_cohere: {{kind: cohere, base_url: "{dead}", api_key: k, connect_timeout: 5}}
  down_tei: {{kind: tei, base_url: "{dead}", connect_timeout: 5}}
  down_jina: {{kind: jina, base_url: "{dead}", api_key: k, connect_timeout: 5}}
  fetching:
    kind: gemini
    base_url: "{dead}"
    api_key: k
    fetch: {{allow_private_networks: true, timeout: 5}}
models:
  - {{id: down/openai, endpoints: [{{provider: down_openai, model: m}}]}}
  - {{id: down/anthropic, endpoints: [{{provider: down_anthropic, model: m}}]}}
  - {{id: down/gemini, endpoints: [{{provider: down_gemini, model: m}}]}}
  - {{id: down/fetching, endpoints: [{{provider: fetching, model: m}}]}}
  - {{id: down/moderated, moderated: true, endpoints: [{{provider: down_openai, model: m}}]}}
  - {{id: down/cohere, capabilities: [embeddings],
      endpoints: [{{provider: down_cohere, model: m}}]}}
  - {{id: down/tei, capabilities: [embeddings],
      endpoints: [{{provider: down_tei, model: m}}]}}
  - {{id: down/jina, capabilities: [embeddings],
      endpoints: [{{provider: down_jina, model: m}}]}}
""",
        encoding="utf-8",
    )
    running = start_gateway(config, tmp_path_factory.mktemp("error-messages-data"))
    yield running
    running.stop()


def post(gateway: Gateway, path: str, body: dict[str, Any]) -> tuple[RawResponse, str]:
    """POST under a request id of our own, so that the log line can be found by it."""
    rid = f"errmsg-{uuid.uuid4().hex[:12]}"
    headers = {
        "Authorization": f"Bearer {gateway.key}",
        "Content-Type": "application/json",
        "x-request-id": rid,
    }
    return request("POST", gateway.base_url + path, body, headers), rid


def assert_plain(message: str, dead_port: int) -> None:
    assert not CLASS_NAME.search(message), message
    assert "127.0.0.1" not in message and str(dead_port) not in message, message


def logged_line(gateway: Gateway, rid: str, *needles: str, timeout: float = 10.0) -> str:
    """The log line of request `rid` that holds every needle (waits for it to be written)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in gateway.log().splitlines():
            if f"[{rid}]" in line and all(n in line for n in needles):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line of {rid} with {needles}:\n{gateway.log()}")
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("provider", "path", "body"),
    [
        ("openai", "/chat/completions", {"messages": HELLO}),
        ("anthropic", "/chat/completions", {"messages": HELLO}),
        ("gemini", "/chat/completions", {"messages": HELLO}),
        ("cohere", "/embeddings", {"input": ["a"]}),
        ("tei", "/embeddings", {"input": ["a"]}),
        ("jina", "/embeddings", {"input": ["a"]}),
    ],
)
def test_an_unreachable_upstream_is_told_in_words(
    gateway: Gateway, dead_port: int, provider: str, path: str, body: dict[str, Any]
) -> None:
    raw, rid = post(gateway, path, {"model": f"down/{provider}", **body})
    assert raw.status == 502, raw.body
    message = raw.json()["error"]["message"]
    assert f"cannot reach down_{provider}: the connection was refused" in message
    assert_plain(message, dead_port)
    # The operator's side: what failed underneath, where, for which request.
    line = logged_line(gateway, rid, f"cannot reach down_{provider}")
    assert "ConnectionRefusedError" in line and str(dead_port) in line


def test_an_attachment_that_cannot_be_fetched_is_told_in_words(
    gateway: Gateway, dead_port: int
) -> None:
    image = {"type": "image_url", "image_url": {"url": f"http://127.0.0.1:{dead_port}/a.png"}}
    content = [{"type": "text", "text": "what is this?"}, image]
    raw, rid = post(
        gateway,
        "/chat/completions",
        {"model": "down/fetching", "messages": [{"role": "user", "content": content}]},
    )
    assert raw.status == 400, raw.body
    error = raw.json()["error"]
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert error["message"].endswith("it cannot be fetched: the connection was refused.")
    assert_plain(error["message"], dead_port)
    line = logged_line(gateway, rid, "cannot be fetched")
    assert "ClientConnectorError" in line and str(dead_port) in line


def test_a_moderation_outage_is_told_in_words(gateway: Gateway, dead_port: int) -> None:
    raw, rid = post(gateway, "/chat/completions", {"model": "down/moderated", "messages": HELLO})
    assert raw.status == 502, raw.body
    error = raw.json()["error"]
    assert error["message"] == "moderation is unavailable: the connection was refused"
    assert_plain(error["message"], dead_port)
    logged_line(gateway, rid, "moderation service cannot be used")
    # The traceback that follows the line names the failure and the service's address.
    log = gateway.log()
    after = log[log.index(f"[{rid}]") :]
    assert "ClientConnectorError" in after and str(dead_port) in after
