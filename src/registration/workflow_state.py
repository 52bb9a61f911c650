"""Reading a workflow's `state` query from the request path, for the moments before its
first activity has written the database, and its deliveries as records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from registration.errors import DependencyUnavailable, NotFound
from registration.repository import DeliveryRecord
from workflows.contracts import DeliveryState

# How long a request waits for a worker to answer a state query.
QUERY_TIMEOUT = timedelta(seconds=5)
S = TypeVar("S")


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
        raise DependencyUnavailable(f"Temporal: {err.message}") from err
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
