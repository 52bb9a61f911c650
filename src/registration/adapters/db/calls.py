"""Blocking database calls from async code: on a thread, off the event loop; a database that
cannot be reached raises DependencyUnavailable (on the request path: UNAVAILABLE, safe to
retry) rather than an internal error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from registration.domain.errors import DependencyUnavailable

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (OperationalError, InterfaceError, PoolTimeoutError) as err:
        raise DependencyUnavailable("database unavailable") from err
