"""EnrollmentNotificationWorkflow: tells an organizer that an enrollment (an order) succeeded.

Its ID comes from the order id, so an order delivered twice (queues deliver at least once)
joins the first workflow and sends one email. It runs on its own task queue: a backlog or an
outage there never slows registration. A missing template is waited for, never dropped; a
failed notification ends FAILED and harms nothing else. Deterministic code only.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from registration.domain.email_kinds import EmailKind
    from registration.domain.statuses import DeliveryStatus
    from workflows.activity_interfaces import (
        record_delivery_failure,
        record_notification,
        send_enrollment_notification,
    )
    from workflows.contracts import (
        DeliveryFailedInput,
        DeliveryState,
        EnrollmentNotificationInput,
        NotificationState,
        RecordNotificationInput,
        SendNotificationInput,
    )
    from workflows.database_steps import local_database_step
    from workflows.email_sending import (
        email_activity_options,
        failure_reason,
        record_sent,
        send_once_rendered,
    )
    from workflows.search_attributes import EMAIL_DELIVERY_STATUS


@workflow.defn
class EnrollmentNotificationWorkflow:
    @workflow.init
    def __init__(self, input: EnrollmentNotificationInput) -> None:
        self._input = input
        self._state = NotificationState(
            notification_id=input.notification_id,
            order_id=input.enrollment.order_id,
            recipient=input.enrollment.organizer_email,
            created_at=input.requested_at,
            delivery=DeliveryState(
                delivery_id=f"{input.notification_id}.enrollment.1",
                kind=EmailKind.ENROLLMENT,
                created_at=input.requested_at,
            ),
        )

    @workflow.run
    async def run(self, input: EnrollmentNotificationInput) -> NotificationState:
        delivery = self._state.delivery
        self._publish()
        # Local activities: the database writes run in this worker, outside the task queue's
        # rate limit, which is meant for the sends alone.
        await local_database_step(
            record_notification,
            RecordNotificationInput(
                notification_id=input.notification_id,
                kind=EmailKind.ENROLLMENT,
                order_id=input.enrollment.order_id,
                recipient=input.enrollment.organizer_email,
                delivery_id=delivery.delivery_id,
                created_at=input.requested_at,
            ),
        )

        def waiting_for_template(reason: str) -> None:
            delivery.last_error = reason

        try:
            result = await send_once_rendered(
                lambda: workflow.execute_activity(
                    send_enrollment_notification,
                    SendNotificationInput(
                        delivery_id=delivery.delivery_id,
                        notification_id=input.notification_id,
                        enrollment=input.enrollment,
                    ),
                    # None: this workflow's own task queue, the notification queue.
                    **email_activity_options(input.email_retry, None),
                ),
                input.email_retry,
                waiting_for_template,
            )
        except ActivityError as err:
            reason = failure_reason(err)
            workflow.logger.warning("notification %s failed: %s", input.notification_id, reason)
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = reason
            recorded = await local_database_step(
                record_delivery_failure,
                DeliveryFailedInput(
                    delivery_id=delivery.delivery_id,
                    registration_id=None,
                    notification_id=input.notification_id,
                    kind=EmailKind.ENROLLMENT,
                    error=reason,
                ),
            )
            delivery.attempts = recorded.attempts
            self._publish()
            return self._state
        record_sent(delivery, result)
        self._publish()
        return self._state

    def _publish(self) -> None:
        workflow.upsert_search_attributes(
            [EMAIL_DELIVERY_STATUS.value_set(self._state.delivery.status.value)]
        )

    @workflow.query(name="state")
    def state(self) -> NotificationState:
        return self._state
