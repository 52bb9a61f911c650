"""NotifyEnrollment and GetNotification: organizer emails on behalf of a shop.

The notification id and the workflow ID come from the order id, so the same order delivered
twice joins the first workflow (or finds it closed) and sends one email; the database's
record of the delivery guards that too, after Temporal has forgotten a closed workflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from registration.adapters.db.calls import in_thread
from registration.adapters.db.notifications import NotificationRepository
from registration.domain.clock import utcnow
from registration.domain.errors import (
    FieldViolation,
    InvalidArgument,
)
from registration.domain.identifiers import (
    is_notification_id,
    notification_id_for_order,
    workflow_id_for_notification,
)
from registration.domain.records import NotificationRecord
from registration.domain.validation import for_field, normalize_email, text_violation
from registration.services.abuse_limits import AbuseLimits
from registration.services.temporal_calls import calling_temporal, delivery_from_state, query_state
from registration.services.workflow_inputs import email_retry_settings
from registration.settings import Settings
from workflows.contracts import EnrollmentDetails, EnrollmentNotificationInput, NotificationState
from workflows.enrollment_notification import EnrollmentNotificationWorkflow

log = logging.getLogger(__name__)
MAX_ORDER_ID_LENGTH = 128
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class EnrollmentRequest:
    order_id: str
    organizer_email: str
    organizer_name: str
    enrollee_name: str
    offering_name: str
    enrollee_email: str = ""
    enrolled_at: datetime | None = None


class NotificationService:
    def __init__(
        self,
        *,
        settings: Settings,
        client: Client,
        notifications: NotificationRepository,
        limits: AbuseLimits,
    ) -> None:
        self._settings = settings
        self._client = client
        self._notifications = notifications
        self._limits = limits

    async def notify_enrollment(self, request: EnrollmentRequest) -> str:
        """The notification id; the same for every delivery of one order."""
        details = _validated(request)
        await self._limits.notification(recipient=details.organizer_email)
        notification_id = notification_id_for_order(details.order_id)
        s = self._settings
        try:
            with calling_temporal():
                await self._client.start_workflow(
                    EnrollmentNotificationWorkflow.run,
                    EnrollmentNotificationInput(
                        notification_id=notification_id,
                        enrollment=details,
                        requested_at=utcnow(),
                        email_retry=email_retry_settings(s),
                    ),
                    id=workflow_id_for_notification(notification_id),
                    task_queue=s.notification_task_queue,
                    # Running: the duplicate joins it. Closed: it is refused (below). Either way
                    # no second email.
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
        except WorkflowAlreadyStartedError:
            log.info("enrollment notification %s: order delivered again", notification_id)
        return notification_id

    async def get(self, *, notification_id: str) -> NotificationRecord:
        if not is_notification_id(notification_id):
            raise InvalidArgument([FieldViolation("notification_id", "is not a notification id")])
        record = await in_thread(
            self._notifications.get_notification, notification_id=notification_id
        )
        if record is not None:
            return record
        # Not recorded yet: the workflow has just started and knows its state already.
        handle: WorkflowHandle[EnrollmentNotificationWorkflow, NotificationState] = (
            self._client.get_workflow_handle(
                workflow_id_for_notification(notification_id), result_type=NotificationState
            )
        )
        state = await query_state(handle, EnrollmentNotificationWorkflow.state, what="notification")
        return _record_from_state(state)


def _validated(request: EnrollmentRequest) -> EnrollmentDetails:
    organizer, organizer_problem = normalize_email(request.organizer_email)
    enrollee, enrollee_problem = (
        normalize_email(request.enrollee_email) if request.enrollee_email else (None, None)
    )
    violations = [
        v
        for v in (
            text_violation("order_id", request.order_id, max_length=MAX_ORDER_ID_LENGTH),
            for_field(organizer_problem, "organizer_email"),
            text_violation(
                "organizer_name",
                request.organizer_name,
                max_length=MAX_NAME_LENGTH,
                required=False,
            ),
            text_violation("enrollee_name", request.enrollee_name, max_length=MAX_NAME_LENGTH),
            for_field(enrollee_problem, "enrollee_email"),
            text_violation("offering_name", request.offering_name, max_length=MAX_NAME_LENGTH),
        )
        if v is not None
    ]
    if violations or organizer is None:
        raise InvalidArgument(violations)
    return EnrollmentDetails(
        order_id=request.order_id,
        organizer_email=organizer,
        organizer_name=request.organizer_name.strip(),
        enrollee_name=request.enrollee_name.strip(),
        offering_name=request.offering_name.strip(),
        enrolled_at=request.enrolled_at or utcnow(),
        enrollee_email=enrollee,
    )


def _record_from_state(state: NotificationState) -> NotificationRecord:
    return NotificationRecord(
        notification_id=state.notification_id,
        kind=state.delivery.kind,
        order_id=state.order_id,
        recipient=state.recipient,
        created_at=state.created_at,
        deliveries=[delivery_from_state(state.delivery, state.created_at)],
    )
