"""Database fixtures shared by the unit, activity and integration tests: every test that asks
for `engine` runs twice, on SQLite and on PostgreSQL (see tests/databases.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import upgrade
from registration.settings import Settings
from tests.databases import (
    BACKENDS,
    create_postgres_database,
    drop_postgres_database,
    empty_tables,
    migrated_sqlite_template,
    require_postgres,
    sqlite_copy,
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this run on the PostgreSQL server, migrated to head."""
    require_postgres()
    url = create_postgres_database()
    engine = build_engine(url)
    try:
        upgrade(engine)
        yield url
    finally:
        engine.dispose()
        drop_postgres_database(url)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a migrated, empty database of each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        url = sqlite_copy(template, tmp_path / "db.sqlite")
    else:
        url = request.getfixturevalue("postgres_url")
    engine = build_engine(url)
    if request.param == "postgresql":
        empty_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings as the code's defaults make them: no variable of the developer's shell and no
    `.env` of the repository leaks in."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
