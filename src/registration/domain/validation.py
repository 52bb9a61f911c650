"""Input rules: the email's syntax and normal form, the password policy, plain text fields."""

from __future__ import annotations

import dataclasses
import unicodedata
from functools import cache
from importlib import resources

from email_validator import EmailNotValidError, validate_email

from registration.domain.errors import FieldViolation

MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> tuple[str | None, FieldViolation | None]:
    """The normalized address, or why it is not one. No DNS look-up on the request path."""
    if not raw.strip():
        return None, FieldViolation("email", "is required")
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as err:
        return None, FieldViolation("email", str(err))
    # Mailbox names are case-sensitive by the letter of RFC 5321 but not by any provider in
    # use: folding the case keeps "Ann@x.org" and "ann@x.org" from becoming two accounts.
    normalized = result.normalized.lower()
    if len(normalized) > MAX_EMAIL_LENGTH:
        return None, FieldViolation("email", f"must be at most {MAX_EMAIL_LENGTH} characters")
    return normalized, None


def password_violation(
    password: str, *, email: str | None, min_length: int, max_length: int
) -> FieldViolation | None:
    """NIST SP 800-63B: length bounds, no composition rules, never truncated; not a known
    leaked password and not the email address."""
    if not password:
        return FieldViolation("password", "is required")
    if len(password) < min_length:
        return FieldViolation("password", f"must be at least {min_length} characters")
    if len(password) > max_length:
        return FieldViolation("password", f"must be at most {max_length} characters")
    if email is not None and password.casefold() == email.casefold():
        return FieldViolation("password", "must not be the email address")
    if password.casefold() in common_passwords():
        return FieldViolation("password", "is too common: it appears in lists of leaked passwords")
    return None


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list (data/common-passwords.txt), case-folded; read once per process."""
    text = resources.files("registration.domain").joinpath("data/common-passwords.txt").read_text()
    return frozenset(line for line in text.splitlines() if line)


def text_violation(
    field: str, value: str, *, max_length: int, required: bool = True
) -> FieldViolation | None:
    """A single line of text (a name, an order id): no control characters or line breaks,
    which could forge lines in an email, and a bounded length."""
    if not value.strip():
        return FieldViolation(field, "is required") if required else None
    if len(value) > max_length:
        return FieldViolation(field, f"must be at most {max_length} characters")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        return FieldViolation(field, "must not contain control characters or line breaks")
    return None


def for_field(violation: FieldViolation | None, field: str) -> FieldViolation | None:
    """The same rule's violation, named after the request's own field."""
    return None if violation is None else dataclasses.replace(violation, field=field)
