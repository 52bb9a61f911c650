"""Sign-in and password reset end to end: the real dev server, workers, SQLite and an SMTP
server, through gRPC. Tokens come from the emails as a user would read them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from argon2 import PasswordHasher
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlmodel import Session, select

from registration.adapters.db.tables import PasswordReset, SignInThrottle, User
from registration.adapters.temporal.connect import connect_temporal
from registration.bootstrap import build_services
from registration.domain.identifiers import email_key, password_reset_workflow_id
from registration.domain.statuses import PasswordResetStatus
from registration.v1 import registration_pb2 as pb
from tests.databases import BACKENDS as DATABASE_BACKENDS
from tests.integration.harness import Stack, token_of
from tests.integration.mail_world import MailWorld, run_mail_world
from workflows.password_reset import PasswordResetWorkflow

# The repository and end-to-end path runs on both databases.
BACKENDS = DATABASE_BACKENDS

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase, long"
LOCKOUT_SECONDS = 3


@pytest.fixture(scope="module")
async def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailWorld]:
    root = tmp_path_factory.mktemp("account-world")
    async for world in run_mail_world(
        stack,
        root,
        verification_reminder="false",
        sign_in_max_failures="3",
        sign_in_lockout=f"{LOCKOUT_SECONDS}s",
    ):
        yield world


def new_address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def register(world: MailWorld, address: str, password: str = PASSWORD) -> str:
    reply = await world.stub.RegisterUser(pb.RegisterUserRequest(email=address, password=password))
    return reply.registration_id


async def register_active(world: MailWorld, address: str) -> pb.VerifyEmailResponse:
    await register(world, address)
    [message] = await world.smtp.wait_for(address)
    verified: pb.VerifyEmailResponse = await world.stub.VerifyEmail(
        pb.VerifyEmailRequest(token=token_of(message))
    )
    return verified


async def sign_in(world: MailWorld, address: str, password: str) -> pb.AuthenticateResponse:
    reply: pb.AuthenticateResponse = await world.stub.Authenticate(
        pb.AuthenticateRequest(email=address, password=password)
    )
    return reply


async def refused_sign_in(world: MailWorld, address: str, password: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sign_in(world, address, password)
    return caught.value


def error_info(err: grpc.aio.AioRpcError) -> tuple[str, float | None]:
    """The ErrorInfo reason of a refusal and its RetryInfo delay in seconds, if any."""
    status = rpc_status.from_call(err)
    assert status is not None
    reason, delay = "", None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return reason, delay


# Sign-in ------------------------------------------------------------------------------------


async def test_sign_in_before_and_after_verification(world: MailWorld) -> None:
    address = new_address("signin")
    await register(world, address)
    [message] = await world.smtp.wait_for(address)

    unverified = await refused_sign_in(world, address, PASSWORD)
    assert unverified.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not verified" in (unverified.details() or "")
    # The wrong password learns nothing about the account's state.
    wrong = await refused_sign_in(world, address, "not the password at all")
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED

    verified = await world.stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(message)))
    # Right after VerifyEmail answers, sign-in succeeds: activation is already committed.
    signed_in = await sign_in(world, address, PASSWORD)
    assert signed_in.user_id == verified.user_id


async def test_a_wrong_password_and_an_unknown_address_get_one_answer(world: MailWorld) -> None:
    known = new_address("known")
    await register_active(world, known)

    wrong_password = await refused_sign_in(world, known, "not the password at all")
    unknown = await refused_sign_in(world, new_address("nobody"), PASSWORD)
    for refusal in (wrong_password, unknown):
        assert refusal.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refusal.details() == "wrong email or password"
    assert rpc_status.from_call(wrong_password) == rpc_status.from_call(unknown)


async def test_repeated_failures_are_throttled_then_the_lock_lifts(world: MailWorld) -> None:
    known, unknown = new_address("locked"), new_address("ghost")
    await register_active(world, known)

    for address in (known, unknown):
        for _ in range(3):  # SIGN_IN_MAX_FAILURES
            failed = await refused_sign_in(world, address, "guess number n, wrong")
            assert failed.code() == grpc.StatusCode.UNAUTHENTICATED
        # Locked: even the right password is refused now, and both addresses alike.
        locked = await refused_sign_in(world, address, PASSWORD)
        assert locked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        reason, delay = error_info(locked)
        assert reason == "SIGN_IN_THROTTLED"
        assert delay is not None and 0 < delay <= LOCKOUT_SECONDS

    # The counts are kept under keyed hashes: no address in the table.
    with Session(world.engine) as session:
        keys = [row.email_key for row in session.exec(select(SignInThrottle)).all()]
    assert keys and not any("@" in key for key in keys)

    await asyncio.sleep(LOCKOUT_SECONDS + 0.5)
    assert (await sign_in(world, known, PASSWORD)).user_id


async def test_a_hash_made_with_weaker_parameters_is_upgraded_on_sign_in(
    world: MailWorld,
) -> None:
    address = new_address("upgrade")
    verified = await register_active(world, address)
    with Session(world.engine) as session:
        before = session.exec(select(User).where(User.email == address)).one().password_hash
    assert before is not None and ",t=2," in before

    # The operator raised ARGON2_TIME_COST: the next sign-in rehashes with it.
    stronger = world.settings.model_copy(update={"argon2_time_cost": 3})
    client = await connect_temporal(stronger)
    services = build_services(stronger, client, world.engine)
    signed_in = await services.sign_in.authenticate(
        email=address, password=PASSWORD, source="192.0.2.1"
    )
    assert signed_in.user_id == verified.user_id

    with Session(world.engine) as session:
        after = session.exec(select(User).where(User.email == address)).one().password_hash
    assert after is not None and after != before and ",t=3," in after
    assert PasswordHasher().verify(after, PASSWORD)
    # And the upgraded hash still signs in through the running server.
    assert (await sign_in(world, address, PASSWORD)).user_id == verified.user_id


# Composed as one character each, as most keyboards send them; macOS sends the accents apart.
COMPOSED = "Zoë's crème brûlée recipe"
DECOMPOSED = "Zoe\u0308's cre\u0300me bru\u0302le\u0301e recipe"


async def test_a_password_typed_in_another_unicode_form_signs_in(world: MailWorld) -> None:
    assert COMPOSED != DECOMPOSED
    address = new_address("unicode")
    await register(world, address, COMPOSED)
    [message] = await world.smtp.wait_for(address)
    verified = await world.stub.VerifyEmail(pb.VerifyEmailRequest(token=token_of(message)))
    assert (await sign_in(world, address, DECOMPOSED)).user_id == verified.user_id
    assert (await sign_in(world, address, COMPOSED)).user_id == verified.user_id


async def test_a_hash_of_the_password_as_typed_still_signs_in_and_is_normalized(
    world: MailWorld,
) -> None:
    address = new_address("as-typed")
    verified = await register_active(world, address)
    # Made before passwords were normalized: the hash of what the keyboard sent.
    as_typed = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(DECOMPOSED)
    with Session(world.engine) as session:
        user = session.exec(select(User).where(User.email == address)).one()
        user.password_hash = as_typed
        session.add(user)
        session.commit()

    assert (await sign_in(world, address, DECOMPOSED)).user_id == verified.user_id
    with Session(world.engine) as session:
        after = session.exec(select(User).where(User.email == address)).one().password_hash
    assert after is not None and after != as_typed
    assert PasswordHasher().verify(after, COMPOSED)
    # Now either form signs in.
    assert (await sign_in(world, address, COMPOSED)).user_id == verified.user_id


# Password reset -----------------------------------------------------------------------------


async def request_reset(world: MailWorld, address: str) -> pb.RequestPasswordResetResponse:
    reply: pb.RequestPasswordResetResponse = await world.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=address)
    )
    return reply


async def refused_reset(world: MailWorld, token: str, password: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.ResetPassword(pb.ResetPasswordRequest(token=token, new_password=password))
    return caught.value


async def test_a_full_password_reset_round_trip(world: MailWorld) -> None:
    address = new_address("reset")
    verified = await register_active(world, address)

    await request_reset(world, address)
    _, _, reset_mail = await world.smtp.wait_for(address, count=3)  # after verify and welcome
    assert reset_mail["Subject"].startswith("Reset your")
    token = token_of(reset_mail)
    assert "/reset?token=" in reset_mail.get_body(preferencelist=("plain",)).get_content()

    # A bad new password is refused by the registration policy and changes nothing.
    weak = await refused_reset(world, token, "short")
    assert weak.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "new_password" in str(rpc_status.from_call(weak))

    reply = await world.stub.ResetPassword(
        pb.ResetPasswordRequest(token=token, new_password=NEW_PASSWORD)
    )
    assert reply == pb.ResetPasswordResponse()  # no sign-in, no session

    assert (await refused_sign_in(world, address, PASSWORD)).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert (await sign_in(world, address, NEW_PASSWORD)).user_id == verified.user_id

    changed = (await world.smtp.wait_for(address, count=4))[3]
    assert "password was changed" in changed["Subject"]

    # The token works once.
    reused = await refused_reset(world, token, "yet another passphrase here")
    assert reused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already been used" in (reused.details() or "")
    assert (await sign_in(world, address, NEW_PASSWORD)).user_id == verified.user_id

    # The reset's emails are on the account's record; the database holds no token.
    registration = (
        await world.stub.GetRegistration(
            pb.GetRegistrationRequest(registration_id=verified.registration_id)
        )
    ).registration
    kinds = [(d.kind, d.status) for d in registration.deliveries]
    assert (pb.EMAIL_KIND_PASSWORD_RESET, pb.DELIVERY_STATUS_SENT) in kinds
    assert (pb.EMAIL_KIND_PASSWORD_CHANGED, pb.DELIVERY_STATUS_SENT) in kinds
    with Session(world.engine) as session:
        [reset] = session.exec(
            select(PasswordReset).where(PasswordReset.registration_id == verified.registration_id)
        ).all()
    assert reset.status is PasswordResetStatus.USED and token not in reset.token_hash


async def test_a_reset_request_answers_alike_with_or_without_an_account(
    world: MailWorld,
) -> None:
    active, pending, unknown = new_address("has"), new_address("pending"), new_address("none")
    await register_active(world, active)
    await register(world, pending)
    await world.smtp.wait_for(pending)

    replies = [await request_reset(world, address) for address in (active, pending, unknown)]
    assert replies[0] == replies[1] == replies[2] == pb.RequestPasswordResetResponse()

    # Each request ran a workflow; only the active account's sent anything.
    client = await world.temporal_client()
    secret_key = world.settings.resolved_secret_key()
    outcomes = {}
    for address in (active, pending, unknown):
        handle = client.get_workflow_handle_for(
            PasswordResetWorkflow.run, password_reset_workflow_id(email_key(secret_key, address))
        )
        if address == active:
            outcomes[address] = (await handle.query(PasswordResetWorkflow.state)).status
        else:
            outcomes[address] = (await handle.result()).status
    assert outcomes == {
        active: PasswordResetStatus.PENDING,
        pending: PasswordResetStatus.NO_ACCOUNT,
        unknown: PasswordResetStatus.NO_ACCOUNT,
    }
    await world.smtp.wait_for(active, count=3)
    assert len(world.smtp.messages_to(pending)) == 1  # its verification email only
    assert world.smtp.messages_to(unknown) == []


async def test_an_expired_reset_link_is_refused_and_changes_nothing(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("short-reset-world")
    async for world in run_mail_world(
        stack, root, verification_reminder="false", password_reset_timeout="2s"
    ):
        address = new_address("late")
        await register_active(world, address)
        await request_reset(world, address)
        reset_mail = (await world.smtp.wait_for(address, count=3))[2]

        # Past the deadline the workflow has expired the reset (and its token).
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            with Session(world.engine) as session:
                status = session.exec(select(PasswordReset.status)).one()
            if status is PasswordResetStatus.EXPIRED:
                break
            assert asyncio.get_running_loop().time() < deadline, "the reset never expired"
            await asyncio.sleep(0.2)

        late = await refused_reset(world, token_of(reset_mail), NEW_PASSWORD)
        assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "expired" in (late.details() or "")
        assert (await sign_in(world, address, PASSWORD)).user_id
        assert len(world.smtp.messages_to(address)) == 3  # no "password changed"


async def test_a_token_that_was_never_issued_is_not_found(world: MailWorld) -> None:
    missing = await refused_reset(world, "a" * 52, NEW_PASSWORD)
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    malformed = await refused_reset(world, "not-a-token", NEW_PASSWORD)
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
