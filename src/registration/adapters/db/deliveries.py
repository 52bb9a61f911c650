"""The email-delivery store: one row per message the service sends, updated on every attempt.

Every attempt of every email runs these, so each write is one Core statement (an UPDATE ...
RETURNING), never an ORM load, update and reload. A delivery changes only while it is PENDING:
once it has ended (SENT or FAILED) it stays as it ended, whatever a late attempt does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.expression import ColumnElement
from sqlmodel import col

from registration.adapters.db.tables import EmailDelivery
from registration.domain.email_kinds import EmailKind
from registration.domain.records import DeliveryOwner, DeliveryRecord
from registration.domain.statuses import DeliveryStatus


class DeliveryRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get_delivery(self, *, delivery_id: str) -> DeliveryRecord | None:
        with self._engine.connect() as connection:
            return read_delivery(connection, delivery_id)

    def open_delivery(
        self, *, delivery_id: str, owner: DeliveryOwner, kind: EmailKind, now: datetime
    ) -> DeliveryRecord:
        """The delivery's record, created PENDING on first use."""
        try:
            with self._engine.begin() as connection:
                if (found := read_delivery(connection, delivery_id)) is not None:
                    return found
                row = connection.execute(
                    insert(EmailDelivery)
                    .values(new_delivery_row(delivery_id, owner, kind, now))
                    .returning(*DELIVERY_RECORD_COLUMNS)
                ).one()
                return DeliveryRecord(**row._asdict())
        except IntegrityError:
            # A concurrent attempt of the same delivery created it first; or the insert broke
            # a rule of the schema (an owner that does not exist), which is raised.
            with self._engine.connect() as connection:
                if (found := read_delivery(connection, delivery_id)) is None:
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
DELIVERY_RECORD_COLUMNS: tuple[ColumnElement[Any] | Mapped[Any], ...] = (
    col(EmailDelivery.id).label("delivery_id"),
    col(EmailDelivery.kind),
    col(EmailDelivery.status),
    col(EmailDelivery.attempts),
    col(EmailDelivery.last_error),
    col(EmailDelivery.created_at),
    col(EmailDelivery.sent_at),
    col(EmailDelivery.message_id),
)


def read_delivery(connection: Connection, delivery_id: str) -> DeliveryRecord | None:
    row = connection.execute(
        select(*DELIVERY_RECORD_COLUMNS).where(col(EmailDelivery.id) == delivery_id)
    ).first()
    return None if row is None else DeliveryRecord(**row._asdict())


def require_delivery(connection: Connection, delivery_id: str) -> DeliveryRecord:
    if (record := read_delivery(connection, delivery_id)) is None:
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
        _pending_delivery_update(delivery_id).values(**values).returning(*DELIVERY_RECORD_COLUMNS)
    ).first()
    return (
        DeliveryRecord(**row._asdict())
        if row is not None
        else require_delivery(connection, delivery_id)
    )


def deliveries_of(connection: Connection, owner: DeliveryOwner) -> list[DeliveryRecord]:
    """The deliveries of a registration or of a notification, oldest first."""
    owned = (
        col(EmailDelivery.registration_id) == owner.registration_id
        if owner.registration_id is not None
        else col(EmailDelivery.notification_id) == owner.notification_id
    )
    rows = connection.execute(
        select(*DELIVERY_RECORD_COLUMNS)
        .where(owned)
        .order_by(col(EmailDelivery.created_at), col(EmailDelivery.id))
    )
    return [DeliveryRecord(**row._asdict()) for row in rows]
