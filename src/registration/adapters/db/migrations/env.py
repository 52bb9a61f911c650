"""Alembic's environment: migrates the connection adapters/db/migrate.py hands over, or, when
run as `alembic` from the command line, the database of DATABASE_URL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

# The tables register themselves in SQLModel.metadata, which autogenerate compares against.
import registration.adapters.db.tables  # noqa: F401
from registration.adapters.db.engine import build_engine
from registration.settings import Settings

config = context.config
target_metadata = SQLModel.metadata
if config.config_file_name is not None:  # the alembic command line, with alembic.ini
    fileConfig(config.config_file_name)


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by copying them; batch mode writes migrations that way.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or Settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = build_engine(config.get_main_option("sqlalchemy.url") or Settings().database_url)
    with engine.begin() as connection:
        _migrate(connection)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
