"""Processes killed on purpose (`kill -9`) with registrations in flight. Every registration
must reach exactly one correct end, the same in the database, in Temporal and in the mailbox."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from temporalio.client import Client

from registration.domain.email_kinds import EmailKind
from registration.domain.identifiers import workflow_id_for_registration
from registration.domain.statuses import DeliveryStatus, RegistrationStatus
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc
from tests.chaos.harness import (
    PASSWORD,
    ChaosStack,
    addresses,
    chaos_stack,
    links_of,
    statuses,
)

pytestmark = pytest.mark.chaos
COUNT = 12


async def saved_but_not_sent(stack: ChaosStack, names: list[str]) -> None:
    """Registrations in flight between "user saved" and "email sent": the relay is down."""
    await stack.smtp.go_down()
    await asyncio.gather(*(stack.register(a) for a in names))
    await stack.wait_until(
        lambda: {u.email for u in stack.users()} >= set(names), what="every user saved"
    )
    assert all(not stack.smtp.messages_to(a) for a in names)


async def every_user_gets_one_valid_link_and_verifies(stack: ChaosStack, names: list[str]) -> None:
    """Every address got its verification email: perhaps more than once (at least once), but
    always the same link and Message-ID, and that link activates the account."""
    for address in names:
        messages = await stack.smtp.wait_for(address, within=120)
        assert len(links_of(messages)) == 1, f"{address} got different links"
        verified = await stack.verify(messages[0])
        assert verified.status == pb.REGISTRATION_STATUS_ACTIVE
    assert statuses(stack) == dict.fromkeys(names, RegistrationStatus.ACTIVE)
    verification = [d for d in stack.deliveries() if d.kind is EmailKind.VERIFICATION]
    assert len(verification) == len(names)
    assert {d.status for d in verification} == {DeliveryStatus.SENT}


async def test_a_worker_killed_between_saved_and_sent_is_replaced(tmp_path: Path) -> None:
    async with chaos_stack(tmp_path) as stack:
        names = addresses("killed-worker", COUNT)
        await saved_but_not_sent(stack, names)

        stack.devstack.kill("worker")
        await stack.smtp.come_back()
        stack.start_worker()

        await every_user_gets_one_valid_link_and_verifies(stack, names)


async def test_two_workers_and_one_killed_the_survivor_finishes_everything(
    tmp_path: Path,
) -> None:
    async with chaos_stack(tmp_path) as stack:
        stack.start_worker("worker-2")
        names = addresses("survivor", COUNT)
        await saved_but_not_sent(stack, names)

        stack.devstack.kill("worker")
        await stack.smtp.come_back()

        await every_user_gets_one_valid_link_and_verifies(stack, names)
        assert "worker-2" in stack.devstack.processes
        assert stack.devstack.exited() == {}


async def test_a_killed_temporal_server_restarts_on_its_file_and_nothing_is_late(
    tmp_path: Path,
) -> None:
    timeout = timedelta(seconds=30)
    async with chaos_stack(tmp_path, verification_timeout="30s") as stack:
        to_verify, to_expire = addresses("verify", COUNT // 2), addresses("expire", COUNT // 2)
        ids = dict(
            zip(
                to_verify + to_expire,
                await asyncio.gather(*(stack.register(a) for a in to_verify + to_expire)),
                strict=True,
            )
        )
        for address in to_verify + to_expire:
            await stack.smtp.wait_for(address)

        stack.devstack.kill("temporal")
        await asyncio.sleep(2)
        stack.restart_temporal()

        # The server and the worker reconnect by themselves; the client repeats UNAVAILABLE.
        for address in to_verify:
            await stack.verify(stack.smtp.messages_to(address)[0])
        registered_at = min(u.created_at for u in stack.users())
        await stack.wait_until(
            lambda: (
                statuses(stack)
                == {
                    **dict.fromkeys(to_verify, RegistrationStatus.ACTIVE),
                    **dict.fromkeys(to_expire, RegistrationStatus.EXPIRED),
                }
            ),
            what="every registration decided",
            within=120,
        )
        # On time: nothing expired before its deadline, nor long after it.
        for user in stack.users():
            if user.status is RegistrationStatus.EXPIRED:
                assert user.updated_at >= user.expires_at
                assert user.updated_at - user.expires_at < timedelta(seconds=20)
        assert datetime.now(UTC) - registered_at < timeout + timedelta(seconds=60)

        # Temporal agrees: every workflow closed with the same end state.
        client = await stack.temporal_client()
        for address, registration_id in ids.items():
            handle = client.get_workflow_handle(workflow_id_for_registration(registration_id))
            result = await handle.result()
            expected = "ACTIVE" if address in to_verify else "EXPIRED"
            assert result["status"] == expected
        # The welcome emails went out; the expired ones got nothing more.
        for address in to_verify:
            await stack.smtp.wait_for(address, count=2)
        for address in to_expire:
            assert len(stack.smtp.messages_to(address)) == 1


async def started_registrations(client: Client, *, at_least: int) -> bool:
    counted = await client.count_workflows("WorkflowType = 'RegistrationWorkflow'")
    return counted.count >= at_least


async def test_a_server_killed_during_register_user_never_makes_a_second_account(
    tmp_path: Path,
) -> None:
    async with chaos_stack(tmp_path) as stack:
        names = addresses("retry", COUNT * 2)

        async def first_try(address: str) -> grpc.StatusCode:
            async with stack.channel() as channel:
                try:
                    await pb_grpc.RegistrationServiceStub(channel).RegisterUser(
                        pb.RegisterUserRequest(email=address, password=PASSWORD), timeout=30
                    )
                except grpc.aio.AioRpcError as err:
                    return err.code()
            return grpc.StatusCode.OK

        client = await stack.temporal_client()
        calls = [asyncio.ensure_future(first_try(a)) for a in names]
        # Killed once some registrations have started: then some calls are answered, some
        # have started their workflow but lost the answer, some never got that far.
        await stack.wait_until_async(
            lambda: started_registrations(client, at_least=len(names) // 4),
            what="some registrations started",
        )
        stack.devstack.kill("server")
        outcomes = await asyncio.gather(*calls)
        assert grpc.StatusCode.UNAVAILABLE in outcomes
        stack.devstack.start_server()

        # Each client whose call failed tries again with the same address.
        answers_lost = 0
        for address, outcome in zip(names, outcomes, strict=True):
            if outcome is grpc.StatusCode.OK:
                continue
            try:
                await stack.register(address)
            except grpc.aio.AioRpcError as err:
                # The first try had started the registration before the server died.
                assert err.code() is grpc.StatusCode.ALREADY_EXISTS
                answers_lost += 1
        print(f"first tries: {Counter(o.name for o in outcomes)}; answers lost: {answers_lost}")

        await stack.wait_until(
            lambda: {u.email for u in stack.users()} == set(names), what="every user saved"
        )
        for address in names:
            assert len(stack.users(address)) == 1, f"{address} has two accounts"
            await stack.smtp.wait_for(address)
        running = await client.count_workflows(
            "WorkflowType = 'RegistrationWorkflow' AND ExecutionStatus = 'Running'"
        )
        assert running.count == len(names)
