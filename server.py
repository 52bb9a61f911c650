"""Runs the gRPC server: `python server.py` (settings from the environment and `.env`)."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from registration import application as app
from registration.application import Services
from registration.db import build_engine
from registration.grpc_api import HEALTH_SERVICES, create_server
from registration.health import DependencyHealth
from registration.logs import configure_logging
from registration.metrics import GrpcMetrics, serve_metrics
from registration.migrate import SchemaNotCurrent, require_current_schema
from registration.search_attribute_setup import SearchAttributesMissing, ensure_search_attributes
from registration.settings import Settings, load_settings
from registration.temporal_connect import connect_temporal

log = logging.getLogger("server")


async def build_services(settings: Settings) -> tuple[Services, Engine]:
    engine = build_engine(settings.database_url)
    require_current_schema(engine)
    client = await connect_temporal(settings)
    # Registrations start with their search attributes: the namespace must know them.
    await ensure_search_attributes(client)
    services = app.build_services(settings, client, engine)
    return services, engine


def read_tls(settings: Settings) -> tuple[bytes, bytes] | None:
    if settings.grpc_tls_cert_file is None or settings.grpc_tls_key_file is None:
        return None
    return settings.grpc_tls_cert_file.read_bytes(), settings.grpc_tls_key_file.read_bytes()


async def serve(settings: Settings) -> None:
    services, engine = await build_services(settings)
    tls = read_tls(settings)
    metrics = _serve_metrics(settings.server_metrics_address)
    server, port, health = create_server(
        settings.grpc_address, services, tls=tls, interceptors=[metrics] if metrics else []
    )
    watcher = DependencyHealth(
        health,
        services=HEALTH_SERVICES,
        checks={
            "temporal": services.registration.ping_temporal,
            "database": services.registration.ping_database,
        },
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


def _serve_metrics(address: str) -> GrpcMetrics | None:
    if not address:
        return None
    metrics = GrpcMetrics(CollectorRegistry())
    try:
        serve_metrics(address, metrics.registry)
    except OSError as err:
        # Metrics are an aid: the server does not stop serving for want of them.
        log.error("metrics not exported at %s: %s", address, err)
        return None
    log.info("gRPC metrics at http://%s/metrics", address)
    return metrics


def main() -> None:
    settings = load_settings()
    configure_logging("server", settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except (SchemaNotCurrent, SearchAttributesMissing) as err:
        raise SystemExit(f"server: {err}") from None


if __name__ == "__main__":
    main()
