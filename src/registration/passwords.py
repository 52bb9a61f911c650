"""Password hashing with argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher, Type

from registration.settings import Settings


def build_password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_cost_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )
