"""SMTP failures, classified the way mail systems mean them, against a real SMTP server:
5xx replies are permanent, 4xx and broken connections transient; the recipient's address
never appears in the failure text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from activities.email_failures import PERMANENT, TRANSIENT, redact, smtp_failure
from registration.devstack import free_port
from registration.mail import OutgoingEmail, SmtpMailSender
from registration.settings import Settings

RECIPIENT = "ann.smith@example.com"


class RefusingHandler:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        # Real relays often repeat the address in their reply, as this one does.
        return self.reply.format(address=address)


@pytest.fixture
async def relay(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    handler = RefusingHandler(request.param)
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


async def send(port: int) -> BaseException:
    settings = Settings(_env_file=None, smtp_port=port)
    email = OutgoingEmail(RECIPIENT, "Subject", "text", "<p>html</p>", "<id@example.com>")
    try:
        await SmtpMailSender(settings).send(email)
    except Exception as err:
        return err
    raise AssertionError("the relay accepted the message")


@pytest.mark.parametrize("relay", ["550 5.1.1 <{address}>: mailbox unavailable"], indirect=True)
async def test_a_5xx_reply_is_permanent_and_redacted(relay: int) -> None:
    failure = smtp_failure(await send(relay), RECIPIENT)
    assert failure.type == PERMANENT
    assert failure.non_retryable
    assert "550" in failure.message
    assert RECIPIENT not in failure.message and "ann.smith" not in failure.message


@pytest.mark.parametrize("relay", ["451 4.7.1 greylisted {address}, try later"], indirect=True)
async def test_a_4xx_reply_is_transient(relay: int) -> None:
    failure = smtp_failure(await send(relay), RECIPIENT)
    assert failure.type == TRANSIENT
    assert not failure.non_retryable
    assert "451" in failure.message
    assert RECIPIENT not in failure.message


async def test_nobody_listening_is_transient() -> None:
    failure = smtp_failure(await send(free_port()), RECIPIENT)
    assert failure.type == TRANSIENT
    assert not failure.non_retryable


def test_redact_masks_the_address_and_the_mailbox_name() -> None:
    text = f"550 <{RECIPIENT}> unknown; user ann.smith has no mailbox"
    assert redact(text, RECIPIENT) == "550 <<recipient>> unknown; user <recipient> has no mailbox"
