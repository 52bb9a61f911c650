"""Blocking database calls from async code: on a thread, off the event loop; a database that
cannot be reached raises DependencyUnavailable (on the request path: UNAVAILABLE, safe to
retry) rather than an internal error. And clean-ups that must never fail the call they follow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.sql.dml import Delete

from registration.domain.errors import DependencyUnavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (OperationalError, InterfaceError, PoolTimeoutError) as err:
        raise DependencyUnavailable("database unavailable") from err


def clean_up(engine: Engine, statement: Delete, *, what: str) -> None:
    """Runs a DELETE of rows that no longer matter in a transaction of its own, after the work
    it follows has committed: if it fails (a lock timeout, say), that work stands and the next
    clean-up tries again."""
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    except SQLAlchemyError:
        log.warning("could not forget %s; a later call will", what, exc_info=True)
