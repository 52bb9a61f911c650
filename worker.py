"""Runs the Temporal workers of the service: `python worker.py` (settings from the environment
and `.env`). Which workflows and activities poll which task queue: `bootstrap.build_workers`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from temporalio.runtime import Runtime

from registration import bootstrap
from registration.adapters.db.migrate import SchemaNotCurrent
from registration.adapters.temporal.connect import worker_runtime
from registration.adapters.temporal.search_attributes import SearchAttributesMissing
from registration.entrypoints.logs import configure_logging
from registration.settings import Settings, load_settings

log = logging.getLogger("worker")


async def run(settings: Settings) -> None:
    activities = bootstrap.build_activities(settings)
    client = await bootstrap.connect_client(settings, _metrics_runtime(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as workers:
        # Runs last, once the workers have stopped and no send can take a connection.
        workers.push_async_callback(activities.mail_sender.aclose)
        for worker in bootstrap.build_workers(client, settings, activities):
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
