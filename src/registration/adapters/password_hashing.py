"""Password hashing with argon2id."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher, Type

from registration.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

# argon2 is slow on purpose and CPU-bound: it gets threads of its own, one per core, so hashes
# queue behind each other instead of taking the shared threads that database calls wait for.
_HASHING = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


def build_password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_cost_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )


async def in_hashing_thread(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs a hash or a verification off the event loop, on the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(
        _HASHING, functools.partial(call, *args, **kwargs)
    )
