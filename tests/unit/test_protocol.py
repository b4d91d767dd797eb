"""gateway_http/protocol.py: a response's head leaves with its first body bytes, in order,
and is never held past the loop's next turn, the response's end, or a close."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from gateway_http.protocol import HeldHead, HttpProtocol
from service.launcher import UvicornServer, http_config


class Recorder(asyncio.Transport):
    """A transport that records what it is asked to do."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[bytes, ...]]] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.calls.append(("write", (bytes(data),)))

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append(("writelines", tuple(bytes(d) for d in list_of_data)))

    def close(self) -> None:
        self.calls.append(("close", ()))
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), 20)

    uvloop.run(bounded())


def test_head_and_body_written_in_one_step_leave_in_one_call() -> None:
    async def scenario() -> None:
        real = Recorder()
        held = HeldHead(real)
        held.write(b"HEAD")
        assert real.calls == []
        held.write(b"BODY")
        held.write(b"MORE")
        assert real.calls == [("writelines", (b"HEAD", b"BODY")), ("write", (b"MORE",))]
        await asyncio.sleep(0)  # the fallback flush finds nothing left to send
        assert len(real.calls) == 2

    run(scenario)


def test_a_lone_head_is_sent_on_the_next_turn_of_the_loop() -> None:
    async def scenario() -> None:
        real = Recorder()
        held = HeldHead(real)
        held.write(bytearray(b"HEAD"))
        assert real.calls == []
        await asyncio.sleep(0)
        assert real.calls == [("write", (b"HEAD",))]
        held.write(b"BODY")  # later writes pass straight through
        assert real.calls[-1] == ("write", (b"BODY",))

    run(scenario)


def test_close_sends_a_held_head_first() -> None:
    async def scenario() -> None:
        real = Recorder()
        held = HeldHead(real)
        held.write(b"HEAD")
        held.close()
        assert real.calls == [("write", (b"HEAD",)), ("close", ())]
        assert held.is_closing()

    run(scenario)


async def _serve(app: Any) -> tuple[UvicornServer, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server = UvicornServer(http_config(app))
    task = asyncio.get_running_loop().create_task(server.serve([sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    return server, task, sock.getsockname()[1]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """/json: head and body at once; /late: the body a second after the head; /empty: 204."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/late":
        await asyncio.sleep(1.0)
    await send({"type": "http.response.body", "body": body})


def test_the_gateway_server_uses_the_protocol_and_answers_in_order() -> None:
    assert http_config(_app).http is HttpProtocol

    async def scenario() -> None:
        server, serving, port = await _serve(_app)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
            # Three requests on one keep-alive connection, the 204 (a head with no body)
            # between two JSON answers: each arrives whole and in order.
            for path in (b"/json", b"/empty", b"/json"):
                writer.write(request % path)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                if path == b"/empty":
                    assert head.startswith(b"HTTP/1.1 204 ")
                else:
                    assert head.startswith(b"HTTP/1.1 200 ")
                    assert await asyncio.wait_for(reader.readexactly(11), 5) == b'{"ok":true}'
            # A head whose body comes a second later is not held back with it.
            writer.write(request % b"/late")
            began = asyncio.get_running_loop().time()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert asyncio.get_running_loop().time() - began < 0.5
            assert head.startswith(b"HTTP/1.1 200 ")
            assert await asyncio.wait_for(reader.readexactly(11), 5) == b'{"ok":true}'
            writer.close()
        finally:
            server.should_exit = True
            await serving

    run(scenario)


def test_interim_answers_and_closing_connections_keep_their_bytes_in_order() -> None:
    async def scenario() -> None:
        server, serving, port = await _serve(_app)
        try:
            # Expect: 100-continue: the interim answer (the cycle's first write) must go
            # out before the body is sent, and the real answer after it.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"{}")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert await asyncio.wait_for(reader.readexactly(11), 5) == b'{"ok":true}'
            writer.close()
            # HTTP/1.0: the server closes after the answer, which must arrive whole first.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /json HTTP/1.0\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)  # until the server closes
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert answer.endswith(b'\r\n\r\n{"ok":true}')
            writer.close()
        finally:
            server.should_exit = True
            await serving

    run(scenario)
