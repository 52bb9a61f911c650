"""Runs the gRPC server: `python server.py` (settings from the environment and `.env`)."""

from __future__ import annotations

import asyncio
import logging
import signal

from registration.db import build_engine, create_schema
from registration.grpc_api import create_server, mark_serving
from registration.logs import configure_logging
from registration.passwords import build_password_hasher
from registration.repository import RegistrationRepository
from registration.service import RegistrationService
from registration.settings import Settings, load_settings
from registration.temporal_connect import connect_temporal

log = logging.getLogger("server")


async def serve(settings: Settings) -> None:
    engine = build_engine(settings.database_url)
    create_schema(engine)
    service = RegistrationService(
        settings=settings,
        client=await connect_temporal(settings),
        repository=RegistrationRepository(engine),
        hasher=build_password_hasher(settings),
        secret_key=settings.resolved_secret_key(),
    )
    server, port, health = create_server(settings.grpc_address, service)
    await server.start()
    await mark_serving(health)
    host = settings.grpc_address.rpartition(":")[0]
    log.info("gRPC server listening on %s:%d", host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    # Load balancers see NOT_SERVING first, then in-flight calls get the grace period.
    await health.enter_graceful_shutdown()
    await server.stop(settings.grpc_shutdown_grace.total_seconds())
    engine.dispose()
    log.info("gRPC server stopped")


def main() -> None:
    settings = load_settings()
    configure_logging("server", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
