"""Inputs and outputs of the registration workflow and its activities.

Single dataclasses, never ORM or protobuf objects, so fields can be added compatibly: a new
field needs a default so that histories recorded before it still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from registration.status import DeliveryStatus, EmailKind, RegistrationStatus


@dataclass
class EmailRetrySettings:
    initial_interval_seconds: float
    backoff_coefficient: float
    maximum_interval_seconds: float
    budget_seconds: float
    # One whole SMTP conversation (connect, EHLO, TLS, login, MAIL, RCPT, DATA).
    attempt_timeout_seconds: float = 180.0


@dataclass
class RegistrationInput:
    registration_id: str
    user_id: str
    email: str
    # argon2id hash made by the gRPC server; the password itself never reaches Temporal.
    password_hash: str
    requested_at: datetime
    expires_at: datetime
    # Fixed when the registration starts, so that later configuration changes cannot alter
    # the retry schedule of a running workflow.
    email_retry: EmailRetrySettings


@dataclass
class DeliveryState:
    delivery_id: str
    kind: EmailKind
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None


@dataclass
class RegistrationState:
    """What the `state` query answers and the workflow returns."""

    registration_id: str
    user_id: str
    email: str
    status: RegistrationStatus
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None = None
    deliveries: list[DeliveryState] = field(default_factory=list)


@dataclass
class VerifyEmailRequest:
    registration_id: str


@dataclass
class VerifyEmailResult:
    registration_id: str
    user_id: str
    status: RegistrationStatus
    verified_at: datetime | None


@dataclass
class AttemptNoticeInput:
    """Someone tried to register an address that has an account (PREVENT_ENUMERATION)."""

    email: str
    email_retry: EmailRetrySettings
    cooldown_seconds: float


# Activities -------------------------------------------------------------------------------


@dataclass
class CreatePendingUserInput:
    registration_id: str
    user_id: str
    email: str
    password_hash: str
    created_at: datetime
    expires_at: datetime


@dataclass
class SendEmailInput:
    delivery_id: str
    registration_id: str
    kind: EmailKind
    recipient: str
    expires_at: datetime


@dataclass
class SendEmailResult:
    attempts: int
    sent_at: datetime


@dataclass
class SendNoticeInput:
    """An email with no delivery record: it belongs to no registration the client knows."""

    notice_id: str
    kind: EmailKind
    recipient: str


@dataclass
class DeliveryFailedInput:
    delivery_id: str
    registration_id: str
    kind: EmailKind
    error: str


@dataclass
class ActivateUserInput:
    registration_id: str
    verified_at: datetime


@dataclass
class ExpireUserInput:
    registration_id: str
