"""Input rules: the email's syntax and normal form, the password policy, plain text fields."""

from __future__ import annotations

import dataclasses
import itertools
import unicodedata
from collections.abc import Sequence

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


def normalize_password(password: str) -> str:
    """NFKC (NIST SP 800-63B rev 4): one password however a keyboard composes it — an accented
    letter typed as one character or as a letter and its accent is the same password."""
    return unicodedata.normalize("NFKC", password)


def password_violation(
    password: str, *, context: Sequence[str] = (), min_length: int, max_length: int
) -> FieldViolation | None:
    """NIST SP 800-63B rev 4 on a normalized password: length bounds in characters, no
    composition rules, never truncated; no control characters; not an expected value — one
    character or word repeated, a run like 123456… or abcdef…, or nothing but one of the
    `context` words (the address, its mailbox name, the service's name) with digits or
    punctuation around it. Whether it has leaked is checked apart (adapters)."""
    if not password:
        return FieldViolation("password", "is required")
    if any(unicodedata.category(c) == "Cc" for c in password):
        return FieldViolation("password", "must not contain control characters")
    if len(password) < min_length:
        return FieldViolation("password", f"must be at least {min_length} characters")
    if len(password) > max_length:
        return FieldViolation("password", f"must be at most {max_length} characters")
    folded = password.casefold()
    if _repeats(folded):
        return FieldViolation("password", "must not be one character or word repeated")
    if _runs(folded):
        return FieldViolation("password", "must not be a run like 123456… or abcdef…")
    if any(_only_decorates(folded, word.casefold()) for word in context if word):
        return FieldViolation(
            "password", "must not be your email address, its name or the service's name"
        )
    return None


def _repeats(text: str) -> bool:
    """The text is a shorter text said again and again ("aaaa", "passwordpassword")."""
    return text in (text + text)[1:-1]


_RUN_ALPHABETS = ("0123456789", "abcdefghijklmnopqrstuvwxyz")


def _runs(text: str) -> bool:
    """Each character follows the one before it in one alphabet, always forward or always
    backward, wrapping round ("123456789012", "abcdef", "zyxwvu")."""
    for alphabet in _RUN_ALPHABETS:
        if all(c in alphabet for c in text):
            steps = {
                (alphabet.index(b) - alphabet.index(a)) % len(alphabet)
                for a, b in itertools.pairwise(text)
            }
            return steps in ({1}, {len(alphabet) - 1})
    return False


def _only_decorates(password: str, word: str) -> bool:
    """The password is the word (spelled with any punctuation or spacing) with nothing but
    digits, punctuation or spaces around it."""
    skeleton, core = _letters_and_digits(password), _letters_and_digits(word)
    if len(core) < 3 or core not in skeleton:
        return False
    return not any(c.isalpha() for c in skeleton.replace(core, "", 1))


def _letters_and_digits(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


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
