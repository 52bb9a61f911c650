"""A whole stack of real processes for one fault test: the Temporal dev server (a SQLite file),
the worker and the gRPC server as processes of their own, the database (SQLite or a PostgreSQL
database of this run), and an SMTP server in the test's process that can be told to go down.

Each test gets its own, so killing a part of it harms no other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import grpc
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from registration.adapters.db.engine import build_engine
from registration.adapters.db.migrate import upgrade
from registration.adapters.db.tables import EmailDelivery, User
from registration.adapters.temporal.connect import connect_temporal
from registration.devtools.launcher import UNLIMITED_CALLS, DevStack, isolated_env, stack_settings
from registration.domain.statuses import RegistrationStatus
from registration.entrypoints.grpc.client import open_channel
from registration.settings import Settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import Databases, token_of
from tests.smtp_server import ControllableSmtpServer

PASSWORD = "correct horse battery staple"
# UNAVAILABLE and a broken connection are what a client retries (see the proto).
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class ChaosStack:
    devstack: DevStack
    smtp: ControllableSmtpServer
    engine: Engine
    grpc_address: str

    @property
    def settings(self) -> Settings:
        return stack_settings(self.devstack.env)

    async def temporal_client(self) -> Client:
        return await connect_temporal(self.settings)

    def channel(self) -> grpc.aio.Channel:
        return open_channel(self.settings)

    async def call(self, method: str, request: object, *, within: float = 120) -> object:
        """The call, repeated as a client would while it answers UNAVAILABLE (a process of
        the stack restarting)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            async with self.channel() as channel:
                try:
                    return await getattr(pb_grpc.RegistrationServiceStub(channel), method)(
                        request, timeout=30
                    )
                except grpc.aio.AioRpcError as err:
                    if err.code() not in RETRYABLE:
                        raise
                    if asyncio.get_running_loop().time() > deadline:
                        raise
            await asyncio.sleep(0.3)

    async def register(self, address: str) -> str:
        reply = await self.call(
            "RegisterUser", pb.RegisterUserRequest(email=address, password=PASSWORD)
        )
        assert isinstance(reply, pb.RegisterUserResponse)
        return reply.registration_id

    async def verify(self, message: EmailMessage) -> pb.VerifyEmailResponse:
        reply = await self.call("VerifyEmail", pb.VerifyEmailRequest(token=token_of(message)))
        assert isinstance(reply, pb.VerifyEmailResponse)
        return reply

    def users(self, address: str | None = None) -> list[User]:
        with Session(self.engine) as session:
            query = select(User) if address is None else select(User).where(User.email == address)
            return list(session.exec(query).all())

    def deliveries(self) -> list[EmailDelivery]:
        with Session(self.engine) as session:
            return list(session.exec(select(EmailDelivery)).all())

    async def wait_until(self, done: object, *, what: str, within: float = 120) -> None:
        assert callable(done)
        deadline = asyncio.get_running_loop().time() + within
        while not done():
            assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
            await asyncio.sleep(0.02)

    async def wait_until_async(
        self, done: Callable[[], Awaitable[bool]], *, what: str, within: float = 120
    ) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not await done():
            assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
            await asyncio.sleep(0.02)

    def worker_log(self) -> str:
        return self.devstack.log_of("worker").read_text(errors="replace")

    def start_worker(self, name: str = "worker") -> None:
        # Only the first worker serves metrics; the others would find its port taken.
        extra = {} if name == "worker" else {"WORKER_METRICS_ADDRESS": ""}
        self.devstack.start_worker(name, extra)

    def restart_temporal(self) -> None:
        """The dev server again, on the same SQLite file and port."""
        self.devstack.start_temporal()


def addresses(name: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{name}-{run}-{i}@example.com" for i in range(count)]


def links_of(messages: list[EmailMessage]) -> set[tuple[str, str]]:
    """The (token, Message-ID) pairs the messages carry."""
    return {(token_of(m), str(m["Message-ID"])) for m in messages}


def statuses(stack: ChaosStack) -> dict[str, RegistrationStatus]:
    return {user.email: user.status for user in stack.users()}


@contextlib.asynccontextmanager
async def chaos_stack(
    tmp_path: Path, *, backend: str = "sqlite", **settings: str
) -> AsyncIterator[ChaosStack]:
    var_dir = tmp_path / "stack"
    databases = Databases(backend)
    async with ControllableSmtpServer() as smtp:
        env = {
            **isolated_env(var_dir),
            "SMTP_PORT": str(smtp.port),
            "DATABASE_URL": databases.new(var_dir / "registration.db"),
            "SERVER_METRICS_ADDRESS": "",
            "VERIFICATION_REMINDER": "false",
            "EMAIL_RETRY_INITIAL_INTERVAL": "200ms",
            "EMAIL_RETRY_MAXIMUM_INTERVAL": "1s",
            "SMTP_TIMEOUT": "2s",
            "EMAIL_SENDS_PER_SECOND": "1000",
            **UNLIMITED_CALLS,
            "HEALTH_CHECK_INTERVAL": "1s",
            **{key.upper(): value for key, value in settings.items()},
        }
        devstack = DevStack(var_dir=var_dir, env=env, ui_port=None, log_dir=var_dir / "logs")
        engine = build_engine(env["DATABASE_URL"])
        try:
            devstack.ensure_local_secrets()
            upgrade(engine)
            devstack.start_temporal()
            devstack.start_worker()
            devstack.start_server()
            yield ChaosStack(devstack, smtp, engine, env["GRPC_ADDRESS"])
        finally:
            devstack.stop_all()
            engine.dispose()
            databases.drop_all()
            for log in sorted((var_dir / "logs").glob("*.log")):
                # Shown by pytest when the test failed: what the processes said.
                print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-4000:]}")
