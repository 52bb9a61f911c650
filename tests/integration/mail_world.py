"""The registration service wired to an SMTP server that misbehaves on cue.

Everything is real: the stack's Temporal dev server, the worker's three workers (on task queues
of their own), a SQLite database, the gRPC server, and `ControllableSmtpServer` as the relay. The
worker and the gRPC server run in the test process, so the relay can be told to refuse or go
down between two calls. Short timings (cooldown, expiry, retry budget) keep the tests quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio.client import Client

from registration.adapters.email.rendering import BUNDLED_TEMPLATES
from registration.adapters.temporal.connect import connect_temporal
from registration.bootstrap import build_activities, build_workers, connect_services
from registration.entrypoints.grpc.client import open_channel
from registration.entrypoints.grpc.server import create_server
from registration.settings import Settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.integration.harness import TEST_TOKEN, Stack, callers_for_tests
from tests.smtp_server import ControllableSmtpServer

# Registrations expire after 60 s, with the reminder at 30 s; a failing email is given up
# after 30 s of retries. Generous: the dev server ran retries about 1.5 s apart here, whatever
# the policy's shorter intervals, and ten seconds apart on a saturated machine. Resends are
# 10 s apart (longer than RegisterUser takes on a saturated machine), at most 2.
TIMINGS = {
    "verification_timeout": "60s",
    "verification_reminder_at": "0.5",
    "resend_cooldown": "10s",
    "resend_limit": "2",
    "email_retry_initial_interval": "200ms",
    "email_retry_maximum_interval": "1s",
    "email_retry_budget": "30s",
    "smtp_timeout": "2s",
    "email_sends_per_second": "1000",  # see conftest.py
}


@dataclass
class MailWorld:
    settings: Settings
    smtp: ControllableSmtpServer
    templates_dir: Path
    engine: Engine
    stub: pb_grpc.RegistrationServiceStub
    grpc_address: str

    async def temporal_client(self) -> Client:
        """A client that decrypts payloads with this world's keys."""
        return await connect_temporal(self.settings)

    async def registration(self, registration_id: str) -> pb.Registration:
        reply = await self.stub.GetRegistration(
            pb.GetRegistrationRequest(registration_id=registration_id)
        )
        return reply.registration

    async def wait_for_registration(
        self,
        registration_id: str,
        condition: Callable[[pb.Registration], bool],
        *,
        what: str,
        within: float = 60,
    ) -> pb.Registration:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            registration = await self.registration(registration_id)
            if condition(registration):
                return registration
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never {what}; last seen:\n{registration}")
            await asyncio.sleep(0.1)


async def run_mail_world(stack: Stack, root: Path, **overrides: str) -> AsyncIterator[MailWorld]:
    templates_dir = root / "templates"
    shutil.copytree(BUNDLED_TEMPLATES, templates_dir)
    async with contextlib.AsyncExitStack() as running:
        smtp = await running.enter_async_context(ControllableSmtpServer())
        values = {key.lower(): value for key, value in stack.devstack.env.items()}
        run = uuid.uuid4().hex[:8]
        values.update(
            TIMINGS,
            temporal_task_queue=f"mail-world-{run}",
            email_task_queue=f"mail-world-email-{run}",
            notification_task_queue=f"mail-world-notifications-{run}",
            database_url=stack.databases.new_migrated(root / "registration.db"),
            smtp_port=str(smtp.port),
            email_templates_dir=str(templates_dir),
        )
        # Its clients (the stub below, a web front) present the in-process server's token.
        values.update(grpc_token=TEST_TOKEN)
        values.update(overrides)
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]

        client = await connect_temporal(settings)
        activities = build_activities(settings)
        running.push_async_callback(activities.mail_sender.aclose)
        for each in build_workers(client, settings, activities):
            await running.enter_async_context(each)

        services, engine = await connect_services(settings)
        running.callback(engine.dispose)
        grpc_server, port, _ = create_server("127.0.0.1:0", services, callers=callers_for_tests())
        await grpc_server.start()
        running.push_async_callback(grpc_server.stop, None)
        channel = await running.enter_async_context(open_channel(settings, f"127.0.0.1:{port}"))
        yield MailWorld(
            settings=settings,
            smtp=smtp,
            templates_dir=templates_dir,
            engine=engine,
            stub=pb_grpc.RegistrationServiceStub(channel),
            grpc_address=f"127.0.0.1:{port}",
        )
