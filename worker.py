"""Runs the Temporal workers of the service: `python worker.py`.

Three workers in one process, one per task queue:
- TEMPORAL_TASK_QUEUE: the registration and password reset workflows and their database
  activities;
- EMAIL_TASK_QUEUE: their email sends, where Temporal enforces EMAIL_SENDS_PER_SECOND across
  every worker of the fleet, so a burst of registrations cannot get the sending domain
  throttled;
- NOTIFICATION_TASK_QUEUE: the organizer notifications, apart, so that a backlog or an outage
  there never slows registration (NOTIFICATION_SENDS_PER_SECOND).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.mailer import RecordedMailer
from activities.notifications import NotificationActivities
from activities.password_reset import PasswordResetActivities
from activities.registration import RegistrationActivities
from registration.db import build_engine
from registration.logs import configure_logging
from registration.mail import SmtpMailSender, TemplateRenderer
from registration.metrics import worker_runtime
from registration.migrate import SchemaNotCurrent, require_current_schema
from registration.notification_repository import NotificationRepository
from registration.repository import RegistrationRepository
from registration.reset_repository import PasswordResetRepository
from registration.search_attribute_setup import SearchAttributesMissing, ensure_search_attributes
from registration.settings import Settings, load_settings
from registration.temporal_connect import connect_temporal
from registration.throttle_repository import SignInThrottleRepository
from workflows.account_email import AccountEmailWorkflow
from workflows.enrollment_notification import EnrollmentNotificationWorkflow
from workflows.password_reset import PasswordResetWorkflow
from workflows.registration import RegistrationWorkflow
from workflows.registration_attempt import RegistrationAttemptNoticeWorkflow

log = logging.getLogger("worker")
# On SIGTERM running activities get this long to finish before they are cancelled.
SHUTDOWN_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class Activities:
    registration: RegistrationActivities
    password_reset: PasswordResetActivities
    notifications: NotificationActivities
    # Shared by the activities that send email; its open connections end at shutdown.
    mail_sender: SmtpMailSender


def build_activities(settings: Settings) -> Activities:
    engine = build_engine(settings.database_url)
    require_current_schema(engine)
    repository = RegistrationRepository(engine)
    resets = PasswordResetRepository(engine)
    secret_key = settings.resolved_secret_key()
    sender = SmtpMailSender(settings)
    mailer = RecordedMailer(
        repository=repository,
        renderer=TemplateRenderer(
            app_name=settings.app_name,
            sender_name=settings.smtp_from_name,
            templates_dir=settings.email_templates_dir,
        ),
        sender=sender,
        from_email=settings.smtp_from_email,
    )
    return Activities(
        registration=RegistrationActivities(
            repository=repository,
            resets=resets,
            mailer=mailer,
            secret_key=secret_key,
            public_base_url=settings.public_base_url,
        ),
        password_reset=PasswordResetActivities(
            resets=resets,
            throttle=SignInThrottleRepository(engine),
            secret_key=secret_key,
        ),
        notifications=NotificationActivities(
            notifications=NotificationRepository(engine),
            mailer=mailer,
            enrollment_subject=settings.enrollment_subject,
            enrollment_sender=settings.enrollment_from(),
        ),
        mail_sender=sender,
    )


def build_workers(client: Client, settings: Settings, activities: Activities) -> list[Worker]:
    registration, reset, notifications = (
        activities.registration,
        activities.password_reset,
        activities.notifications,
    )
    return [
        Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[
                RegistrationWorkflow,
                RegistrationAttemptNoticeWorkflow,
                PasswordResetWorkflow,
                AccountEmailWorkflow,
            ],
            activities=[
                registration.create_pending_user,
                registration.start_new_verification,
                registration.record_delivery_failure,
                registration.activate_user,
                registration.expire_user,
                reset.open_password_reset,
                reset.complete_password_reset,
                reset.expire_password_reset,
            ],
            max_cached_workflows=settings.worker_max_cached_workflows,
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
        ),
        Worker(
            client,
            task_queue=settings.email_task_queue,
            activities=[registration.send_email, registration.send_notice],
            max_task_queue_activities_per_second=settings.email_sends_per_second,
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
        ),
        Worker(
            client,
            task_queue=settings.notification_task_queue,
            workflows=[EnrollmentNotificationWorkflow],
            # The database writes run as local activities, outside the rate limit.
            activities=[
                notifications.record_notification,
                notifications.send_enrollment_notification,
                registration.record_delivery_failure,
            ],
            max_task_queue_activities_per_second=settings.notification_sends_per_second,
            max_cached_workflows=settings.worker_max_cached_workflows,
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
        ),
    ]


async def run(settings: Settings) -> None:
    activities = build_activities(settings)
    client = await connect_temporal(settings, _metrics_runtime(settings))
    await ensure_search_attributes(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as workers:
        # Runs last, once the workers have stopped and no send can take a connection.
        workers.push_async_callback(activities.mail_sender.aclose)
        for worker in build_workers(client, settings, activities):
            await workers.enter_async_context(worker)
        log.info(
            "worker polling task queues %r, %r (emails, at most %g/s) and %r "
            "(notifications, at most %g/s) at %s",
            settings.temporal_task_queue,
            settings.email_task_queue,
            settings.email_sends_per_second,
            settings.notification_task_queue,
            settings.notification_sends_per_second,
            settings.temporal_address,
        )
        await stop.wait()
    log.info("worker stopped")


def _metrics_runtime(settings: Settings) -> Runtime | None:
    address = settings.worker_metrics_address
    try:
        runtime = worker_runtime(address)
    except Exception as err:
        # Metrics are an aid: a worker does not stop working for want of them.
        log.error("metrics not exported at %s: %s", address, err)
        return None
    if runtime is not None:
        log.info("Temporal SDK metrics at http://%s/metrics", address)
    return runtime


def main() -> None:
    settings = load_settings()
    configure_logging("worker", settings.log_level, settings.log_format)
    try:
        asyncio.run(run(settings))
    except (SchemaNotCurrent, SearchAttributesMissing) as err:
        raise SystemExit(f"worker: {err}") from None


if __name__ == "__main__":
    main()
