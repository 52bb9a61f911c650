"""Email delivery against a real SMTP server that refuses, hangs up or goes down on cue:
what GetRegistration shows, what arrives in the mailbox, and what ResendVerificationEmail
answers. See mail_world.py for the setup and its short timings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from registration.v1 import registration_pb2 as pb
from tests.integration.harness import Stack, token_of
from tests.integration.mail_world import MailWorld, run_mail_world

PASSWORD = "correct horse battery staple"
SENT = pb.DELIVERY_STATUS_SENT
FAILED = pb.DELIVERY_STATUS_FAILED
PENDING = pb.DELIVERY_STATUS_PENDING


@pytest.fixture(scope="module")
async def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailWorld]:
    # No reminder here: it would take its share of the failures the tests script.
    root = tmp_path_factory.mktemp("mail-world")
    async for world in run_mail_world(stack, root, verification_reminder="false"):
        yield world


@pytest.fixture(scope="module")
async def reminder_world(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MailWorld]:
    async for world in run_mail_world(stack, tmp_path_factory.mktemp("reminder-world")):
        yield world


def new_address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def register(world: MailWorld, address: str) -> str:
    reply = await world.stub.RegisterUser(pb.RegisterUserRequest(email=address, password=PASSWORD))
    return reply.registration_id


def verifications(registration: pb.Registration) -> list[pb.EmailDelivery]:
    return [d for d in registration.deliveries if d.kind == pb.EMAIL_KIND_VERIFICATION]


def first_verification_is(status: int) -> object:
    return lambda r: verifications(r)[0].status == status


async def resend(world: MailWorld, registration_id: str) -> pb.ResendVerificationEmailResponse:
    request = pb.ResendVerificationEmailRequest(registration_id=registration_id)
    for _ in range(2):
        try:
            return await world.stub.ResendVerificationEmail(request)
        except grpc.aio.AioRpcError as err:
            # UNAVAILABLE is safe to repeat (the proto says so), as a client would.
            if err.code() is not grpc.StatusCode.UNAVAILABLE:
                raise
    return await world.stub.ResendVerificationEmail(request)


async def refused_resend(world: MailWorld, registration_id: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await resend(world, registration_id)
    return caught.value


def details_of(err: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, float | None]:
    """The ErrorInfo of a refusal and the RetryInfo delay in seconds, if any."""
    status = rpc_status.from_call(err)
    assert status is not None
    info, delay = error_details_pb2.ErrorInfo(), None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
        else:
            assert detail.Unpack(info)
    return info, delay


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.1)


async def test_greylisting_is_retried_until_the_email_is_sent(world: MailWorld) -> None:
    address = new_address("grey")
    world.smtp.fail_next(3, "451 4.7.1 greylisted, try again later", recipient=address)
    registration_id = await register(world, address)

    [message] = await world.smtp.wait_for(address)
    registration = await world.wait_for_registration(
        registration_id, first_verification_is(SENT), what="the verification email SENT"
    )

    [delivery] = verifications(registration)
    assert delivery.attempts == 4
    assert world.smtp.attempts(address) == 4
    assert "451" in delivery.last_error
    assert delivery.message_id == message["Message-ID"]
    assert delivery.sent_at.ToDatetime() >= delivery.created_at.ToDatetime()


async def test_a_relay_that_hangs_up_with_421_is_tried_again(world: MailWorld) -> None:
    address = new_address("hangup")
    world.smtp.fail_next(2, "421 4.3.2 service shutting down", recipient=address)
    registration_id = await register(world, address)

    await world.smtp.wait_for(address)
    registration = await world.wait_for_registration(
        registration_id, first_verification_is(SENT), what="the verification email SENT"
    )
    assert verifications(registration)[0].attempts == 3


async def test_an_unknown_mailbox_fails_after_one_attempt_and_can_be_resent(
    world: MailWorld,
) -> None:
    address = new_address("unknown")
    world.smtp.refuse_always("550 5.1.1 mailbox unavailable", recipient=address)
    registration_id = await register(world, address)

    registration = await world.wait_for_registration(
        registration_id, first_verification_is(FAILED), what="the verification email FAILED"
    )
    [delivery] = verifications(registration)
    assert delivery.attempts == 1 == world.smtp.attempts(address)
    assert "550" in delivery.last_error
    assert address not in delivery.last_error
    assert registration.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION
    assert world.smtp.messages_to(address) == []

    # The user fixed their mailbox: a resend goes through.
    world.smtp.clear()
    await sleep_until(registration.next_resend_allowed_at.ToDatetime(tzinfo=UTC))
    await resend(world, registration_id)
    [message] = await world.smtp.wait_for(address)
    verified = await world.stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(message)))
    assert verified.status == pb.REGISTRATION_STATUS_ACTIVE


async def test_an_outage_of_several_seconds_ends_sent_once_the_relay_is_back(
    world: MailWorld,
) -> None:
    address = new_address("outage")
    await world.smtp.go_down()
    try:
        registration_id = await register(world, address)
        # The attempt is counted before the relay is tried, its error recorded after.
        registration = await world.wait_for_registration(
            registration_id,
            lambda r: "Connect call failed" in verifications(r)[0].last_error,
            what="a refused connection recorded",
        )
        assert verifications(registration)[0].status == PENDING
        assert verifications(registration)[0].attempts >= 1
        await asyncio.sleep(3)  # down for several seconds, across the retries
    finally:
        await world.smtp.come_back()

    [message] = await world.smtp.wait_for(address)
    registration = await world.wait_for_registration(
        registration_id, first_verification_is(SENT), what="the verification email SENT"
    )
    assert verifications(registration)[0].attempts >= 2
    assert token_of(message)


async def test_when_the_retry_budget_runs_out_the_email_fails_and_stays_resendable(
    world: MailWorld,
) -> None:
    address = new_address("budget")
    world.smtp.refuse_always("451 4.3.0 mailbox busy", recipient=address)
    registration_id = await register(world, address)

    registration = await world.wait_for_registration(
        registration_id, first_verification_is(FAILED), what="the budget spent"
    )
    [delivery] = verifications(registration)
    assert "451" in delivery.last_error
    assert delivery.attempts > 2
    # An attempt that had started when the budget ran out may still reach the relay.
    assert world.smtp.attempts(address) >= delivery.attempts
    assert registration.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION

    world.smtp.clear()
    await resend(world, registration_id)
    await world.smtp.wait_for(address)


async def test_resend_cooldown_limit_and_the_old_link(world: MailWorld) -> None:
    address = new_address("resend")
    registration_id = await register(world, address)

    too_early = await refused_resend(world, registration_id)
    assert too_early.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, delay = details_of(too_early)
    assert info.reason == "RESEND_COOLDOWN"
    assert delay is not None and 0 < delay <= 10
    allowed_at = datetime.fromisoformat(info.metadata["retry_at"])
    [first] = await world.smtp.wait_for(address)

    await sleep_until(allowed_at)
    answer = await resend(world, registration_id)
    assert answer.resends_remaining == 1
    second = (await world.smtp.wait_for(address, count=2))[1]
    assert token_of(second) != token_of(first)
    assert second["Message-ID"] != first["Message-ID"]

    # The old link stopped working the moment the resend was accepted.
    with pytest.raises(grpc.aio.AioRpcError) as old:
        await world.stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(first)))
    assert old.value.code() == grpc.StatusCode.NOT_FOUND

    await sleep_until(answer.next_resend_allowed_at.ToDatetime(tzinfo=UTC))
    last = await resend(world, registration_id)
    assert last.resends_remaining == 0
    assert not last.HasField("next_resend_allowed_at")
    third = (await world.smtp.wait_for(address, count=3))[2]

    spent = await refused_resend(world, registration_id)
    assert spent.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, delay = details_of(spent)
    assert info.reason == "RESEND_LIMIT"
    assert delay is None

    verified = await world.stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(third)))
    assert verified.status == pb.REGISTRATION_STATUS_ACTIVE
    already = await refused_resend(world, registration_id)
    assert already.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The welcome email follows activation.
    welcome = (await world.smtp.wait_for(address, count=4))[3]
    assert welcome["Subject"].startswith("Welcome")
    registration = await world.wait_for_registration(
        registration_id,
        lambda r: (
            r.deliveries[-1].kind == pb.EMAIL_KIND_WELCOME and r.deliveries[-1].status == SENT
        ),
        what="the welcome email SENT",
    )
    assert [d.status for d in verifications(registration)] == [SENT, SENT, SENT]
    assert registration.resends_remaining == 0


async def test_the_reminder_carries_a_working_link_and_expiry_ends_resends(
    reminder_world: MailWorld,
) -> None:
    world = reminder_world
    clicks, ignores = new_address("reminded"), new_address("ignored")
    clicks_id = await register(world, clicks)
    ignores_id = await register(world, ignores)

    verification, reminder = await world.smtp.wait_for(clicks, count=2, within=120)
    assert reminder["Subject"].startswith("Reminder")
    assert token_of(reminder) == token_of(verification)
    verified = await world.stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(reminder)))
    assert verified.status == pb.REGISTRATION_STATUS_ACTIVE

    expired = await world.wait_for_registration(
        ignores_id,
        lambda r: r.status == pb.REGISTRATION_STATUS_EXPIRED,
        what="the ignored registration EXPIRED",
        within=120,
    )
    assert [(d.kind, d.status) for d in expired.deliveries] == [
        (pb.EMAIL_KIND_VERIFICATION, SENT),
        (pb.EMAIL_KIND_REMINDER, SENT),
    ]
    late = await refused_resend(world, ignores_id)
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
    active = await world.registration(clicks_id)
    assert [d.kind for d in active.deliveries] == [
        pb.EMAIL_KIND_VERIFICATION,
        pb.EMAIL_KIND_REMINDER,
        pb.EMAIL_KIND_WELCOME,
    ]


async def test_a_missing_template_holds_the_email_until_it_is_put_back(
    world: MailWorld,
) -> None:
    template = world.templates_dir / "verification.html"
    kept = template.read_text()
    template.unlink()
    try:
        address = new_address("template")
        registration_id = await register(world, address)
        registration = await world.wait_for_registration(
            registration_id,
            lambda r: "verification.html" in verifications(r)[0].last_error,
            what="the missing template named",
        )
        [delivery] = verifications(registration)
        assert delivery.status == PENDING
        assert delivery.attempts == 0
        assert "not found" in delivery.last_error
        await asyncio.sleep(1.5)  # it keeps waiting; nothing is sent, nothing is dropped
        assert world.smtp.messages_to(address) == []
        assert verifications(await world.registration(registration_id))[0].status == PENDING
    finally:
        template.write_text(kept)

    await world.smtp.wait_for(address)
    registration = await world.wait_for_registration(
        registration_id, first_verification_is(SENT), what="the verification email SENT"
    )
    assert verifications(registration)[0].attempts == 1
