"""Stopping a real gateway with real signals while a stream is in flight (issue 16, item 25).

The first SIGTERM or SIGINT says what it waits for and lets the stream finish within the
grace period; a stream that outlasts it is ended properly (an error chunk, a terminated
chunked body) and the process exits; a second signal exits at once. Every wait below is
for a condition, under a deadline far from the times involved.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.mock_openai import MockOpenAI
from tests.integration.test_cli import _workers

TICK_SECONDS = 0.05  # the mock's pace for "slow"


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[MockOpenAI]:
    """A mock of our own: its "slow" stream's length is set per test."""
    mock = MockOpenAI().start()
    yield mock
    mock.stop()


@pytest.fixture
def config(slow_upstream: MockOpenAI, tmp_path: Path) -> Path:
    slow_upstream.clear()
    return write_config(tmp_path / "switchyard.yaml", slow_upstream.base_url)


class Stream(threading.Thread):
    """A client reading one SSE stream of "mock/slow" to its end, in the background.

    It reads the raw bytes and decodes the chunked body itself: `ended_cleanly` means
    the body's terminating chunk arrived (http.client cannot tell that from a connection
    closed between two chunks).
    """

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(daemon=True)
        self.gateway = gateway
        self.status = 0
        self.events: list[str] = []
        self.started = threading.Event()
        self.error: BaseException | None = None
        self.ended_cleanly = False

    def run(self) -> None:
        body = json.dumps(
            {"model": "mock/slow", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        ).encode()
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {self.gateway.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            with socket.create_connection(("127.0.0.1", self.gateway.http_port), 300) as sock:
                sock.sendall(head + body)
                self._read(sock)
        except BaseException as exc:  # noqa: BLE001 - kept for the test to assert on
            self.error = exc
        finally:
            self.started.set()

    def _read(self, sock: socket.socket) -> None:
        raw = b""
        text = ""

        def more() -> bool:
            nonlocal raw
            data = sock.recv(65536)
            raw += data
            return bool(data)

        while b"\r\n\r\n" not in raw:
            if not more():
                return
        status_line, _, raw = raw.partition(b"\r\n\r\n")
        self.status = int(status_line.split()[1])
        assert b"transfer-encoding: chunked" in status_line.lower(), status_line
        while True:
            while b"\r\n" not in raw:
                if not more():
                    return  # cut between chunks
            size_line, _, rest = raw.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                if not more():
                    return  # cut inside a chunk
                rest = raw.partition(b"\r\n")[2]
            if size == 0:
                self.ended_cleanly = True
                return
            text += rest[:size].decode()
            raw = rest[size + 2 :]
            *frames, text = text.split("\n\n")
            for frame in frames:
                if frame.startswith("data: "):
                    self.events.append(frame[6:])
                    self.started.set()

    def ticks(self) -> int:
        return sum(
            1
            for e in self.events
            if e != "[DONE]" and "tick" in json.dumps(json.loads(e).get("choices"))
        )

    def errors(self) -> list[dict[str, object]]:
        return [json.loads(e)["error"] for e in self.events if e != "[DONE]" and "error" in e]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def exit_status(gateway: Gateway, timeout: float) -> int:
    """The process's exit status, once it exits (fails if it has not within `timeout`)."""
    wait_for(lambda: gateway.process.poll() is not None, "the gateway to exit", timeout)
    status = gateway.process.returncode
    assert status is not None
    return status


def streaming(gateway: Gateway) -> Stream:
    stream = Stream(gateway)
    stream.start()
    assert stream.started.wait(60), "the stream never started"
    assert stream.error is None, stream.error
    assert stream.status == 200
    return stream


def billed(data_dir: Path) -> list[tuple[object, ...]]:
    """The ledger's rows, read once the gateway has exited (its drain wrote them)."""
    db = sqlite3.connect(data_dir / "switchyard.db")
    try:
        return db.execute(
            "SELECT streamed, cancelled, completion_tokens, finish_reason FROM generations"
        ).fetchall()
    finally:
        db.close()


def refused(gateway: Gateway) -> bool:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex(("127.0.0.1", gateway.http_port)) != 0


def test_sigterm_waits_for_the_stream_in_flight(
    slow_upstream: MockOpenAI, config: Path, tmp_path: Path
) -> None:
    slow_upstream.slow_ticks = 60  # 3 s
    gateway = start_gateway(config, tmp_path / "data", extra_args=("--shutdown-grace", "60"))
    try:
        stream = streaming(gateway)
        gateway.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: stopping" in gateway.log(), "the stop message")
        assert (
            "SIGTERM: stopping; waiting for 1 HTTP request and 1 generation in flight, "
            "up to 60 s (Ctrl-C again to exit now)"
        ) in gateway.log()
        wait_for(lambda: refused(gateway), "a stopping gateway to stop taking connections")
        assert exit_status(gateway, 60) == 0
        stream.join(30)
        assert stream.error is None and stream.ended_cleanly
        assert stream.ticks() == 60 and stream.events[-1] == "[DONE]"
        assert "grace period is over" not in gateway.log()
        ((streamed, cancelled, completion_tokens, _),) = billed(tmp_path / "data")
        assert (streamed, cancelled) == (1, 0)
        assert isinstance(completion_tokens, int) and completion_tokens >= 60
    finally:
        gateway.stop()


@pytest.mark.parametrize("channel", ["inprocess", "grpc"])
def test_the_grace_period_ends_a_longer_stream_properly(
    slow_upstream: MockOpenAI, config: Path, tmp_path: Path, channel: str
) -> None:
    slow_upstream.slow_ticks = 2400  # 120 s: far beyond the grace period
    args = ("--shutdown-grace", "2")
    gateway = start_gateway(config, tmp_path / "data", channel=channel, extra_args=args)
    try:
        stream = streaming(gateway)
        gateway.process.send_signal(signal.SIGTERM)
        # 2 s of grace and a few of clean-up: a stream of 120 s must not hold it up.
        assert exit_status(gateway, 60) == 0
        stream.join(30)
        assert stream.error is None, f"the stream was cut off, not ended: {stream.error!r}"
        assert stream.ended_cleanly
        (error,) = stream.errors()
        assert error["code"] == 503, error
        assert 0 < stream.ticks() < 2400
        assert "error" in stream.events[-1], "the error chunk must be the stream's last word"
        assert "the 2 s grace period is over: ending 1 HTTP request" in gateway.log()
        wait_for(lambda: bool(slow_upstream.disconnects), "the upstream call to be closed")
        # What the cut stream produced is billed, once, as a client's hang-up would be.
        ((streamed, cancelled, completion_tokens, _),) = billed(tmp_path / "data")
        assert (streamed, cancelled) == (1, 1)
        assert isinstance(completion_tokens, int) and completion_tokens >= stream.ticks()
    finally:
        gateway.stop()


def test_a_second_sigint_exits_at_once(
    slow_upstream: MockOpenAI, config: Path, tmp_path: Path
) -> None:
    slow_upstream.slow_ticks = 2400
    gateway = start_gateway(config, tmp_path / "data", extra_args=("--shutdown-grace", "300"))
    try:
        stream = streaming(gateway)
        gateway.process.send_signal(signal.SIGINT)
        wait_for(lambda: "SIGINT: stopping" in gateway.log(), "the stop message")
        gateway.process.send_signal(signal.SIGINT)
        assert exit_status(gateway, 30) == 128 + signal.SIGINT
        assert "SIGINT again: exiting now, cutting 1 HTTP request" in gateway.log()
        stream.join(30)
        assert not stream.is_alive() and stream.error is None
        assert not stream.ended_cleanly  # cut, as asked: that is what the second Ctrl-C is for
        assert stream.events and stream.events[-1] != "[DONE]"
    finally:
        gateway.stop()


def test_workers_drain_on_the_first_signal_and_exit_on_the_second(
    slow_upstream: MockOpenAI, config: Path, tmp_path: Path
) -> None:
    slow_upstream.slow_ticks = 2400
    args = ("--workers", "2", "--shutdown-grace", "300")
    gateway = start_gateway(config, tmp_path / "data", extra_args=args)
    try:
        workers = _workers(gateway.process.pid)
        assert len(workers) == 2
        wait_for(
            lambda: gateway.log().count("HTTP gateway listening") == 2, "both workers to serve"
        )
        streaming(gateway)
        # Ctrl-C signals the whole process group; the workers leave it to the parent.
        for pid in (gateway.process.pid, *workers):
            os.kill(pid, signal.SIGINT)
        wait_for(lambda: "SIGINT: stopping 2 workers" in gateway.log(), "the parent's message")
        wait_for(
            lambda: gateway.log().count("SIGTERM: stopping; waiting for") == 2,
            "each worker to say what it waits for",
        )
        assert "waiting for 1 HTTP request and 1 generation in flight" in gateway.log()
        assert gateway.process.poll() is None, "the first signal must let the stream finish"
        gateway.process.send_signal(signal.SIGINT)
        assert exit_status(gateway, 30) == 128 + signal.SIGINT
        wait_for(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
            "the workers to exit",
        )
    finally:
        gateway.stop()
