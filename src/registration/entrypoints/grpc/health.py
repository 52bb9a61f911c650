"""gRPC health that tells the truth: SERVING only while Temporal and the database answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DependencyHealth:
    """Runs every check on an interval and sets the health of `services` from the outcome.

    A check is an awaitable that raises (or times out) when its dependency is unreachable.
    """

    def __init__(
        self,
        health: HealthServicer,
        *,
        services: list[str],
        checks: Mapping[str, Check],
        interval: timedelta,
        timeout: timedelta = timedelta(seconds=3),
    ) -> None:
        self._health = health
        self._services = services
        self._checks = checks
        self._interval = interval.total_seconds()
        self._timeout = timeout.total_seconds()
        self._failing: set[str] = set()

    async def check_once(self) -> bool:
        results = await asyncio.gather(*(self._probe(n, c) for n, c in self._checks.items()))
        failing = {name for name, ok in zip(self._checks, results, strict=True) if not ok}
        if failing != self._failing:
            if failing:
                log.warning("NOT_SERVING: %s unreachable", ", ".join(sorted(failing)))
            else:
                log.info("SERVING: all dependencies reachable")
        self._failing = failing
        status = NOT_SERVING if failing else SERVING
        for service in self._services:
            await self._health.set(service, status)
        return not failing

    async def run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval)

    async def _probe(self, name: str, check: Check) -> bool:
        try:
            await asyncio.wait_for(check(), self._timeout)
        except Exception as err:  # any failure means "unreachable", whatever its type
            log.debug("health check %s failed: %s", name, err)
            return False
        return True
