"""Rotating the payload key does not strand running registrations: a workflow written under
the old key is finished by workers holding the new key first and the old one beside it."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from registration.adapters.temporal.payload_codec import (
    KEY_ID_METADATA,
    REFUSED_ENCODING,
    EncryptionCodec,
    PayloadKeys,
    encrypted_data_converter,
)
from registration.domain.statuses import RegistrationStatus
from tests.workflows.fakes import (
    FakeActivities,
    registration_input,
    wait_for_sent,
)
from workflows.contracts import VerifyEmailRequest
from workflows.registration import RegistrationWorkflow

OLD = PayloadKeys.generate_entry("old")
NEW = PayloadKeys.generate_entry("new")


def client_with(env: WorkflowEnvironment, keys: str) -> Client:
    return Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=encrypted_data_converter(PayloadKeys.parse(keys)),
    )


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RegistrationWorkflow],
        activities=FakeActivities().all(),
        # No cache: every workflow task replays the whole history, old-key payloads included.
        max_cached_workflows=0,
    )


async def test_history_written_under_the_old_key_decodes_after_rotation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    task_queue = f"rotation-{uuid.uuid4()}"
    before, after = (
        client_with(time_skipping_env, OLD),
        client_with(time_skipping_env, f"{NEW},{OLD}"),
    )
    input = await registration_input(time_skipping_env)

    async with worker(before, task_queue):
        handle = await before.start_workflow(
            RegistrationWorkflow.run, input, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        await wait_for_sent(handle)

    async with worker(after, task_queue):
        rotated = after.get_workflow_handle_for(RegistrationWorkflow.run, handle.id)
        result = await rotated.execute_update(
            RegistrationWorkflow.verify_email, VerifyEmailRequest(input.registration_id)
        )
        assert result.status is RegistrationStatus.ACTIVE
        final = await rotated.result()
        assert final.status is RegistrationStatus.ACTIVE

    history = await rotated.fetch_history()
    key_ids = [
        p.metadata[KEY_ID_METADATA].decode()
        for event in history.events
        for attrs in (
            event.workflow_execution_started_event_attributes,
            event.activity_task_scheduled_event_attributes,
        )
        for p in attrs.input.payloads
    ]
    assert key_ids[0] == "old" and key_ids[-1] == "new"
    assert set(key_ids) == {"old", "new"}

    # Without the old key the start event's input is unreadable: the old key must stay
    # configured until every workflow written under it has closed.
    started = history.events[0].workflow_execution_started_event_attributes
    [unreadable] = await EncryptionCodec(PayloadKeys.parse(NEW)).decode(
        list(started.input.payloads)
    )
    assert unreadable.metadata["encoding"] == REFUSED_ENCODING
    assert b"unknown key id 'old'" in unreadable.data
