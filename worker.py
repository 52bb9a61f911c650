"""Runs a Temporal worker with the registration workflow and its activities: `python worker.py`."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.worker import Worker

from activities.registration import RegistrationActivities
from registration.db import build_engine, create_schema
from registration.logs import configure_logging
from registration.mail import SmtpMailSender, TemplateRenderer
from registration.repository import RegistrationRepository
from registration.settings import Settings, load_settings
from registration.temporal_connect import connect_temporal
from workflows.registration import RegistrationWorkflow
from workflows.registration_attempt import RegistrationAttemptNoticeWorkflow

log = logging.getLogger("worker")


def build_activities(settings: Settings) -> RegistrationActivities:
    engine = build_engine(settings.database_url)
    create_schema(engine)
    return RegistrationActivities(
        repository=RegistrationRepository(engine),
        renderer=TemplateRenderer(app_name=settings.app_name),
        sender=SmtpMailSender(settings),
        secret_key=settings.resolved_secret_key(),
        public_base_url=settings.public_base_url,
        from_email=settings.smtp_from_email,
    )


async def run(settings: Settings) -> None:
    activities = build_activities(settings)
    client = await connect_temporal(settings)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[RegistrationWorkflow, RegistrationAttemptNoticeWorkflow],
        activities=[
            activities.create_pending_user,
            activities.send_email,
            activities.send_notice,
            activities.record_delivery_failure,
            activities.activate_user,
            activities.expire_user,
        ],
        # On SIGTERM running activities get this long to finish before they are cancelled.
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info(
            "worker polling task queue %r at %s",
            settings.temporal_task_queue,
            settings.temporal_address,
        )
        await stop.wait()
    log.info("worker stopped")


def main() -> None:
    settings = load_settings()
    configure_logging("worker", settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
