"""What the stores return and the services hand to the entry points: a registration with its
emails (and what its owner may see of it), an email delivery, sign-in credentials, a password
reset, a notification.

Plain frozen dataclasses: no database session or protobuf message leaves its layer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from registration.domain.email_kinds import EmailKind
from registration.domain.statuses import (
    DeliveryProblem,
    DeliveryStatus,
    PasswordResetStatus,
    RegistrationStatus,
)


@dataclass(frozen=True)
class DeliveryRecord:
    delivery_id: str
    kind: EmailKind
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    message_id: str | None = None


@dataclass(frozen=True)
class RegistrationRecord:
    registration_id: str
    user_id: uuid.UUID
    email: str
    status: RegistrationStatus
    created_at: datetime
    verified_at: datetime | None
    expires_at: datetime
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    next_resend_allowed_at: datetime | None = None
    resends_remaining: int = 0


@dataclass(frozen=True)
class RegistrationProgress:
    """What the person who registered may see: nothing personal, no mail server's words."""

    status: RegistrationStatus
    # The newest verification email's; None before the first is recorded.
    verification_email: DeliveryStatus | None
    verification_email_problem: DeliveryProblem | None
    next_resend_allowed_at: datetime | None
    resends_remaining: int

    @classmethod
    def of(cls, record: RegistrationRecord) -> RegistrationProgress:
        emails = [d for d in record.deliveries if d.kind is EmailKind.VERIFICATION]
        newest = emails[-1] if emails else None
        failed = newest is not None and newest.status is DeliveryStatus.FAILED
        pending = record.status is RegistrationStatus.PENDING_VERIFICATION
        return cls(
            status=record.status,
            verification_email=newest.status if newest else None,
            verification_email_problem=(
                DeliveryProblem.of(newest.last_error or "") if newest and failed else None
            ),
            next_resend_allowed_at=record.next_resend_allowed_at if pending else None,
            resends_remaining=record.resends_remaining if pending else 0,
        )


@dataclass(frozen=True)
class DeliveryOwner:
    """What an email belongs to: a registration (the account's emails) or a notification."""

    registration_id: str | None = None
    notification_id: str | None = None

    def __post_init__(self) -> None:
        if (self.registration_id is None) == (self.notification_id is None):
            raise ValueError("a delivery belongs to a registration or to a notification")


@dataclass(frozen=True)
class Credentials:
    """What sign-in needs of the live account of an address."""

    registration_id: str
    user_id: uuid.UUID
    status: RegistrationStatus
    password_hash: str


@dataclass(frozen=True)
class ResetRecord:
    reset_id: str
    registration_id: str
    email: str
    status: PasswordResetStatus
    expires_at: datetime


@dataclass(frozen=True)
class NotificationRecord:
    notification_id: str
    kind: EmailKind
    order_id: str
    recipient: str
    created_at: datetime
    deliveries: list[DeliveryRecord]
