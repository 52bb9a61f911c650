"""The one composition root: from one Settings, the collaborators of the gRPC server (the
services) and of the worker (the activities, and which workflows and activities poll which
task queue). `server.py` and `worker.py` run what this builds; tests build with it too.

Nothing is built at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.mailer import RecordedMailer
from activities.notifications import NotificationActivities
from activities.password_reset import PasswordResetActivities
from activities.registration import RegistrationActivities
from registration.adapters.db.deliveries import DeliveryRepository
from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import require_current_schema
from registration.adapters.db.notifications import NotificationRepository
from registration.adapters.db.password_resets import PasswordResetRepository
from registration.adapters.db.rate_limits import RateLimitRepository
from registration.adapters.db.registrations import RegistrationRepository
from registration.adapters.db.sign_in_throttle import SignInThrottleRepository
from registration.adapters.email.rendering import TemplateRenderer
from registration.adapters.email.smtp import SmtpMailSender
from registration.adapters.password_hashing import build_password_hasher
from registration.adapters.temporal.connect import connect_temporal
from registration.adapters.temporal.search_attributes import ensure_search_attributes
from registration.services.abuse_limits import AbuseLimits
from registration.services.notifications import NotificationService
from registration.services.password_reset import PasswordResetService
from registration.services.registration import RegistrationService
from registration.services.sign_in import SignInService
from registration.services.use_cases import Services
from registration.settings import Settings
from workflows.account_email import AccountEmailWorkflow
from workflows.enrollment_notification import EnrollmentNotificationWorkflow
from workflows.password_reset import PasswordResetWorkflow
from workflows.registration import RegistrationWorkflow
from workflows.registration_attempt import RegistrationAttemptNoticeWorkflow
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES
from workflows.signal_guard import SignalGuard

# On SIGTERM running activities get this long to finish before they are cancelled.
WORKER_SHUTDOWN_GRACE = timedelta(seconds=10)


def open_database(settings: Settings) -> Engine:
    """The engine of DATABASE_URL, once its schema is current (SchemaNotCurrent if not)."""
    engine = build_engine(settings.database_url)
    require_current_schema(engine)
    return engine


async def connect_client(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A Temporal client whose namespace knows the workflows' search attributes: workflows
    start and run with them, and an attribute the server does not know fails the task."""
    client = await connect_temporal(settings, runtime)
    await ensure_search_attributes(client, SEARCH_ATTRIBUTES)
    return client


def build_services(settings: Settings, client: Client, engine: Engine) -> Services:
    """The services of the gRPC server over one Temporal client and one database engine."""
    repository = RegistrationRepository(engine)
    hasher = build_password_hasher(settings)
    secret_key = settings.resolved_secret_key()
    limits = AbuseLimits(
        settings=settings, limits=RateLimitRepository(engine), secret_key=secret_key
    )
    return Services(
        registration=RegistrationService(
            settings=settings,
            client=client,
            repository=repository,
            limits=limits,
            hasher=hasher,
            secret_key=secret_key,
        ),
        sign_in=SignInService(
            settings=settings,
            repository=repository,
            throttle=SignInThrottleRepository(engine),
            limits=limits,
            hasher=hasher,
            secret_key=secret_key,
        ),
        password_reset=PasswordResetService(
            settings=settings,
            client=client,
            resets=PasswordResetRepository(engine),
            limits=limits,
            hasher=hasher,
            secret_key=secret_key,
        ),
        notifications=NotificationService(
            settings=settings,
            client=client,
            notifications=NotificationRepository(engine),
            limits=limits,
        ),
    )


async def connect_services(settings: Settings) -> tuple[Services, Engine]:
    """The gRPC server's services, connected: the engine is the caller's to dispose of."""
    engine = open_database(settings)
    client = await connect_client(settings)
    return build_services(settings, client, engine), engine


@dataclass(frozen=True)
class Activities:
    registration: RegistrationActivities
    password_reset: PasswordResetActivities
    notifications: NotificationActivities
    # Shared by the activities that send email; its open connections end at shutdown.
    mail_sender: SmtpMailSender


def build_activities(settings: Settings) -> Activities:
    """The worker's activities over one database engine and one SMTP sender."""
    engine = open_database(settings)
    repository = RegistrationRepository(engine)
    deliveries = DeliveryRepository(engine)
    resets = PasswordResetRepository(engine)
    secret_key = settings.resolved_secret_key()
    sender = SmtpMailSender(settings)
    mailer = RecordedMailer(
        deliveries=deliveries,
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
            deliveries=deliveries,
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
    """Three workers, one per task queue:

    - TEMPORAL_TASK_QUEUE: the registration and password reset workflows and their database
      activities;
    - EMAIL_TASK_QUEUE: their email sends, where Temporal enforces EMAIL_SENDS_PER_SECOND
      across every worker of the fleet, so a burst of registrations cannot get the sending
      domain throttled;
    - NOTIFICATION_TASK_QUEUE: the organizer notifications, apart, so that a backlog or an
      outage there never slows registration (NOTIFICATION_SENDS_PER_SECOND).
    """
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
            graceful_shutdown_timeout=WORKER_SHUTDOWN_GRACE,
            interceptors=[SignalGuard()],
        ),
        Worker(
            client,
            task_queue=settings.email_task_queue,
            activities=[registration.send_email, registration.send_notice],
            max_task_queue_activities_per_second=settings.email_sends_per_second,
            graceful_shutdown_timeout=WORKER_SHUTDOWN_GRACE,
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
            graceful_shutdown_timeout=WORKER_SHUTDOWN_GRACE,
            interceptors=[SignalGuard()],
        ),
    ]
