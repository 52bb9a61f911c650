"""The database engine: SQLite by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import create_engine


def build_engine(database_url: str) -> Engine:
    """An engine that several threads and processes can share safely."""
    url = make_url(database_url)
    # hide_parameters: a database error's text never carries the statement's values (an
    # address, a password hash), so it can be logged and passed to Temporal as it is.
    if url.get_backend_name() != "sqlite":
        return create_engine(database_url, pool_pre_ping=True, hide_parameters=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        database_url,
        connect_args={"check_same_thread": False, "timeout": 30},
        hide_parameters=True,
    )

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
