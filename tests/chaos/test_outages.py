"""Outages of what the stack depends on, with registrations in flight: the SMTP relay down and
back, or answering 4xx then 5xx; the database unreachable for a while. Activities retry,
nothing is half-written, every registration ends as it should."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from registration.domain.email_kinds import EmailKind
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.chaos.harness import ChaosStack, addresses, chaos_stack, links_of, statuses
from tests.databases import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.chaos
COUNT = 10


async def test_smtp_down_for_a_while_then_back_every_email_goes_out(tmp_path: Path) -> None:
    async with chaos_stack(tmp_path) as stack:
        names = addresses("relay-down", COUNT)
        await stack.smtp.go_down()
        await asyncio.gather(*(stack.register(a) for a in names))
        await asyncio.sleep(5)  # several attempts each, all refused
        assert all(not stack.smtp.messages_to(a) for a in names)
        await stack.smtp.come_back()

        for address in names:
            messages = await stack.smtp.wait_for(address, within=60)
            assert len(links_of(messages)) == 1
        await stack.wait_until(
            lambda: {d.status for d in stack.deliveries()} == {DeliveryStatus.SENT},
            what="every delivery SENT",
        )
        assert min(d.attempts for d in stack.deliveries()) >= 2


async def test_smtp_answering_4xx_then_5xx_ends_failed_at_the_5xx(tmp_path: Path) -> None:
    async with chaos_stack(tmp_path) as stack:
        [address] = addresses("soft-then-hard", 1)
        stack.smtp.fail_next(2, "451 4.7.1 try again later", recipient=address)
        registration_id = await stack.register(address)
        # Then the relay turns to a permanent refusal (the retry comes 400 ms later at least).
        await stack.wait_until(lambda: stack.smtp.attempts(address) == 2, what="two 451s")
        stack.smtp.refuse_always("550 5.1.1 mailbox unavailable", recipient=address)

        async def delivery() -> pb.EmailDelivery:
            reply = await stack.call(
                "GetRegistration", pb.GetRegistrationRequest(registration_id=registration_id)
            )
            assert isinstance(reply, pb.GetRegistrationResponse)
            return reply.registration.deliveries[0]

        async def failed() -> bool:
            return (await delivery()).status == pb.DELIVERY_STATUS_FAILED

        await stack.wait_until_async(failed, what="the delivery FAILED", within=60)
        failed = await delivery()
        assert failed.attempts == 3 == stack.smtp.attempts(address)
        assert "550" in failed.last_error
        assert stack.users(address)[0].status is RegistrationStatus.PENDING_VERIFICATION


@contextmanager
def postgres_database_down(database_url: str) -> Iterator[None]:
    """This run's database refuses connections and its open ones are ended, as when the
    database server goes away; the server itself (shared with others) keeps running."""
    name = make_url(database_url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def nothing_half_written(stack: ChaosStack, names: list[str]) -> None:
    users = stack.users()
    assert sorted(u.email for u in users) == sorted(names)
    deliveries = stack.deliveries()
    by_registration = {d.registration_id for d in deliveries if d.kind is EmailKind.VERIFICATION}
    for user in users:
        assert user.verification_token_hash is not None
        assert user.registration_id in by_registration


async def test_the_database_unreachable_for_a_while_then_back(tmp_path: Path) -> None:
    async with chaos_stack(tmp_path, backend="postgresql") as stack:
        names = addresses("db-down", COUNT)
        ids = await asyncio.gather(*(stack.register(a) for a in names))
        database_url = stack.devstack.env["DATABASE_URL"]

        with postgres_database_down(database_url):
            # Reads answer UNAVAILABLE (safe to retry), never an internal error.
            async with stack.channel() as channel:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await pb_grpc.RegistrationServiceStub(channel).GetRegistration(
                        pb.GetRegistrationRequest(registration_id=ids[0]), timeout=30
                    )
                assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            # The database steps fail and are retried meanwhile. They run as local activities,
            # which Temporal does not list as pending: the worker's log shows the retries.
            retried = re.compile(r"'activity_type': '\w+', 'attempt': ([2-9]|\d\d)\b")
            await stack.wait_until(
                lambda: retried.search(stack.worker_log()) is not None,
                what="a database step retried",
                within=60,
            )

        # Back: every persist, send and record completes; nothing was lost or doubled.
        for address in names:
            messages = await stack.smtp.wait_for(address, within=120)
            assert len(links_of(messages)) == 1
            await stack.verify(messages[0])
        assert statuses(stack) == dict.fromkeys(names, RegistrationStatus.ACTIVE)
        nothing_half_written(stack, names)
