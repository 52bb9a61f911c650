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
    WELCOME = "WELCOME"
    REGISTRATION_ATTEMPT = "REGISTRATION_ATTEMPT"
