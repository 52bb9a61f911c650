"""The database schema, owned by Alembic migrations.

    python -m registration.adapters.db.migrate [upgrade [REVISION]]   pending migrations (default)
    python -m registration.adapters.db.migrate check                  exit 1 unless current
    python -m registration.adapters.db.migrate current                the database's revision
    python -m registration.adapters.db.migrate downgrade REVISION     step back (`base`: empty)

`make run` and the production stack's migration step run `upgrade` before anything else; the
gRPC server and the worker only check, and refuse to start on a schema that is not current.
Several upgrades at once are safe: they take turns (an advisory lock on PostgreSQL, a file lock
beside a SQLite file).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError

from registration.adapters.db.engine import build_engine
from registration.settings import load_settings

# Any fixed number: the key of the PostgreSQL advisory lock that serializes migrations.
_PG_LOCK_KEY = 7_461_239_001


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the one this version of the code needs."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "registration.adapters.db:migrations")
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _one_at_a_time(engine), engine.begin() as connection:
        _refuse_unversioned_tables(connection)
        _run(connection, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    with _one_at_a_time(engine), engine.begin() as connection:
        _run(connection, lambda config: command.downgrade(config, revision))


def require_current_schema(engine: Engine) -> None:
    """Raises SchemaNotCurrent, saying what to do, unless the schema is at the head revision."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    state = "has no schema yet" if current is None else f"is at schema revision {current}"
    raise SchemaNotCurrent(
        f"the database {where} {state}; this version needs {head}: apply the migrations "
        "first with `python -m registration.adapters.db.migrate` (or `make migrate`)"
    )


def _run(connection: Connection, step: object) -> None:
    assert callable(step)
    config = alembic_config()
    config.attributes["connection"] = connection
    step(config)


def _refuse_unversioned_tables(connection: Connection) -> None:
    """A database made before migrations owned the schema has the tables but no version:
    migrating it from nothing would fail halfway, so say so first."""
    names = set(inspect(connection).get_table_names())
    if "users" in names and "alembic_version" not in names:
        raise SchemaNotCurrent(
            "the database has tables but no migration history (made by an older version): "
            "remove it (`make clean` removes the local one under var/) and migrate again"
        )


@contextlib.contextmanager
def _one_at_a_time(engine: Engine) -> Iterator[None]:
    url = make_url(str(engine.url))
    if url.get_backend_name() == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                connection.commit()
    elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        lock_path = Path(f"{url.database}.migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    else:
        yield


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m registration.adapters.db.migrate",
        description="Apply or inspect the database migrations of DATABASE_URL.",
    )
    steps = parser.add_subparsers(dest="step")
    up = steps.add_parser("upgrade", help="apply pending migrations (the default)")
    up.add_argument("revision", nargs="?", default="head")
    down = steps.add_parser("downgrade", help="revert to REVISION (`base`: no schema)")
    down.add_argument("revision")
    steps.add_parser("current", help="print the database's revision")
    steps.add_parser("check", help="exit 1 unless the schema is at the head revision")
    args = parser.parse_args(argv)

    settings = load_settings(needs_secrets=False)
    engine = build_engine(settings.database_url)
    try:
        if args.step in (None, "upgrade"):
            upgrade(engine, getattr(args, "revision", "head"))
            print(f"database at revision {current_revision(engine)}")
        elif args.step == "downgrade":
            downgrade(engine, args.revision)
            print(f"database at revision {current_revision(engine) or 'base'}")
        elif args.step == "current":
            print(current_revision(engine) or "base")
        else:
            require_current_schema(engine)
            print(f"database at revision {head_revision()}: current")
    except SchemaNotCurrent as err:
        sys.exit(f"error: {err}")
    except OperationalError as err:
        where = engine.url.render_as_string(hide_password=True)
        sys.exit(f"error: cannot reach the database {where}: {err.orig or err}")
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
