"""Identifiers and tokens.

Workflow IDs are shown in plain text in the Temporal web UI, so they are derived from the
normalized email through an HMAC instead of containing it. A registration ID starts with the
same key, which lets the server find the workflow of a registration the database does not know
yet (the workflow persists the user a few milliseconds after RegisterUser has answered).

Verification tokens are an HMAC of the delivery ID under the secret key: every retry of one
delivery carries the same link, and nobody without the key can compute one. Only a SHA-256 of
the token is ever stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

WORKFLOW_ID_PREFIX = "registration-"
PASSWORD_RESET_WORKFLOW_ID_PREFIX = "password-reset-"
ENROLLMENT_WORKFLOW_ID_PREFIX = "enrollment-"
_EMAIL_KEY_BYTES = 16
_NONCE_BYTES = 8
_EMAIL_KEY_PATTERN = r"[a-z2-7]{26}"
# Matched with fullmatch: "$" alone would let a trailing newline through.
_REGISTRATION_ID_RE = re.compile(rf"({_EMAIL_KEY_PATTERN})_[0-9a-f]{{{_NONCE_BYTES * 2}}}")
# Lowercase base32 of 32 bytes: safe in URLs, in shells and on command lines (no leading "-").
_TOKEN_RE = re.compile(r"[a-z2-7]{52}")


def email_key(secret_key: bytes, normalized_email: str) -> str:
    digest = hmac.new(secret_key, b"email:" + normalized_email.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:_EMAIL_KEY_BYTES]).decode().rstrip("=").lower()


def workflow_id_for_email_key(key: str) -> str:
    return WORKFLOW_ID_PREFIX + key


def new_registration_id(key: str) -> str:
    return f"{key}_{secrets.token_hex(_NONCE_BYTES)}"


def is_registration_id(value: str) -> bool:
    return _REGISTRATION_ID_RE.fullmatch(value) is not None


def workflow_id_for_registration(registration_id: str) -> str:
    match = _REGISTRATION_ID_RE.fullmatch(registration_id)
    if match is None:
        raise ValueError("not a registration id")
    return workflow_id_for_email_key(match.group(1))


def derive_token(secret_key: bytes, delivery_id: str, *, purpose: str = "verify") -> str:
    """The token of the link in one delivery; `purpose` keeps a verification token from ever
    doubling as a reset token."""
    message = f"{purpose}:{delivery_id}".encode()
    digest = hmac.new(secret_key, message, hashlib.sha256).digest()
    return base64.b32encode(digest).decode().rstrip("=").lower()


def password_reset_workflow_id(key: str) -> str:
    """One reset at a time per address: a repeated request joins the running one."""
    return PASSWORD_RESET_WORKFLOW_ID_PREFIX + key


def new_reset_id(key: str) -> str:
    return new_registration_id(key)


def workflow_id_for_reset(reset_id: str) -> str:
    match = _REGISTRATION_ID_RE.fullmatch(reset_id)
    if match is None:
        raise ValueError("not a password reset id")
    return password_reset_workflow_id(match.group(1))


def notification_id_for_order(order_id: str) -> str:
    """The same id for every delivery of one order, so that a duplicate joins the first.
    Not keyed: order ids are no secret, and it must outlive a change of SECRET_KEY."""
    digest = hashlib.sha256(b"order:" + order_id.encode()).digest()
    return base64.b32encode(digest[:_EMAIL_KEY_BYTES]).decode().rstrip("=").lower()


def is_notification_id(value: str) -> bool:
    return re.fullmatch(_EMAIL_KEY_PATTERN, value) is not None


def workflow_id_for_notification(notification_id: str) -> str:
    return ENROLLMENT_WORKFLOW_ID_PREFIX + notification_id


def is_token(value: str) -> bool:
    return _TOKEN_RE.fullmatch(value) is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def limit_key(secret_key: bytes, limit: str, subject: str) -> str:
    """What the abuse limits keep of a subject (a mailbox, a network address) under a limit:
    a keyed hash, so that the database names no one."""
    message = f"limit:{limit}\0{subject}".encode()
    return hmac.new(secret_key, message, hashlib.sha256).hexdigest()
