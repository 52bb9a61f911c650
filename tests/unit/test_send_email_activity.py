"""The real send_email activity, run by Temporal's ActivityEnvironment against a real SQLite
database and a real SMTP sink: at-least-once without double sends, one link per delivery,
and no email once a delivery or a registration has ended."""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.registration import RegistrationActivities
from registration.db import build_engine, create_schema
from registration.identifiers import hash_token
from registration.mail import SmtpMailSender, TemplateRenderer
from registration.repository import RegistrationRepository
from registration.settings import Settings
from registration.smtp_sink import MaildirHandler, first_link
from registration.status import DeliveryStatus, EmailKind
from workflows.contracts import SendEmailInput

SECRET = b"k" * 32
NOW = datetime.now(UTC)


@dataclass
class World:
    activities: RegistrationActivities
    repository: RegistrationRepository
    mail_dir: Path

    def mailbox(self) -> list[Path]:
        return sorted(self.mail_dir.glob("*.eml"))

    def register(self) -> str:
        registration_id = f"reg-{uuid.uuid4().hex}"
        self.repository.create_pending_user(
            user_id=uuid.uuid4(),
            registration_id=registration_id,
            email="ann@example.com",
            password_hash="$argon2id$fake",
            created_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        return registration_id


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    loop = asyncio.get_running_loop()
    mail_dir = tmp_path / "mail"
    sink = await loop.create_server(lambda: SMTP(MaildirHandler(mail_dir)), "127.0.0.1", 0)
    port = int(sink.sockets[0].getsockname()[1])
    engine = build_engine(f"sqlite:///{tmp_path}/db.sqlite")
    create_schema(engine)
    repository = RegistrationRepository(engine)
    activities = RegistrationActivities(
        repository=repository,
        renderer=TemplateRenderer(app_name="Acme"),
        sender=SmtpMailSender(Settings(_env_file=None, smtp_port=port)),
        secret_key=SECRET,
        public_base_url="http://app.test",
        from_email="no-reply@acme.test",
    )
    yield World(activities, repository, mail_dir)
    sink.close()
    engine.dispose()


def verification(registration_id: str) -> SendEmailInput:
    return SendEmailInput(
        delivery_id=f"{registration_id}.verification.1",
        registration_id=registration_id,
        kind=EmailKind.VERIFICATION,
        recipient="ann@example.com",
        expires_at=NOW + timedelta(hours=1),
    )


async def test_sends_once_and_a_repeat_after_success_sends_nothing(world: World) -> None:
    registration_id = world.register()
    env = ActivityEnvironment()

    first = await env.run(world.activities.send_email, verification(registration_id))
    again = await env.run(world.activities.send_email, verification(registration_id))

    assert again == first
    assert len(world.mailbox()) == 1
    record = world.repository.get_registration(registration_id=registration_id)
    assert record is not None
    assert [(d.status, d.attempts) for d in record.deliveries] == [(DeliveryStatus.SENT, 1)]


async def test_the_link_carries_the_token_whose_hash_is_stored(world: World) -> None:
    registration_id = world.register()
    await ActivityEnvironment().run(world.activities.send_email, verification(registration_id))

    [path] = world.mailbox()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    link = first_link(message)  # type: ignore[arg-type]
    assert link is not None and link.startswith("http://app.test/verify?token=")
    token = link.rsplit("=", 1)[1]
    found = world.repository.find_by_token_hash(token_hash=hash_token(token))
    assert found is not None and found.registration_id == registration_id


async def test_an_ended_delivery_is_not_sent(world: World) -> None:
    registration_id = world.register()
    world.repository.mark_delivery_failed(
        delivery_id=f"{registration_id}.verification.1",
        registration_id=registration_id,
        kind=EmailKind.VERIFICATION,
        error="registration expired before the email was sent",
        now=NOW,
    )
    with pytest.raises(ApplicationError) as ended:
        await ActivityEnvironment().run(world.activities.send_email, verification(registration_id))
    assert ended.value.non_retryable
    assert world.mailbox() == []


async def test_no_verification_link_for_an_expired_registration(world: World) -> None:
    registration_id = world.register()
    world.repository.expire(registration_id=registration_id, now=NOW)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(world.activities.send_email, verification(registration_id))
    assert refused.value.non_retryable
    assert world.mailbox() == []
