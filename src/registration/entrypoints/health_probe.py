"""A health probe for containers (docker-compose `healthcheck:`), exit code 0 when healthy.

python -m registration.entrypoints.health_probe grpc [HOST:PORT]   gRPC health says SERVING
                                                      (default: GRPC_ADDRESS)
python -m registration.entrypoints.health_probe http URL           the URL answers 2xx
"""

from __future__ import annotations

import argparse
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from registration.entrypoints.grpc.client import open_sync_channel
from registration.settings import Settings, load_settings

TIMEOUT_SECONDS = 5.0


def grpc_serving(settings: Settings, address: str) -> bool:
    """Over TLS and with the client certificate the settings name, as every client of ours."""
    with open_sync_channel(settings, address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:
            return 200 <= int(reply.status) < 300
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m registration.entrypoints.health_probe",
        description="Exit 0 when healthy, else 1.",
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    over_grpc = kinds.add_parser("grpc", help="gRPC health of the registration server")
    over_grpc.add_argument("address", nargs="?", help="host:port (default: GRPC_ADDRESS)")
    over_http = kinds.add_parser("http", help="an HTTP endpoint answers 2xx")
    over_http.add_argument("url")
    args = parser.parse_args(argv)
    if args.kind == "grpc":
        settings = load_settings(needs_secrets=False)
        address = args.address or settings.grpc_address
        healthy = grpc_serving(settings, address.replace("0.0.0.0", "127.0.0.1"))
    else:
        healthy = http_ok(args.url)
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
