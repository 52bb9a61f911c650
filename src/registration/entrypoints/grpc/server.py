"""The gRPC server: the registration service, health and reflection on one port; serving
until SIGINT or SIGTERM, then NOT_SERVING for a while, then draining calls in flight."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from registration.entrypoints.grpc.callers import CallerCheck, Callers
from registration.entrypoints.grpc.health import DependencyHealth
from registration.entrypoints.grpc.messages import SERVICE_NAME
from registration.entrypoints.grpc.metrics import GrpcMetrics, serve_metrics
from registration.entrypoints.grpc.servicer import RegistrationServicer, add_servicer
from registration.services.use_cases import Services
from registration.settings import Settings

log = logging.getLogger(__name__)

# Requests of this API are an email, a password or a token: a few KiB is generous.
MAX_REQUEST_BYTES = 16 * 1024
# The names whose health the server reports: the whole server ("") and the service.
HEALTH_SERVICES = ["", SERVICE_NAME]


@dataclass(frozen=True)
class ServerTls:
    """PEM: the server's certificate chain and key, and the CA of its callers' certificates
    (None: callers prove themselves with tokens)."""

    chain: bytes
    key: bytes
    client_ca: bytes | None = None


def create_server(
    address: str,
    services: Services,
    *,
    callers: Callers,
    tls: ServerTls | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """A server with the registration service, health and reflection, bound to `address`
    (port 0 picks a free one), answering only the calls `callers` allows, with TLS when `tls`
    is given. `interceptors` run before the callers are checked (metrics count refusals too).
    Returns the server, the bound port and the health servicer."""
    server = grpc.aio.server(
        interceptors=[*interceptors, CallerCheck(callers)],
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
    )
    add_servicer(RegistrationServicer(services), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = grpc.ssl_server_credentials(
            [(tls.key, tls.chain)],
            root_certificates=tls.client_ca,
            require_client_auth=tls.client_ca is not None,
        )
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health


async def serve(settings: Settings, services: Services) -> None:
    """Serves on GRPC_ADDRESS until SIGINT or SIGTERM; health follows Temporal and the database."""
    callers = Callers.from_settings(settings)
    tls = read_tls(settings)
    metrics = _serve_metrics(settings.server_metrics_address)
    server, port, health = create_server(
        settings.grpc_address,
        services,
        callers=callers,
        tls=tls,
        interceptors=[metrics] if metrics else [],
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
    mode = " (TLS)" if tls else ""
    if tls is not None and tls.client_ca is not None:
        mode = " (mutual TLS)"
    log.info("gRPC server listening on %s:%d%s", host, port, mode)

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
    log.info("gRPC server stopped")


def read_tls(settings: Settings) -> ServerTls | None:
    """GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE and GRPC_TLS_CLIENT_CA_FILE, if set."""
    s = settings
    if s.grpc_tls_cert_file is None or s.grpc_tls_key_file is None:
        return None
    client_ca = s.grpc_tls_client_ca_file.read_bytes() if s.grpc_tls_client_ca_file else None
    return ServerTls(s.grpc_tls_cert_file.read_bytes(), s.grpc_tls_key_file.read_bytes(), client_ca)


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
