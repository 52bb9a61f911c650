"""Activities of the organizer notification workflow. Each is idempotent (at-least-once): an
order delivered twice is recorded once, and its email is sent once."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from temporalio import activity

from activities.database_calls import run_db
from activities.mailer import RecordedMailer
from registration.adapters.db.notifications import NotificationRepository
from registration.adapters.email.rendering import Subject
from registration.domain.email_kinds import EmailKind
from registration.domain.records import DeliveryOwner
from workflows.contracts import RecordNotificationInput, SendEmailResult, SendNotificationInput

ENROLLMENT_SUBJECT_SETTING = "ENROLLMENT_SUBJECT"


class NotificationActivities:
    """Built once per worker by `worker.py`; subject and sender come from the settings."""

    def __init__(
        self,
        *,
        notifications: NotificationRepository,
        mailer: RecordedMailer,
        enrollment_subject: str,
        enrollment_sender: tuple[str, str],
    ) -> None:
        self._notifications = notifications
        self._mailer = mailer
        self._subject = Subject(ENROLLMENT_SUBJECT_SETTING, enrollment_subject)
        self._sender = enrollment_sender

    @activity.defn(name="record_notification")
    async def record_notification(self, input: RecordNotificationInput) -> None:
        await run_db(
            self._notifications.record_notification,
            notification_id=input.notification_id,
            kind=input.kind,
            order_id=input.order_id,
            recipient=input.recipient,
            delivery_id=input.delivery_id,
            now=input.created_at,
        )

    @activity.defn(name="send_enrollment_notification")
    async def send_enrollment_notification(self, input: SendNotificationInput) -> SendEmailResult:
        async def context() -> dict[str, Any]:
            return asdict(input.enrollment)

        return await self._mailer.send(
            delivery_id=input.delivery_id,
            owner=DeliveryOwner(notification_id=input.notification_id),
            kind=EmailKind.ENROLLMENT,
            recipient=input.enrollment.organizer_email,
            context=context,
            subject=self._subject,
            sender=self._sender,
        )
