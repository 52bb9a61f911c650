"""The real send_email activity, run by Temporal's ActivityEnvironment against a real SQLite
database and a real SMTP server that fails on cue: at-least-once without double sends, one
Message-ID and one link per delivery, every attempt counted, failures classified, no email
once a delivery or its link has ended, and a missing template that holds an email back
without losing it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.mailer import RecordedMailer
from activities.registration import RegistrationActivities
from registration.adapters.db.deliveries import DeliveryRepository
from registration.adapters.db.password_resets import PasswordResetRepository
from registration.adapters.db.registrations import RegistrationRepository
from registration.adapters.email.messages import OutgoingEmail
from registration.adapters.email.rendering import BUNDLED_TEMPLATES, TemplateRenderer
from registration.adapters.email.smtp import SmtpMailSender
from registration.devtools.smtp_sink import first_link
from registration.domain.email_kinds import EmailKind
from registration.domain.failures import (
    LINK_REPLACED,
    PERMANENT_SMTP_FAILURE,
    TEMPLATE_PROBLEM,
    TRANSIENT_SMTP_FAILURE,
)
from registration.domain.identifiers import derive_token, hash_token
from registration.domain.records import DeliveryOwner, DeliveryRecord
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from registration.settings import Settings
from tests.smtp_server import ControllableSmtpServer
from workflows.contracts import (
    CreatePendingUserInput,
    DeliveryFailedInput,
    NewVerificationInput,
    SendEmailInput,
    SendEmailResult,
)

SECRET = b"k" * 32
NOW = datetime.now(UTC)
RECIPIENT = "ann@example.com"
FROM_EMAIL = "no-reply@acme.test"


@dataclass
class RecordingSender:
    """The real SMTP sender, keeping what every attempt handed to it."""

    inner: SmtpMailSender
    handed: list[OutgoingEmail] = field(default_factory=list)

    async def send(self, email: OutgoingEmail) -> None:
        self.handed.append(email)
        await self.inner.send(email)


@dataclass
class World:
    smtp: ControllableSmtpServer
    engine: Engine
    repository: RegistrationRepository
    deliveries: DeliveryRepository
    sender: RecordingSender
    activities: RegistrationActivities

    def activities_with(self, renderer: TemplateRenderer) -> RegistrationActivities:
        return build_activities(self.engine, renderer, self.sender)

    async def register(self) -> str:
        """A pending registration made the way the workflow makes it: with its first
        verification delivery and that delivery's link."""
        registration_id = f"reg-{uuid.uuid4().hex}"
        await ActivityEnvironment().run(
            self.activities.create_pending_user,
            CreatePendingUserInput(
                registration_id=registration_id,
                user_id=str(uuid.uuid4()),
                email=RECIPIENT,
                password_hash="$argon2id$fake",
                created_at=NOW,
                expires_at=NOW + timedelta(hours=1),
                verification_delivery_id=first_id(registration_id),
                next_resend_allowed_at=NOW + timedelta(minutes=1),
                resends_remaining=5,
            ),
        )
        return registration_id

    async def resend(self, registration_id: str) -> str:
        delivery_id = f"{registration_id}.verification.2"
        await ActivityEnvironment().run(
            self.activities.start_new_verification,
            NewVerificationInput(
                registration_id=registration_id,
                delivery_id=delivery_id,
                created_at=NOW + timedelta(minutes=2),
                next_resend_allowed_at=NOW + timedelta(minutes=3),
                resends_remaining=4,
            ),
        )
        return delivery_id

    def delivery(self, delivery_id: str) -> DeliveryRecord:
        record = self.deliveries.get_delivery(delivery_id=delivery_id)
        assert record is not None
        return record


def build_activities(
    engine: Engine, renderer: TemplateRenderer, sender: RecordingSender
) -> RegistrationActivities:
    """As bootstrap.build_activities builds them."""
    deliveries = DeliveryRepository(engine)
    return RegistrationActivities(
        repository=RegistrationRepository(engine),
        deliveries=deliveries,
        resets=PasswordResetRepository(engine),
        mailer=RecordedMailer(
            deliveries=deliveries, renderer=renderer, sender=sender, from_email=FROM_EMAIL
        ),
        secret_key=SECRET,
        public_base_url="http://app.test",
    )


@pytest.fixture
async def world(engine: Engine) -> AsyncIterator[World]:
    async with ControllableSmtpServer() as smtp:
        sender = RecordingSender(SmtpMailSender(Settings(_env_file=None, smtp_port=smtp.port)))
        activities = build_activities(engine, TemplateRenderer(app_name="Acme"), sender)
        yield World(
            smtp,
            engine,
            RegistrationRepository(engine),
            DeliveryRepository(engine),
            sender,
            activities,
        )


def first_id(registration_id: str) -> str:
    return f"{registration_id}.verification.1"


def verification(registration_id: str, delivery_id: str | None = None) -> SendEmailInput:
    """The workflow's request for a verification email: its link is its own delivery's."""
    delivery_id = delivery_id or first_id(registration_id)
    return SendEmailInput(
        delivery_id=delivery_id,
        registration_id=registration_id,
        kind=EmailKind.VERIFICATION,
        recipient=RECIPIENT,
        expires_at=NOW + timedelta(hours=1),
        link_delivery_id=delivery_id,
    )


async def send(activities: RegistrationActivities, request: SendEmailInput) -> SendEmailResult:
    result: SendEmailResult = await ActivityEnvironment().run(activities.send_email, request)
    return result


async def refused(activities: RegistrationActivities, request: SendEmailInput) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        await send(activities, request)
    return raised.value


def token_in(message: EmailMessage | OutgoingEmail) -> str:
    link = first_link(message) if isinstance(message, EmailMessage) else _link_in(message.text)
    assert link is not None and link.startswith("http://app.test/verify?token=")
    return link.rsplit("=", 1)[1]


def _link_in(text: str) -> str | None:
    return next((word for word in text.split() if word.startswith("http://app.test/")), None)


# Sending once --------------------------------------------------------------------------------


async def test_sends_once_and_a_repeat_after_success_sends_nothing(world: World) -> None:
    registration_id = await world.register()

    first = await send(world.activities, verification(registration_id))
    again = await send(world.activities, verification(registration_id))

    assert again == first
    assert first.attempts == 1
    assert first.message_id == f"<{first_id(registration_id)}@acme.test>"
    [message] = world.smtp.messages_to(RECIPIENT)
    assert message["Message-ID"] == first.message_id
    assert world.smtp.attempts(RECIPIENT) == 1
    record = world.repository.get_registration(registration_id=registration_id)
    assert record is not None
    assert [(d.status, d.attempts, d.message_id) for d in record.deliveries] == [
        (DeliveryStatus.SENT, 1, first.message_id)
    ]
    assert record.deliveries[0].sent_at == first.sent_at


async def test_the_link_carries_the_token_whose_hash_is_stored(world: World) -> None:
    registration_id = await world.register()
    await send(world.activities, verification(registration_id))

    [message] = world.smtp.messages_to(RECIPIENT)
    token = token_in(message)
    found = world.repository.find_by_token_hash(token_hash=hash_token(token))
    assert found is not None and found.registration_id == registration_id


# SMTP failures -------------------------------------------------------------------------------


async def test_transient_refusals_are_retried_with_the_same_message_and_link(
    world: World,
) -> None:
    """Greylisted three times, then accepted: every attempt is counted, every attempt carried
    the same Message-ID and the same link, and exactly one message arrives."""
    registration_id = await world.register()
    delivery_id = first_id(registration_id)
    world.smtp.fail_next(3, "451 4.7.1 greylisted, try again later")

    for attempt in (1, 2, 3):
        failure = await refused(world.activities, verification(registration_id))
        assert failure.type == TRANSIENT_SMTP_FAILURE
        assert not failure.non_retryable
        assert "451" in failure.message
        assert RECIPIENT not in failure.message
        delivery = world.delivery(delivery_id)
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.attempts == attempt
        assert delivery.last_error is not None and "451" in delivery.last_error
        assert RECIPIENT not in delivery.last_error
    assert world.smtp.messages_to(RECIPIENT) == []

    result = await send(world.activities, verification(registration_id))

    expected_id = f"<{delivery_id}@acme.test>"
    assert result.attempts == 4
    assert result.message_id == expected_id
    delivery = world.delivery(delivery_id)
    assert delivery.status is DeliveryStatus.SENT
    assert delivery.attempts == 4
    assert delivery.message_id == expected_id
    assert delivery.sent_at == result.sent_at
    assert world.smtp.attempts(RECIPIENT) == 4
    [message] = await world.smtp.wait_for(RECIPIENT)
    assert message["Message-ID"] == expected_id
    assert len(world.sender.handed) == 4
    assert {handed.message_id for handed in world.sender.handed} == {expected_id}
    token = token_in(message)
    assert {token_in(handed) for handed in world.sender.handed} == {token}
    assert hash_token(token) == hash_token(derive_token(SECRET, delivery_id))
    assert world.repository.link_is_live(
        registration_id=registration_id, token_hash=hash_token(token)
    )


async def test_a_permanent_refusal_is_not_retried_and_leaves_the_delivery_to_the_workflow(
    world: World,
) -> None:
    registration_id = await world.register()
    delivery_id = first_id(registration_id)
    world.smtp.refuse_always("550 5.1.1 no such user")

    failure = await refused(world.activities, verification(registration_id))

    assert failure.type == PERMANENT_SMTP_FAILURE
    assert failure.non_retryable
    assert "550" in failure.message
    assert RECIPIENT not in failure.message
    delivery = world.delivery(delivery_id)
    # PENDING still: the workflow decides, and records FAILED through record_delivery_failure.
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.last_error is not None and "550" in delivery.last_error
    assert RECIPIENT not in delivery.last_error
    assert world.smtp.attempts(RECIPIENT) == 1
    assert world.smtp.messages_to(RECIPIENT) == []

    recorded = await ActivityEnvironment().run(
        world.activities.record_delivery_failure,
        DeliveryFailedInput(
            delivery_id=delivery_id,
            registration_id=registration_id,
            kind=EmailKind.VERIFICATION,
            error=failure.message,
        ),
    )
    assert recorded.attempts == 1
    ended = world.delivery(delivery_id)
    assert ended.status is DeliveryStatus.FAILED
    assert ended.last_error == failure.message

    # Once FAILED it stays ended, even when the relay would now accept it.
    world.smtp.clear()
    again = await refused(world.activities, verification(registration_id))
    assert again.non_retryable
    assert world.smtp.attempts(RECIPIENT) == 1
    assert world.delivery(delivery_id).attempts == 1


# Ended deliveries and dead links -------------------------------------------------------------


async def test_an_ended_delivery_is_not_sent(world: World) -> None:
    registration_id = await world.register()
    world.deliveries.mark_delivery_failed(
        delivery_id=first_id(registration_id),
        owner=DeliveryOwner(registration_id=registration_id),
        kind=EmailKind.VERIFICATION,
        error="registration expired before the email was sent",
        now=NOW,
    )
    ended = await refused(world.activities, verification(registration_id))
    assert ended.non_retryable
    assert world.smtp.attempts(RECIPIENT) == 0
    assert world.sender.handed == []


async def test_no_verification_link_for_an_expired_registration(world: World) -> None:
    registration_id = await world.register()
    world.repository.expire(registration_id=registration_id, now=NOW)
    failure = await refused(world.activities, verification(registration_id))
    assert failure.type == LINK_REPLACED
    assert failure.non_retryable
    assert world.smtp.attempts(RECIPIENT) == 0
    assert world.delivery(first_id(registration_id)).attempts == 0


async def test_no_verification_link_for_an_activated_registration(world: World) -> None:
    registration_id = await world.register()
    world.repository.activate(registration_id=registration_id, verified_at=NOW)
    failure = await refused(world.activities, verification(registration_id))
    assert failure.type == LINK_REPLACED
    assert failure.non_retryable
    assert world.smtp.attempts(RECIPIENT) == 0


async def test_a_resend_stops_the_old_link_and_sends_the_new_one(world: World) -> None:
    registration_id = await world.register()
    old_id = first_id(registration_id)

    new_id = await world.resend(registration_id)

    failure = await refused(world.activities, verification(registration_id, old_id))
    assert failure.type == LINK_REPLACED
    assert failure.non_retryable
    assert world.smtp.attempts(RECIPIENT) == 0
    assert world.sender.handed == []
    old = world.delivery(old_id)
    assert old.status is DeliveryStatus.PENDING  # the workflow ends it, with its reason
    assert old.attempts == 0

    result = await send(world.activities, verification(registration_id, new_id))

    assert result.attempts == 1
    assert result.message_id == f"<{new_id}@acme.test>"
    [message] = world.smtp.messages_to(RECIPIENT)
    token = token_in(message)
    assert token == derive_token(SECRET, new_id)
    found = world.repository.find_by_token_hash(token_hash=hash_token(token))
    assert found is not None
    assert found.registration_id == registration_id
    assert found.status is RegistrationStatus.PENDING_VERIFICATION
    assert found.resends_remaining == 4
    old_hash = hash_token(derive_token(SECRET, old_id))
    assert world.repository.find_by_token_hash(token_hash=old_hash) is None
    assert world.delivery(new_id).status is DeliveryStatus.SENT


async def test_a_repeated_resend_changes_nothing_more(world: World) -> None:
    registration_id = await world.register()
    new_id = await world.resend(registration_id)
    await world.resend(registration_id)
    record = world.repository.get_registration(registration_id=registration_id)
    assert record is not None
    assert [d.delivery_id for d in record.deliveries] == [first_id(registration_id), new_id]
    assert world.repository.link_is_live(
        registration_id=registration_id, token_hash=hash_token(derive_token(SECRET, new_id))
    )


# Templates -----------------------------------------------------------------------------------


async def test_a_missing_template_holds_the_email_back_until_it_is_put_back(
    world: World, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(BUNDLED_TEMPLATES, templates)
    html = templates / "verification.html"
    kept = html.read_text()
    html.unlink()
    activities = world.activities_with(TemplateRenderer(app_name="Acme", templates_dir=templates))
    registration_id = await world.register()
    delivery_id = first_id(registration_id)

    failure = await refused(activities, verification(registration_id))

    assert failure.type == TEMPLATE_PROBLEM
    assert failure.non_retryable
    assert "verification.html" in failure.message
    delivery = world.delivery(delivery_id)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_error is not None and "verification.html" in delivery.last_error
    assert delivery.attempts == 0
    assert delivery.message_id is None
    assert world.sender.handed == []
    assert world.smtp.attempts(RECIPIENT) == 0

    html.write_text(kept)
    result = await send(activities, verification(registration_id))

    assert result.attempts == 1
    [message] = world.smtp.messages_to(RECIPIENT)
    assert message["Message-ID"] == f"<{delivery_id}@acme.test>"
    assert token_in(message) == derive_token(SECRET, delivery_id)
    assert world.delivery(delivery_id).status is DeliveryStatus.SENT
