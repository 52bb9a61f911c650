"""The baseline the benchmark holds the service against: bare Temporal, in the same run, with
the same worker settings (send rate, workflow cache size).

- EmptyWorkflow: what a bare `client.start_workflow` costs.
- BareRegistrationWorkflow: a registration's shape without the work: the same four activities
  (two on a send queue of their own, rate-limited alike), one update, a timeout; no database,
  no SMTP, no hashing.

    python -m bench.bare TEMPORAL_ADDRESS TASK_QUEUE SEND_QUEUE SENDS_PER_SECOND CACHED_WORKFLOWS

runs its worker (as worker.py runs ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

ACTIVITY_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bare_database_step")
async def bare_database_step() -> None:
    """Stands in for persisting, activating."""


@activity.defn(name="bare_send_step")
async def bare_send_step() -> None:
    """Stands in for an email send."""


@workflow.defn
class EmptyWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn
class BareRegistrationWorkflow:
    def __init__(self) -> None:
        self._sent = False
        self._verified = False

    @workflow.run
    async def run(self, send_queue: str, timeout_seconds: float) -> str:
        await workflow.execute_activity(bare_database_step, start_to_close_timeout=ACTIVITY_TIMEOUT)
        await workflow.execute_activity(
            bare_send_step, task_queue=send_queue, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        self._sent = True
        try:
            await workflow.wait_condition(
                lambda: self._verified, timeout=timedelta(seconds=timeout_seconds)
            )
        except TimeoutError:
            return "EXPIRED"
        await workflow.execute_activity(
            bare_send_step, task_queue=send_queue, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        return "ACTIVE"

    @workflow.update
    async def verify(self) -> str:
        # Like VerifyEmail: once the email is out, activate, then answer.
        await workflow.wait_condition(lambda: self._sent)
        await workflow.execute_activity(bare_database_step, start_to_close_timeout=ACTIVITY_TIMEOUT)
        self._verified = True
        return "ACTIVE"


async def run_worker(
    address: str, task_queue: str, send_queue: str, per_second: float, cached_workflows: int
) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as workers:
        for worker in (
            Worker(
                client,
                task_queue=task_queue,
                workflows=[EmptyWorkflow, BareRegistrationWorkflow],
                activities=[bare_database_step],
                max_cached_workflows=cached_workflows,
            ),
            Worker(
                client,
                task_queue=send_queue,
                activities=[bare_send_step],
                max_task_queue_activities_per_second=per_second,
            ),
        ):
            await workers.enter_async_context(worker)
        print("bare worker polling", flush=True)
        await stop.wait()


if __name__ == "__main__":
    address, task_queue, send_queue, per_second, cached = sys.argv[1:6]
    asyncio.run(run_worker(address, task_queue, send_queue, float(per_second), int(cached)))
