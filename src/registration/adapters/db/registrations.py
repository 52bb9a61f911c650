"""The registrations store: one row per registration, whose row is the account once verified.

Every write is idempotent, because Temporal runs activities at least once: repeating a call
with the same arguments leaves the same rows and returns the same answer. The steps every
registration takes (persist, check a link, activate) are single Core statements.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Connection, insert, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.expression import ColumnElement
from sqlmodel import col

from registration.adapters.db.deliveries import deliveries_of, new_delivery_row, read_delivery
from registration.adapters.db.tables import EmailDelivery, User
from registration.domain.email_kinds import EmailKind
from registration.domain.records import Credentials, DeliveryOwner, RegistrationRecord
from registration.domain.statuses import RegistrationStatus


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
    if read_delivery(connection, verification.delivery_id) is None:
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
