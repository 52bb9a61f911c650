"""The states of a registration and of an email delivery.

Kept free of heavy imports: workflow code uses these enums inside Temporal's sandbox.
"""

from __future__ import annotations

from enum import StrEnum


class RegistrationStatus(StrEnum):
    PENDING_VERIFICATION = "PENDING_VERIFICATION"
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class EmailKind(StrEnum):
    VERIFICATION = "VERIFICATION"
    # Sent once while a registration is still unverified, with the current link.
    REMINDER = "REMINDER"
    WELCOME = "WELCOME"
    REGISTRATION_ATTEMPT = "REGISTRATION_ATTEMPT"
    # A single-use link to choose a new password, and the notice once it was changed.
    PASSWORD_RESET = "PASSWORD_RESET"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    # Tells an organizer that an enrollment (an order) succeeded.
    ENROLLMENT = "ENROLLMENT"


class PasswordResetStatus(StrEnum):
    PENDING = "PENDING"
    USED = "USED"
    EXPIRED = "EXPIRED"
    # Only ever the outcome of a workflow, never stored: the address has no active account,
    # and nothing was sent.
    NO_ACCOUNT = "NO_ACCOUNT"
