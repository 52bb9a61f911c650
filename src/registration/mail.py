"""Email: templates rendered with Jinja2 and one async SMTP sender behind an interface."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, Protocol

import aiosmtplib
import idna
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from registration.db import utcnow
from registration.settings import Settings
from registration.status import EmailKind


@dataclass(frozen=True)
class OutgoingEmail:
    recipient: str
    subject: str
    text: str
    html: str
    message_id: str


class MailSender(Protocol):
    async def send(self, email: OutgoingEmail) -> None: ...


class TemplateRenderer:
    """Renders `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` from the templates folder."""

    def __init__(self, *, app_name: str) -> None:
        self._app_name = app_name
        self._env = Environment(
            loader=PackageLoader("registration", "templates"),
            # HTML parts are escaped; subject and text parts are not HTML, so never escaped.
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(
        self, kind: EmailKind, *, recipient: str, message_id: str, **context: Any
    ) -> OutgoingEmail:
        name = kind.value.lower()
        values = {"app_name": self._app_name, "recipient": recipient, **context}
        subject = self._env.get_template(f"{name}.subject.txt").render(values).strip()
        return OutgoingEmail(
            recipient=recipient,
            subject=subject,
            text=self._env.get_template(f"{name}.txt").render(values),
            html=self._env.get_template(f"{name}.html").render(subject=subject, **values),
            message_id=message_id,
        )


class SmtpMailSender:
    """Sends through any SMTP relay: plain, STARTTLS or implicit TLS, with optional login."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def build_message(self, email: OutgoingEmail, *, date: datetime) -> EmailMessage:
        s = self._settings
        message = EmailMessage()
        message["From"] = formataddr((s.smtp_from_name, s.smtp_from_email))
        message["To"] = transport_address(email.recipient)
        message["Subject"] = email.subject
        message["Date"] = format_datetime(date)
        message["Message-ID"] = email.message_id
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message

    async def send(self, email: OutgoingEmail) -> None:
        s = self._settings
        await aiosmtplib.send(
            self.build_message(email, date=utcnow()),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout.total_seconds(),
        )


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
