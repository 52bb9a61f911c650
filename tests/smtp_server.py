"""A real SMTP server for tests, whose failures the test scripts: refusals and outages.

Tests of email delivery need a relay that misbehaves on cue: greylisting (4xx), unknown
mailboxes (5xx), a relay that hangs up (421) or one that is down altogether. This one is
aiosmtpd listening on 127.0.0.1, speaking real SMTP (with SMTPUTF8, like
`registration.devtools.smtp_sink`), so the code under test goes through aiosmtplib unchanged:

    async with ControllableSmtpServer() as smtp:          # a free port, in `smtp.port`
        smtp.fail_next(2, "451 4.7.1 greylisted")          # every recipient, next 2 mails
        smtp.refuse_always("550 5.1.1 no such user", recipient="bob@example.com")
        ...                                                # send to 127.0.0.1:smtp.port
        [message] = await smtp.wait_for("ann@example.com")
        assert smtp.attempts("ann@example.com") == 3
        await smtp.go_down()                               # connecting is refused now
        await smtp.come_back()                             # same port again

Scripted replies are given at RCPT time, so aiosmtplib raises `SMTPRecipientsRefused`
carrying the reply's code. A 421 reply also closes the connection, as RFC 5321 says it
does: for a message with one recipient aiosmtplib raises `SMTPRecipientsRefused` (code 421);
with several, the command after the 421 (the next RCPT, or DATA) finds the connection
gone and it raises `SMTPServerDisconnected`.

Addresses are compared case-insensitively, with an internationalized domain in its ASCII
(A-label) form, which is how `registration.mail` puts it on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import AnyStr

import idna
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message with its envelope: the sender and the accepted recipients."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage


@dataclass
class _Script:
    reply: str
    remaining: int | None  # None: for ever


def _key(address: str) -> str:
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return address.casefold()
    with contextlib.suppress(UnicodeError):  # idna.IDNAError among them: keep it as it is
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local}@{domain}".casefold()


def _check_reply(reply: str) -> str:
    code = reply[:3]
    if not (code.isdigit() and code[0] in "45" and (len(reply) == 3 or reply[3] == " ")):
        raise ValueError(f"a scripted reply must be a 4xx or 5xx SMTP reply, not {reply!r}")
    return reply


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP session, which its server tracks and which hangs up after a 421."""

    def __init__(self, owner: ControllableSmtpServer) -> None:
        super().__init__(owner, hostname="test-smtp", enable_SMTPUTF8=True)
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._owner._connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._owner._connections.discard(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        code = status[:3] if isinstance(status, str) else status[:3].decode("ascii", "replace")
        if code == "421" and self.transport is not None:
            # 421: "Service not available, closing transmission channel" (RFC 5321 4.2.3).
            self.transport.close()

    def drop(self) -> None:
        # abort(), not close(): the peer sees a reset, as when a relay's host goes away.
        if isinstance(self.transport, asyncio.Transport):
            self.transport.abort()
        elif self.transport is not None:
            self.transport.close()


class ControllableSmtpServer:
    """An SMTP server on 127.0.0.1 for tests: keeps what it accepts, fails as scripted."""

    def __init__(self) -> None:
        self.host = HOST
        self.port = 0  # the port it listens on, once started
        self.received: list[ReceivedMail] = []
        self._attempts: Counter[str] = Counter()
        self._scripts: dict[str | None, _Script] = {}
        # Per transaction (aiosmtpd makes a new envelope for each): the reply chosen by the
        # script for every recipient, charged once however many recipients the mail has.
        self._transaction_reply: weakref.WeakKeyDictionary[Envelope, str | None] = (
            weakref.WeakKeyDictionary()
        )
        self._server: asyncio.Server | None = None
        self._connections: set[_ScriptedSMTP] = set()

    # Life cycle

    async def start(self, port: int | None = None) -> None:
        """Listens on 127.0.0.1:`port`; with none (or 0) on a free port, kept in `.port`."""
        if self._server is not None:
            raise RuntimeError("the SMTP server is already listening")
        await self._listen(port or 0)

    async def stop(self) -> None:
        """Stops listening and drops every open connection; messages and counts are kept."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections):
            connection.drop()
        if server is not None:
            await server.wait_closed()
        # Let the dropped connections see their connection_lost().
        await asyncio.sleep(0)

    async def go_down(self) -> None:
        """An outage: open connections drop and new ones are refused until `come_back()`."""
        if self._server is None:
            raise RuntimeError("the SMTP server is not listening")
        await self.stop()

    async def come_back(self) -> None:
        """Ends the outage: listens again on the same port."""
        if self._server is not None:
            raise RuntimeError("the SMTP server is already listening")
        if not self.port:
            raise RuntimeError("the SMTP server never started, so it has no port to come back to")
        await self._listen(self.port)

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def __aenter__(self) -> ControllableSmtpServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        # reuse_address (asyncio's default on Unix, explicit here) lets come_back() bind the
        # port again at once, whatever state the dropped connections' sockets are in.
        self._server = await loop.create_server(
            lambda: _ScriptedSMTP(self), self.host, port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    # Failure scripts

    def fail_next(
        self, n: int, reply: str = "451 4.3.0 try again later", recipient: str | None = None
    ) -> None:
        """The next `n` mails to `recipient` (to anyone, if None) get `reply` at RCPT time;
        after that, mail is accepted again. Replaces that recipient's earlier script."""
        if n < 0:
            raise ValueError("n must not be negative")
        self._scripts[None if recipient is None else _key(recipient)] = _Script(
            _check_reply(reply), n
        )

    def refuse_always(
        self, reply: str = "550 5.1.1 mailbox unavailable", recipient: str | None = None
    ) -> None:
        """Every mail to `recipient` (to anyone, if None) gets `reply` at RCPT time."""
        self._scripts[None if recipient is None else _key(recipient)] = _Script(
            _check_reply(reply), None
        )

    def clear(self) -> None:
        """Removes every script: all mail is accepted from now on."""
        self._scripts.clear()

    # What it saw

    @property
    def messages(self) -> list[EmailMessage]:
        """Every accepted message, oldest first."""
        return [mail.message for mail in self.received]

    def messages_to(self, recipient: str) -> list[EmailMessage]:
        """The accepted messages whose envelope has `recipient`, oldest first."""
        key = _key(recipient)
        return [
            mail.message
            for mail in self.received
            if any(_key(rcpt) == key for rcpt in mail.rcpt_tos)
        ]

    def attempts(self, recipient: str) -> int:
        """How many RCPT commands named `recipient`, accepted or refused."""
        return self._attempts[_key(recipient)]

    async def wait_for(
        self, recipient: str, count: int = 1, within: float = 60.0
    ) -> list[EmailMessage]:
        """Waits until at least `count` messages to `recipient` arrived and returns them all;
        raises AssertionError naming the recipient if they have not within `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = self.messages_to(recipient)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} message(s) to {recipient} within {within}s, "
                    f"got {len(found)}; attempts for it: {self.attempts(recipient)}"
                )
            await asyncio.sleep(0.01)

    # aiosmtpd handler hooks

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        key = _key(address)
        self._attempts[key] += 1
        reply = self._scripted_reply(key, envelope)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), message)
        )
        return "250 Message accepted for delivery"

    def _scripted_reply(self, key: str, envelope: Envelope) -> str | None:
        own = self._scripts.get(key)
        if own is not None and own.remaining != 0:
            return self._charge(own)
        if envelope not in self._transaction_reply:
            every = self._scripts.get(None)
            self._transaction_reply[envelope] = (
                self._charge(every) if every is not None and every.remaining != 0 else None
            )
        return self._transaction_reply[envelope]

    @staticmethod
    def _charge(script: _Script) -> str:
        if script.remaining is not None:
            script.remaining -= 1
        return script.reply
