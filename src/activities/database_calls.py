"""How activities call the stores: off the event loop, and a broken invariant (a row that must
exist does not) is not retried — no retry can mend it, and it must be seen.

A database that cannot be reached is retried by Temporal like any other failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from registration.adapters.db.calls import in_thread
from registration.domain.failures import INVARIANT_VIOLATED

P = ParamSpec("P")
T = TypeVar("T")


async def run_db(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return await in_thread(call, *args, **kwargs)
    except (LookupError, ValueError) as err:
        raise ApplicationError(str(err), type=INVARIANT_VIOLATED, non_retryable=True) from err
