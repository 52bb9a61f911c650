"""How the services call Temporal, in one place: a Temporal that cannot serve answers
UNAVAILABLE (safe to retry), an update waits a bounded time, and a workflow's `state` query
serves the moments before its first activity has written the database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from registration.domain.errors import DependencyUnavailable, NotFound
from registration.domain.records import DeliveryRecord
from workflows.contracts import DeliveryState

# How long a request waits for a worker to answer a state query.
QUERY_TIMEOUT = timedelta(seconds=5)
S = TypeVar("S")


class WorkflowClosed(Exception):
    """No running workflow has this ID: it has closed, or it never ran."""


def temporal_unavailable(err: RPCError) -> DependencyUnavailable:
    return DependencyUnavailable(f"Temporal: {err.message}")


@contextlib.contextmanager
def calling_temporal() -> Iterator[None]:
    """Calls to Temporal inside: an RPC error not handled inside means Temporal cannot serve
    now."""
    try:
        yield
    except RPCError as err:
        raise temporal_unavailable(err) from err


async def execute_update(
    handle: WorkflowHandle[Any, Any],
    update: UpdateMethodMultiParam[[Any, Any], Any],
    arg: Any,
    *,
    within: timedelta,
    unavailable: str,
) -> Any:
    """Sends `update` with `arg` and waits at most `within` for its result.

    The workflow's refusal comes out as WorkflowUpdateFailedError, for the caller to map; no
    running workflow as WorkflowClosed; no answer in time as DependencyUnavailable with the
    message `unavailable` (every worker busy, or none running: the update may still complete
    later, and repeating the call is safe either way)."""
    try:
        async with asyncio.timeout(within.total_seconds()):
            return await handle.execute_update(update, arg)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        raise DependencyUnavailable(unavailable) from err
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise WorkflowClosed from err
        raise temporal_unavailable(err) from err


async def query_state(
    handle: WorkflowHandle[Any, Any],
    query: Callable[[Any], S] | Callable[[Any], Awaitable[S]],
    *,
    what: str,
) -> S:
    """The workflow's state; NOT_FOUND when there is no such workflow, UNAVAILABLE when no
    worker answers in time."""
    try:
        state: S = await handle.query(query, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no such {what}") from err
        raise temporal_unavailable(err) from err
    except WorkflowQueryFailedError as err:
        raise DependencyUnavailable(f"the {what}'s state cannot be read now") from err
    return state


def delivery_from_state(delivery: DeliveryState, owner_created_at: datetime) -> DeliveryRecord:
    """A delivery as a workflow knows it, before the database does."""
    return DeliveryRecord(
        delivery_id=delivery.delivery_id,
        kind=delivery.kind,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        created_at=delivery.created_at or owner_created_at,
        sent_at=delivery.sent_at,
        message_id=delivery.message_id,
    )
