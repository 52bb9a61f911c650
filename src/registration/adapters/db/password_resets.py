"""Reads and writes of password resets.

Every write is idempotent (activities run at least once): repeating a call leaves the same rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from registration.adapters.db.deliveries import new_delivery
from registration.adapters.db.tables import EmailDelivery, PasswordReset, User
from registration.domain.email_kinds import EmailKind
from registration.domain.records import DeliveryOwner, ResetRecord
from registration.domain.statuses import PasswordResetStatus, RegistrationStatus


class PasswordResetRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def open_reset(
        self,
        *,
        reset_id: str,
        email: str,
        token_hash: str,
        delivery_id: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> str | None:
        """Record a reset of the active account of `email` with its first email's delivery;
        the account's registration id, or None when the address has no active account."""
        with Session(self._engine) as session:
            existing = session.get(PasswordReset, reset_id)
            if existing is not None:
                return existing.registration_id
            user = session.exec(
                select(User)
                .where(User.email_claim == email)
                .where(User.status == RegistrationStatus.ACTIVE)
            ).first()
            if user is None:
                return None
            session.add(
                PasswordReset(
                    id=reset_id,
                    registration_id=user.registration_id,
                    token_hash=token_hash,
                    status=PasswordResetStatus.PENDING,
                    created_at=created_at,
                    expires_at=expires_at,
                    updated_at=created_at,
                )
            )
            owner = DeliveryOwner(registration_id=user.registration_id)
            try:
                # The reset first: a concurrent attempt of this activity fails here.
                session.flush()
                if session.get(EmailDelivery, delivery_id) is None:
                    session.add(
                        new_delivery(delivery_id, owner, EmailKind.PASSWORD_RESET, created_at)
                    )
                session.commit()
            except IntegrityError:
                # A concurrent attempt of this same activity recorded it first.
                session.rollback()
                existing = session.get(PasswordReset, reset_id)
                if existing is None:
                    raise
                return existing.registration_id
            return user.registration_id

    def find_by_token_hash(self, *, token_hash: str) -> ResetRecord | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(PasswordReset, User)
                .join(User, User.registration_id == PasswordReset.registration_id)  # type: ignore[arg-type]
                .where(PasswordReset.token_hash == token_hash)
            ).first()
            if row is None:
                return None
            reset, user = row
            return ResetRecord(
                reset_id=reset.id,
                registration_id=reset.registration_id,
                email=user.email,
                status=reset.status,
                expires_at=reset.expires_at,
            )

    def link_is_live(self, *, token_hash: str) -> bool:
        """Whether a reset link with this token can still be used."""
        with Session(self._engine) as session:
            reset = session.exec(
                select(PasswordReset).where(PasswordReset.token_hash == token_hash)
            ).first()
            return reset is not None and reset.status is PasswordResetStatus.PENDING

    def complete(self, *, reset_id: str, password_hash: str, now: datetime) -> None:
        """Use the reset: the account's password hash is replaced and the token stops working,
        in one transaction. Repeating it changes nothing more: once USED, a later password
        change is never overwritten by a repeat of this one."""
        with Session(self._engine) as session:
            reset = _require_reset(session, reset_id)
            if reset.status is PasswordResetStatus.USED:
                return
            if reset.status is PasswordResetStatus.EXPIRED:
                raise ValueError(f"password reset {reset_id} has expired")
            user = session.exec(
                select(User).where(User.registration_id == reset.registration_id)
            ).one()
            if user.status is not RegistrationStatus.ACTIVE:
                raise ValueError(f"the account of password reset {reset_id} is not active")
            user.password_hash = password_hash
            user.updated_at = now
            reset.status = PasswordResetStatus.USED
            reset.used_at = now
            reset.updated_at = now
            session.commit()

    def expire(self, *, reset_id: str, now: datetime) -> None:
        """The reset ran out unused: its token stops working."""
        with Session(self._engine) as session:
            reset = _require_reset(session, reset_id)
            if reset.status is PasswordResetStatus.PENDING:
                reset.status = PasswordResetStatus.EXPIRED
                reset.updated_at = now
                session.commit()


def _require_reset(session: Session, reset_id: str) -> PasswordReset:
    reset = session.get(PasswordReset, reset_id)
    if reset is None:
        raise LookupError(f"no password reset {reset_id}")
    return reset
