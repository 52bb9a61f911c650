"""Reads and writes of registrations and email deliveries.

Every write is idempotent, because Temporal runs activities at least once: repeating a call
with the same arguments leaves the same rows and returns the same answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Connection, Update, func, insert, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.expression import ColumnElement
from sqlmodel import col

from registration.db import EmailDelivery, User
from registration.status import DeliveryStatus, EmailKind, RegistrationStatus


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


class CreateOutcome(Enum):
    CREATED = "created"
    EMAIL_TAKEN = "email_taken"


class RegistrationRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def ping(self) -> None:
        """Raises when the database cannot be reached."""
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    # Registrations -------------------------------------------------------------------------

    def create_pending_user(
        self,
        *,
        user_id: uuid.UUID,
        registration_id: str,
        email: str,
        password_hash: str,
        created_at: datetime,
        expires_at: datetime,
        verification: NewVerification | None = None,
    ) -> CreateOutcome:
        """Insert the pending user, with its first verification delivery when given; CREATED
        again when this registration's row exists already, EMAIL_TAKEN when another live
        registration holds the address."""
        try:
            with self._engine.begin() as connection:
                if _registration_exists(connection, registration_id):
                    return CreateOutcome.CREATED
                # The user first: the delivery refers to it, and a taken address fails here.
                user = {
                    "id": user_id,
                    "registration_id": registration_id,
                    "email": email,
                    "email_claim": email,
                    "status": RegistrationStatus.PENDING_VERIFICATION,
                    "password_hash": password_hash,
                    "resends_remaining": 0,
                    "created_at": created_at,
                    "expires_at": expires_at,
                    "updated_at": created_at,
                }
                if verification is not None:
                    user |= _verification_values(verification, now=created_at)
                connection.execute(insert(User).values(user))
                if verification is not None:
                    _add_verification_delivery(
                        connection, registration_id, verification, now=created_at
                    )
        except IntegrityError:
            # A concurrent attempt of this same activity may have won the insert.
            with self._engine.connect() as connection:
                if _registration_exists(connection, registration_id):
                    return CreateOutcome.CREATED
            return CreateOutcome.EMAIL_TAKEN
        return CreateOutcome.CREATED

    def start_new_verification(
        self, *, registration_id: str, verification: NewVerification, now: datetime
    ) -> None:
        """A resend: the new delivery's token replaces the previous one, so only the newest
        link works. Repeating it changes nothing more."""
        with self._engine.begin() as connection:
            status = _require_status(connection, registration_id)
            if status is not RegistrationStatus.PENDING_VERIFICATION:
                raise ValueError(f"registration {registration_id} is {status.value}")
            connection.execute(
                update(User)
                .where(col(User.registration_id) == registration_id)
                .values(_verification_values(verification, now=now))
            )
            _add_verification_delivery(connection, registration_id, verification, now=now)

    def link_is_live(self, *, registration_id: str, token_hash: str) -> bool:
        """Whether a link with this token still verifies: the registration is pending and no
        resend has replaced the token."""
        with self._engine.connect() as connection:
            found = connection.execute(
                select(col(User.id))
                .where(col(User.registration_id) == registration_id)
                .where(col(User.status) == RegistrationStatus.PENDING_VERIFICATION)
                .where(col(User.verification_token_hash) == token_hash)
            ).first()
            return found is not None

    def live_registration_id(self, *, email: str) -> str | None:
        """The pending or active registration that holds this address, if any."""
        with self._engine.connect() as connection:
            return connection.execute(
                select(col(User.registration_id)).where(col(User.email_claim) == email)
            ).scalar_one_or_none()

    def find_credentials(self, *, email: str) -> Credentials | None:
        """The pending or active account of this address with its password hash, if any."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(*_CREDENTIALS_COLUMNS).where(col(User.email_claim) == email)
            ).first()
        if row is None or row.password_hash is None:
            return None
        return Credentials(**row._asdict())

    def replace_password_hash(
        self, *, registration_id: str, old_hash: str, new_hash: str, now: datetime
    ) -> bool:
        """Swap the hash only if it is still `old_hash`: a rehash on sign-in must never undo a
        password reset that landed in between. Whether it was swapped."""
        with self._engine.begin() as connection:
            result = connection.execute(
                update(User)
                .where(col(User.registration_id) == registration_id)
                .where(col(User.password_hash) == old_hash)
                .values(password_hash=new_hash, updated_at=now)
            )
            return bool(result.rowcount)

    def get_registration(self, *, registration_id: str) -> RegistrationRecord | None:
        with self._engine.connect() as connection:
            return _read_registration(connection, col(User.registration_id) == registration_id)

    def find_by_token_hash(self, *, token_hash: str) -> RegistrationRecord | None:
        with self._engine.connect() as connection:
            return _read_registration(connection, col(User.verification_token_hash) == token_hash)

    def activate(self, *, registration_id: str, verified_at: datetime) -> datetime:
        """Mark the account ACTIVE; repeated or concurrent calls keep the first verification
        time, which is returned, and an expiry that won the race is never overturned."""
        with self._engine.begin() as connection:
            # One conditional UPDATE: of concurrent calls (and a concurrent expiry) exactly
            # one changes the row, whatever the isolation level. A missing user is found by
            # the read after it.
            connection.execute(
                update(User)
                .where(col(User.registration_id) == registration_id)
                .where(col(User.status) == RegistrationStatus.PENDING_VERIFICATION)
                .values(
                    status=RegistrationStatus.ACTIVE,
                    verified_at=verified_at,
                    updated_at=verified_at,
                )
            )
            row = connection.execute(
                select(col(User.status), col(User.verified_at)).where(
                    col(User.registration_id) == registration_id
                )
            ).first()
        if row is None:
            raise LookupError(f"no registration {registration_id}")
        status: RegistrationStatus = row.status
        kept: datetime | None = row.verified_at
        if status is RegistrationStatus.EXPIRED or kept is None:
            raise ValueError(f"registration {registration_id} has expired")
        return kept

    def expire(self, *, registration_id: str, now: datetime) -> None:
        """Mark the registration EXPIRED, erase its password hash and free the address."""
        with self._engine.begin() as connection:
            connection.execute(
                update(User)
                .where(col(User.registration_id) == registration_id)
                .where(
                    or_(
                        col(User.status) == RegistrationStatus.PENDING_VERIFICATION,
                        (col(User.status) == RegistrationStatus.EXPIRED)
                        & col(User.password_hash).is_not(None),
                    )
                )
                .values(
                    status=RegistrationStatus.EXPIRED,
                    password_hash=None,
                    email_claim=None,
                    updated_at=now,
                )
            )
            if _require_status(connection, registration_id) is RegistrationStatus.ACTIVE:
                raise ValueError(f"registration {registration_id} is active")

    # Deliveries ----------------------------------------------------------------------------

    # Every attempt of every email runs these, so each is one Core statement (an UPDATE ...
    # RETURNING) rather than an ORM load, update and reload: about half the CPU time each.
    # (So are the steps every registration takes, above: persist, check a link, activate.)

    def get_delivery(self, *, delivery_id: str) -> DeliveryRecord | None:
        with self._engine.connect() as connection:
            return _read_delivery(connection, delivery_id)

    def open_delivery(
        self, *, delivery_id: str, owner: DeliveryOwner, kind: EmailKind, now: datetime
    ) -> DeliveryRecord:
        """The delivery's record, created PENDING on first use."""
        try:
            with self._engine.begin() as connection:
                if (found := _read_delivery(connection, delivery_id)) is not None:
                    return found
                row = connection.execute(
                    insert(EmailDelivery)
                    .values(new_delivery_row(delivery_id, owner, kind, now))
                    .returning(*_DELIVERY_RECORD_COLUMNS)
                ).one()
                return DeliveryRecord(**row._asdict())
        except IntegrityError:
            # A concurrent attempt of the same delivery created it first; or the insert broke
            # a rule of the schema (an owner that does not exist), which is raised.
            with self._engine.connect() as connection:
                if (found := _read_delivery(connection, delivery_id)) is None:
                    raise
                return found

    def count_attempt(self, *, delivery_id: str, message_id: str, now: datetime) -> DeliveryRecord:
        """One more try at the SMTP server; a delivery that has ended is left as it is. Two
        attempts at once (a timed-out one still running beside its retry) both count."""
        with self._engine.begin() as connection:
            return _change_pending_delivery(
                connection,
                delivery_id,
                attempts=col(EmailDelivery.attempts) + 1,
                message_id=func.coalesce(col(EmailDelivery.message_id), message_id),
                updated_at=now,
            )

    def record_delivery_error(self, *, delivery_id: str, error: str, now: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                _pending_delivery_update(delivery_id).values(
                    last_error=error[:2000], updated_at=now
                )
            )

    def mark_delivery_sent(self, *, delivery_id: str, sent_at: datetime) -> DeliveryRecord:
        # PENDING only: a delivery that ended FAILED (say, stopped at expiry) stays ended,
        # and of two attempts that both sent, the first keeps its time.
        with self._engine.begin() as connection:
            return _change_pending_delivery(
                connection,
                delivery_id,
                status=DeliveryStatus.SENT,
                sent_at=sent_at,
                updated_at=sent_at,
            )

    def mark_delivery_failed(
        self,
        *,
        delivery_id: str,
        owner: DeliveryOwner,
        kind: EmailKind,
        error: str,
        now: datetime,
    ) -> DeliveryRecord:
        """End the delivery FAILED with its reason, unless it has ended already; a delivery
        that never got as far as its first attempt is recorded now."""
        self.open_delivery(delivery_id=delivery_id, owner=owner, kind=kind, now=now)
        with self._engine.begin() as connection:
            return _change_pending_delivery(
                connection,
                delivery_id,
                status=DeliveryStatus.FAILED,
                last_error=error[:2000],
                updated_at=now,
            )


@dataclass(frozen=True)
class NewVerification:
    """A verification email about to be sent: its delivery, its link's token (hashed) and
    the resend rules' state after it."""

    delivery_id: str
    token_hash: str
    next_resend_at: datetime | None
    resends_remaining: int


def _verification_values(verification: NewVerification, *, now: datetime) -> dict[str, Any]:
    """The user's columns once this delivery's token is the one that works."""
    return {
        "verification_token_hash": verification.token_hash,
        "next_resend_at": verification.next_resend_at,
        "resends_remaining": verification.resends_remaining,
        "updated_at": now,
    }


def _add_verification_delivery(
    connection: Connection, registration_id: str, verification: NewVerification, *, now: datetime
) -> None:
    """The verification delivery's record, unless a repeated call has made it already."""
    if _read_delivery(connection, verification.delivery_id) is None:
        connection.execute(
            insert(EmailDelivery).values(
                new_delivery_row(
                    verification.delivery_id,
                    DeliveryOwner(registration_id=registration_id),
                    EmailKind.VERIFICATION,
                    now,
                )
            )
        )


def new_delivery(
    delivery_id: str, owner: DeliveryOwner, kind: EmailKind, now: datetime
) -> EmailDelivery:
    return EmailDelivery(**new_delivery_row(delivery_id, owner, kind, now))


def new_delivery_row(
    delivery_id: str, owner: DeliveryOwner, kind: EmailKind, now: datetime
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "registration_id": owner.registration_id,
        "notification_id": owner.notification_id,
        "kind": kind,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


# A DeliveryRecord's columns, labelled with its field names.
_DELIVERY_RECORD_COLUMNS: tuple[ColumnElement[Any] | Mapped[Any], ...] = (
    col(EmailDelivery.id).label("delivery_id"),
    col(EmailDelivery.kind),
    col(EmailDelivery.status),
    col(EmailDelivery.attempts),
    col(EmailDelivery.last_error),
    col(EmailDelivery.created_at),
    col(EmailDelivery.sent_at),
    col(EmailDelivery.message_id),
)


def _read_delivery(connection: Connection, delivery_id: str) -> DeliveryRecord | None:
    row = connection.execute(
        select(*_DELIVERY_RECORD_COLUMNS).where(col(EmailDelivery.id) == delivery_id)
    ).first()
    return None if row is None else DeliveryRecord(**row._asdict())


def _require_delivery(connection: Connection, delivery_id: str) -> DeliveryRecord:
    if (record := _read_delivery(connection, delivery_id)) is None:
        raise LookupError(f"no delivery {delivery_id}")
    return record


def _pending_delivery_update(delivery_id: str) -> Update:
    """An UPDATE of the delivery only while it is PENDING: of concurrent callers each sees the
    row as the one before it left it, and a delivery that has ended stays as it ended."""
    return (
        update(EmailDelivery)
        .where(col(EmailDelivery.id) == delivery_id)
        .where(col(EmailDelivery.status) == DeliveryStatus.PENDING)
    )


def _change_pending_delivery(
    connection: Connection, delivery_id: str, **values: object
) -> DeliveryRecord:
    """The conditional UPDATE, and the delivery as it is afterwards, changed or not."""
    row = connection.execute(
        _pending_delivery_update(delivery_id).values(**values).returning(*_DELIVERY_RECORD_COLUMNS)
    ).first()
    return (
        DeliveryRecord(**row._asdict())
        if row is not None
        else _require_delivery(connection, delivery_id)
    )


def _registration_exists(connection: Connection, registration_id: str) -> bool:
    found = connection.execute(
        select(col(User.id)).where(col(User.registration_id) == registration_id)
    ).first()
    return found is not None


def _require_status(connection: Connection, registration_id: str) -> RegistrationStatus:
    status: RegistrationStatus | None = connection.execute(
        select(col(User.status)).where(col(User.registration_id) == registration_id)
    ).scalar_one_or_none()
    if status is None:
        raise LookupError(f"no registration {registration_id}")
    return status


# A RegistrationRecord's columns (all but its deliveries), labelled with its field names.
_REGISTRATION_RECORD_COLUMNS: tuple[ColumnElement[Any] | Mapped[Any], ...] = (
    col(User.registration_id),
    col(User.id).label("user_id"),
    col(User.email),
    col(User.status),
    col(User.created_at),
    col(User.verified_at),
    col(User.expires_at),
    col(User.next_resend_at).label("next_resend_allowed_at"),
    col(User.resends_remaining),
)


# Credentials' columns, labelled with its field names.
_CREDENTIALS_COLUMNS: tuple[ColumnElement[Any] | Mapped[Any], ...] = (
    col(User.registration_id),
    col(User.id).label("user_id"),
    col(User.status),
    col(User.password_hash),
)


def _read_registration(
    connection: Connection, which: ColumnElement[bool]
) -> RegistrationRecord | None:
    """The registration whose row matches `which` (a unique column's value), with its emails."""
    row = connection.execute(select(*_REGISTRATION_RECORD_COLUMNS).where(which)).first()
    if row is None:
        return None
    deliveries = deliveries_of(connection, DeliveryOwner(registration_id=row.registration_id))
    return RegistrationRecord(**row._asdict(), deliveries=deliveries)


def deliveries_of(connection: Connection, owner: DeliveryOwner) -> list[DeliveryRecord]:
    """The deliveries of a registration or of a notification, oldest first."""
    owned = (
        col(EmailDelivery.registration_id) == owner.registration_id
        if owner.registration_id is not None
        else col(EmailDelivery.notification_id) == owner.notification_id
    )
    rows = connection.execute(
        select(*_DELIVERY_RECORD_COLUMNS)
        .where(owned)
        .order_by(col(EmailDelivery.created_at), col(EmailDelivery.id))
    )
    return [DeliveryRecord(**row._asdict()) for row in rows]
