"""What every servicer shares: starting the pipeline and turning errors into statuses."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc

from service import errors
from service.pipeline import CallContext, Pipeline
from service.telemetry.record import RECORDS

log = logging.getLogger("switchyard.service")

Context = grpc.aio.ServicerContext[Any, Any]


def begin(pipeline: Pipeline, context: Context) -> CallContext:
    return pipeline.begin(
        context.invocation_metadata() or (), context.time_remaining(), RECORDS.get(context)
    )


async def abort(context: Context, exc: BaseException, method: str) -> NoReturn:
    """End the call with the contract status for `exc`; unexpected errors become INTERNAL."""
    if isinstance(exc, errors.GatewayError):
        err = exc
    else:
        log.error("unexpected error in %s", method, exc_info=exc)
        err = errors.internal_error()
    record = RECORDS.get(context)
    if record is not None:
        record.reason = err.reason
    status = errors.to_rpc_status(err)
    await context.abort(err.code, err.message, errors.trailing_metadata(status))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
