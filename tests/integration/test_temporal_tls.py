"""Our clients reach a Temporal frontend that demands mutual TLS: with the CA, the client
certificate and the server name of the settings; without a certificate, or trusting another
CA, they do not get in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from registration.adapters.temporal.connect import connect_temporal
from registration.settings import Settings, split_address
from tests.integration.harness import Stack
from tests.tls import Pki, mutual_tls_proxy


def over_tls(stack: Stack, port: int, **tls: object) -> Settings:
    return stack.settings.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{port}",
            "temporal_connect_timeout": timedelta(seconds=2),
            **tls,
        }
    )


async def test_a_client_certificate_of_the_ca_gets_in(stack: Stack, tmp_path: Path) -> None:
    pki = Pki.make(tmp_path, server="temporal", clients=("registration",))
    target = split_address(stack.settings.temporal_address)
    async with mutual_tls_proxy(pki, "temporal", target) as port:
        client = await connect_temporal(
            over_tls(
                stack,
                port,
                temporal_tls_ca_file=pki.pem("ca"),
                temporal_tls_cert_file=pki.pem("registration"),
                temporal_tls_key_file=pki.key("registration"),
                temporal_tls_server_name="localhost",
            )
        )
        assert await client.service_client.check_health()
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace)
        )
        assert described.namespace_info.name == client.namespace


async def test_without_a_client_certificate_there_is_no_way_in(
    stack: Stack, tmp_path: Path
) -> None:
    pki = Pki.make(tmp_path, server="temporal")
    target = split_address(stack.settings.temporal_address)
    async with mutual_tls_proxy(pki, "temporal", target) as port:
        with pytest.raises(RuntimeError, match="Temporal is not reachable"):
            await connect_temporal(
                over_tls(
                    stack,
                    port,
                    temporal_tls_ca_file=pki.pem("ca"),
                    temporal_tls_server_name="localhost",
                )
            )


async def test_a_frontend_of_another_ca_is_not_trusted(stack: Stack, tmp_path: Path) -> None:
    ours = Pki.make(tmp_path / "ours", server="temporal", clients=("registration",))
    theirs = Pki.make(tmp_path / "theirs", server="temporal")
    target = split_address(stack.settings.temporal_address)
    # It would take our client certificate; it shows a certificate of a CA we do not trust.
    async with mutual_tls_proxy(theirs, "temporal", target, client_ca=ours.pem("ca")) as port:
        with pytest.raises(RuntimeError, match="Temporal is not reachable"):
            await connect_temporal(
                over_tls(
                    stack,
                    port,
                    temporal_tls_ca_file=ours.pem("ca"),
                    temporal_tls_cert_file=ours.pem("registration"),
                    temporal_tls_key_file=ours.key("registration"),
                    temporal_tls_server_name="localhost",
                )
            )
