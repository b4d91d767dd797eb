"""Readiness: whether this process should be sent traffic, for `/readyz` and gRPC health.

A gateway process goes `starting` (servers being set up) -> `loading models` (its
listeners are up and answer liveness, the built-in local models load in the
background) -> `ready` -> `draining` (a stop signal came: it finishes what is in
flight and takes nothing new). `/healthz` is liveness and answers 200 throughout.

gRPC health mirrors it: the overall service ("") and each of our services are SERVING
only while ready; the service name `liveness` is SERVING as long as the process
answers, draining included. Draining is final: nothing sets a stopping process back
to SERVING. Shared stores (PostgreSQL, Redis), once they exist,
add their checks through `checks`: any that names a problem makes the process unready.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from grpc_health.v1 import health_pb2

log = logging.getLogger("switchyard")

STARTING = "starting"
LOADING = "loading models"
READY = "ready"
DRAINING = "draining"
LIVENESS = "liveness"  # the gRPC health service name that stays SERVING while alive


class Lifecycle:
    def __init__(self) -> None:
        self.state = STARTING
        self._health: Any = None  # grpc_health's aio HealthServicer, when serving gRPC
        self._names: Sequence[str] = ()
        self.checks: list[Callable[[], str | None]] = []

    def not_ready(self) -> str | None:
        """Why this process is not ready (None when it is): what `/readyz` answers."""
        if self.state != READY:
            return self.state
        for check in self.checks:
            problem = check()
            if problem is not None:
                return problem
        return None

    async def attach(self, health: Any, names: Sequence[str]) -> None:
        """Mirror the state on `health` for the service `names` (and "")."""
        self._health = health
        self._names = (*names, "")
        await health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self._mirror()

    async def _mirror(self) -> None:
        if self._health is None:
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.state == READY
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self._names:
            await self._health.set(name, status)

    async def enter(self, state: str) -> None:
        if self.state == DRAINING:  # final
            return
        self.state = state
        log.info("readiness: %s", state)
        await self._mirror()
