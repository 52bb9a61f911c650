"""What the application layer raises; the gRPC layer maps each to one status code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class RegistrationError(Exception):
    """Base of every error a client caused or can act on."""


class InvalidArgument(RegistrationError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class AlreadyExists(RegistrationError):
    pass


class Unauthenticated(RegistrationError):
    """Wrong credentials; the message never says which part was wrong."""


class NotFound(RegistrationError):
    pass


class FailedPrecondition(RegistrationError):
    """The registration is not in a state that allows the call."""


class RegistrationExpired(FailedPrecondition):
    pass


class TryLater(RegistrationError):
    """A limit holds: the call may succeed at `retry_at`, or never when it is None.
    `reason` names the limit in UPPER_SNAKE_CASE (google.rpc.ErrorInfo)."""

    def __init__(self, message: str, *, reason: str, retry_at: datetime | None) -> None:
        self.reason = reason
        self.retry_at = retry_at
        super().__init__(message)


class DependencyUnavailable(RegistrationError):
    """Temporal or the database cannot be reached; the client may retry."""
