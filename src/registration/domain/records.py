"""What the stores return and the services hand to the entry points: a registration with its
emails, an email delivery, sign-in credentials, a password reset, a notification.

Plain frozen dataclasses: no database session or protobuf message leaves its layer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from registration.domain.email_kinds import EmailKind
from registration.domain.statuses import DeliveryStatus, PasswordResetStatus, RegistrationStatus


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
