"""Tables and the database engine (SQLite by default, PostgreSQL through DATABASE_URL)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Dialect, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel, create_engine

from registration.status import DeliveryStatus, EmailKind, RegistrationStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC timestamp column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamp(*, nullable: bool) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable))


class User(SQLModel, table=True):
    """One row per registration; the row of a verified registration is the account."""

    __tablename__ = "users"

    id: uuid.UUID = Field(primary_key=True)
    registration_id: str = Field(unique=True, max_length=64)
    email: str = Field(index=True, max_length=254)
    # Equals `email` while the registration is pending or active and NULL once it expired:
    # a unique column that admits many NULLs lets the database itself guarantee one live
    # account per address while expired registrations stay on record.
    email_claim: str | None = Field(default=None, unique=True, max_length=254)
    status: RegistrationStatus = Field(max_length=32)
    password_hash: str | None = Field(default=None, max_length=255)
    verification_token_hash: str | None = Field(default=None, index=True, max_length=64)
    created_at: datetime = _timestamp(nullable=False)
    verified_at: datetime | None = _timestamp(nullable=True)
    expires_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


class EmailDelivery(SQLModel, table=True):
    """One row per message the service sends, updated on every attempt."""

    __tablename__ = "email_deliveries"

    id: str = Field(primary_key=True, max_length=128)
    registration_id: str = Field(foreign_key="users.registration_id", index=True, max_length=64)
    kind: EmailKind = Field(max_length=32)
    status: DeliveryStatus = Field(max_length=32)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _timestamp(nullable=False)
    sent_at: datetime | None = _timestamp(nullable=True)
    updated_at: datetime = _timestamp(nullable=False)


def build_engine(database_url: str) -> Engine:
    """An engine that several threads and processes can share safely."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(database_url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the server read while the worker writes; busy_timeout waits for the lock
        # instead of failing at once when another process holds it.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def create_schema(engine: Engine, *, attempts: int = 10) -> None:
    """Create missing tables. Several processes may do it at the same moment, each racing
    the others table by table; whoever loses a race looks again and finds the table made."""
    for attempt in range(1, attempts + 1):
        try:
            SQLModel.metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
