"""How workflows run an email send activity: retries, budget, rate-limited queue, templates.

Transient SMTP failures are retried by Temporal with exponential backoff until the budget
(schedule-to-close) runs out; permanent ones end the send at once. A missing or broken template
is neither: the activity reports it, and the send is scheduled again after a wait, for as long
as the workflow wants the email — it is never dropped, and a fixed template is picked up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from registration.domain.failures import TEMPLATE_PROBLEM
    from registration.domain.statuses import DeliveryStatus
    from workflows.contracts import DeliveryState, EmailRetrySettings, SendEmailResult

# The email activity heartbeats every few seconds while it talks to the relay.
SEND_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
T = TypeVar("T")


def email_retry_policy(settings: EmailRetrySettings) -> RetryPolicy:
    """Exponential backoff for email sends; the budget is enforced by schedule_to_close."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=settings.initial_interval_seconds),
        backoff_coefficient=settings.backoff_coefficient,
        maximum_interval=timedelta(seconds=settings.maximum_interval_seconds),
        maximum_attempts=0,
    )


def email_activity_options(settings: EmailRetrySettings, task_queue: str | None) -> dict[str, Any]:
    """The options of every email send activity."""
    return {
        "task_queue": task_queue,
        "start_to_close_timeout": timedelta(seconds=settings.attempt_timeout_seconds),
        "schedule_to_close_timeout": timedelta(seconds=settings.budget_seconds),
        "retry_policy": email_retry_policy(settings),
        # The send heartbeats, so a cancellation reaches it mid-conversation, and the
        # workflow goes on only once the attempt has really stopped.
        "heartbeat_timeout": SEND_HEARTBEAT_TIMEOUT,
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }


async def send_once_rendered(
    send: Callable[[], Awaitable[T]],
    settings: EmailRetrySettings,
    on_template_problem: Callable[[str], None],
) -> T:
    """Runs `send` (one email send activity) again after a template problem, waiting longer
    each time as for SMTP retries; every other failure is raised."""
    wait = settings.initial_interval_seconds
    while True:
        try:
            return await send()
        except ActivityError as err:
            if failure_type(err) != TEMPLATE_PROBLEM:
                raise
            workflow.logger.warning("email waits for its template: %s", failure_reason(err))
            on_template_problem(failure_reason(err))
        await workflow.sleep(timedelta(seconds=wait))
        wait = min(wait * settings.backoff_coefficient, settings.maximum_interval_seconds)


def record_sent(delivery: DeliveryState, result: SendEmailResult) -> None:
    """The workflow's copy of a delivery the send activity has confirmed sent."""
    delivery.status = DeliveryStatus.SENT
    delivery.attempts = result.attempts
    delivery.sent_at = result.sent_at
    delivery.message_id = result.message_id


def failure_reason(err: ActivityError) -> str:
    """The innermost failure: the SMTP reply of the last attempt, or the budget's timeout."""
    return str(_innermost(err))


def failure_type(err: ActivityError) -> str | None:
    reason = _innermost(err)
    return reason.type if isinstance(reason, ApplicationError) else None


def _innermost(err: BaseException) -> BaseException:
    while isinstance(err, FailureError) and err.cause is not None:
        err = err.cause
    return err
