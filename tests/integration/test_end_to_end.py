"""Registration end to end with nothing mocked: gRPC → Temporal → SQLite → SMTP sink → gRPC."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from temporalio.client import WorkflowExecutionStatus

from registration.devtools.launcher import free_port
from registration.domain.identifiers import workflow_id_for_registration
from registration.domain.statuses import RegistrationStatus
from registration.entrypoints.grpc.client import open_channel
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.databases import BACKENDS as DATABASE_BACKENDS
from tests.integration.harness import Stack, token_of

# The repository and end-to-end path runs on both databases.
BACKENDS = DATABASE_BACKENDS

PASSWORD = "correct horse battery staple"


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def wait_for_status(
    stub: pb_grpc.RegistrationServiceStub, registration_id: str, status: int, within: float = 60
) -> pb.Registration:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        reply = await stub.GetRegistration(
            pb.GetRegistrationRequest(registration_id=registration_id)
        )
        if reply.registration.status == status:
            return reply.registration
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"registration stayed {reply.registration}")
        await asyncio.sleep(0.2)


async def test_register_email_verify_then_active(
    stack: Stack, stub: pb_grpc.RegistrationServiceStub
) -> None:
    address = unique_email("ann")
    registered = await stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    assert registered.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
    assert registered.expires_at.seconds > 0

    # Right after the answer the registration is known (test_get_before_persist.py covers
    # the moments before the worker has persisted it).
    early = await stub.GetRegistration(
        pb.GetRegistrationRequest(registration_id=registered.registration_id)
    )
    assert early.registration.email == address
    assert early.registration.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION

    [message] = await stack.wait_for_message(address)
    assert "Confirm your email address" in message["Subject"]
    token = token_of(message)
    html = message.get_body(preferencelist=("html",))
    assert html is not None and token in html.get_content()

    verified = await stub.VerifyEmail(pb.VerifyEmailRequest(token=token))
    assert verified.status == pb.REGISTRATION_STATUS_ACTIVE
    assert verified.registration_id == registered.registration_id

    # VerifyEmail answered only after the database says ACTIVE: no stale read is possible.
    [user] = stack.users(address)
    assert user.status is RegistrationStatus.ACTIVE
    assert str(user.id) == verified.user_id
    assert user.verified_at is not None
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert user.verification_token_hash is not None and token not in user.verification_token_hash

    got = await stub.GetRegistration(
        pb.GetRegistrationRequest(registration_id=registered.registration_id)
    )
    registration = got.registration
    assert registration.status == pb.REGISTRATION_STATUS_ACTIVE
    assert registration.user_id == verified.user_id
    assert registration.HasField("verified_at")
    verification = registration.deliveries[0]
    assert verification.kind == pb.EMAIL_KIND_VERIFICATION
    assert verification.status == pb.DELIVERY_STATUS_SENT
    assert verification.attempts == 1
    assert verification.HasField("sent_at")

    # A double click or a link scanner: the same token again is fine.
    again = await stub.VerifyEmail(pb.VerifyEmailRequest(token=token))
    assert again.status == pb.REGISTRATION_STATUS_ACTIVE
    assert again.user_id == verified.user_id

    # The welcome email follows and the workflow completes.
    messages = await stack.wait_for_message(address, count=2)
    assert any("Welcome" in m["Subject"] for m in messages)
    client = await stack.temporal_client()
    handle = client.get_workflow_handle(workflow_id_for_registration(registered.registration_id))
    await asyncio.wait_for(handle.result(), timeout=30)
    assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_unverified_registration_expires_and_the_email_may_register_again(
    stack: Stack,
) -> None:
    # A second gRPC server on the same stack, configured with a short verification timeout.
    short_address = f"127.0.0.1:{free_port()}"
    stack.devstack.start_server(
        "server-short-timeout",
        # No reminder: the second email counted below is the new registration's.
        {
            "GRPC_ADDRESS": short_address,
            "SERVER_METRICS_ADDRESS": "",
            "VERIFICATION_TIMEOUT": "10s",
            "VERIFICATION_REMINDER": "false",
        },
    )
    try:
        async with open_channel(stack.settings, short_address) as channel:
            stub = pb_grpc.RegistrationServiceStub(channel)
            address = unique_email("late")
            registered = await stub.RegisterUser(
                pb.RegisterUserRequest(email=address, password=PASSWORD)
            )
            [message] = await stack.wait_for_message(address)

            expired = await wait_for_status(
                stub, registered.registration_id, pb.REGISTRATION_STATUS_EXPIRED
            )
            assert not expired.HasField("verified_at")
            [user] = stack.users(address)
            assert user.status is RegistrationStatus.EXPIRED
            assert user.password_hash is None

            with pytest.raises(grpc.aio.AioRpcError) as rejected:
                await stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(message)))
            assert rejected.value.code() is grpc.StatusCode.FAILED_PRECONDITION

            again = await stub.RegisterUser(
                pb.RegisterUserRequest(email=address, password=PASSWORD)
            )
            assert again.registration_id != registered.registration_id
            assert again.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
            await stack.wait_for_message(address, count=2)
            assert len(stack.users(address)) == 2
    finally:
        stack.devstack.stop("server-short-timeout")
