"""How a failed SMTP send is reported to Temporal: permanent or transient, and without the
recipient's address in the text (failure messages end up in logs and delivery records).

RFC 5321 §4.2.1: 5yz replies are permanent — retrying cannot help (550 mailbox unavailable,
553 bad address) — while 4yz replies, timeouts and broken connections are transient.
"""

from __future__ import annotations

import aiosmtplib
from temporalio.exceptions import ApplicationError

PERMANENT = "PermanentSmtpFailure"
TRANSIENT = "TransientSmtpFailure"


def smtp_failure(err: BaseException, recipient: str) -> ApplicationError:
    codes = _reply_codes(err)
    permanent = bool(codes) and all(500 <= code < 600 for code in codes)
    text = redact(f"{type(err).__name__}: {str(err).strip() or 'no detail'}", recipient)
    return ApplicationError(
        text, type=PERMANENT if permanent else TRANSIENT, non_retryable=permanent
    )


def redact(text: str, recipient: str) -> str:
    """The text with the recipient's address, and its mailbox name alone, masked."""
    local = recipient.rpartition("@")[0]
    for secret in sorted({recipient, local}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "<recipient>")
    return text


def _reply_codes(err: BaseException) -> list[int]:
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        return [refused.code for refused in err.recipients]
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return [err.code]
    return []
