"""Reading a workflow's `state` query from the request path, for the moments before its
first activity has written the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from registration.errors import DependencyUnavailable, NotFound

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
