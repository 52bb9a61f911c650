"""Connecting to Temporal, patiently: in `make run` and in compose the server may still be
starting when the worker and the gRPC server do."""

from __future__ import annotations

import asyncio
import logging
import time

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, TLSConfig

from registration.adapters.temporal.payload_codec import encrypted_data_converter
from registration.settings import Settings

log = logging.getLogger(__name__)


async def connect_temporal(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client with the encrypting data converter; `runtime` (of the process, made once)
    exports the SDK's metrics."""
    deadline = time.monotonic() + settings.temporal_connect_timeout.total_seconds()
    delay = 0.2
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=encrypted_data_converter(
                    settings.resolved_payload_keys(),
                    legacy_key_ids=settings.payload_legacy_key_ids,
                ),
                runtime=runtime,
                tls=tls_config(settings),
            )
        except (RuntimeError, RPCError) as err:
            if time.monotonic() + delay > deadline:
                raise RuntimeError(
                    f"Temporal is not reachable at {settings.temporal_address}: {err}"
                ) from err
            log.info("waiting for Temporal at %s", settings.temporal_address)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS to the Temporal frontend, with our client certificate where one is set (mutual
    TLS); False for a plain connection. The files are read once, at connect."""
    s = settings
    if not (s.temporal_tls or s.temporal_tls_ca_file or s.temporal_tls_cert_file):
        return False
    return TLSConfig(
        server_root_ca_cert=s.temporal_tls_ca_file.read_bytes() if s.temporal_tls_ca_file else None,
        client_cert=s.temporal_tls_cert_file.read_bytes() if s.temporal_tls_cert_file else None,
        client_private_key=(
            s.temporal_tls_key_file.read_bytes() if s.temporal_tls_key_file else None
        ),
        domain=s.temporal_tls_server_name,
    )


def worker_runtime(address: str) -> Runtime | None:
    """A Temporal runtime that serves the SDK's own metrics (task latencies, activity and
    workflow outcomes, poller and slot use) at `address` (WORKER_METRICS_ADDRESS); None when
    empty."""
    if not address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
        )
    )
