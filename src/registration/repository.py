"""Reads and writes of registrations and email deliveries.

Every write is idempotent, because Temporal runs activities at least once: repeating a call
with the same arguments leaves the same rows and returns the same answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
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
    ) -> CreateOutcome:
        """Insert the pending user; CREATED again when this registration's row exists already,
        EMAIL_TAKEN when another live registration holds the address."""
        with Session(self._engine) as session:
            if _user_by_registration(session, registration_id) is not None:
                return CreateOutcome.CREATED
            session.add(
                User(
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
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                # A concurrent attempt of this same activity may have won the insert.
                if _user_by_registration(session, registration_id) is not None:
                    return CreateOutcome.CREATED
                return CreateOutcome.EMAIL_TAKEN
        return CreateOutcome.CREATED

    def find_live_registration(self, *, email: str) -> RegistrationRecord | None:
        """The pending or active registration that holds this address, if any."""
        with Session(self._engine) as session:
            user = session.exec(select(User).where(User.email_claim == email)).first()
            return None if user is None else _registration_record(session, user)

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

    def set_verification_token_hash(
        self, *, registration_id: str, token_hash: str, now: datetime
    ) -> None:
        with Session(self._engine) as session:
            user = _require_user(session, registration_id)
            if user.verification_token_hash != token_hash:
                user.verification_token_hash = token_hash
                user.updated_at = now
                session.commit()

    def activate(self, *, registration_id: str, verified_at: datetime) -> RegistrationRecord:
        """Mark the account ACTIVE; repeated calls keep the first verification time."""
        with Session(self._engine) as session:
            user = _require_user(session, registration_id)
            if user.status is RegistrationStatus.EXPIRED:
                raise ValueError(f"registration {registration_id} has expired")
            if user.status is not RegistrationStatus.ACTIVE:
                user.status = RegistrationStatus.ACTIVE
                user.verified_at = verified_at
                user.updated_at = verified_at
                session.commit()
                session.refresh(user)
            return _registration_record(session, user)

    def expire(self, *, registration_id: str, now: datetime) -> None:
        """Mark the registration EXPIRED, erase its password hash and free the address."""
        with Session(self._engine) as session:
            user = _require_user(session, registration_id)
            if user.status is RegistrationStatus.ACTIVE:
                raise ValueError(f"registration {registration_id} is active")
            if user.status is not RegistrationStatus.EXPIRED or user.password_hash is not None:
                user.status = RegistrationStatus.EXPIRED
                user.password_hash = None
                user.email_claim = None
                user.updated_at = now
                session.commit()

    # Deliveries ----------------------------------------------------------------------------

    def get_delivery(self, *, delivery_id: str) -> DeliveryRecord | None:
        with Session(self._engine) as session:
            delivery = session.get(EmailDelivery, delivery_id)
            return None if delivery is None else _delivery_record(delivery)

    def record_delivery_attempt(
        self,
        *,
        delivery_id: str,
        registration_id: str,
        kind: EmailKind,
        attempt: int,
        now: datetime,
    ) -> DeliveryRecord:
        """Count an attempt; a delivery that is already SENT or FAILED is left as it is."""
        with Session(self._engine) as session:
            delivery = session.get(EmailDelivery, delivery_id)
            if delivery is None:
                delivery = EmailDelivery(
                    id=delivery_id,
                    registration_id=registration_id,
                    kind=kind,
                    status=DeliveryStatus.PENDING,
                    attempts=attempt,
                    created_at=now,
                    updated_at=now,
                )
                session.add(delivery)
            elif delivery.status is DeliveryStatus.PENDING and delivery.attempts < attempt:
                delivery.attempts = attempt
                delivery.updated_at = now
            session.commit()
            session.refresh(delivery)
            return _delivery_record(delivery)

    def record_delivery_error(self, *, delivery_id: str, error: str, now: datetime) -> None:
        with Session(self._engine) as session:
            delivery = session.get(EmailDelivery, delivery_id)
            if delivery is not None and delivery.status is DeliveryStatus.PENDING:
                delivery.last_error = error[:2000]
                delivery.updated_at = now
                session.commit()

    def mark_delivery_sent(self, *, delivery_id: str, sent_at: datetime) -> DeliveryRecord:
        with Session(self._engine) as session:
            delivery = session.get(EmailDelivery, delivery_id)
            if delivery is None:
                raise LookupError(f"no delivery {delivery_id}")
            # PENDING only: a delivery that ended FAILED (say, stopped at expiry) stays ended.
            if delivery.status is DeliveryStatus.PENDING:
                delivery.status = DeliveryStatus.SENT
                delivery.sent_at = sent_at
                delivery.updated_at = sent_at
                session.commit()
                session.refresh(delivery)
            return _delivery_record(delivery)

    def mark_delivery_failed(
        self,
        *,
        delivery_id: str,
        registration_id: str,
        kind: EmailKind,
        error: str,
        now: datetime,
    ) -> DeliveryRecord:
        with Session(self._engine) as session:
            delivery = session.get(EmailDelivery, delivery_id)
            if delivery is None:
                delivery = EmailDelivery(
                    id=delivery_id,
                    registration_id=registration_id,
                    kind=kind,
                    status=DeliveryStatus.PENDING,
                    created_at=now,
                    updated_at=now,
                )
                session.add(delivery)
            if delivery.status is DeliveryStatus.PENDING:
                delivery.status = DeliveryStatus.FAILED
                delivery.last_error = error[:2000]
                delivery.updated_at = now
            session.commit()
            session.refresh(delivery)
            return _delivery_record(delivery)


def _user_by_registration(session: Session, registration_id: str) -> User | None:
    return session.exec(select(User).where(User.registration_id == registration_id)).first()


def _require_user(session: Session, registration_id: str) -> User:
    user = _user_by_registration(session, registration_id)
    if user is None:
        raise LookupError(f"no registration {registration_id}")
    return user


def _delivery_record(delivery: EmailDelivery) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=delivery.id,
        kind=delivery.kind,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        sent_at=delivery.sent_at,
    )


def _registration_record(session: Session, user: User) -> RegistrationRecord:
    deliveries = session.exec(
        select(EmailDelivery)
        .where(EmailDelivery.registration_id == user.registration_id)
        .order_by(col(EmailDelivery.created_at), col(EmailDelivery.id))
    ).all()
    return RegistrationRecord(
        registration_id=user.registration_id,
        user_id=user.id,
        email=user.email,
        status=user.status,
        created_at=user.created_at,
        verified_at=user.verified_at,
        expires_at=user.expires_at,
        deliveries=[_delivery_record(d) for d in deliveries],
    )
