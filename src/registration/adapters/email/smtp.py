"""Sending email through any SMTP relay, over kept connections."""

from __future__ import annotations

import asyncio
from datetime import datetime
from email.message import EmailMessage, Message
from email.policy import compat32
from email.utils import parseaddr
from typing import Protocol

import aiosmtplib

from registration.adapters.email.messages import OutgoingEmail, build_message
from registration.domain.clock import utcnow
from registration.settings import Settings

# compat32 messages go out with their headers as built: CRLF, and no folding of its own.
_AS_BUILT = compat32.clone(linesep="\r\n", max_line_length=None)


class MailSender(Protocol):
    async def send(self, email: OutgoingEmail) -> None: ...


class SmtpMailSender:
    """Sends through any SMTP relay: plain, STARTTLS or implicit TLS, with optional login.

    A connection stays open for SMTP_KEEP_ALIVE after its email, and the next email goes
    through it: only the message's own commands, instead of a connect, EHLO, TLS handshake,
    login and QUIT for every email. One connection carries one email at a time; sends at the
    same time open more, and at most KEEP_OPEN of them wait for the next email.
    """

    KEEP_OPEN = 8

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Connections waiting for the next email, newest last, each with the timer that ends
        # it once it has waited SMTP_KEEP_ALIVE.
        self._idle: dict[aiosmtplib.SMTP, asyncio.TimerHandle] = {}
        self._quitting: set[asyncio.Task[None]] = set()

    def build_message(self, email: OutgoingEmail, *, date: datetime) -> Message:
        """The message from the email's own sender, else from SMTP_FROM_NAME/SMTP_FROM_EMAIL."""
        s = self._settings
        sender = email.sender or (s.smtp_from_name, s.smtp_from_email)
        return build_message(email, sender=sender, date=date)

    async def send(self, email: OutgoingEmail) -> None:
        message = self.build_message(email, date=utcnow())
        while (client := self._take_idle()) is not None:
            try:
                await _transmit(client, message)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPResponseException) as err:
                client.close()
                if _closed_by_relay(err):
                    continue  # while it waited; nothing of this email went through
                raise
            except BaseException:
                client.close()
                raise
            await self._leave(client)
            return
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout.total_seconds(),
        )
        try:
            await client.connect()
            await _transmit(client, message)
        except BaseException:
            client.close()
            raise
        await self._leave(client)

    async def aclose(self) -> None:
        """Ends every connection that waits for an email (at shutdown)."""
        while self._idle:
            client, timer = self._idle.popitem()
            timer.cancel()
            await _quit(client)
        await asyncio.gather(*self._quitting)

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        """The connection left most recently that is still open, if any."""
        while self._idle:
            client, timer = self._idle.popitem()
            timer.cancel()
            if client.is_connected:
                return client
            client.close()
        return None

    async def _leave(self, client: aiosmtplib.SMTP) -> None:
        keep_alive = self._settings.smtp_keep_alive.total_seconds()
        if keep_alive > 0 and len(self._idle) < self.KEEP_OPEN:
            loop = asyncio.get_running_loop()
            self._idle[client] = loop.call_later(keep_alive, self._end_idle, client)
        else:
            await _quit(client)

    def _end_idle(self, client: aiosmtplib.SMTP) -> None:
        if self._idle.pop(client, None) is not None:
            task = asyncio.create_task(_quit(client))
            self._quitting.add(task)
            task.add_done_callback(self._quitting.discard)


async def _transmit(client: aiosmtplib.SMTP, message: Message) -> None:
    if isinstance(message, EmailMessage):
        await client.send_message(message)  # with SMTPUTF8, which its addresses need
        return
    # Flattened here: aiosmtplib's compat32 flattening moves a long Message-ID onto a line of
    # its own and turns a body line that starts with "From " into ">From " (as mbox files
    # need). Folding headers again the modern way would cost what compat32 saves.
    sender = parseaddr(message["From"])[1]
    await client.sendmail(sender, [message["To"]], message.as_bytes(policy=_AS_BUILT))


def _closed_by_relay(err: Exception) -> bool:
    """Whether a kept connection failed because the relay had ended it (gone, or 421: closing
    the channel) rather than because of the email."""
    if isinstance(err, aiosmtplib.SMTPServerDisconnected):
        return True
    return isinstance(err, aiosmtplib.SMTPResponseException) and err.code == 421


async def _quit(client: aiosmtplib.SMTP) -> None:
    """Says goodbye; the email is out already, so a relay that does not answer is no error."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
