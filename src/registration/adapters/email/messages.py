"""The email as it goes to the relay: a rendered email built into a MIME message, with a
Message-ID that is the same on every attempt of one delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr

import idna

# Text parts in UTF-8, quoted-printable: readable where they are ASCII, and no line too long.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


@dataclass(frozen=True)
class OutgoingEmail:
    recipient: str
    subject: str
    text: str
    html: str
    message_id: str
    # (display name, address) when this email has its own sender; else SMTP_FROM_*.
    sender: tuple[str, str] | None = None


def build_message(email: OutgoingEmail, *, sender: tuple[str, str], date: datetime) -> Message:
    """The message as it goes to the relay, from `sender` (display name, address): headers, a
    text and an HTML alternative.

    Built with the email package's compat32 classes where both addresses are ASCII (always,
    but for a non-ASCII local part): they keep headers as text, where EmailMessage parses every
    header into an object and folds it again on the way out, at several times the CPU. A
    non-ASCII local part is only deliverable with SMTPUTF8, which needs EmailMessage's UTF-8
    headers.
    """
    name, address = sender
    from_address, recipient = transport_address(address), transport_address(email.recipient)
    if not (from_address.isascii() and recipient.isascii()):
        return _utf8_message(email, sender=(name, from_address), recipient=recipient, date=date)
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((name, from_address), charset="utf-8")
    message["To"] = recipient
    # Folded here, as the flattening does not: as it is where ASCII, else as UTF-8
    # encoded words (RFC 2047).
    message["Subject"] = Header(email.subject, header_name="Subject").encode()
    message["Date"] = format_datetime(date)
    message["Message-ID"] = email.message_id
    message.attach(_text_part(email.text, "plain"))
    message.attach(_text_part(email.html, "html"))
    return message


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
