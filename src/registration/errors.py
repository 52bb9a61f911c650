"""What the application layer raises; the gRPC layer maps each to one status code."""

from __future__ import annotations

from dataclasses import dataclass


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


class NotFound(RegistrationError):
    pass


class RegistrationExpired(RegistrationError):
    pass


class DependencyUnavailable(RegistrationError):
    """Temporal or the database cannot be reached; the client may retry."""
