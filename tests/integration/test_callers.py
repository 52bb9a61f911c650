"""Every caller of the gRPC API proves who it is and may call only what it needs: no
credential answers UNAUTHENTICATED, a method beyond the caller's permissions
PERMISSION_DENIED, gRPC health stays open. Mutual TLS works end to end: the server demands a
certificate of its CA, and the web pages, the health probe and the CLI present one.

The servers here are real processes of the stack, each configured as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from registration.devtools.launcher import PROJECT_ROOT, free_port
from registration.entrypoints.grpc.callers import token_digest
from registration.entrypoints.grpc.client import open_channel
from registration.settings import Settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack
from tests.tls import Pki

PASSWORD = "correct horse battery staple"
SHOP_TOKEN = "token-of-the-shop-backend-" + "s" * 20
CRM_TOKEN = "token-of-the-crm-" + "c" * 30
REGISTRATION_ID = "a" * 26 + "_" + "0" * 16


def new_address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def code_of(awaitable: object) -> grpc.StatusCode:
    try:
        await awaitable  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def list_services_once_answered(
    answered: asyncio.Event,
) -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
    """The server refuses a caller before reading its first message; a message written after
    the call has ended fails on the client's side (INTERNAL), hiding the server's answer. So
    the request waits for that answer; a caller let in would wait for nothing until the call's
    deadline (DEADLINE_EXCEEDED)."""
    await answered.wait()
    yield reflection_pb2.ServerReflectionRequest(list_services="")


async def test_without_a_credential_only_health_answers(stack: Stack) -> None:
    """Health answers anyone, Check and Watch alike; nothing else does."""
    for metadata in [(), (("authorization", "Bearer not-a-token-of-ours"),)]:
        async with grpc.aio.insecure_channel(stack.grpc_address) as channel:
            stub = pb_grpc.RegistrationServiceStub(channel)
            register = stub.RegisterUser(
                pb.RegisterUserRequest(email=new_address("anon"), password=PASSWORD),
                metadata=metadata,
            )
            assert await code_of(register) is grpc.StatusCode.UNAUTHENTICATED
            get = stub.GetRegistration(
                pb.GetRegistrationRequest(registration_id=REGISTRATION_ID), metadata=metadata
            )
            assert await code_of(get) is grpc.StatusCode.UNAUTHENTICATED
            answered = asyncio.Event()
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                list_services_once_answered(answered), metadata=metadata, timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in reflection:
                    pass
            answered.set()
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest()
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            first = await watch.read()
            assert isinstance(first, health_pb2.HealthCheckResponse)
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
    assert stack.users(new_address("anon")) == []


@pytest.fixture(scope="module")
def clients_server(stack: Stack) -> Iterator[str]:
    """A server whose operator lists two callers: a shop's back end (browser-facing calls)
    and a CRM (back office)."""
    address = f"127.0.0.1:{free_port()}"
    clients = [
        {"name": "shop", "token_sha256": token_digest(SHOP_TOKEN), "permissions": ["public"]},
        {"name": "crm", "token_sha256": token_digest(CRM_TOKEN), "permissions": ["back_office"]},
    ]
    stack.devstack.start_server(
        "server-clients",
        {
            "GRPC_ADDRESS": address,
            "SERVER_METRICS_ADDRESS": "",
            "GRPC_CLIENTS": json.dumps(clients),
        },
    )
    yield address
    stack.devstack.stop("server-clients")


def with_token(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_each_caller_calls_what_its_permissions_allow(
    stack: Stack, clients_server: str
) -> None:
    address = new_address("shopper")
    async with grpc.aio.insecure_channel(clients_server) as channel:
        stub = pb_grpc.RegistrationServiceStub(channel)
        registered = await stub.RegisterUser(
            pb.RegisterUserRequest(email=address, password=PASSWORD),
            metadata=with_token(SHOP_TOKEN),
        )
        back_office = [
            stub.GetRegistration(
                pb.GetRegistrationRequest(registration_id=registered.registration_id),
                metadata=with_token(SHOP_TOKEN),
            ),
            stub.ConfirmRegistration(
                pb.ConfirmRegistrationRequest(registration_id=registered.registration_id),
                metadata=with_token(SHOP_TOKEN),
            ),
            stub.NotifyEnrollment(
                pb.NotifyEnrollmentRequest(
                    order_id=f"order-{uuid.uuid4().hex[:6]}",
                    organizer_email="victim@example.com",
                    enrollee_name="Mallory",
                    offering_name="http://evil.example",
                ),
                metadata=with_token(SHOP_TOKEN),
            ),
        ]
        for call in back_office:
            assert await code_of(call) is grpc.StatusCode.PERMISSION_DENIED
        # What the person who registered may see is public: nothing personal in it.
        shown = await stub.GetRegistrationStatus(
            pb.GetRegistrationStatusRequest(registration_id=registered.registration_id),
            metadata=with_token(SHOP_TOKEN),
        )
        assert shown.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
        assert address not in str(shown) and shown.resends_remaining > 0
        nowhere = stub.GetRegistrationStatus(
            pb.GetRegistrationStatusRequest(registration_id=REGISTRATION_ID),
            metadata=with_token(SHOP_TOKEN),
        )
        assert await code_of(nowhere) is grpc.StatusCode.NOT_FOUND

        got = await stub.GetRegistration(
            pb.GetRegistrationRequest(registration_id=registered.registration_id),
            metadata=with_token(CRM_TOKEN),
        )
        assert got.registration.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
        as_crm = stub.RegisterUser(
            pb.RegisterUserRequest(email=new_address("crm"), password=PASSWORD),
            metadata=with_token(CRM_TOKEN),
        )
        assert await code_of(as_crm) is grpc.StatusCode.PERMISSION_DENIED
        # The local client of `make run` is not a caller of a server that lists its own.
        local = (stack.var_dir / "local-client.token").read_text().strip()
        as_local = stub.GetRegistration(
            pb.GetRegistrationRequest(registration_id=registered.registration_id),
            metadata=with_token(local),
        )
        assert await code_of(as_local) is grpc.StatusCode.UNAUTHENTICATED
    assert stack.messages_to("victim@example.com") == []


async def test_an_operator_confirms_an_address_by_hand(stack: Stack, clients_server: str) -> None:
    address = new_address("confirmed")
    async with grpc.aio.insecure_channel(clients_server) as channel:
        stub = pb_grpc.RegistrationServiceStub(channel)
        registered = await stub.RegisterUser(
            pb.RegisterUserRequest(email=address, password=PASSWORD),
            metadata=with_token(SHOP_TOKEN),
        )
        confirmed = await stub.ConfirmRegistration(
            pb.ConfirmRegistrationRequest(registration_id=registered.registration_id),
            metadata=with_token(CRM_TOKEN),
        )
        assert confirmed.status == pb.REGISTRATION_STATUS_ACTIVE
        assert not confirmed.already_verified
        signed_in = await stub.Authenticate(
            pb.AuthenticateRequest(email=address, password=PASSWORD),
            metadata=with_token(SHOP_TOKEN),
        )
        assert signed_in.user_id == confirmed.user_id
        again = await stub.ConfirmRegistration(
            pb.ConfirmRegistrationRequest(registration_id=registered.registration_id),
            metadata=with_token(CRM_TOKEN),
        )
        assert again.already_verified
        unknown = stub.ConfirmRegistration(
            pb.ConfirmRegistrationRequest(registration_id=REGISTRATION_ID),
            metadata=with_token(CRM_TOKEN),
        )
        assert await code_of(unknown) is grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def mutual_tls(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pki]]:
    """A server that speaks TLS and demands a client certificate of its CA; it lists the web
    pages' certificate (common name `web`) for the public methods, as the compose file does,
    and an operator's (`office`) for the back office."""
    pki = Pki.make(
        tmp_path_factory.mktemp("grpc-pki"),
        server="server",
        clients=("web", "office", "intruder"),
    )
    address = f"127.0.0.1:{free_port()}"
    clients = [
        {"name": "web-pages", "certificate": "web", "permissions": ["public"]},
        {"name": "operators", "certificate": "office", "permissions": ["back_office"]},
    ]
    stack.devstack.start_server(
        "server-mtls",
        {
            "GRPC_ADDRESS": address,
            "SERVER_METRICS_ADDRESS": "",
            "GRPC_TLS_CERT_FILE": str(pki.pem("server")),
            "GRPC_TLS_KEY_FILE": str(pki.key("server")),
            "GRPC_TLS_CLIENT_CA_FILE": str(pki.pem("ca")),
            "GRPC_CLIENTS": json.dumps(clients),
        },
    )
    yield address, pki
    stack.devstack.stop("server-mtls")


def as_client(stack: Stack, pki: Pki, name: str | None) -> Settings:
    """The stack's settings for a client of the mutual-TLS server, with `name`'s certificate."""
    values: dict[str, object] = {
        "grpc_ca_file": pki.pem("ca"),
        "grpc_local_token_file": Path("/none"),
    }
    if name is not None:
        values |= {"grpc_client_cert_file": pki.pem(name), "grpc_client_key_file": pki.key(name)}
    return stack.settings.model_copy(update=values)


async def test_a_client_certificate_of_the_ca_is_a_caller(
    stack: Stack, mutual_tls: tuple[str, Pki]
) -> None:
    address, pki = mutual_tls
    async with open_channel(as_client(stack, pki, "web"), address) as channel:
        stub = pb_grpc.RegistrationServiceStub(channel)
        registered = await stub.RegisterUser(
            pb.RegisterUserRequest(email=new_address("mtls"), password=PASSWORD)
        )
        shown = await stub.GetRegistrationStatus(
            pb.GetRegistrationStatusRequest(registration_id=registered.registration_id)
        )
        assert shown.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
        beyond = stub.GetRegistration(
            pb.GetRegistrationRequest(registration_id=registered.registration_id)
        )
        assert await code_of(beyond) is grpc.StatusCode.PERMISSION_DENIED
    async with open_channel(as_client(stack, pki, "office"), address) as channel:
        got = await pb_grpc.RegistrationServiceStub(channel).GetRegistration(
            pb.GetRegistrationRequest(registration_id=registered.registration_id)
        )
        assert got.registration.registration_id == registered.registration_id
    async with open_channel(as_client(stack, pki, "intruder"), address) as channel:
        listed_nowhere = pb_grpc.RegistrationServiceStub(channel).GetRegistration(
            pb.GetRegistrationRequest(registration_id=registered.registration_id)
        )
        assert await code_of(listed_nowhere) is grpc.StatusCode.UNAUTHENTICATED
    async with open_channel(as_client(stack, pki, None), address) as channel:
        without = pb_grpc.RegistrationServiceStub(channel).GetRegistration(
            pb.GetRegistrationRequest(registration_id=registered.registration_id), timeout=10
        )
        # The TLS handshake fails: no call gets through at all.
        assert await code_of(without) is grpc.StatusCode.UNAVAILABLE


def client_env(pki: Pki, address: str, name: str) -> dict[str, str]:
    return {
        "GRPC_ADDRESS": address,
        "GRPC_CA_FILE": str(pki.pem("ca")),
        "GRPC_CLIENT_CERT_FILE": str(pki.pem(name)),
        "GRPC_CLIENT_KEY_FILE": str(pki.key(name)),
        "GRPC_LOCAL_TOKEN_FILE": "/none",
    }


def run_module(stack: Stack, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        env={**os.environ, **stack.devstack.env, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_health_probe_and_the_cli_speak_mutual_tls(
    stack: Stack, mutual_tls: tuple[str, Pki]
) -> None:
    address, pki = mutual_tls
    env = client_env(pki, address, "office")
    probe = run_module(stack, env, "registration.entrypoints.health_probe", "grpc")
    assert probe.returncode == 0, probe.stderr
    status = run_module(stack, env, "registration", "status", REGISTRATION_ID)
    assert status.returncode == 1 and "NOT_FOUND" in status.stderr, status.stderr
    no_certificate = {k: v for k, v in env.items() if not k.startswith("GRPC_CLIENT_")}
    refused = run_module(stack, no_certificate, "registration", "status", REGISTRATION_ID)
    assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr, refused.stderr


async def test_the_web_pages_speak_mutual_tls(stack: Stack, mutual_tls: tuple[str, Pki]) -> None:
    address, pki = mutual_tls
    base = f"http://127.0.0.1:{free_port()}"
    stack.devstack.start_web(
        "web-mtls", {**client_env(pki, address, "web"), "PUBLIC_BASE_URL": base}
    )
    try:
        async with httpx.AsyncClient(base_url=base) as web:
            await web.get("/")
            email = new_address("web-mtls")
            form = {"email": email, "password": PASSWORD, "csrf_token": web.cookies["csrf"]}
            page = await web.post("/register", data=form, follow_redirects=True)
            assert "cannot answer" not in page.text
            assert page.status_code == 200
            # The page's live status needs only the public methods.
            status = await web.get(f"{page.url.path}/status.json")
            assert status.status_code == 200
            assert status.json()["registration"] == "PENDING_VERIFICATION"
        assert [user.email for user in stack.users(email)] == [email]
    finally:
        stack.devstack.stop("web-mtls")
