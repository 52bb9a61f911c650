"""SMTP failures, classified the way mail systems mean them, against a real SMTP server:
5xx replies are permanent, 4xx and broken connections transient; the recipient's address
never appears in the failure text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from activities.email_failures import redact, smtp_failure
from registration.adapters.email.messages import OutgoingEmail
from registration.adapters.email.smtp import SmtpMailSender
from registration.devtools.launcher import free_port
from registration.domain.failures import PERMANENT_SMTP_FAILURE, TRANSIENT_SMTP_FAILURE
from registration.settings import Settings
from tests.smtp_server import ControllableSmtpServer

RECIPIENT = "ann.smith@example.com"
# A mailbox name with no ASCII form: only a relay with SMTPUTF8 can take it.
NON_ASCII_RECIPIENT = "jörg@example.com"


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


async def deliver(port: int, recipient: str = RECIPIENT) -> None:
    settings = Settings(_env_file=None, smtp_host="127.0.0.1", smtp_port=port)
    email = OutgoingEmail(recipient, "Subject", "text", "<p>html</p>", "<id@example.com>")
    await SmtpMailSender(settings).send(email)


async def send(port: int, recipient: str = RECIPIENT) -> BaseException:
    try:
        await deliver(port, recipient)
    except Exception as err:
        return err
    raise AssertionError("the relay accepted the message")


@pytest.mark.parametrize("relay", ["550 5.1.1 <{address}>: mailbox unavailable"], indirect=True)
async def test_a_5xx_reply_is_permanent_and_redacted(relay: int) -> None:
    failure = smtp_failure(await send(relay), RECIPIENT)
    assert failure.type == PERMANENT_SMTP_FAILURE
    assert failure.non_retryable
    assert "550" in failure.message
    assert RECIPIENT not in failure.message and "ann.smith" not in failure.message


@pytest.mark.parametrize("relay", ["451 4.7.1 greylisted {address}, try later"], indirect=True)
async def test_a_4xx_reply_is_transient(relay: int) -> None:
    failure = smtp_failure(await send(relay), RECIPIENT)
    assert failure.type == TRANSIENT_SMTP_FAILURE
    assert not failure.non_retryable
    assert "451" in failure.message
    assert RECIPIENT not in failure.message


async def test_nobody_listening_is_transient() -> None:
    failure = smtp_failure(await send(free_port()), RECIPIENT)
    assert failure.type == TRANSIENT_SMTP_FAILURE
    assert not failure.non_retryable


def test_redact_masks_the_address_and_the_mailbox_name() -> None:
    text = f"550 <{RECIPIENT}> unknown; user ann.smith has no mailbox"
    assert redact(text, RECIPIENT) == "550 <<recipient>> unknown; user <recipient> has no mailbox"


# A relay without SMTPUTF8 -----------------------------------------------------------------


class RecordingHandler:
    """Accepts every recipient, and remembers which ones it was asked about."""

    def __init__(self) -> None:
        self.rcpt: list[str] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.rcpt.append(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 Message accepted for delivery"


async def test_a_non_ascii_mailbox_on_a_relay_without_smtputf8_is_permanent() -> None:
    handler = RecordingHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, enable_SMTPUTF8=False), "127.0.0.1", 0)
    try:
        port = int(server.sockets[0].getsockname()[1])
        err = await send(port, NON_ASCII_RECIPIENT)
    finally:
        server.close()
        await server.wait_closed()

    assert isinstance(err, aiosmtplib.SMTPNotSupported)
    assert handler.rcpt == []  # refused before the relay was asked
    failure = smtp_failure(err, NON_ASCII_RECIPIENT)
    assert failure.type == PERMANENT_SMTP_FAILURE
    assert failure.non_retryable
    assert failure.message.startswith("SMTPNotSupported: ")
    assert NON_ASCII_RECIPIENT not in failure.message and "jörg" not in failure.message


async def test_a_non_ascii_mailbox_reaches_a_relay_with_smtputf8() -> None:
    async with ControllableSmtpServer() as smtp:
        await deliver(smtp.port, NON_ASCII_RECIPIENT)
        [message] = await smtp.wait_for(NON_ASCII_RECIPIENT, within=5)
    assert message["To"] == NON_ASCII_RECIPIENT


@pytest.mark.parametrize("domain", ["-bücher-.de", "bü cher.de"])
async def test_a_domain_without_an_idna_form_is_permanent(domain: str) -> None:
    recipient = f"ann.smith@{domain}"
    async with ControllableSmtpServer() as smtp:
        err = await send(smtp.port, recipient)
        assert smtp.attempts(recipient) == 0
    assert isinstance(err, UnicodeError)
    failure = smtp_failure(err, recipient)
    assert failure.type == PERMANENT_SMTP_FAILURE
    assert failure.non_retryable
    assert recipient not in failure.message and "ann.smith" not in failure.message


# Scripted failures of a real relay -------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (f"421 4.3.2 <{RECIPIENT}> service shutting down", TRANSIENT_SMTP_FAILURE),
        (f"451 4.7.1 <{RECIPIENT}> greylisted, try later", TRANSIENT_SMTP_FAILURE),
        (f"550 5.1.1 <{RECIPIENT}> no such user", PERMANENT_SMTP_FAILURE),
    ],
    ids=["421", "451", "550"],
)
async def test_a_scripted_refusal_is_classified_by_its_code(reply: str, expected: str) -> None:
    async with ControllableSmtpServer() as smtp:
        smtp.fail_next(1, reply, recipient=RECIPIENT)
        err = await send(smtp.port)

        assert isinstance(err, aiosmtplib.SMTPRecipientsRefused)
        failure = smtp_failure(err, RECIPIENT)
        assert failure.type == expected
        assert failure.non_retryable is (expected == PERMANENT_SMTP_FAILURE)
        assert reply[:3] in failure.message
        assert RECIPIENT not in failure.message and "ann.smith" not in failure.message

        # The script was for one mail: the next attempt goes through.
        await deliver(smtp.port)
        await smtp.wait_for(RECIPIENT, within=5)
        assert smtp.attempts(RECIPIENT) == 2


async def test_a_relay_that_is_down_is_transient_until_it_comes_back() -> None:
    async with ControllableSmtpServer() as smtp:
        await smtp.go_down()
        err = await send(smtp.port)
        assert isinstance(err, aiosmtplib.SMTPConnectError)
        failure = smtp_failure(err, RECIPIENT)
        assert failure.type == TRANSIENT_SMTP_FAILURE
        assert not failure.non_retryable
        assert RECIPIENT not in failure.message

        await smtp.come_back()
        await deliver(smtp.port)
        await smtp.wait_for(RECIPIENT, within=5)


def test_redact_masks_the_mailbox_name_only_as_a_whole_word() -> None:
    text = "550 5.1.1 <mail@example.com>: mailbox unavailable"
    assert redact(text, "mail@example.com") == "550 5.1.1 <<recipient>>: mailbox unavailable"
