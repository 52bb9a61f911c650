"""The states of a registration, of an email delivery (and why one failed) and of a password
reset.

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


class DeliveryProblem(StrEnum):
    """Why an email was not delivered, in terms its recipient may be told (never the mail
    server's own words)."""

    ADDRESS_REFUSED = "ADDRESS_REFUSED"
    PREPARING = "PREPARING"
    REPLACED = "REPLACED"
    SERVER_UNREACHABLE = "SERVER_UNREACHABLE"

    @classmethod
    def of(cls, last_error: str) -> DeliveryProblem:
        """The problem a failed delivery's recorded reason speaks of."""
        if any(code in last_error for code in ("550", "551", "553", "554", "PermanentSmtp")):
            return cls.ADDRESS_REFUSED
        if "template" in last_error:
            return cls.PREPARING
        if "stopped" in last_error:
            return cls.REPLACED
        return cls.SERVER_UNREACHABLE


class PasswordResetStatus(StrEnum):
    PENDING = "PENDING"
    USED = "USED"
    EXPIRED = "EXPIRED"
    # Only ever the outcome of a workflow, never stored: the address has no active account,
    # and nothing was sent.
    NO_ACCOUNT = "NO_ACCOUNT"
