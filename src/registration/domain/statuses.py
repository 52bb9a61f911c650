"""The states of a registration, of an email delivery and of a password reset.

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


class PasswordResetStatus(StrEnum):
    PENDING = "PENDING"
    USED = "USED"
    EXPIRED = "EXPIRED"
    # Only ever the outcome of a workflow, never stored: the address has no active account,
    # and nothing was sent.
    NO_ACCOUNT = "NO_ACCOUNT"
