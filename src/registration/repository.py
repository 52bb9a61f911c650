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

from sqlalchemy import Connection, Update, func, insert, or_, text, update
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.expression import ColumnElement
from sqlmodel import Session, col, select

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
        with Session(self._engine) as session:
            if _user_by_registration(session, registration_id) is not None:
                return CreateOutcome.CREATED
            user = User(
                id=user_id,
                registration_id=registration_id,
                email=email,
                email_claim=email,
                status=RegistrationStatus.PENDING_VERIFICATION,
                password_hash=password_hash,
                created_at=created_at,
                expires_at=expires_at,
                updated_at=created_at,
            )
            try:
                # The user first: the delivery refers to it, and a taken address fails here.
                session.add(user)
                session.flush()
                if verification is not None:
                    _apply_verification(session, user, verification, now=created_at)
                session.commit()
            except IntegrityError:
                session.rollback()
                # A concurrent attempt of this same activity may have won the insert.
                if _user_by_registration(session, registration_id) is not None:
                    return CreateOutcome.CREATED
                return CreateOutcome.EMAIL_TAKEN
        return CreateOutcome.CREATED

    def start_new_verification(
        self, *, registration_id: str, verification: NewVerification, now: datetime
    ) -> None:
        """A resend: the new delivery's token replaces the previous one, so only the newest
        link works. Repeating it changes nothing more."""
        with Session(self._engine) as session:
            user = _require_user(session, registration_id)
            if user.status is not RegistrationStatus.PENDING_VERIFICATION:
                raise ValueError(f"registration {registration_id} is {user.status.value}")
            _apply_verification(session, user, verification, now=now)
            session.commit()

    def link_is_live(self, *, registration_id: str, token_hash: str) -> bool:
        """Whether a link with this token still verifies: the registration is pending and no
        resend has replaced the token."""
        with Session(self._engine) as session:
            user = _user_by_registration(session, registration_id)
            return (
                user is not None
                and user.status is RegistrationStatus.PENDING_VERIFICATION
                and user.verification_token_hash == token_hash
            )

    def find_live_registration(self, *, email: str) -> RegistrationRecord | None:
        """The pending or active registration that holds this address, if any."""
        with Session(self._engine) as session:
            user = session.exec(select(User).where(User.email_claim == email)).first()
            return None if user is None else _registration_record(session, user)

    def find_credentials(self, *, email: str) -> Credentials | None:
        """The pending or active account of this address with its password hash, if any."""
        with Session(self._engine) as session:
            user = session.exec(select(User).where(User.email_claim == email)).first()
            if user is None or user.password_hash is None:
                return None
            return Credentials(
                registration_id=user.registration_id,
                user_id=user.id,
                status=user.status,
                password_hash=user.password_hash,
            )

    def replace_password_hash(
        self, *, registration_id: str, old_hash: str, new_hash: str, now: datetime
    ) -> bool:
        """Swap the hash only if it is still `old_hash`: a rehash on sign-in must never undo a
        password reset that landed in between. Whether it was swapped."""
        with Session(self._engine) as session:
            result = session.exec(
                update(User)
                .where(col(User.registration_id) == registration_id)
                .where(col(User.password_hash) == old_hash)
                .values(password_hash=new_hash, updated_at=now)
            )
            session.commit()
            return bool(result.rowcount)

    def get_registration(self, *, registration_id: str) -> RegistrationRecord | None:
        with Session(self._engine) as session:
            user = _user_by_registration(session, registration_id)
            return None if user is None else _registration_record(session, user)

    def find_by_token_hash(self, *, token_hash: str) -> RegistrationRecord | None:
        with Session(self._engine) as session:
            user = session.exec(
                select(User).where(User.verification_token_hash == token_hash)
            ).first()
            return None if user is None else _registration_record(session, user)

    def activate(self, *, registration_id: str, verified_at: datetime) -> RegistrationRecord:
        """Mark the account ACTIVE; repeated or concurrent calls keep the first verification
        time, and an expiry that won the race is never overturned."""
        with Session(self._engine) as session:
            # One conditional UPDATE: of concurrent calls (and a concurrent expiry) exactly
            # one changes the row, whatever the isolation level. A missing user is found by
            # the read after it.
            session.exec(
                update(User)
                .where(col(User.registration_id) == registration_id)
                .where(col(User.status) == RegistrationStatus.PENDING_VERIFICATION)
                .values(
                    status=RegistrationStatus.ACTIVE,
                    verified_at=verified_at,
                    updated_at=verified_at,
                )
            )
            session.commit()
            user = _require_user(session, registration_id)
            if user.status is RegistrationStatus.EXPIRED:
                raise ValueError(f"registration {registration_id} has expired")
            return _registration_record(session, user)

    def expire(self, *, registration_id: str, now: datetime) -> None:
        """Mark the registration EXPIRED, erase its password hash and free the address."""
        with Session(self._engine) as session:
            session.exec(
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
            session.commit()
            if _require_user(session, registration_id).status is RegistrationStatus.ACTIVE:
                raise ValueError(f"registration {registration_id} is active")

    # Deliveries ----------------------------------------------------------------------------

    # Every attempt of every email runs these, so each is one Core statement (an UPDATE ...
    # RETURNING) rather than an ORM load, update and reload: about half the CPU time each.

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


def _apply_verification(
    session: Session, user: User, verification: NewVerification, *, now: datetime
) -> None:
    user.verification_token_hash = verification.token_hash
    user.next_resend_at = verification.next_resend_at
    user.resends_remaining = verification.resends_remaining
    user.updated_at = now
    if session.get(EmailDelivery, verification.delivery_id) is None:
        session.add(
            new_delivery(
                verification.delivery_id,
                DeliveryOwner(registration_id=user.registration_id),
                EmailKind.VERIFICATION,
                now,
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
        sql_select(*_DELIVERY_RECORD_COLUMNS).where(col(EmailDelivery.id) == delivery_id)
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


def _user_by_registration(session: Session, registration_id: str) -> User | None:
    return session.exec(select(User).where(User.registration_id == registration_id)).first()


def _require_user(session: Session, registration_id: str) -> User:
    user = _user_by_registration(session, registration_id)
    if user is None:
        raise LookupError(f"no registration {registration_id}")
    return user


def delivery_record(delivery: EmailDelivery) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=delivery.id,
        kind=delivery.kind,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        sent_at=delivery.sent_at,
        message_id=delivery.message_id,
    )


def deliveries_of(session: Session, owner: DeliveryOwner) -> list[DeliveryRecord]:
    """The deliveries of a registration or of a notification, oldest first."""
    owned = (
        EmailDelivery.registration_id == owner.registration_id
        if owner.registration_id is not None
        else EmailDelivery.notification_id == owner.notification_id
    )
    rows = session.exec(
        select(EmailDelivery)
        .where(owned)
        .order_by(col(EmailDelivery.created_at), col(EmailDelivery.id))
    ).all()
    return [delivery_record(d) for d in rows]


def _registration_record(session: Session, user: User) -> RegistrationRecord:
    return RegistrationRecord(
        registration_id=user.registration_id,
        user_id=user.id,
        email=user.email,
        status=user.status,
        created_at=user.created_at,
        verified_at=user.verified_at,
        expires_at=user.expires_at,
        deliveries=deliveries_of(session, DeliveryOwner(registration_id=user.registration_id)),
        next_resend_allowed_at=user.next_resend_at,
        resends_remaining=user.resends_remaining,
    )
