"""The tables, as SQLModel classes; the migrations under migrations/ own the schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, Dialect
from sqlalchemy import Enum as SAEnum
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from registration.domain.email_kinds import EmailKind
from registration.domain.statuses import DeliveryStatus, PasswordResetStatus, RegistrationStatus


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC timestamp column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamp(*, nullable: bool, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index))


def _state(enum: type[StrEnum]) -> Any:
    """An enum kept as its name in a short string column, not as a database enum type: a new
    member (a new email kind, say) then needs no migration on PostgreSQL."""
    return Field(sa_type=SAEnum(enum, native_enum=False, length=32))


class User(SQLModel, table=True):
    """One row per registration; the row of a verified registration is the account."""

    __tablename__ = "users"

    id: uuid.UUID = Field(primary_key=True)
    registration_id: str = Field(unique=True, max_length=64)
    email: str = Field(index=True, max_length=254)
    # Equals `email` while the registration is pending or active and NULL once it expired:
    # a unique column that admits many NULLs lets the database itself guarantee one live
    # account per address while expired registrations stay on record.
    email_claim: str | None = Field(default=None, unique=True, max_length=254)
    status: RegistrationStatus = _state(RegistrationStatus)
    password_hash: str | None = Field(default=None, max_length=255)
    # Hash of the one verification token that works now: a resend replaces it.
    verification_token_hash: str | None = Field(default=None, index=True, max_length=64)
    # The resend rules' state, kept by the workflow, copied here for GetRegistration.
    next_resend_at: datetime | None = _timestamp(nullable=True)
    resends_remaining: int = Field(default=0)
    created_at: datetime = _timestamp(nullable=False)
    verified_at: datetime | None = _timestamp(nullable=True)
    expires_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


class Notification(SQLModel, table=True):
    """An email the service sends on behalf of another system (an organizer told of an
    enrollment): one row per order, whatever how often the order is delivered."""

    __tablename__ = "notifications"

    id: str = Field(primary_key=True, max_length=64)
    kind: EmailKind = _state(EmailKind)
    order_id: str = Field(unique=True, max_length=128)
    recipient: str = Field(max_length=254)
    created_at: datetime = _timestamp(nullable=False)


class EmailDelivery(SQLModel, table=True):
    """One row per message the service sends, updated on every attempt. It belongs to a
    registration (the account's emails) or to a notification."""

    __tablename__ = "email_deliveries"

    id: str = Field(primary_key=True, max_length=128)
    registration_id: str | None = Field(
        default=None, foreign_key="users.registration_id", index=True, max_length=64
    )
    notification_id: str | None = Field(
        default=None, foreign_key="notifications.id", index=True, max_length=64
    )
    kind: EmailKind = _state(EmailKind)
    status: DeliveryStatus = _state(DeliveryStatus)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=2000)
    # The same on every attempt of this delivery, so receivers can drop repeats.
    message_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = _timestamp(nullable=False)
    sent_at: datetime | None = _timestamp(nullable=True)
    updated_at: datetime = _timestamp(nullable=False)


class PasswordReset(SQLModel, table=True):
    """One forgot-password request of an active account: its single-use token (hashed) and
    whether it was used or ran out."""

    __tablename__ = "password_resets"

    id: str = Field(primary_key=True, max_length=64)
    registration_id: str = Field(foreign_key="users.registration_id", index=True, max_length=64)
    token_hash: str = Field(unique=True, max_length=64)
    status: PasswordResetStatus = _state(PasswordResetStatus)
    created_at: datetime = _timestamp(nullable=False)
    expires_at: datetime = _timestamp(nullable=False)
    used_at: datetime | None = _timestamp(nullable=True)
    updated_at: datetime = _timestamp(nullable=False)


class SignInThrottle(SQLModel, table=True):
    """Recent failed sign-ins of one address from one source, both under keyed hashes: the
    table names no address, and unknown addresses are throttled exactly like real ones. A
    stranger's failures lock that stranger out, never the owner at another source."""

    __tablename__ = "sign_in_throttles"

    email_key: str = Field(primary_key=True, max_length=64)
    source_key: str = Field(primary_key=True, max_length=64)
    failures: int = Field(default=0)
    # Indexed for forgetting quiet pairs (sign_in_throttle).
    window_started_at: datetime = _timestamp(nullable=False, index=True)
    locked_until: datetime | None = _timestamp(nullable=True)
    # How often this pair was locked in a row: each lock lasts twice the one before.
    lockouts: int = Field(default=0)


class RateLimit(SQLModel, table=True):
    """Uses of one limit by one subject (a mailbox, a source) in the current window, under a
    keyed hash of both: no address or network address is stored."""

    __tablename__ = "rate_limits"

    key: str = Field(primary_key=True, max_length=64)
    count: int = Field(default=0)
    # Indexed for forgetting ended windows (rate_limits).
    window_started_at: datetime = _timestamp(nullable=False, index=True)
