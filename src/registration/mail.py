"""Email: templates rendered with Jinja2 and one async SMTP sender behind an interface."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
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
    """Sends through any SMTP relay: plain, STARTTLS or implicit TLS, with optional login."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def build_message(self, email: OutgoingEmail, *, date: datetime) -> EmailMessage:
        s = self._settings
        message = EmailMessage()
        name, address = email.sender or (s.smtp_from_name, s.smtp_from_email)
        message["From"] = formataddr((name, transport_address(address)))
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
