"""Helpers over the real stack that the integration tests start."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import upgrade
from registration.adapters.db.tables import EmailDelivery, Notification, PasswordReset, User
from registration.adapters.temporal.connect import connect_temporal
from registration.devtools.launcher import DevStack, stack_settings
from registration.devtools.smtp_sink import link_token
from registration.entrypoints.grpc.callers import (
    BACK_OFFICE,
    PUBLIC,
    Callers,
    token_digest,
)
from registration.settings import GrpcClient, Settings
from tests.databases import create_postgres_database, drop_postgres_database, require_postgres


@dataclass
class Databases:
    """Databases of one backend made for a stack and the worlds beside it, dropped at the end.
    On PostgreSQL each is a new database of this run (see tests/databases.py)."""

    backend: str
    made: list[str] = field(default_factory=list)

    def new(self, sqlite_path: Path) -> str:
        """The URL of a new, empty database: the SQLite file at `sqlite_path`, or a new
        PostgreSQL database."""
        if self.backend == "sqlite":
            return f"sqlite:///{sqlite_path}"
        require_postgres()
        url = create_postgres_database()
        self.made.append(url)
        return url

    def new_migrated(self, sqlite_path: Path) -> str:
        url = self.new(sqlite_path)
        engine = build_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def drop_all(self) -> None:
        for url in self.made:
            drop_postgres_database(url)
        self.made.clear()


@dataclass
class Stack:
    devstack: DevStack
    var_dir: Path
    mail_dir: Path
    engine: Engine
    grpc_address: str
    databases: Databases

    @property
    def backend(self) -> str:
        return self.databases.backend

    def messages_to(self, recipient: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if message["To"] == recipient:
                found.append(message)
        return found

    async def wait_for_message(
        self, recipient: str, *, count: int = 1, within: float = 60
    ) -> list[EmailMessage]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            messages = self.messages_to(recipient)
            if len(messages) >= count:
                return messages
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{count} message(s) to {recipient} never arrived")
            await asyncio.sleep(0.1)

    def users(self, email_address: str) -> list[User]:
        with Session(self.engine) as session:
            return list(session.exec(select(User).where(User.email == email_address)).all())

    @property
    def settings(self) -> Settings:
        """The stack's settings, as its processes read them."""
        return stack_settings(self.devstack.env)

    async def temporal_client(self) -> Client:
        """A client that decrypts payloads with the stack's keys."""
        return await connect_temporal(self.settings)

    def row_counts(self) -> dict[str, int]:
        """Rows per table of what calls create (sign-in failure counts aside)."""
        with Session(self.engine) as session:
            return {
                table.__name__: len(session.exec(select(table)).all())
                for table in (User, EmailDelivery, PasswordReset, Notification)
            }


def token_of(message: EmailMessage) -> str:
    token = link_token(message)
    assert token is not None, "the email carries no link with a token"
    return token


# In-process servers of the tests admit this one client, with every permission.
TEST_TOKEN = "a-token-for-the-tests-own-in-process-servers"


def callers_for_tests() -> Callers:
    return Callers(
        [
            GrpcClient(
                name="tests",
                token_sha256=token_digest(TEST_TOKEN),
                permissions=[PUBLIC, BACK_OFFICE],
            )
        ]
    )


def client_settings_for_tests(**values: object) -> Settings:
    """The settings of a client of an in-process server: its token, and `values`."""
    return Settings(_env_file=None, grpc_token=TEST_TOKEN, **values)  # type: ignore[arg-type]
