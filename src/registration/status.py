"""The states of a registration and of an email delivery.

Kept free of heavy imports: workflow code uses these enums inside Temporal's sandbox.
"""

from __future__ import annotations

from enum import Enum


class RegistrationStatus(str, Enum):
    PENDING_VERIFICATION = "PENDING_VERIFICATION"
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"


class DeliveryStatus(str, Enum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class EmailKind(str, Enum):
    VERIFICATION = "VERIFICATION"
    WELCOME = "WELCOME"
