"""Helpers over the real stack that the integration tests start."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from registration.db import EmailDelivery, User
from registration.devstack import DevStack
from registration.settings import Settings
from registration.smtp_sink import first_link
from registration.temporal_connect import connect_temporal


@dataclass
class Stack:
    devstack: DevStack
    var_dir: Path
    mail_dir: Path
    engine: Engine
    grpc_address: str

    def messages_to(self, recipient: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if message["To"] == recipient:
                found.append(message)
        return found

    async def wait_for_message(
        self, recipient: str, *, count: int = 1, within: float = 30
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
        return Settings(**{k.lower(): v for k, v in self.devstack.env.items()})

    async def temporal_client(self) -> Client:
        """A client that decrypts payloads with the stack's keys."""
        return await connect_temporal(self.settings)

    def row_counts(self) -> tuple[int, int]:
        with Session(self.engine) as session:
            return (
                len(session.exec(select(User)).all()),
                len(session.exec(select(EmailDelivery)).all()),
            )


def token_of(message: EmailMessage) -> str:
    link = first_link(message)
    assert link is not None, "the email carries no link"
    return parse_qs(urlsplit(link).query)["token"][0]
