"""The Alembic migrations own the schema, on SQLite and on PostgreSQL: an empty database
upgraded to head has exactly the models' schema, downgrade and upgrade round-trip, upgrades
started at once take turns, and the services refuse to start on a schema that is not current."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import (
    SchemaNotCurrent,
    current_revision,
    downgrade,
    head_revision,
    require_current_schema,
    upgrade,
)
from tests.databases import (
    BACKENDS,
    create_postgres_database,
    drop_postgres_database,
    require_postgres,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database with nothing in it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    require_postgres()
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def empty(empty_url: str) -> Iterator[Engine]:
    engine = build_engine(empty_url)
    yield engine
    engine.dispose()


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_an_empty_database_upgraded_to_head_has_the_models_schema(empty: Engine) -> None:
    assert current_revision(empty) is None
    upgrade(empty)
    assert current_revision(empty) == head_revision()
    assert schema_diff(empty) == []
    assert tables(empty) >= {t.name for t in SQLModel.metadata.sorted_tables}
    require_current_schema(empty)  # passes


def test_downgrade_and_upgrade_round_trip(empty: Engine) -> None:
    upgrade(empty)
    downgrade(empty, "base")
    assert current_revision(empty) is None
    assert tables(empty) <= {"alembic_version"}
    upgrade(empty)
    assert schema_diff(empty) == []
    upgrade(empty)  # nothing pending: nothing happens
    assert current_revision(empty) == head_revision()


def test_the_schema_check_says_what_to_do(empty: Engine) -> None:
    with pytest.raises(
        SchemaNotCurrent, match=r"has no schema yet.*registration\.adapters\.db\.migrate"
    ):
        require_current_schema(empty)


def test_a_database_made_before_migrations_is_refused_plainly(empty: Engine) -> None:
    SQLModel.metadata.create_all(empty)
    with pytest.raises(SchemaNotCurrent, match="no migration history"):
        upgrade(empty)


def run(args: list[str], database_url: str, var_dir: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY_FILE": str(var_dir / "secret.key"),
        "PAYLOAD_KEYS_FILE": str(var_dir / "payload.keys"),
        # Never reached: the schema check comes first.
        "TEMPORAL_ADDRESS": "127.0.0.1:9",
        "TEMPORAL_CONNECT_TIMEOUT": "1s",
    }
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_upgrades_started_at_once_take_turns(empty_url: str, tmp_path: Path) -> None:
    racers = [
        run(["-m", "registration.adapters.db.migrate"], empty_url, tmp_path) for _ in range(3)
    ]
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        assert f"database at revision {head_revision()}" in out
    engine = build_engine(empty_url)
    assert schema_diff(engine) == []
    engine.dispose()


def test_server_and_worker_refuse_to_start_on_an_out_of_date_schema(
    empty_url: str, tmp_path: Path
) -> None:
    check = run(["-m", "registration.adapters.db.migrate", "check"], empty_url, tmp_path)
    _, err = check.communicate(timeout=60)
    assert check.returncode == 1 and "has no schema yet" in err

    for entry_point in ("server.py", "worker.py"):
        process = run([str(ROOT / entry_point)], empty_url, tmp_path)
        _, err = process.communicate(timeout=60)
        assert process.returncode != 0
        assert "apply the migrations first with `python -m registration.adapters.db.migrate`" in err
