"""Abuse limits per source and per mailbox, kept in the database for every server process: a
burst from one source (however many addresses of its network it takes) is cut short and delays
no one else's email, one mailbox gets only so many emails however its address is spelled yet a
stranger cannot spend the owner's reset link, an organizer's notifications are counted apart,
and a stranger's wrong passwords lock the stranger out (for longer each time), never the owner.

Each test runs against a server of its own with small limits, over the stack's database, and
speaks for sources of its own (forwarded by the local client, which may say whose call it is)."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from registration.devtools.launcher import free_port
from registration.entrypoints.grpc.callers import END_USER_ADDRESS
from registration.entrypoints.grpc.client import open_channel
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Stack, token_of

PASSWORD = "correct horse battery staple"
PER_SOURCE, PER_MAILBOX, NOTIFICATIONS, FAILURES, LOCKOUT_SECONDS = 5, 3, 2, 3, 2
NEW_PASSWORD = "a brand new passphrase, at last"


def new_source() -> str:
    """An address in a /64 of the documentation range new to this run (a source is counted
    as its /64)."""
    return str(ipaddress.IPv6Address("2001:db8::") + (secrets.randbits(32) << 64) + 1)


def elsewhere_in(source: str) -> str:
    """Another address of the same /64."""
    return str(ipaddress.IPv6Address(source) + secrets.randbits(63) + 2)


# A back office's one address, which every notification it sends comes from.
OFFICE = new_source()


def speaking_for(source: str) -> tuple[tuple[str, str]]:
    return ((END_USER_ADDRESS, source),)


@pytest.fixture(scope="module")
async def limited(stack: Stack) -> AsyncIterator[pb_grpc.RegistrationServiceStub]:
    address = f"127.0.0.1:{free_port()}"
    stack.devstack.start_server(
        "server-limited",
        {
            "GRPC_ADDRESS": address,
            "SERVER_METRICS_ADDRESS": "",
            "RATE_LIMIT_EMAILS_PER_SOURCE": f"{PER_SOURCE}/1h",
            "RATE_LIMIT_EMAILS_PER_MAILBOX": f"{PER_MAILBOX}/1h",
            "RATE_LIMIT_NOTIFICATIONS_PER_MAILBOX": f"{NOTIFICATIONS}/1h",
            "RATE_LIMIT_SIGN_INS": "100/1h",
            "SIGN_IN_MAX_FAILURES": str(FAILURES),
            "SIGN_IN_LOCKOUT": f"{LOCKOUT_SECONDS}s",
        },
    )
    try:
        async with open_channel(stack.settings, address) as channel:
            yield pb_grpc.RegistrationServiceStub(channel)
    finally:
        stack.devstack.stop("server-limited")


def limit_of(err: grpc.aio.AioRpcError) -> tuple[str, datetime]:
    """The ErrorInfo reason and the RetryInfo's moment of a RESOURCE_EXHAUSTED answer."""
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, err
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    reason, retry_at = "", datetime.min.replace(tzinfo=UTC)
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            retry_at = datetime.fromisoformat(info.metadata["retry_at"])
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            assert retry.retry_delay.ToTimedelta().total_seconds() >= 0
    return reason, retry_at


async def outcome(call: object) -> grpc.aio.AioRpcError | None:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err
    return None


async def test_a_burst_from_one_source_is_cut_short_and_delays_no_one_else(
    stack: Stack, limited: pb_grpc.RegistrationServiceStub
) -> None:
    burst, bystander = new_source(), new_source()
    run = uuid.uuid4().hex[:6]
    addresses = [f"burst-{run}-{i}@example.com" for i in range(PER_SOURCE + 3)]
    # A new address of its /64 for every call: still one source.
    answers = [
        await outcome(
            limited.RegisterUser(
                pb.RegisterUserRequest(email=address, password=PASSWORD),
                metadata=speaking_for(elsewhere_in(burst)),
            )
        )
        for address in addresses
    ]
    assert answers[:PER_SOURCE] == [None] * PER_SOURCE
    for refused in answers[PER_SOURCE:]:
        assert refused is not None
        reason, retry_at = limit_of(refused)
        assert reason == "SOURCE_RATE_LIMITED" and retry_at > datetime.now(UTC)

    someone = f"bystander-{run}@example.com"
    await limited.RegisterUser(
        pb.RegisterUserRequest(email=someone, password=PASSWORD), metadata=speaking_for(bystander)
    )
    [email] = await stack.wait_for_message(someone)
    assert token_of(email)
    # The refused calls made nothing: no row, no email.
    for address in addresses[PER_SOURCE:]:
        assert stack.users(address) == [] and stack.messages_to(address) == []


async def test_one_mailbox_gets_only_so_many_emails_however_it_is_spelled(
    stack: Stack, limited: pb_grpc.RegistrationServiceStub
) -> None:
    inbox = f"victim-{uuid.uuid4().hex[:6]}"
    spellings = [f"{inbox}+{i}@example.com" for i in range(PER_MAILBOX)]
    for spelling in spellings:
        await limited.RegisterUser(
            pb.RegisterUserRequest(email=spelling, password=PASSWORD),
            metadata=speaking_for(new_source()),
        )
    again = await outcome(
        limited.RegisterUser(
            pb.RegisterUserRequest(email=f"{inbox.upper()}+more@EXAMPLE.com", password=PASSWORD),
            metadata=speaking_for(new_source()),
        )
    )
    assert again is not None and limit_of(again)[0] == "MAILBOX_RATE_LIMITED"
    # A reset request counts against the inbox too.
    reset = await outcome(
        limited.RequestPasswordReset(
            pb.RequestPasswordResetRequest(email=f"{inbox}@example.com"),
            metadata=speaking_for(new_source()),
        )
    )
    assert reset is not None and limit_of(reset)[0] == "MAILBOX_RATE_LIMITED"
    await stack.wait_for_message(spellings[-1])
    delivered = [m for s in spellings for m in stack.messages_to(s)]
    assert len(delivered) == PER_MAILBOX


async def test_a_stranger_cannot_spend_the_owners_reset_link(
    stack: Stack, limited: pb_grpc.RegistrationServiceStub
) -> None:
    owner_source, inbox = new_source(), f"forgetful-{uuid.uuid4().hex[:6]}"
    address = f"{inbox}@example.com"
    owner = speaking_for(owner_source)
    await limited.RegisterUser(
        pb.RegisterUserRequest(email=address, password=PASSWORD), metadata=owner
    )
    [welcome] = await stack.wait_for_message(address)
    await limited.VerifyEmail(pb.VerifyEmailRequest(token=token_of(welcome)), metadata=owner)
    await limited.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=address), metadata=owner
    )
    _, _, link = await stack.wait_for_message(address, count=3)  # after verify and welcome
    assert link["Subject"].startswith("Reset your")
    # A stranger fills the inbox's count, from sources of its own.
    answers = [
        await outcome(
            limited.RegisterUser(
                pb.RegisterUserRequest(email=f"{inbox}+{i}@example.com", password=PASSWORD),
                metadata=speaking_for(new_source()),
            )
        )
        for i in range(PER_MAILBOX)
    ]
    refused = answers[-1]
    assert refused is not None and limit_of(refused)[0] == "MAILBOX_RATE_LIMITED"
    # The link the owner holds still sets a new password.
    await limited.ResetPassword(
        pb.ResetPasswordRequest(token=token_of(link), new_password=NEW_PASSWORD), metadata=owner
    )
    signed_in = await limited.Authenticate(
        pb.AuthenticateRequest(email=address, password=NEW_PASSWORD), metadata=owner
    )
    assert signed_in.user_id


async def test_an_organizer_gets_so_many_notifications_counted_apart_from_emails(
    stack: Stack, limited: pb_grpc.RegistrationServiceStub
) -> None:
    inbox = f"organizer-{uuid.uuid4().hex[:6]}"

    async def notify(spelling: str) -> grpc.aio.AioRpcError | None:
        # All from the same back office: no source is counted.
        return await outcome(
            limited.NotifyEnrollment(
                pb.NotifyEnrollmentRequest(
                    order_id=f"order-{uuid.uuid4().hex[:8]}",
                    organizer_email=spelling,
                    enrollee_name="Eddie Enrollee",
                    offering_name="Pottery for Beginners",
                ),
                metadata=speaking_for(OFFICE),
            )
        )

    # The inbox's email count is spent; its notifications are not.
    for i in range(PER_MAILBOX):
        await limited.RegisterUser(
            pb.RegisterUserRequest(email=f"{inbox}+{i}@example.com", password=PASSWORD),
            metadata=speaking_for(new_source()),
        )
    answers = [await notify(f"{inbox}+orders{i}@example.com") for i in range(NOTIFICATIONS + 1)]
    assert answers[:NOTIFICATIONS] == [None] * NOTIFICATIONS
    refused = answers[-1]
    assert refused is not None and limit_of(refused)[0] == "NOTIFICATION_RATE_LIMITED"
    # More notifications than PER_SOURCE from the one office, to other organizers, all go out.
    for _ in range(PER_SOURCE + 1):
        assert await notify(f"organizer-{uuid.uuid4().hex[:6]}@example.com") is None


async def test_a_stranger_cannot_lock_the_owner_out(
    stack: Stack, limited: pb_grpc.RegistrationServiceStub
) -> None:
    owner_source, stranger = new_source(), new_source()
    address = f"owner-{uuid.uuid4().hex[:6]}@example.com"
    await limited.RegisterUser(
        pb.RegisterUserRequest(email=address, password=PASSWORD),
        metadata=speaking_for(owner_source),
    )
    [email] = await stack.wait_for_message(address)
    await limited.VerifyEmail(
        pb.VerifyEmailRequest(token=token_of(email)), metadata=speaking_for(owner_source)
    )

    async def guess(source: str, password: str) -> grpc.aio.AioRpcError | None:
        return await outcome(
            limited.Authenticate(
                pb.AuthenticateRequest(email=address, password=password),
                metadata=speaking_for(source),
            )
        )

    async def lock_out() -> datetime:
        for _ in range(FAILURES):
            wrong = await guess(stranger, "not the owner's password")
            assert wrong is not None and wrong.code() is grpc.StatusCode.UNAUTHENTICATED
        locked = await guess(stranger, PASSWORD)  # even the right one, now
        assert locked is not None
        reason, retry_at = limit_of(locked)
        assert reason == "SIGN_IN_THROTTLED"
        return retry_at

    first_lock_ends = await lock_out()
    first = first_lock_ends - datetime.now(UTC)
    # Meanwhile the owner, from where the owner is, signs in.
    assert await guess(owner_source, PASSWORD) is None

    await asyncio.sleep((first_lock_ends - datetime.now(UTC)).total_seconds() + 0.1)
    second = await lock_out() - datetime.now(UTC)
    # Each run of failures locks the stranger out for longer.
    assert second.total_seconds() > first.total_seconds() + LOCKOUT_SECONDS / 2
    assert await guess(owner_source, PASSWORD) is None
