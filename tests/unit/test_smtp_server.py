"""The test SMTP server of tests/smtp_server.py, driven by a real client (aiosmtplib)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.smtp_server import ControllableSmtpServer

ANN = "ann@example.com"
BOB = "bob@example.com"


@pytest.fixture
async def smtp() -> AsyncIterator[ControllableSmtpServer]:
    async with ControllableSmtpServer() as server:
        yield server


def mail(to: str, subject: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Registration <noreply@example.org>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Follow https://example.org/verify?t=abc to go on.")
    return message


async def send_message(server: ControllableSmtpServer, message: EmailMessage) -> None:
    # An explicit local_hostname spares aiosmtplib its socket.getfqdn() lookup.
    await aiosmtplib.send(
        message, hostname=server.host, port=server.port, local_hostname="client", timeout=5
    )


async def send(server: ControllableSmtpServer, to: str, subject: str = "Hello") -> None:
    await send_message(server, mail(to, subject))


async def refusal_code(server: ControllableSmtpServer, to: str) -> int:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(server, to)
    [error] = refused.value.recipients
    return error.code


async def test_an_accepted_message_is_kept_with_its_envelope(
    smtp: ControllableSmtpServer,
) -> None:
    assert smtp.port > 0
    await send(smtp, ANN, "Bienvenue, Zoë")
    [message] = await smtp.wait_for(ANN, within=5)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Bienvenue, Zoë"
    assert "https://example.org/verify?t=abc" in message.get_content()
    assert smtp.messages == [message]
    assert smtp.received[0].rcpt_tos == (ANN,)
    assert smtp.received[0].mail_from == "noreply@example.org"
    assert smtp.messages_to("ANN@Example.com") == [message]
    assert smtp.messages_to(BOB) == []
    assert smtp.attempts(ANN) == 1


async def test_wait_for_names_the_recipient_when_nothing_comes(
    smtp: ControllableSmtpServer,
) -> None:
    await send(smtp, ANN)
    with pytest.raises(AssertionError, match=r"2 message\(s\) to ann@example.com .* got 1"):
        await smtp.wait_for(ANN, count=2, within=0.1)


async def test_fail_next_refuses_n_times_then_accepts(smtp: ControllableSmtpServer) -> None:
    smtp.fail_next(2, "451 4.7.1 greylisted, try later")
    assert await refusal_code(smtp, ANN) == 451
    assert await refusal_code(smtp, ANN) == 451
    await send(smtp, ANN)
    assert len(await smtp.wait_for(ANN, within=5)) == 1
    assert smtp.attempts(ANN) == 3


async def test_refuse_always_refuses_every_time(smtp: ControllableSmtpServer) -> None:
    smtp.refuse_always("550 5.1.1 mailbox unavailable")
    for _ in range(3):
        assert await refusal_code(smtp, ANN) == 550
    assert smtp.messages == []
    assert smtp.attempts(ANN) == 3
    smtp.clear()
    await send(smtp, ANN)
    await smtp.wait_for(ANN, within=5)


async def test_a_recipients_script_leaves_other_recipients_alone(
    smtp: ControllableSmtpServer,
) -> None:
    smtp.refuse_always(recipient=BOB)
    smtp.fail_next(1, "452 4.2.2 mailbox full", recipient=ANN)
    assert await refusal_code(smtp, BOB) == 550
    assert await refusal_code(smtp, ANN) == 452
    await send(smtp, "carol@example.com")
    await send(smtp, ANN)
    assert len(await smtp.wait_for("carol@example.com", within=5)) == 1
    assert len(await smtp.wait_for(ANN, within=5)) == 1
    assert smtp.messages_to(BOB) == []
    assert (smtp.attempts(ANN), smtp.attempts(BOB), smtp.attempts("carol@example.com")) == (2, 1, 1)


async def test_a_script_for_everyone_counts_mails_not_recipients(
    smtp: ControllableSmtpServer,
) -> None:
    smtp.fail_next(1)
    message = mail(f"{ANN}, {BOB}")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send_message(smtp, message)
    assert [error.code for error in refused.value.recipients] == [451, 451]
    await send_message(smtp, message)
    assert len(await smtp.wait_for(BOB, within=5)) == 1
    assert smtp.received[0].rcpt_tos == (ANN, BOB)


async def test_a_421_reply_refuses_and_closes_the_connection(
    smtp: ControllableSmtpServer,
) -> None:
    smtp.fail_next(2, "421 4.3.2 shutting down")
    assert await refusal_code(smtp, ANN) == 421
    # Seen on the wire: the server hangs up right after its 421.
    reader, writer = await asyncio.open_connection(smtp.host, smtp.port)
    try:
        for command in ("EHLO client", "MAIL FROM:<noreply@example.org>", f"RCPT TO:<{ANN}>"):
            writer.write(f"{command}\r\n".encode())
        replies = await asyncio.wait_for(reader.read(-1), timeout=5)  # up to end of file
    finally:
        writer.close()
    assert replies.rstrip().splitlines()[-1] == b"421 4.3.2 shutting down"
    await send(smtp, ANN)
    await smtp.wait_for(ANN, within=5)


async def test_an_outage_refuses_connections_until_the_server_comes_back(
    smtp: ControllableSmtpServer,
) -> None:
    port = smtp.port
    client = aiosmtplib.SMTP(hostname=smtp.host, port=port, local_hostname="client", timeout=5)
    await client.connect()
    await smtp.go_down()
    assert not smtp.listening
    # An open connection is dropped ...
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    # ... and new ones are refused.
    with pytest.raises((aiosmtplib.SMTPConnectError, OSError)):
        await send(smtp, ANN)
    assert smtp.messages == []

    await smtp.come_back()
    assert smtp.port == port
    await send(smtp, ANN)
    await smtp.wait_for(ANN, within=5)


async def test_a_server_that_is_stopped_can_start_again_on_the_same_port() -> None:
    server = ControllableSmtpServer()
    await server.start(0)
    port = server.port
    await server.stop()
    await server.start(port)
    try:
        await send(server, ANN)
        await server.wait_for(ANN, within=5)
    finally:
        await server.stop()


def test_a_script_must_be_a_failure_reply() -> None:
    server = ControllableSmtpServer()
    with pytest.raises(ValueError, match="4xx or 5xx"):
        server.fail_next(1, "250 OK")
    with pytest.raises(ValueError, match="4xx or 5xx"):
        server.refuse_always("no code")
