"""Races that only a real server stages faithfully: the expiry timer and a verification meet in
one workflow task after the worker was away."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Worker

from registration.domain.statuses import RegistrationStatus
from tests.databases import BACKENDS as DATABASE_BACKENDS
from tests.integration.harness import Stack
from tests.workflows.fakes import FAST_RETRY, FakeActivities, wait_for_sent
from workflows.contracts import RegistrationInput, VerifyEmailRequest
from workflows.registration import RegistrationWorkflow

# The repository and end-to-end path runs on both databases.
BACKENDS = DATABASE_BACKENDS


def worker(client: Client, task_queue: str, fakes: FakeActivities) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RegistrationWorkflow],
        activities=fakes.all(),
        max_cached_workflows=0,  # the returning worker replays; no sticky queue to wait out
    )


async def test_verification_after_the_deadline_is_refused_even_if_the_worker_was_away(
    stack: Stack,
) -> None:
    client = await stack.temporal_client()
    fakes = FakeActivities()
    task_queue = f"late-{uuid.uuid4()}"
    now = datetime.now(UTC)
    input = RegistrationInput(
        registration_id=f"reg-{uuid.uuid4().hex}",
        user_id=str(uuid.uuid4()),
        email="late@example.com",
        password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        requested_at=now,
        expires_at=now + timedelta(seconds=3),
        email_retry=FAST_RETRY,
    )
    async with worker(client, task_queue, fakes):
        handle = await client.start_workflow(
            RegistrationWorkflow.run, input, id=f"late-{uuid.uuid4()}", task_queue=task_queue
        )
        await wait_for_sent(handle)

    # The timer fires while no worker runs; then the click comes.
    await asyncio.sleep(4)
    late = asyncio.ensure_future(
        handle.execute_update(
            RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
        )
    )
    await asyncio.sleep(1)
    async with worker(client, task_queue, fakes):
        # Refused by the validator; or, when the click reaches the server only after the
        # workflow has expired and closed, by the server itself.
        with pytest.raises((WorkflowUpdateFailedError, RPCError)):
            await asyncio.wait_for(late, 30)
        final = await asyncio.wait_for(handle.result(), 30)

    assert final.status is RegistrationStatus.EXPIRED
    assert fakes.activated == []
    assert fakes.expired == [input.registration_id]
