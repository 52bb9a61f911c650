"""What gRPC users expect of a server: health that follows the dependencies, reflection,
TLS, deadlines, and a SIGTERM that drains calls in flight before exiting 0."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from temporalio.client import Client

from registration.bootstrap import build_services
from registration.devtools.launcher import free_port
from registration.entrypoints.grpc.client import open_channel
from registration.entrypoints.grpc.health import DependencyHealth
from registration.entrypoints.grpc.messages import SERVICE_NAME
from registration.entrypoints.grpc.server import HEALTH_SERVICES, ServerTls, create_server
from registration.services.use_cases import Services
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack, callers_for_tests, client_settings_for_tests, token_of

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def services_with(stack: Stack, client: Client) -> Services:
    return build_services(stack.settings, client, stack.engine)


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


async def test_health_follows_temporal_reachability(stack: Stack) -> None:
    # A client to a port where no Temporal listens: `lazy` lets it be built all the same.
    dead = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    for client, expected in ((await stack.temporal_client(), SERVING), (dead, NOT_SERVING)):
        services = services_with(stack, client)
        server, port, health = create_server("127.0.0.1:0", services, callers=callers_for_tests())
        service = services.registration
        watcher = DependencyHealth(
            health,
            services=HEALTH_SERVICES,
            checks={"temporal": service.ping_temporal, "database": service.ping_database},
            interval=datetime.timedelta(seconds=1),
            timeout=datetime.timedelta(seconds=2),
        )
        await watcher.check_once()
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                assert await health_of(channel) == expected
                assert await health_of(channel, SERVICE_NAME) == expected
                await health.enter_graceful_shutdown()
                assert await health_of(channel) == NOT_SERVING
        finally:
            await server.stop(0)


async def test_reflection_lists_the_service_and_describes_it(stack: Stack) -> None:
    async with open_channel(stack.settings) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask(request: reflection_pb2.ServerReflectionRequest) -> object:
            async for reply in stub.ServerReflectionInfo(iter([request])):
                return reply
            raise AssertionError("no reflection reply")

        listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
        names = {s.name for s in listed.list_services_response.service}  # type: ignore[attr-defined]
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names
        described = await ask(
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)
        )
        assert described.file_descriptor_response.file_descriptor_proto  # type: ignore[attr-defined]


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_tls_server_answers_tls_clients_only(stack: Stack, tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    services = services_with(stack, await stack.temporal_client())
    server, port, _ = create_server(
        "127.0.0.1:0",
        services,
        callers=callers_for_tests(),
        tls=ServerTls(cert_file.read_bytes(), key_file.read_bytes()),
    )
    await server.start()
    try:
        over_tls = client_settings_for_tests(grpc_ca_file=cert_file)
        async with open_channel(over_tls, f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pb_grpc.RegistrationServiceStub(channel).GetRegistration(
                    pb.GetRegistrationRequest(registration_id="a" * 26 + "_" + "0" * 16)
                )
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pb_grpc.RegistrationServiceStub(plain).GetRegistration(
                    pb.GetRegistrationRequest(registration_id="x"), timeout=5
                )
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


@pytest.fixture
async def worker_paused(stack: Stack) -> AsyncIterator[None]:
    """No worker polls while the test runs: updates wait, as when every worker is busy."""
    stack.devstack.stop("worker")
    try:
        yield
    finally:
        if "worker" not in stack.devstack.processes:
            stack.devstack.start_worker()


async def test_deadline_and_sigterm_drain_an_in_flight_call(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub, worker_paused: None
) -> None:
    address = f"drain-{uuid.uuid4().hex[:8]}@example.com"
    # Registered while the worker runs, so that the email (and its token) exist.
    stack.devstack.start_worker()
    await stub.RegisterUser(
        pb.RegisterUserRequest(email=address, password="correct horse battery staple")
    )
    [message] = await stack.wait_for_message(address)
    stack.devstack.stop("worker")

    draining_address = f"127.0.0.1:{free_port()}"
    server = stack.devstack.start_server(
        "server-draining",
        {
            "GRPC_ADDRESS": draining_address,
            "SERVER_METRICS_ADDRESS": "",
            "GRPC_SHUTDOWN_DELAY": "3s",
            "GRPC_SHUTDOWN_GRACE": "60s",
            # The worker is restarted mid-call below; on a loaded machine that takes a while.
            "UPDATE_TIMEOUT": "120s",
        },
    )
    try:
        await _drain_an_in_flight_verification(stack, server, draining_address, message)
    finally:
        if server.poll() is None:
            server.kill()
        stack.devstack.processes.pop("server-draining")


async def _drain_an_in_flight_verification(
    stack: Stack, server: subprocess.Popen[bytes], draining_address: str, message: EmailMessage
) -> None:
    async with open_channel(stack.settings, draining_address) as channel:
        draining = pb_grpc.RegistrationServiceStub(channel)
        request = pb.VerifyEmailRequest(token=token_of(message))

        # With no worker the activation cannot finish: the client's deadline ends the call.
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await draining.VerifyEmail(request, timeout=1)
        assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

        in_flight = asyncio.ensure_future(draining.VerifyEmail(request, timeout=180))
        await asyncio.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert await health_of(channel) == NOT_SERVING
        # Past the delay the listener is closed and the call is being drained.
        await asyncio.sleep(3)
        assert not in_flight.done()

        stack.devstack.start_worker()
        verified = await in_flight
        assert verified.status == pb.REGISTRATION_STATUS_ACTIVE
    assert await asyncio.to_thread(server.wait, 30) == 0
