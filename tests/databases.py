"""The databases the tests run against: a SQLite file, and the PostgreSQL server of
TEST_POSTGRES_URL (default: the local one, database `test`, trust auth).

Every test run makes databases of its own on that server (named `regtest_<time>_<random>`) and
drops them at the end, so runs side by side never meet; databases left by a run that was
killed are dropped by a later run once they are two hours old. Where no PostgreSQL answers,
the tests that need it skip and say why, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlmodel import SQLModel

from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")
_PREFIX = "regtest_"
_STALE_AFTER_SECONDS = 2 * 3600


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as err:
        return f"{make_url(POSTGRES_ADMIN_URL).render_as_string()}: {err}".splitlines()[0]
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    """Skip the test (fail it under CI=true) when PostgreSQL is not reachable."""
    reason = postgres_unreachable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the PostgreSQL tests must run, but {reason}")
    pytest.skip(f"no PostgreSQL reachable ({reason}); set TEST_POSTGRES_URL to run these")


def _admin() -> Engine:
    return create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_postgres_database() -> str:
    """A new, empty database; its URL."""
    name = f"{_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    admin = _admin()
    try:
        with admin.connect() as connection:
            _drop_stale(connection)
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url: URL = make_url(POSTGRES_ADMIN_URL).set(database=name)
    return url.render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    assert name is not None and name.startswith(_PREFIX)
    admin = _admin()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _drop_stale(connection: object) -> None:
    rows = connection.execute(  # type: ignore[attr-defined]
        text("SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
        {"prefix": f"{_PREFIX}%"},
    )
    now = time.time()
    for (name,) in rows.all():
        try:
            created = int(name.removeprefix(_PREFIX).split("_", 1)[0])
        except ValueError:
            continue
        if now - created > _STALE_AFTER_SECONDS:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # type: ignore[attr-defined]


def migrated_sqlite_template(folder: Path) -> Path:
    """A SQLite file migrated to head, to copy for each test (a copy is faster than migrating)."""
    path = folder / "template.db"
    engine = build_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def sqlite_copy(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def empty_tables(engine: Engine) -> None:
    """Every table of the models emptied, the migration history kept: a PostgreSQL database
    migrated once per run starts each test as new."""
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} CASCADE"))
