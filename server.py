"""Runs the gRPC server: `python server.py` (settings from the environment and `.env`)."""

from __future__ import annotations

import asyncio
import logging
import signal

from sqlalchemy.engine import Engine

from registration.db import build_engine, create_schema
from registration.grpc_api import HEALTH_SERVICES, create_server
from registration.health import DependencyHealth
from registration.logs import configure_logging
from registration.passwords import build_password_hasher
from registration.repository import RegistrationRepository
from registration.service import RegistrationService
from registration.settings import Settings, load_settings
from registration.temporal_connect import connect_temporal

log = logging.getLogger("server")


async def build_service(settings: Settings) -> tuple[RegistrationService, Engine]:
    engine = build_engine(settings.database_url)
    create_schema(engine)
    service = RegistrationService(
        settings=settings,
        client=await connect_temporal(settings),
        repository=RegistrationRepository(engine),
        hasher=build_password_hasher(settings),
        secret_key=settings.resolved_secret_key(),
    )
    return service, engine


def read_tls(settings: Settings) -> tuple[bytes, bytes] | None:
    if settings.grpc_tls_cert_file is None or settings.grpc_tls_key_file is None:
        return None
    return settings.grpc_tls_cert_file.read_bytes(), settings.grpc_tls_key_file.read_bytes()


async def serve(settings: Settings) -> None:
    service, engine = await build_service(settings)
    tls = read_tls(settings)
    server, port, health = create_server(settings.grpc_address, service, tls=tls)
    watcher = DependencyHealth(
        health,
        services=HEALTH_SERVICES,
        checks={"temporal": service.ping_temporal, "database": service.ping_database},
        interval=settings.health_check_interval,
    )
    await watcher.check_once()
    await server.start()
    watching = asyncio.create_task(watcher.run())
    host = settings.grpc_address.rpartition(":")[0]
    log.info("gRPC server listening on %s:%d%s", host, port, " (TLS)" if tls else "")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    # Load balancers see NOT_SERVING first while calls are still taken; then the listener
    # closes and calls in flight get the grace period to finish.
    log.info("shutting down: NOT_SERVING for %s", settings.grpc_shutdown_delay)
    await health.enter_graceful_shutdown()
    watching.cancel()
    await asyncio.sleep(settings.grpc_shutdown_delay.total_seconds())
    log.info("draining calls in flight for up to %s", settings.grpc_shutdown_grace)
    await server.stop(settings.grpc_shutdown_grace.total_seconds())
    engine.dispose()
    log.info("gRPC server stopped")


def main() -> None:
    settings = load_settings()
    configure_logging("server", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
