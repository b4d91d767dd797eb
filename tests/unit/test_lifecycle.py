"""Readiness states and their gRPC health mirror (service/lifecycle.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from grpc_health.v1 import health, health_pb2

from service.lifecycle import DRAINING, LOADING, READY, Lifecycle


async def _status(servicer: Any, name: str) -> int:
    response = await servicer.Check(health_pb2.HealthCheckRequest(service=name), None)
    return int(response.status)


def test_states_mirrored_on_grpc_health_and_draining_is_final() -> None:
    async def run() -> None:
        servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        lifecycle = Lifecycle()
        await lifecycle.attach(servicer, ("svc.A",))
        serving, not_serving = (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        assert lifecycle.not_ready() == "starting"
        assert await _status(servicer, "") == not_serving
        assert await _status(servicer, "liveness") == serving
        await lifecycle.enter(LOADING)
        assert lifecycle.not_ready() == "loading models"
        await lifecycle.enter(READY)
        assert lifecycle.not_ready() is None
        assert await _status(servicer, "svc.A") == serving
        lifecycle.checks.append(lambda: "redis unreachable")
        assert lifecycle.not_ready() == "redis unreachable"
        lifecycle.checks.clear()
        await lifecycle.enter(DRAINING)
        await lifecycle.enter(READY)  # too late: a draining process stays unready
        assert lifecycle.not_ready() == "draining"
        assert await _status(servicer, "") == not_serving
        assert await _status(servicer, "svc.A") == not_serving
        assert await _status(servicer, "liveness") == serving  # alive while it drains

    asyncio.run(run())
