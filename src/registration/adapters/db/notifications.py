"""Reads and writes of notifications (emails sent on behalf of another system) and their
deliveries. Every write is idempotent: an order delivered twice leaves one row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from registration.adapters.db.deliveries import deliveries_of, new_delivery
from registration.adapters.db.tables import Notification
from registration.domain.email_kinds import EmailKind
from registration.domain.records import DeliveryOwner, NotificationRecord


class NotificationRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_notification(
        self,
        *,
        notification_id: str,
        kind: EmailKind,
        order_id: str,
        recipient: str,
        delivery_id: str,
        now: datetime,
    ) -> None:
        """The notification with its PENDING delivery; nothing more when it exists."""
        with Session(self._engine) as session:
            if session.get(Notification, notification_id) is not None:
                return
            session.add(
                Notification(
                    id=notification_id,
                    kind=kind,
                    order_id=order_id,
                    recipient=recipient,
                    created_at=now,
                )
            )
            owner = DeliveryOwner(notification_id=notification_id)
            try:
                # The notification first: the delivery refers to it.
                session.flush()
                session.add(new_delivery(delivery_id, owner, kind, now))
                session.commit()
            except IntegrityError:
                # A concurrent attempt of this same activity recorded it first.
                session.rollback()
                if session.get(Notification, notification_id) is None:
                    raise

    def get_notification(self, *, notification_id: str) -> NotificationRecord | None:
        with Session(self._engine) as session:
            notification = session.get(Notification, notification_id)
            if notification is None:
                return None
            return NotificationRecord(
                notification_id=notification.id,
                kind=notification.kind,
                order_id=notification.order_id,
                recipient=notification.recipient,
                created_at=notification.created_at,
                deliveries=deliveries_of(
                    session.connection(), DeliveryOwner(notification_id=notification_id)
                ),
            )
