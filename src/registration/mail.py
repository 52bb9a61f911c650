"""Email: templates rendered with Jinja2 and one async SMTP sender behind an interface."""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import idna
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)

from registration.db import utcnow
from registration.settings import Settings
from registration.status import EmailKind

# Text parts in UTF-8, quoted-printable: readable where they are ASCII, and no line too long.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
# compat32 messages go out with their headers as built: CRLF, and no folding of its own.
_AS_BUILT = compat32.clone(linesep="\r\n", max_line_length=None)


@dataclass(frozen=True)
class OutgoingEmail:
    recipient: str
    subject: str
    text: str
    html: str
    message_id: str
    # (display name, address) when this email has its own sender; else SMTP_FROM_*.
    sender: tuple[str, str] | None = None


class MailSender(Protocol):
    async def send(self, email: OutgoingEmail) -> None: ...


class TemplateProblem(Exception):
    """A template is missing or cannot be rendered; the message names it and says why."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        super().__init__(f"email template {template!r}: {reason}")


@dataclass(frozen=True)
class Subject:
    """A subject template given as text (`source`) rather than read from the folder; `name`
    says where it came from in error messages (the setting's name)."""

    name: str
    source: str | None


class TemplateRenderer:
    """Renders `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` from the templates folder:
    the bundled one, or `templates_dir` (EMAIL_TEMPLATES_DIR), which operators may edit while
    the worker runs — a changed file is read again on its next use."""

    def __init__(
        self,
        *,
        app_name: str,
        sender_name: str | None = None,
        templates_dir: Path | None = None,
    ) -> None:
        self._globals = {"app_name": app_name, "sender_name": sender_name or app_name}
        loader: BaseLoader = (
            PackageLoader("registration", "templates")
            if templates_dir is None
            else FileSystemLoader(templates_dir)
        )
        self._env = Environment(
            loader=loader,
            # HTML parts are escaped; subject and text parts are not HTML, so never escaped.
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=True,
        )
        # Subjects given as settings, compiled once: from_string does not cache.
        self._from_settings: dict[str, Template] = {}

    def render(
        self,
        kind: EmailKind,
        *,
        recipient: str,
        message_id: str,
        subject: Subject | None = None,
        sender: tuple[str, str] | None = None,
        **context: Any,
    ) -> OutgoingEmail:
        """The email of this kind. Its subject comes from `<kind>.subject.txt`, or from
        `subject` when the subject is configured elsewhere (a setting)."""
        name = kind.value.lower()
        values = {**self._globals, "recipient": recipient, **context}
        if subject is None:
            subject = Subject(f"{name}.subject.txt", None)
        title = self._render(subject.name, values, source=subject.source).strip()
        if len(title.splitlines()) != 1:
            raise TemplateProblem(subject.name, "must render to exactly one line")
        return OutgoingEmail(
            recipient=recipient,
            subject=title,
            text=self._render(f"{name}.txt", values),
            html=self._render(f"{name}.html", {"subject": title, **values}),
            message_id=message_id,
            sender=sender,
        )

    def _render(self, template: str, values: dict[str, Any], *, source: str | None = None) -> str:
        try:
            if source is not None:
                if source not in self._from_settings:
                    self._from_settings[source] = self._env.from_string(source)
                return self._from_settings[source].render(values)
            return self._env.get_template(template).render(values)
        except TemplateNotFound as err:
            # The missing one may be a template this one includes or extends.
            raise TemplateProblem(str(err.name or template), "not found") from err
        except TemplateSyntaxError as err:
            raise TemplateProblem(
                err.name or template, f"syntax error on line {err.lineno}: {err.message}"
            ) from err
        except Exception as err:
            # An undefined variable, or a template's own expression failed (a bad filter
            # argument, say): in this template or in one it extends or includes.
            raise TemplateProblem(
                self._failing_template(err) or template, f"{type(err).__name__}: {err}"
            ) from err

    def _failing_template(self, err: Exception) -> str | None:
        """The template whose code raised, from the traceback Jinja rewrites to point at
        template files."""
        names = set(self._env.list_templates())
        for frame in reversed(traceback.extract_tb(err.__traceback__)):
            name = Path(frame.filename).name
            if name in names:
                return name
        return None


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
        """The message as it goes to the relay: headers, a text and an HTML alternative.

        Built with the email package's compat32 classes where both addresses are ASCII
        (always, but for a non-ASCII local part): they keep headers as text, where
        EmailMessage parses every header into an object and folds it again on the way out,
        which took four times the CPU (a verification email built and flattened: 1.7 against
        0.4 ms). A non-ASCII local part is only deliverable with SMTPUTF8, which needs
        EmailMessage's UTF-8 headers.
        """
        s = self._settings
        name, address = email.sender or (s.smtp_from_name, s.smtp_from_email)
        sender, recipient = transport_address(address), transport_address(email.recipient)
        if not (sender.isascii() and recipient.isascii()):
            return _utf8_message(email, sender=(name, sender), recipient=recipient, date=date)
        message = MIMEMultipart("alternative")
        message["From"] = formataddr((name, sender), charset="utf-8")
        message["To"] = recipient
        # Folded here, as the flattening does not: as it is where ASCII, else as UTF-8
        # encoded words (RFC 2047).
        message["Subject"] = Header(email.subject, header_name="Subject").encode()
        message["Date"] = format_datetime(date)
        message["Message-ID"] = email.message_id
        message.attach(_text_part(email.text, "plain"))
        message.attach(_text_part(email.html, "html"))
        return message

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


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(text, _UTF8_QP)
    return part


def _utf8_message(
    email: OutgoingEmail, *, sender: tuple[str, str], recipient: str, date: datetime
) -> EmailMessage:
    """The same message with UTF-8 headers, for a relay that speaks SMTPUTF8."""
    message = EmailMessage()
    message["From"] = formataddr(sender)
    message["To"] = recipient
    message["Subject"] = email.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = email.message_id
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


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


def message_id_for(delivery_id: str, from_email: str) -> str:
    """The same Message-ID on every attempt of one delivery, so receivers can drop repeats."""
    domain = from_email.rpartition("@")[2] if "@" in from_email else ""
    return f"<{delivery_id}@{domain or 'localhost'}>"


def transport_address(address: str) -> str:
    """The address as relays expect it: an internationalized domain in its ASCII (A-label)
    form, which every relay accepts, where the Unicode form would need SMTPUTF8. A non-ASCII
    local part has no ASCII form and still needs a relay with SMTPUTF8."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
