"""How a failed SMTP send is reported to Temporal: permanent or transient, and without the
recipient's address in the text (failure messages end up in logs and delivery records).

RFC 5321 §4.2.1: 5yz replies are permanent — retrying cannot help (550 mailbox unavailable,
553 bad address) — while 4yz replies, timeouts and broken connections are transient.
"""

from __future__ import annotations

import re

import aiosmtplib
from temporalio.exceptions import ApplicationError

from registration.domain.failures import PERMANENT_SMTP_FAILURE, TRANSIENT_SMTP_FAILURE


def smtp_failure(err: BaseException, recipient: str) -> ApplicationError:
    codes = _reply_codes(err)
    permanent = (bool(codes) and all(500 <= code < 600 for code in codes)) or isinstance(
        err, _UNSENDABLE
    )
    text = redact(f"{type(err).__name__}: {str(err).strip() or 'no detail'}", recipient)
    return ApplicationError(
        text,
        type=PERMANENT_SMTP_FAILURE if permanent else TRANSIENT_SMTP_FAILURE,
        non_retryable=permanent,
    )


def redact(text: str, recipient: str) -> str:
    """The text with the recipient's address, and its mailbox name as a word of its own,
    masked ("mail" in "mailbox unavailable" is left alone)."""
    local = recipient.rpartition("@")[0]
    text = text.replace(recipient, "<recipient>") if recipient else text
    if local:
        text = re.sub(rf"(?<![\w.+-]){re.escape(local)}(?![\w.+-])", "<recipient>", text)
    return text


# The address itself cannot be sent to, whatever the relay's mood: a non-ASCII mailbox name
# on a relay without SMTPUTF8, or a domain that has no IDNA form.
_UNSENDABLE = (aiosmtplib.SMTPNotSupported, UnicodeError)


def _reply_codes(err: BaseException) -> list[int]:
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        return [refused.code for refused in err.recipients]
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return [err.code]
    return []
