"""How workflows run their database writes (persist, activate, expire, record): short steps
retried for as long as the database does not answer, never given up on while it is away — a
registration must not stop half-written.

They run as local activities: inside the workflow task that asks for them, in the worker that
runs the workflow, with no dispatch through the Temporal server and no extra workflow task,
so the Temporal server does less for each registration (docs/performance.md). Workflows that
started before ran them as ordinary activities; `workflow.patched` keeps those replaying as
they ran (docs/changing-workflows.md). Their retries are not listed as pending activities in
Temporal: the worker's log shows each attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from registration.domain.failures import EMAIL_ALREADY_REGISTERED

DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[EMAIL_ALREADY_REGISTERED],
)
DATABASE_TIMEOUT = timedelta(seconds=30)
# Retries of a local activity within this wait in the worker, keeping the workflow task open
# (and adding its heartbeat events to the history); longer waits become durable timers, so a
# database away for hours does not grow the history by the minute.
LOCAL_RETRY_THRESHOLD = timedelta(seconds=5)
# The patch that moved the database steps from ordinary to local activities.
LOCAL_DATABASE_STEPS = "database-steps-as-local-activities"

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


async def database_step(activity: Callable[[I], Awaitable[O]], arg: I) -> O:
    """Runs one database activity (declared in activity_interfaces) with `arg`."""
    if workflow.patched(LOCAL_DATABASE_STEPS):
        return await local_database_step(activity, arg)
    return await workflow.execute_activity(
        activity, arg, start_to_close_timeout=DATABASE_TIMEOUT, retry_policy=DATABASE_RETRY
    )


async def local_database_step(activity: Callable[[I], Awaitable[O]], arg: I) -> O:
    """Runs one database activity as a local activity (for workflows that always did)."""
    return await workflow.execute_local_activity(
        activity,
        arg,
        start_to_close_timeout=DATABASE_TIMEOUT,
        retry_policy=DATABASE_RETRY,
        local_retry_threshold=LOCAL_RETRY_THRESHOLD,
    )
