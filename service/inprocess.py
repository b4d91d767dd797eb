"""An in-process gRPC channel: the generated stubs' interface, no transport.

Modelled on grpc-java's InProcessChannel. The HTTP layer, when it shares a process with
the service, gets one of these instead of a grpc.aio channel: stubs built on it call
the servicers directly with the same proto messages, through the same registration
(`add_*Servicer_to_server`), the same pipeline, and with failures raised as the same
`grpc.aio.AioRpcError`s a real channel raises. It skips only serialization and the
loopback hop, which cost three quarters of a request's CPU (DESIGN §1, §9).

Closing the channel ends the calls still in flight, as closing a grpc.aio channel does:
this is how the gateway's shutdown cuts what its grace period did not let finish. A
call's task is cancelled where it waits on the servicer (which bills what a stream
produced, as for a client that went away), and the caller gets UNAVAILABLE, so that the
HTTP layer still ends its answer properly (a 503, or a stream's error chunk).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

import grpc

log = logging.getLogger("switchyard.inprocess")

Metadata = Sequence[tuple[str, str | bytes]]


class InProcessRpcError(grpc.aio.AioRpcError):
    """Raised to the caller exactly where a real channel would raise AioRpcError."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing: Metadata | None = None
    ) -> None:
        super().__init__(
            code,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(*(trailing or ())),
            details=details,
            debug_error_string=None,
        )


class _Context:
    """The part of `grpc.aio.ServicerContext` that our servicers use."""

    __slots__ = ("_deadline", "_initial", "_metadata", "_waiter")

    def __init__(self, metadata: Metadata | None, timeout: float | None) -> None:
        self._metadata = tuple(metadata or ())
        self._deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        self._initial: grpc.aio.Metadata | None = None
        self._waiter: asyncio.Future[None] | None = None  # made only if someone waits

    async def send_initial_metadata(self, metadata: Metadata) -> None:
        self._initial = grpc.aio.Metadata(*metadata)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def initial_metadata(self) -> grpc.aio.Metadata:
        """What the servicer sent as initial metadata, once it has (as grpc.aio waits)."""
        if self._initial is None:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        assert self._initial is not None
        return self._initial

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        raise InProcessRpcError(code, details, trailing_metadata)

    def peer(self) -> str:
        return "inprocess"


class _InFlight:
    """The tasks waiting on a servicer through one channel, for `close` to cut."""

    __slots__ = ("closed", "cut", "waiting")

    def __init__(self) -> None:
        self.waiting: set[asyncio.Task[Any]] = set()
        self.cut: set[asyncio.Task[Any]] = set()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for task in self.waiting:
            self.cut.add(task)
            task.cancel("the in-process channel was closed")

    def was_cut(self, task: asyncio.Task[Any]) -> bool:
        """Whether `task` was cancelled by `close` (the cancellation is then taken back:
        the caller gets an RPC error instead, and its task lives on)."""
        if task not in self.cut:
            return False
        self.cut.discard(task)
        task.uncancel()
        return True


def _closed() -> InProcessRpcError:
    return InProcessRpcError(grpc.StatusCode.UNAVAILABLE, "The gateway is shutting down.")


def _deadline_exceeded() -> InProcessRpcError:
    return InProcessRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


def _unexpected(exc: Exception) -> InProcessRpcError:
    log.error("unexpected error escaped a servicer", exc_info=exc)
    return InProcessRpcError(grpc.StatusCode.UNKNOWN, "Unexpected error in the service")


class _UnaryUnary:
    def __init__(self, handler: Callable[[Any, Any], Awaitable[Any]], in_flight: _InFlight) -> None:
        self._handler = handler
        self._in_flight = in_flight

    async def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the stub interface's name
        metadata: Metadata | None = None,
        **_: Any,
    ) -> Any:
        in_flight = self._in_flight
        if in_flight.closed:
            raise _closed()
        context = _Context(metadata, timeout)
        task = asyncio.current_task()
        assert task is not None
        in_flight.waiting.add(task)
        try:
            if timeout is None:  # no deadline: no timeout scope to enter and leave either
                return await self._handler(request, context)
            async with asyncio.timeout(timeout):
                return await self._handler(request, context)
        except TimeoutError:
            raise _deadline_exceeded() from None
        except grpc.aio.AioRpcError:
            raise
        except asyncio.CancelledError:
            if in_flight.was_cut(task):
                raise _closed() from None
            raise
        except Exception as exc:
            raise _unexpected(exc) from exc
        finally:
            in_flight.waiting.discard(task)


class StreamCall:
    """A server-streaming call, iterated in the caller's task (no task per call or chunk)."""

    def __init__(self, stream: AsyncIterator[Any], context: _Context, in_flight: _InFlight) -> None:
        self._stream = stream
        self._context = context
        self._in_flight = in_flight
        self._done = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        in_flight = self._in_flight
        try:
            while True:
                if in_flight.closed:
                    raise _closed()
                remaining = self._context.time_remaining()
                # The first message may be awaited in another task than the rest (the
                # HTTP layer's hold): the waiting task is noted per message.
                task = asyncio.current_task()
                assert task is not None
                in_flight.waiting.add(task)
                try:
                    if remaining is None:  # no deadline: no timer per message either
                        message = await anext(self._stream)
                    else:
                        async with asyncio.timeout(remaining):
                            message = await anext(self._stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise _deadline_exceeded() from None
                except grpc.aio.AioRpcError:
                    raise
                except asyncio.CancelledError:
                    if in_flight.was_cut(task):
                        raise _closed() from None
                    raise
                except Exception as exc:
                    raise _unexpected(exc) from exc
                finally:
                    in_flight.waiting.discard(task)
                yield message
        finally:
            await self._close()

    async def _close(self) -> None:
        if not self._done:
            self._done = True
            await self._stream.aclose()  # type: ignore[attr-defined]

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return await self._context.initial_metadata()

    def cancel(self) -> bool:
        """Cancel the call; the servicer's generator is closed (and with it, the upstream)."""
        if self._done:
            return False
        self._done = True
        close = self._stream.aclose()  # type: ignore[attr-defined]
        task = asyncio.ensure_future(close)
        task.add_done_callback(_consume)
        return True


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("closing a cancelled stream failed", exc_info=task.exception())


class _UnaryStream:
    def __init__(self, handler: Callable[..., AsyncIterator[Any]], in_flight: _InFlight) -> None:
        self._handler = handler
        self._in_flight = in_flight

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        **_: Any,
    ) -> StreamCall:
        if self._in_flight.closed:
            raise _closed()
        context = _Context(metadata, timeout)
        return StreamCall(self._handler(request, context), context, self._in_flight)


class InProcessChannel:
    """Collects servicers through the generated `add_*_to_server` functions, then serves
    stubs' calls from them. Usable as the `server` argument of those functions."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._in_flight = _InFlight()

    # The two registration entry points the generated code calls on a server.
    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        for name, handler in handlers.items():
            self._handlers[f"/{service}/{name}"] = handler

    def add_generic_rpc_handlers(self, handlers: Sequence[Any]) -> None:
        """Generated code registers both ways; the registered handlers already cover it."""

    def _handler(self, method: str) -> grpc.RpcMethodHandler[Any, Any]:
        try:
            return self._handlers[method]
        except KeyError:
            raise ValueError(f"no in-process handler for {method}") from None

    # The channel interface the generated stubs call.
    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _UnaryUnary:
        handler = self._handler(method)
        if handler.unary_unary is None:
            raise ValueError(f"{method} is not a unary-unary method")
        return _UnaryUnary(handler.unary_unary, self._in_flight)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> _UnaryStream:
        handler = self._handler(method)
        if handler.unary_stream is None:
            raise ValueError(f"{method} is not a unary-stream method")
        # Our servicers' stream methods are async generators (typed loosely by grpc).
        stream = cast(Callable[..., AsyncIterator[Any]], handler.unary_stream)
        return _UnaryStream(stream, self._in_flight)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("client-streaming methods are not served in-process")

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("bidirectional methods are not served in-process")

    async def close(self, grace: float | None = None) -> None:
        """Refuse new calls and end those in flight with UNAVAILABLE. Unlike grpc.aio's
        close this does not wait `grace` first: the launcher's shutdown has already
        waited for its requests (service/launcher.py)."""
        self._in_flight.close()
        await asyncio.sleep(0)  # the cut calls take their cancellation in
